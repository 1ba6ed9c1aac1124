"""Where a phantom run loses hairs and thickness: every truth hair found or missed, and why.

Usage (after ``benchmarks/phantom_suite.py`` or any ``tricho analyze`` run on phantoms)::

    python benchmarks/phantom_misses.py /tmp/suite/run_edges /tmp/suite/frames

Every truth hair counted by the density rule and inside the frame is matched
to the run's hairs exactly as ``tricho evaluate`` does (emergence point to
centre line, Hungarian, same gates). A missed hair is then

* ``fused``: another hair of its follicular unit was found (touching shafts
  of one unit read as one hair);
* ``unit``: its whole unit of two or more hairs was missed;
* ``single``: a one-hair unit that was missed.

The tables split hairs by their own colour and by whether the frame's hair is
dark (black, dark brown, brown: the darkness map) or light (blond, grey,
white: the light-hair path), so grey and white hairs among dark ones show
apart. Matched hairs give the thickness error by colour and its tails, and
by the path that segmented the frame (``images.csv`` ``segmenter``), skin
tone and true width.
Long-hair scenes are left out (``--with-long-hair`` keeps them). Writes
``RUN_DIR/phantom_misses.csv`` (one row per truth hair).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.evaluate import EvaluationSettings, match_phantom_frame

DARK = ("black", "dark_brown", "brown")


def counted_targets(truth: dict) -> tuple[list[dict], tuple[float, float, float, float]]:
    """The truth hairs ``tricho evaluate`` matches (counted by the density rule and in the frame,
    centre lines as arrays) and the counting field ``(row0, row1, col0, col1)`` of one phantom truth JSON."""
    targets = [h | {"centerline_rc": np.asarray(h["centerline_rc"], float)}
               for h in truth["hairs"] if h["in_field"] and h["in_frame"]]
    return targets, tuple(float(truth["field"][k]) for k in ("row0", "row1", "col0", "col1"))


def frame_image(truth_path: Path) -> Path:
    """The phantom image beside its truth JSON (same stem, any image extension)."""
    return next(p for p in truth_path.parent.glob(truth_path.stem + ".*") if p.suffix != ".json")


def frame_hairs(truth: dict, pred: pd.DataFrame, settings: EvaluationSettings) -> pd.DataFrame:
    """One row per counted truth hair of one phantom frame: found or why missed, and the matched thickness."""
    targets, field = counted_targets(truth)
    pairs, kept = match_phantom_frame(targets, pred, um_per_px=float(truth["um_per_px"]), field_rc=field,
                                      settings=settings)
    thick = pred["thickness_um"].to_numpy(float)[kept]
    found = {j: thick[i] for i, j, _ in pairs}
    units: dict[int, list[int]] = {}
    for j, h in enumerate(targets):
        units.setdefault(h["unit_id"], []).append(j)
    rows = []
    for j, h in enumerate(targets):
        mates = [k for k in units[h["unit_id"]] if k != j]
        status = ("found" if j in found else "fused" if any(k in found for k in mates)
                  else "unit" if mates else "single")
        rows.append({"width_um": h["width_um"], "hair_colour": h["color"], "status": status,
                     "thickness_um": found.get(j, np.nan)})
    return pd.DataFrame(rows, columns=["width_um", "hair_colour", "status", "thickness_um"])


def run_table(run: Path, frames: Path, *, with_long_hair: bool = False) -> pd.DataFrame:
    """:func:`frame_hairs` over every phantom frame of ``frames`` that the run measured."""
    hairs = pd.read_csv(run / "hairs.csv")
    hairs["stem"] = hairs["image"].map(lambda s: Path(str(s)).stem)
    images = pd.read_csv(run / "images.csv")
    paths = dict(zip(images["image"].map(lambda s: Path(str(s)).stem), images.get("segmenter", "")))
    settings, parts = EvaluationSettings(), []
    for path in sorted(frames.glob("*.json")):
        truth = json.loads(path.read_text())
        if "hairs" not in truth or (truth["params"].get("uncut_fraction", 0) > 0 and not with_long_hair):
            continue
        t = frame_hairs(truth, hairs[hairs["stem"] == path.stem], settings)
        parts.append(t.assign(frame=path.stem, frame_hair=truth["params"]["hair_color"],
                              um_per_px=truth["um_per_px"], skin_tone=truth["params"]["skin_tone"],
                              segmenter=paths.get(path.stem, "")))
    table = pd.concat(parts, ignore_index=True)
    table["frame_kind"] = np.where(table["frame_hair"].isin(DARK), "dark-hair frame", "light-hair frame")
    table["thickness_error_um"] = table["thickness_um"] - table["width_um"]
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run folder (hairs.csv) on phantom frames")
    ap.add_argument("frames", type=Path, help="the phantom frames with their truth JSON")
    ap.add_argument("--with-long-hair", action="store_true", help="keep the uncut long-hair scenes")
    a = ap.parse_args()
    if not (a.run / "hairs.csv").is_file():
        sys.exit(f"{a.run} has no hairs.csv: pass the run folder of tricho analyze (e.g. /tmp/suite/run_edges)")
    t = run_table(a.run, a.frames, with_long_hair=a.with_long_hair)
    pd.set_option("display.width", 160)
    print(f"{t['frame'].nunique()} frames, {len(t)} truth hairs\n")
    print("Where the truth hairs went (share of the row's hairs):")
    counts = pd.crosstab([t["frame_kind"], t["hair_colour"]], t["status"], margins=True)
    shares = pd.crosstab([t["frame_kind"], t["hair_colour"]], t["status"], normalize="index").round(2)
    print(shares.join(counts["All"].rename("hairs")).to_string(), "\n")
    m = t.dropna(subset=["thickness_error_um"])
    ratio = m["thickness_um"] / m["width_um"]
    print("Thickness of the matched hairs (µm):")
    print(m.groupby(["frame_kind", "hair_colour"])["thickness_error_um"].agg(
        hairs="size", median="median", mae=lambda e: e.abs().mean()).round(1).to_string())
    dark = m[m["hair_colour"].isin(DARK)]
    big = dark["thickness_error_um"].abs() > 30
    print(f"\ndark hairs: MAE {dark['thickness_error_um'].abs().mean():.1f} µm, "
          f"{100 * big.mean():.0f}% of them off by more than 30 µm carry "
          f"{100 * dark['thickness_error_um'].abs()[big].sum() / dark['thickness_error_um'].abs().sum():.0f}% "
          f"of the absolute error; measured/true width 10th-90th percentile "
          f"{ratio[dark.index].quantile(0.1):.2f}-{ratio[dark.index].quantile(0.9):.2f}")
    print("\nThickness of the matched hairs by segmenter path, skin tone and true width (µm):")
    width_class = pd.cut(m["width_um"], [0, 30, 60, 80, 100, 200], labels=["<=30", "30-60", "60-80", "80-100", ">100"]).rename("true width")
    for key in (m["segmenter"], m["skin_tone"], width_class):
        print(m.groupby(key, observed=True)["thickness_error_um"].agg(
            hairs="size", bias="mean", mae=lambda e: e.abs().mean()).astype({"bias": float, "mae": float}).round(2).to_string(), "\n")
    print(f"all matched hairs: {len(m)}, MAE {m['thickness_error_um'].abs().mean():.2f} µm")
    out = a.run / "phantom_misses.csv"
    t.to_csv(out, index=False)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
