"""Two evaluated runs of the same frames compared frame by frame: is a change more than jitter?

Usage (each RUN an evaluated ``tricho analyze`` output: ``tricho evaluate RUN --truth T`` wrote
``RUN/evaluation.json``)::

    python benchmarks/paired_runs.py --a R95 R96 R97 R98 --b S95 S96 S97 S98 [--list]
    python benchmarks/paired_runs.py --a fdu_base --b fdu_new --evaluation eval_A.json

Runs are paired in the order given (``--a`` the baseline, ``--b`` the change) and
their frames by image name. Printed: each side's count MAPE over all frames, the
mean per-frame difference of the absolute percentage error (b - a) with its standard
error and a 95% interval (normal approximation over the paired frames), how many
frames moved and how many of those got better or worse; then the same per
``segmenter`` of the baseline's ``images.csv`` (what measured the frame) and, with
``--list``, every frame that moved.

On phantom runs (their evaluation ties every counted hair to a truth hair) it also
prints the hairs counted and matched on each side, and which share of the hairs a
change adds is matched (:func:`detections`). The count MAPE of frames that read too
few hairs falls for any hair added, matched or not: on tuning suites 95-98, whose
count is biased low, ``--set tip_step=0.3`` on their 81 frames of 4 um/px or coarser
read 0.33 points better over the 192 frames while it added 84 counted hairs for 10
matched ones (docs/HISTORY.md, session 56), where the faint-shaft search of session 55
added 33 for 21 (64%).

Why paired: one small change of the hair map moves the counts of a few frames by one
hair either way (a re-saved JPEG moves a third of fdu_val's frames; docs/HISTORY.md,
session 39), and two suites' MAPE then differ by tenths of a point with nothing
gained. The paired difference's standard error says how large a difference these
frames can show by jitter alone: a setting is worth keeping only when its gain
stands well clear of that (session 44 measured, on tuning suites 95-98, a standard
error of 0.17 points for a change that moved 17 of 192 frames, and 0.43 for one that
moved 44).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def frame_table(run: str | Path, evaluation: str = "evaluation.json") -> pd.DataFrame:
    """One row per evaluated frame of ``run``: image (no extension), true and predicted count,
    absolute percentage error (%), the hairs counted in the evaluation's field and tied to a truth
    hair (``detected``, ``matched``; NaN for box truth, which ties none) and the ``segmenter`` that
    measured it (empty when the run has no ``images.csv``)."""
    run = Path(run)
    per_frame = json.loads((run / evaluation).read_text())["per_frame"]
    d = pd.DataFrame([{"image": f["image"], "true_count": f["true_count"], "pred_count": f["pred_count"],
                       "ape_pct": f["count_ape_pct"], "matched": f.get("n_matched", np.nan),
                       "detected": f.get("n_pred_detect", np.nan)} for f in per_frame])
    images = run / "images.csv"
    if images.is_file() and len(d):
        im = pd.read_csv(images, usecols=lambda c: c in ("image", "segmenter"))
        im["image"] = im["image"].astype(str).map(lambda s: Path(s).stem)
        d = d.merge(im.drop_duplicates("image"), on="image", how="left")
    if "segmenter" not in d:
        d["segmenter"] = ""
    d["segmenter"] = d["segmenter"].fillna("")
    return d


def paired(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """The paired comparison of two :func:`frame_table` s of the same frames.

    Frames are matched on ``image``; frames in one table only are counted apart
    (``only_a``, ``only_b``) and left out. Returns the number of paired frames, both
    sides' count MAPE (%), the mean difference of the per-frame error (b - a,
    percentage points), its standard error (sample SD / sqrt(n); 0 for one frame) and
    95% interval, and the frames whose predicted count moved, got better and got worse.
    """
    m = _merged(a, b)
    n = len(m)
    diff = (m["ape_pct_b"] - m["ape_pct_a"]).to_numpy(float)
    moved = m["pred_count_a"] != m["pred_count_b"]
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    mean = float(diff.mean()) if n else float("nan")
    return {
        "n_frames": n,
        "only_a": int(len(a) - n),
        "only_b": int(len(b) - n),
        "mape_a_pct": float(m["ape_pct_a"].mean()) if n else float("nan"),
        "mape_b_pct": float(m["ape_pct_b"].mean()) if n else float("nan"),
        "diff_pp": mean,
        "se_pp": se,
        "ci95_pp": (mean - 1.96 * se, mean + 1.96 * se),
        "moved": int(moved.sum()),
        "better": int((moved & (diff < 0)).sum()),
        "worse": int((moved & (diff > 0)).sum()),
    }


def detections(a: pd.DataFrame, b: pd.DataFrame) -> dict | None:
    """Hairs counted and matched to a truth hair on both sides of a paired comparison, or None when
    the evaluation ties no hair (box truth).

    Returns the sums over the paired frames (``detected_a``, ``detected_b``, ``matched_a``,
    ``matched_b``) and ``added_matched_share``: the matched hairs a change gains per counted hair it
    gains (NaN when it gains none). A change that lowers the count MAPE of frames read too low by
    hairs no truth hair explains has a low share.

    >>> t = lambda d, m: pd.DataFrame({"image": ["x", "y"], "detected": d, "matched": m})
    >>> detections(t([10, 5], [9, 5]), t([14, 5], [10, 5]))["added_matched_share"]
    0.25
    """
    m = _merged(a, b)
    if not {"matched_a", "detected_a"} <= set(m) or m[["matched_a", "matched_b"]].isna().any().any():
        return None
    sums = {k: int(m[k].sum()) for k in ("detected_a", "detected_b", "matched_a", "matched_b")}
    gained = sums["detected_b"] - sums["detected_a"]
    share = (sums["matched_b"] - sums["matched_a"]) / gained if gained > 0 else float("nan")
    return {**sums, "added_matched_share": share}


def _merged(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The frames of both tables, paired on ``image`` (columns suffixed ``_a`` and ``_b``)."""
    return a.merge(b, on="image", suffixes=("_a", "_b"))


def _tables(runs: list[str], evaluation: str) -> pd.DataFrame:
    tables = []
    for k, run in enumerate(runs):
        t = frame_table(run, evaluation)
        t["image"] = f"{k}:" + t["image"]  # suites may reuse frame names
        tables.append(t)
    return pd.concat(tables, ignore_index=True)


def _line(label: str, r: dict) -> str:
    lo, hi = r["ci95_pp"]
    return (f"{label:<24} {r['n_frames']:>5} {r['mape_a_pct']:>8.2f} {r['mape_b_pct']:>8.2f} "
            f"{r['diff_pp']:>+8.2f} {r['se_pp']:>6.2f}  [{lo:+.2f}, {hi:+.2f}]  "
            f"{r['moved']:>3} moved, {r['better']} better, {r['worse']} worse")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", nargs="+", required=True, help="baseline runs (evaluated)")
    ap.add_argument("--b", nargs="+", required=True, help="changed runs, paired with --a in order")
    ap.add_argument("--evaluation", default="evaluation.json",
                    help="file name of the evaluation in each run (e.g. eval_A.json for one fdu_val half)")
    ap.add_argument("--list", action="store_true", help="print every frame whose count moved")
    args = ap.parse_args()
    if len(args.a) != len(args.b):
        ap.error(f"--a has {len(args.a)} runs and --b {len(args.b)}: give them in pairs")
    a, b = _tables(args.a, args.evaluation), _tables(args.b, args.evaluation)
    print(f"{'frames':<24} {'n':>5} {'MAPE a':>8} {'MAPE b':>8} {'b - a':>8} {'SE':>6}  95% interval (points)")
    whole = paired(a, b)
    print(_line("all", whole))
    if whole["only_a"] or whole["only_b"]:
        print(f"  (left out: {whole['only_a']} frames in a only, {whole['only_b']} in b only)")
    hits = detections(a, b)
    if hits:
        share = hits["added_matched_share"]
        print(f"  hairs counted {hits['detected_a']} -> {hits['detected_b']}, matched to truth "
              f"{hits['matched_a']} -> {hits['matched_b']}"
              + (f"; {share:.0%} of the added hairs matched" if np.isfinite(share) else ""))
    for seg, part in a.groupby("segmenter"):
        if seg:
            print(_line(f"  {seg}", paired(part, b[b["image"].isin(part["image"])])))
    if args.list:
        m = _merged(a, b)
        m = m[m["pred_count_a"] != m["pred_count_b"]]
        cols = ["image", "segmenter_a", "true_count_a", "pred_count_a", "pred_count_b", "ape_pct_a", "ape_pct_b"]
        print(m[cols].round(1).to_string(index=False))


if __name__ == "__main__":
    main()
