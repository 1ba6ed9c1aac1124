"""Which phantom hairs can be seen at all: found and missed truth hairs by their contrast with the skin beside them.

Usage (evaluated or not, any ``tricho analyze`` runs on phantom frames; seeds below 1000 for tuning)::

    python benchmarks/phantom_visibility.py --runs R95 R96 --frames S95 S96 [--out visibility.csv]

The generator draws every hair its scene holds, including vellus and light
shafts that the blur, the noise and the JPEG leave no trace of. Counting
them is the counting rule, but a miss of such a hair says nothing about the
segmenter. For every truth hair that ``tricho evaluate`` counts (emergence in
the field, in the frame; found or missed as
:func:`phantom_misses.frame_hairs` decides), this script reads the frame's
CIE Lab colour (OpenCV's 8-bit scale: L 0-255, a and b offset by 128) along
the centre line, from one diameter or 20% of its length (whichever is more,
at most half of it: past the shaft's fade into the skin at its emergence) to
90% of it, and on both sides of it, 2.5 px beyond the shaft's edge, and
reports (samples outside the image left out):

* ``contrast``: the distance between the mean colour on the line and the mean
  colour beside it;
* ``contrast_to_noise``: that distance over the mean distance of the samples
  beside the line from their own mean (the skin's grain).

Tables: share of hairs found by contrast, the frames' count MAPE against
only the hairs above each contrast floor (with the run's own counts), and
the misses that are plain to see (contrast over 20 and twice the grain) by
what happened to them (``fused``: a unit-mate was found; ``unit``: the whole
unit was missed; ``single``: a one-hair unit). Scenes with uncut long hair
are left out (``--with-long-hair`` keeps them). Hairs shorter than 4 px get
no contrast (NaN) and count as visible.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy.ndimage import map_coordinates

sys.path.insert(0, str(Path(__file__).resolve().parent))
import phantom_misses  # noqa: E402

#: Contrast floors of the MAPE table (8-bit Lab units); 4 is about where a shaft stops showing.
FLOORS = (0.0, 3.0, 4.0, 6.0, 10.0)
#: A miss is plain to see above this contrast and this contrast-to-noise ratio.
PLAIN = (20.0, 2.0)


def line_contrast(lab: np.ndarray, line: np.ndarray, width_px: float) -> tuple[float, float]:
    """Colour distance of a shaft from the skin beside it, and that distance over the skin's grain.

    Parameters
    ----------
    lab : ndarray of float32, shape (M, N, 3)
        The frame in Lab (OpenCV's 8-bit scale).
    line : ndarray, shape (K, 2)
        Centre line (row, col), pixels.
    width_px : float
        Shaft diameter (pixels); the skin is read 2.5 px beyond its edges.

    Returns
    -------
    (contrast, contrast_to_noise) : tuple of float
        NaN for a centre line shorter than 4 px or one with too little of it in the image.
    """
    step = np.hypot(*np.diff(line, axis=0).T)
    arc = np.r_[0.0, np.cumsum(step)]
    if arc[-1] < 4:
        return float("nan"), float("nan")
    start = min(max(width_px, 0.2 * arc[-1]), 0.5 * arc[-1])
    s = np.linspace(start, 0.9 * arc[-1], max(5, int(arc[-1])))
    r, c = np.interp(s, arc, line[:, 0]), np.interp(s, arc, line[:, 1])
    dr, dc = np.gradient(r), np.gradient(c)
    norm = np.hypot(dr, dc) + 1e-9
    nr, nc = -dc / norm, dr / norm
    off = width_px / 2 + 2.5
    sides = [(r + off * nr, c + off * nc), (r - off * nr, c - off * nc)]
    inside = np.ones_like(r, bool)
    for rows, cols in [(r, c), *sides]:
        inside &= (rows >= 0) & (rows <= lab.shape[0] - 1) & (cols >= 0) & (cols <= lab.shape[1] - 1)
    if inside.sum() < 3:
        return float("nan"), float("nan")

    def sample(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows, cols = rows[inside], cols[inside]
        return np.stack([map_coordinates(lab[..., k], [rows, cols], order=1) for k in range(3)], 1)

    on = sample(r, c)
    beside = np.concatenate([sample(*sides[0]), sample(*sides[1])])
    skin = beside.mean(axis=0)
    contrast = float(np.linalg.norm(on.mean(axis=0) - skin))
    grain = float(np.linalg.norm(beside - skin, axis=1).mean())
    return contrast, contrast / max(grain, 1e-6)


def frame_contrasts(truth_path: Path) -> pd.DataFrame:
    """:func:`line_contrast` of every counted truth hair of one phantom frame, in
    :func:`phantom_misses.counted_targets` order (the order of :func:`phantom_misses.frame_hairs`' rows)."""
    truth = json.loads(truth_path.read_text())
    targets, _ = phantom_misses.counted_targets(truth)
    bgr = cv2.imread(str(phantom_misses.frame_image(truth_path)))
    if bgr is None:
        sys.exit(f"cannot read the phantom image beside {truth_path}: render the suite again with tricho synth")
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB).astype(np.float32)
    um = float(truth["um_per_px"])
    return pd.DataFrame([line_contrast(lab, h["centerline_rc"], h["width_um"] / um) for h in targets],
                        columns=["contrast", "contrast_to_noise"], dtype=float)


def run_table(run: Path, frames: Path, *, with_long_hair: bool = False) -> tuple[pd.DataFrame, pd.Series]:
    """:func:`phantom_misses.run_table` (found or why missed) over a run's measured phantom frames with each
    hair's :func:`frame_contrasts`, and the run's count per frame (by stem)."""
    images = pd.read_csv(run / "images.csv")
    images = images[(images["status"] == "ok") & images["hair_count"].notna()]  # measured frames only
    counts = pd.Series(images["hair_count"].to_numpy(float), index=images["image"].map(lambda s: Path(str(s)).stem))
    table = phantom_misses.run_table(run, frames, with_long_hair=with_long_hair)
    table = table[table["frame"].isin(counts.index)].reset_index(drop=True)
    contrasts = [frame_contrasts(frames / f"{stem}.json") for stem in table["frame"].unique()]
    return table.join(pd.concat(contrasts, ignore_index=True)), counts


def mape_above(table: pd.DataFrame, counts: pd.Series, floor: float) -> tuple[float, float]:
    """Count MAPE (%) and mean count error (hairs) of the frames against only their hairs of at least ``floor``
    contrast (hairs without a contrast count as visible); frames left with no such hair are skipped."""
    seen = table.assign(seen=table["contrast"].fillna(np.inf) >= floor).groupby("frame")["seen"].sum()
    seen = seen[seen > 0]
    error = counts.reindex(seen.index).to_numpy(float) - seen.to_numpy(float)
    return float(np.mean(np.abs(error) / seen.to_numpy(float)) * 100), float(np.mean(error))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", type=Path, required=True, help="tricho analyze output folders")
    ap.add_argument("--frames", nargs="+", type=Path, required=True, help="their phantom frames, in the same order")
    ap.add_argument("--with-long-hair", action="store_true", help="keep the uncut long-hair scenes")
    ap.add_argument("--out", type=Path, help="write one row per truth hair here (CSV)")
    a = ap.parse_args()
    if len(a.runs) != len(a.frames):
        sys.exit(f"give one frames folder per run: {len(a.runs)} runs, {len(a.frames)} frames folders")
    for run in a.runs:
        if not (run / "hairs.csv").is_file() or not (run / "images.csv").is_file():
            sys.exit(f"{run} has no hairs.csv / images.csv: pass the output folder of tricho analyze")
    tables, counts = zip(*(run_table(r, f, with_long_hair=a.with_long_hair) for r, f in zip(a.runs, a.frames)))
    # frames keyed by run as well, so that two suites with the same frame names stay apart
    tables = [t.assign(frame=f"{k}:" + t["frame"]) for k, t in enumerate(tables)]
    counts = [c.set_axis([f"{k}:{stem}" for stem in c.index]) for k, c in enumerate(counts)]
    table, count = pd.concat(tables, ignore_index=True), pd.concat(counts)
    table["found"] = table["status"] == "found"
    print(f"{table['frame'].nunique()} frames, {len(table)} truth hairs, {int((~table['found']).sum())} missed\n")
    bins = pd.cut(table["contrast"], [0, 4, 10, 20, np.inf], include_lowest=True)
    by = table.groupby(bins, observed=True)["found"]
    print("Found by contrast with the skin beside the shaft (8-bit Lab units):")
    print(pd.DataFrame({"hairs": by.size(), "found": by.mean().round(3), "missed": by.size() - by.sum()}).to_string(), "\n")
    print("Count against only the hairs of at least each contrast:")
    for floor in FLOORS:
        mape, bias = mape_above(table, count, floor)
        print(f"  contrast >= {floor:>4}: count MAPE {mape:6.2f}%, mean count error {bias:+.2f} hairs")
    plain = table[(table["contrast"] > PLAIN[0]) & (table["contrast_to_noise"] > PLAIN[1])]
    missed = plain[~plain["found"]]
    print(f"\nPlain to see (contrast > {PLAIN[0]:g}, contrast-to-noise > {PLAIN[1]:g}): {len(plain)} hairs, "
          f"{len(missed)} missed:")
    print(missed["status"].value_counts().to_string())
    if a.out:
        table.to_csv(a.out, index=False)
        print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
