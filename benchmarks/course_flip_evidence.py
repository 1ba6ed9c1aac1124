"""What the other visit's map shows under each gained, lost and re-examined hair of one simulated course.

Usage (after ``benchmarks/course_response.py`` has run into OUT)::

    python benchmarks/course_flip_evidence.py OUT SEED COURSE     # e.g. /tmp/course_tune 2 stable

For every gained or lost hair of the course's registered field pairs (and
every re-examined one) it samples, along the hair's root half as
:func:`pipeline.register.recheck_unmatched` does: ``own``, the hair's
probability in its own frame; ``other``, the other frame's evidence (its
map outside the hairs it counted, as the re-examination reads it); and
``other_raw``, the other frame's map with its counted hairs left in. With
the truth verdict of ``benchmarks/course_hairs.py`` (flip, true change,
false hair, right recheck) it prints their quartiles. A flip with a high
``other_raw`` and no ``other`` is a shaft the other visit counted and
paired with another hair. Darkness-map values only (not the light-shaft
maps). Writes OUT/response_classical/flip_evidence_SEED_COURSE.csv.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_hairs import pair_rows  # noqa: E402


def main() -> None:
    from pipeline import register
    from pipeline.course_io import _probability_cache, run_settings
    from pipeline.imageio import read_image
    from pipeline.register import _evidence, _root_half, _sample, apply_rc, invert

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("seed", type=int)
    ap.add_argument("course")
    args = ap.parse_args()
    s = args.out / f"seed_{args.seed}"
    folder, run, cmp = s / args.course, s / f"{args.course}_run_classical", s / f"{args.course}_cmp_classical"
    verdicts = pair_rows(folder, run, cmp)
    matches = pd.read_csv(cmp / "matches.csv")
    by = {k: g.reset_index(drop=True) for k, g in pd.read_csv(run / "hairs.csv").groupby("image")}
    prob = _probability_cache(run_settings(run))
    rows = []
    for (ref, img), m in matches.groupby(["reference_image", "image"]):
        fixed, moving = read_image(folder / ref), read_image(folder / img)
        um = float(json.loads((folder / ref).with_suffix(".json").read_text())["um_per_px"])
        reg = register.register_frames(fixed, moving)
        pf, pm = prob(ref, fixed, um), prob(img, moving, um)
        v = verdicts[(verdicts.reference_image == ref) & (verdicts.image == img)].reset_index(drop=True)
        for k, r in m.reset_index(drop=True).iterrows():
            if not (r.status in ("gained", "lost") or r.rechecked):
                continue
            if r.moving_index >= 0 and (r.status == "gained" or r.fixed_index < 0):
                h, own_p, other_p, other_h, to_other = by[img].iloc[[int(r.moving_index)]], pm, pf, by[ref], reg.matrix
            else:
                h, own_p, other_p, other_h, to_other = by[ref].iloc[[int(r.fixed_index)]], pf, pm, by[img], invert(reg.matrix)
            pts = _root_half(h)
            there = apply_rc(to_other, pts.reshape(-1, 2)).reshape(pts.shape)
            ev = _evidence(other_p, other_h, um_per_px=um, tolerance_px=2)
            rows.append(dict(image=img, status=r.status, verdict=v.verdict[k], own=_sample(own_p, pts)[0],
                             other=_sample(ev, there)[0], other_raw=_sample(other_p, there)[0]))
    d = pd.DataFrame(rows)
    dest = args.out / "response_classical"
    dest.mkdir(parents=True, exist_ok=True)
    d.to_csv(dest / f"flip_evidence_{args.seed}_{args.course}.csv", index=False)
    pd.set_option("display.width", 200)
    d["kind"] = d["status"] + " / " + d["verdict"]
    print(d.groupby("kind")[["own", "other", "other_raw"]].quantile([0.25, 0.5, 0.75]).unstack().round(2).to_string())
    print("\nhairs with other_raw >= 0.3 per kind:")
    print(d.assign(shown=d.other_raw >= 0.3).groupby("kind")["shown"].agg(["size", "sum"]).to_string())


if __name__ == "__main__":
    main()
