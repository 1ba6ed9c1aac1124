"""What a model's hair map shows of shafts of each width, on held-out training-like phantoms.

Usage::

    python benchmarks/model_by_width.py --models hairnet-light-v3 /path/to/candidate --scenes light --n 24
    python benchmarks/model_by_width.py --models hairnet-light-v2 --frames /tmp/tune97 --by-colour

Renders ``n`` held-out phantoms ``[train.HOLDOUT_SEED + 1, i]`` (a stream
neither training nor threshold tuning draws from) with the scene mix of
``--scenes`` (:func:`pipeline.train.scene_overrides`), or reads the phantom
frames of ``--frames`` folders (``tricho synth`` output: image + truth JSON,
e.g. a tuning suite or its light-hair frames), runs each model's hair
map over them and reads, for every truth hair counted in the field, the
median probability along the middle half of its centre line. Prints, per
width band (and with ``--by-colour`` per hair colour), the hairs, the median
of those probabilities and the share reaching 0.6 (about the hysteresis of
the light-hair model's ``thresholds.json``): a shaft the map does not show
cannot be counted, whatever comes after it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import synth
from pipeline.imageio import read_image
from pipeline.learned import load_model
from pipeline.train import HOLDOUT_SEED, scene_overrides

BANDS_UM = [0, 30, 60, 80, 1000]


def shaft_probability(prob: np.ndarray, centerline_rc) -> float:
    """Median of ``prob`` along the middle half of a centre line (row, col pixels)."""
    c = np.asarray(centerline_rc, float)
    n = len(c)
    c = c[n // 4: 3 * n // 4 + 1]
    r = np.clip(np.round(c[:, 0]).astype(int), 0, prob.shape[0] - 1)
    k = np.clip(np.round(c[:, 1]).astype(int), 0, prob.shape[1] - 1)
    return float(np.median(prob[r, k]))


def held_out(scenes: str, n: int, unit_parallel_share: float = 0.0):
    """``n`` held-out phantoms ``[HOLDOUT_SEED + 1, i]`` of the scene mix ``scenes``: (name, image, truth)."""
    for i in range(n):
        seed = (HOLDOUT_SEED + 1, i)
        rng = np.random.default_rng(list(seed))
        params = synth.sample_scene(rng, **scene_overrides(scenes, seed, unit_parallel_share))
        img, truth = synth.render_frame(params, rng)
        truth["um_per_px"] = params.um_per_px
        yield str(i), img, truth


def from_folders(folders: list[Path]):
    """The phantom frames of ``tricho synth`` folders (truth JSON beside each image): (name, image, truth)."""
    for folder in folders:
        for tp in sorted(folder.glob("*.json")):
            try:
                truth = synth.load_truth(tp)
            except ValueError:  # another JSON beside the frames
                continue
            yield tp.stem, read_image(tp.with_name(truth["image"])), truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["hairnet-light-v3"])
    ap.add_argument("--scenes", default="light")
    ap.add_argument("--parallel-units", type=float, default=0.0,
                    help="share of the phantoms' units lying together (TrainConfig.unit_parallel_share; 0 as the "
                         "shipped models were trained)")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--frames", nargs="+", type=Path, help="phantom folders to read instead of rendering")
    ap.add_argument("--by-colour", action="store_true", help="split the table by the hair's colour too")
    a = ap.parse_args()
    models = {name: load_model(name) for name in a.models}
    frames = from_folders(a.frames) if a.frames else held_out(a.scenes, a.n, a.parallel_units)
    rows = []
    for name_i, img, truth in frames:
        for name, model in models.items():
            prob = model.predict(img, um_per_px=float(truth["um_per_px"]))["hair"]
            rows += [{"model": name, "frame": name_i, "width_um": h["width_um"], "colour": h.get("color", ""),
                      "probability": shaft_probability(prob, h["centerline_rc"])}
                     for h in truth["hairs"] if h["in_field"]]
    df = pd.DataFrame(rows)
    df["width band (um)"] = pd.cut(df["width_um"], BANDS_UM)
    keys = ["width band (um)"] + (["colour"] if a.by_colour else []) + ["model"]
    table = df.groupby(keys, observed=True)["probability"].agg(
        hairs="size", median="median", share_at_least_0_6=lambda p: float((p >= 0.6).mean()))
    if a.frames:
        print(f"{df['frame'].nunique()} phantom frames from {', '.join(map(str, a.frames))}")
    else:
        print(f"{a.n} held-out '{a.scenes}' phantoms, seeds [{HOLDOUT_SEED + 1}, 0..{a.n - 1}]")
    print(table.round(2).to_string())


if __name__ == "__main__":
    main()
