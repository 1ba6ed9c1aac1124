"""What became of every hair a simulated course truly lost or gained by its last session.

Usage (after ``benchmarks/course_response.py`` has run into OUT)::

    python benchmarks/course_fate.py /tmp/course_bench [--margin-um 150]

For every registered field pair of each course's last session, the truth
hairs whose emergence point lies in both visits' frames (``--margin-um``
inside both, through the exact transforms) and that are present in one
visit only are the true losses and gains. Each is tied to a measured hair
of the visit that shows it, as ``tricho evaluate`` ties them, and its fate
is that hair's status in ``matches.csv`` (``lost`` / ``gained``: seen;
``persisting``: read away as the same hair), or ``missed`` when that visit
found no hair for it. Split by course kind, width class and colour, and
for losses by whether the unit keeps other hairs (a hair leaving a unit
that stays). It tells a change read short by the per-frame core (the
changed hair never detected) from one read short by the matching. Writes
``OUT/response_classical/course_fate.csv``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_hairs import _tracks  # noqa: E402
from course_response import CMP_TAG_HELP, COURSES, in_both_frames  # noqa: E402


def pair_fates(folder: Path, by_image: dict[str, pd.DataFrame], ref: str, img: str, m: pd.DataFrame,
               margin_um: float) -> list[dict]:
    """One row per true loss and gain of one registered field pair (``by_image``: the course run's
    ``hairs.csv`` per image)."""
    from pipeline.register import apply_rc

    t0 = json.loads((folder / ref).with_suffix(".json").read_text())
    t1 = json.loads((folder / img).with_suffix(".json").read_text())
    empty = pd.DataFrame(columns=["row", "col", "thickness_um"])
    track0, truth0 = _tracks(t0, by_image.get(ref, empty))
    track1, truth1 = _tracks(t1, by_image.get(img, empty))
    in_frames, back = in_both_frames(t0, t1, margin_um)

    def in_both(rc0):
        return bool(in_frames(rc0)[0])

    status0 = {int(r.fixed_index): r.status for r in m.itertuples() if r.fixed_index >= 0}
    status1 = {int(r.moving_index): r.status for r in m.itertuples() if r.moving_index >= 0}
    found0 = {int(t): k for k, t in enumerate(track0) if t >= 0}
    found1 = {int(t): k for k, t in enumerate(track1) if t >= 0}
    by0, by1 = {x["track_id"]: x for x in truth0}, {x["track_id"]: x for x in truth1}
    units0: dict = {}
    for x in truth0:
        units0.setdefault(x["unit_id"], []).append(x["track_id"])
    rows = []
    for t in set(by0) - set(by1):
        x = by0[t]
        if not in_both(x["emergence_rc"]):
            continue
        stays = any(o in by1 for o in units0[x["unit_id"]] if o != t)
        rows.append({"change": "lost", "width_um": x["width_um"], "colour": x["color"], "unit_stays": stays,
                     "fate": status0.get(found0[t], "outside region") if t in found0 else "missed"})
    for t in set(by1) - set(by0):
        x = by1[t]
        if not in_both(apply_rc(back, np.asarray(x["emergence_rc"], float).reshape(-1, 2))[0]):
            continue
        rows.append({"change": "gained", "width_um": x["width_um"], "colour": x["color"], "unit_stays": None,
                     "fate": status1.get(found1[t], "outside region") if t in found1 else "missed"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--margin-um", type=float, default=150.0, help="inside both frames by this much (µm)")
    ap.add_argument("--cmp-tag", default="classical", help=CMP_TAG_HELP)
    args = ap.parse_args()
    rows = []
    for seed_dir in sorted(args.out.glob("seed_*")):
        for kind in COURSES:
            cmp_dir = seed_dir / f"{kind}_cmp_{args.cmp_tag}"
            if not (cmp_dir / "matches.csv").is_file():
                continue
            matches = pd.read_csv(cmp_dir / "matches.csv")
            last = matches[matches["session_date"] == matches["session_date"].max()]
            hairs = pd.read_csv(seed_dir / f"{kind}_run_classical" / "hairs.csv")
            by_image = {k: g.reset_index(drop=True) for k, g in hairs.groupby("image")}
            for (ref, img), m in last.groupby(["reference_image", "image"]):
                for r in pair_fates(seed_dir / kind, by_image, ref, img, m, args.margin_um):
                    rows.append(r | {"seed": int(seed_dir.name.split("_")[1]), "course": kind})
    if not rows:
        sys.exit(f"no matches.csv under {args.out}/seed_*/<course>_cmp_classical: run course_response.py first")
    d = pd.DataFrame(rows)
    d["width_class"] = pd.cut(d["width_um"], [0, 30, 60, 1000], labels=["<=30 um", "30-60 um", ">60 um"])
    pd.set_option("display.width", 200)
    print(pd.crosstab([d["course"], d["change"]], d["fate"]), "\n")
    print(pd.crosstab([d["change"], d["width_class"]], d["fate"]), "\n")
    lost = d[d["change"] == "lost"]
    print("losses by whether the unit keeps other hairs:\n", pd.crosstab(lost["unit_stays"], lost["fate"]), "\n")
    print(pd.crosstab([d["change"], d["colour"]], d["fate"]))
    dest = args.out / "response_classical"
    dest.mkdir(parents=True, exist_ok=True)
    d.to_csv(dest / "course_fate.csv", index=False)


if __name__ == "__main__":
    main()
