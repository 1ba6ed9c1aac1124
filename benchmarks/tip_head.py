"""How well a learned model's cut-tip map finds tips, and what perfect tips would do to the count.

Usage::

    python benchmarks/tip_head.py /tmp/t95 /tmp/t96 --model hairnet-v2 --workers 2

on ``tricho synth`` folders (image + truth JSON). Two tables:

1. **Tip map quality** on the dark-hair frames the classical path reads
   (scenes of long uncut hair left out): the local maxima of ``--model``'s
   ``tip`` map above each threshold (:func:`pipeline.frame.tip_points`,
   with the spacing the core uses), matched to the truth's cut tips within a
   shaft radius + 3 px; recall (truth tips with a peak) and precision
   (peaks with a truth tip).
2. **Perfect tips** (every frame but the long-hair scenes): the count of
   each frame when its touching shafts are split by the truth's own cut
   tips, by :func:`pipeline.frame.split_by_tips` (tips at a stripe's ends,
   what the learned path does) and by :func:`tips_along` (tips anywhere
   along the stripe away from its root end: the shorter hair of a fused
   pair ends mid-stripe, and a clipped hair lying end to end with the next
   unit's hair ends where that one emerges), against the core's own width
   split. Count MAPE per suite: the most a tip detector could give the count.
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phantom_misses import DARK, frame_image  # noqa: E402

THRESHOLDS = (0.05, 0.08, 0.12, 0.16, 0.2, 0.3)


def match_points(peaks: np.ndarray, truth: np.ndarray, reach: np.ndarray) -> tuple[int, int]:
    """(truth points with a peak within their ``reach`` px, peaks within ``reach`` of a truth point)."""
    if len(peaks) == 0 or len(truth) == 0:
        return 0, 0
    d = np.hypot(*(peaks[:, None, :] - truth[None, :, :]).transpose(2, 0, 1))
    near = d <= np.asarray(reach, float)[None, :]
    return int(near.any(0).sum()), int(near.any(1).sum())


def tips_along(cands: list, tips: np.ndarray, *, max_hairs: int = 4) -> list:
    """Count a traced shaft as as many hairs as cut tips lie along it (within its radius + 2 px) and away
    from its root end (more than two radii + 3 px); a shaft with none is one hair."""
    from pipeline.frame import as_hairs

    out = []
    for c in cands:
        path = np.asarray(c.hair.path, float)
        k = 1
        if len(tips):
            d = np.min(np.linalg.norm(tips[:, None, :] - path[None, :, :], axis=2), axis=1)
            near = d <= c.radius_px + 2
            if c.root is not None:
                root = path[0] if c.root == 0 else path[-1]
                near &= np.hypot(*(tips - root).T) > 2 * c.radius_px + 3
            k = min(max(int(near.sum()), 1), max_hairs)
        out.extend(as_hairs(c, k))
    return out


def _truth_tips(truth: dict, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Cut tips (row, col) of the clipped truth hairs inside the frame and their widths (µm)."""
    hairs = [h for h in truth["hairs"] if h.get("kind", "clipped") == "clipped"]
    tips = np.array([h["tip_rc"] for h in hairs], float).reshape(-1, 2)
    width = np.array([h["width_um"] for h in hairs], float)
    inside = (tips[:, 0] >= 0) & (tips[:, 1] >= 0) & (tips[:, 0] < shape[0]) & (tips[:, 1] < shape[1])
    return tips[inside], width[inside]


def frame_rows(truth_path: Path, model: str) -> tuple[list[dict], dict | None]:
    """Tip-map rows (one per threshold; none unless a dark-hair frame read on the classical path) and the
    frame's counts with perfect tips (None for a scene of long uncut hair)."""
    from pipeline.frame import counted_hairs, frame_stages, split_by_tips, tip_points
    from pipeline.imageio import read_image
    from pipeline.learned import load_model
    from pipeline.settings import Settings

    truth = json.loads(truth_path.read_text())
    p, um = truth["params"], float(truth["um_per_px"])
    if p["n_long_hairs"] > 0 and p["uncut_fraction"] > 0.5:
        return [], None
    image = read_image(frame_image(truth_path))
    st = frame_stages(image, um_per_px=um, settings=Settings())
    tips, width = _truth_tips(truth, image.shape[:2])
    counts = {"frame": truth_path.stem, "suite": truth_path.stem.split("_")[1], "truth": int(truth["count_in_field"]),
              "width split": len(counted_hairs(st, um)), "tips at ends": len(split_by_tips(st.inside, tips)),
              "tips along": len(tips_along(st.inside, tips))}
    if p["hair_color"] not in DARK or st.used != "classical":
        return [], counts
    net = load_model(model)
    tip_map = np.where(st.valid, net.predict(image, um_per_px=um)["tip"], 0.0)
    on_skin = st.valid[tips[:, 0].astype(int), tips[:, 1].astype(int)]
    tips, reach = tips[on_skin], np.maximum(width[on_skin] / um / 2, 1.0) + 3.0
    rows = []
    for th in THRESHOLDS:
        peaks = tip_points(tip_map, threshold=th, min_distance_px=max(2, round(2 * net.um_per_px / um)))
        found, right = match_points(peaks, tips, reach)
        rows.append({"frame": truth_path.stem, "threshold": th, "truth_tips": len(tips), "peaks": len(peaks),
                     "tips_found": found, "peaks_on_tips": right})
    return rows, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="tricho synth folders (image + truth JSON)")
    ap.add_argument("--model", default="hairnet-v2", help="model folder name or path with a tip head")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    files = [p for d in a.folders for p in sorted(d.glob("phantom_*.json"))]
    tip_rows, counts = [], []
    with ProcessPoolExecutor(a.workers) as ex:
        for rows, c in ex.map(frame_rows, files, [a.model] * len(files)):
            tip_rows += rows
            counts += [c] if c else []
    if tip_rows:
        q = pd.DataFrame(tip_rows).groupby("threshold")[["truth_tips", "peaks", "tips_found", "peaks_on_tips"]].sum()
        q["recall"], q["precision"] = q.tips_found / q.truth_tips, q.peaks_on_tips / q.peaks
        print(f"{a.model}'s tip map on {len(set(r['frame'] for r in tip_rows))} dark-hair frames (classical path):")
        print(q.round(3).to_string(), "\n")
    else:
        print("no dark-hair frame read on the classical path: no tip-map table\n")
    c = pd.DataFrame(counts)
    ways = ["width split", "tips at ends", "tips along"]
    ape = pd.DataFrame({w: 100 * (c[w] - c.truth).abs() / c.truth.clip(lower=1) for w in ways}).assign(suite=c.suite)
    table = ape.groupby("suite")[ways].mean()
    table.loc["all"] = ape[ways].mean()
    print(f"count MAPE (%) with the truth's cut tips, {len(c)} frames without long-hair scenes:")
    print(table.round(2).to_string())
    print("hairs read:", {w: int(c[w].sum()) for w in ways}, "truth:", int(c.truth.sum()))


if __name__ == "__main__":
    main()
