"""How close the phantom courses' new units open to the existing ones.

Usage::

    python benchmarks/course_spacing.py --seeds 0:8

For each course scene (as :func:`pipeline.synth_course.generate_course`
draws its first field), prints the 5th percentile and median of the
distance (µm) from each first-visit opening to its nearest neighbour, and
from each candidate new unit's opening to the nearest first-visit opening.
A new unit that opens much closer to an existing one than first-visit
openings ever do fuses with its stripe.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
from scipy.spatial import cKDTree

from pipeline import synth


def spacing(seed: int) -> dict[str, float]:
    """Opening distances (µm) of one course scene: first visit to first visit, new to first visit."""
    p = dataclasses.replace(synth.sample_scene(np.random.default_rng(seed)), n_long_hairs=0, uncut_fraction=0.0)
    base = synth._layout(p, np.random.default_rng([seed, 0]))
    extra = synth._layout(dataclasses.replace(p, density_per_cm2=p.density_per_cm2 * 0.6),
                          np.random.default_rng([seed, 1]))
    tree = cKDTree(base.openings)
    base_nn = tree.query(base.openings, k=2)[0][:, 1] * p.um_per_px
    new_nn = tree.query(extra.openings)[0] * p.um_per_px
    return {"seed": seed, "base_p5_um": np.percentile(base_nn, 5), "base_median_um": np.median(base_nn),
            "new_p5_um": np.percentile(new_nn, 5), "new_median_um": np.median(new_nn)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0:8", help="START:STOP (Python range)")
    a = ap.parse_args()
    start, stop = (int(v) for v in a.seeds.split(":"))
    print("| seed | first visit p5 / median (µm) | new unit p5 / median (µm) |\n|---|---|---|")
    for seed in range(start, stop):
        r = spacing(seed)
        print(f"| {seed} | {r['base_p5_um']:.0f} / {r['base_median_um']:.0f} | {r['new_p5_um']:.0f} / {r['new_median_um']:.0f} |")


if __name__ == "__main__":
    main()
