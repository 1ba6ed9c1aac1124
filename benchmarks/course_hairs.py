"""Hair by hair: are the matched statuses of simulated courses right?

Usage (after ``benchmarks/course_response.py`` has run into OUT)::

    python benchmarks/course_hairs.py /tmp/course_bench [--last-only]

Every hair of a registered field pair (``matches.csv`` of ``tricho
compare``) is tied to a truth hair of its own frame, as ``tricho evaluate``
ties them (emergence point to centre line, Hungarian, same gates), and the
truth hair's ``track_id`` (one follicle's hair across the sessions of a
course) says what really happened to it:

* ``persisting``: right when both sides hold the same track; a re-examined
  hair (``rechecked``) is right when its track is in the other visit too,
  a ``masked change`` when it is not (a real loss or gain read away);
* ``gained`` / ``lost``: a ``true change`` when the track is absent from the
  other visit, a ``flip`` when it is there (the other visit missed it), a
  ``false hair`` when no truth hair is near.

Also counted: the tracks present in both visits' common region that
neither visit found (``missed in both``). Per course kind, over the pairs
of every session (or the last one only), it prints the counts, the true
and measured losses and gains, and the flips split by the hair's colour.
Writes ``OUT/response_classical/course_hairs.csv`` (one row per match).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_response import CMP_TAG_HELP, COURSES  # noqa: E402


def _tracks(truth: dict, hairs: pd.DataFrame) -> tuple[np.ndarray, list[dict]]:
    """Track id per measured hair (-1: no truth hair near) and the frame's truth hairs."""
    from pipeline.evaluate import EvaluationSettings, match_phantom_frame

    targets = [h | {"centerline_rc": np.asarray(h["centerline_rc"], float)} for h in truth["hairs"] if h["in_frame"]]
    track = np.full(len(hairs), -1, int)
    if not len(hairs) or not targets:
        return track, targets
    field = (0.0, float(truth["height_px"]), 0.0, float(truth["width_px"]))
    pairs, kept = match_phantom_frame(targets, hairs, um_per_px=float(truth["um_per_px"]), field_rc=field,
                                      settings=EvaluationSettings())
    for i, j, _ in pairs:
        track[kept[i]] = targets[j]["track_id"]
    return track, targets


def _verdict(status: str, rechecked: bool, own: int, other: int, other_tracks: set) -> str:
    if status == "persisting" and not rechecked:
        return "right" if own == other and own >= 0 else "mismatched"
    if own < 0:
        return "false hair"
    if status == "persisting":
        return "right recheck" if own in other_tracks else "masked change"
    return "flip" if own in other_tracks else "true change"


def pair_rows(folder: Path, run_dir: Path, cmp_dir: Path) -> pd.DataFrame:
    """One row per match of every registered pair of one course, with its verdict."""
    matches = pd.read_csv(cmp_dir / "matches.csv")
    hairs = pd.read_csv(run_dir / "hairs.csv")
    by_image = {k: g.reset_index(drop=True) for k, g in hairs.groupby("image")}
    rows = []
    for (ref, img), m in matches.groupby(["reference_image", "image"]):
        t0 = json.loads((folder / ref).with_suffix(".json").read_text())
        t1 = json.loads((folder / img).with_suffix(".json").read_text())
        empty = pd.DataFrame(columns=["row", "col", "thickness_um"])
        tf, targets0 = _tracks(t0, by_image.get(ref, empty))
        tm, targets1 = _tracks(t1, by_image.get(img, empty))
        tracks0 = {h["track_id"] for h in targets0}
        tracks1 = {h["track_id"] for h in targets1}
        colour = {h["track_id"]: h["color"] for h in targets0 + targets1}
        fi, mi = m["fixed_index"].to_numpy(int), m["moving_index"].to_numpy(int)
        for k, r in enumerate(m.itertuples(index=False)):
            own_f = tf[fi[k]] if fi[k] >= 0 else -1
            own_m = tm[mi[k]] if mi[k] >= 0 else -1
            rechecked = bool(getattr(r, "rechecked", False))
            if r.status == "gained" or (r.status == "persisting" and rechecked and fi[k] < 0):
                own, other, other_tracks = own_m, -1, tracks0
            elif r.status == "lost" or (r.status == "persisting" and rechecked):
                own, other, other_tracks = own_f, -1, tracks1
            else:
                own, other, other_tracks = own_f, own_m, set()
            rows.append({"image": img, "reference_image": ref, "session_date": r.session_date, "status": r.status,
                         "rechecked": rechecked, "track": own,
                         "colour": colour.get(own, ""),
                         "verdict": _verdict(r.status, rechecked, own, other, other_tracks)})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--last-only", action="store_true", help="only the pairs of each course's last session")
    ap.add_argument("--cmp-tag", default="classical", help=CMP_TAG_HELP)
    args = ap.parse_args()
    tables = []
    for seed_dir in sorted(args.out.glob("seed_*")):
        for kind in COURSES:
            cmp_dir = seed_dir / f"{kind}_cmp_{args.cmp_tag}"
            if not (cmp_dir / "matches.csv").is_file():
                continue
            t = pair_rows(seed_dir / kind, seed_dir / f"{kind}_run_classical", cmp_dir)
            if args.last_only and len(t):
                t = t[t["session_date"] == t["session_date"].max()]
            tables.append(t.assign(seed=int(seed_dir.name.split("_")[1]), course=kind))
    if not tables:
        sys.exit(f"no matches.csv under {args.out}/seed_*/<course>_cmp_classical: run course_response.py first")
    t = pd.concat(tables, ignore_index=True)
    dest = args.out / "response_classical"
    dest.mkdir(parents=True, exist_ok=True)
    t.to_csv(dest / "course_hairs.csv", index=False)
    pd.set_option("display.width", 200)
    print(t.groupby(["course", "status", "verdict"]).size().unstack(fill_value=0))
    print("\nper seed and course (gained/lost statuses only):")
    changes = t[t["status"].isin(["gained", "lost"]) | (t["verdict"] == "masked change")]
    print(changes.groupby(["seed", "course", "verdict"]).size().unstack(fill_value=0))
    print("\nflips and masked changes by colour:")
    print(t[t["verdict"].isin(["flip", "masked change", "false hair"])]
          .groupby(["verdict", "colour"]).size().unstack(fill_value=0))


if __name__ == "__main__":
    main()
