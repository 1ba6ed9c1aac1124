"""Count error of a phantom run split by scene: long-hair or clipped, hair colour, pixel size.

Usage (a run of ``tricho analyze`` on phantom frames with truth)::

    tricho synth /tmp/s97 --n 48 --seed 97
    tricho analyze /tmp/s97 --out /tmp/r97 --workers 2
    python benchmarks/phantom_scenes.py /tmp/r97 /tmp/s97 [RUN2 TRUTH2 ...]

Per frame it takes ``tricho evaluate``'s count error and the truth's scene
parameters; a frame is a long-hair scene when the generator drew long hairs
across it or left hairs uncut (``n_long_hairs`` > 0 or ``uncut_fraction`` >
0). Prints count MAPE, bias and frames per group, and how many of the mean's
points each group carries (its share of the summed absolute percentage
errors), so one can see which scenes hold the error.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def scene_table(run: Path, truth: Path) -> pd.DataFrame:
    """One row per scored frame: count error and the scene parameters that split the groups."""
    from pipeline.evaluate import evaluate_run

    per_frame = evaluate_run(run, truth)["per_frame"]
    params = {p.stem: json.loads(p.read_text()) for p in truth.rglob("*.json") if p.stem in set(per_frame["image"])}
    rows = []
    for f in per_frame.itertuples(index=False):
        t = params[f.image]
        p = t["params"]
        rows.append({"image": f.image, "true_count": f.true_count, "count_error": f.count_error,
                     "count_ape_pct": f.count_ape_pct, "um_per_px": t["um_per_px"], "hair_color": p["hair_color"],
                     "scene": "long hair" if p["n_long_hairs"] > 0 or p["uncut_fraction"] > 0 else "clipped"})
    return pd.DataFrame(rows)


def summary(d: pd.DataFrame, by: str) -> pd.DataFrame:
    g = d.groupby(by, observed=True)
    out = g.agg(frames=("count_ape_pct", "size"), mean_true_count=("true_count", "mean"),
                count_mape_pct=("count_ape_pct", "mean"), count_bias_hairs=("count_error", "mean"))
    out["points_of_the_mape"] = g["count_ape_pct"].sum() / d["count_ape_pct"].notna().sum()
    return out.round(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", type=Path, help="RUN TRUTH [RUN TRUTH ...]")
    a = ap.parse_args()
    if len(a.pairs) % 2:
        ap.error("give the runs and their truth folders in pairs: RUN TRUTH [RUN TRUTH ...]")
    d = pd.concat([scene_table(r, t) for r, t in zip(a.pairs[::2], a.pairs[1::2])], ignore_index=True)
    d["um_per_px_band"] = pd.cut(d["um_per_px"], [0.0, 4.0, 8.0, 100.0])
    pd.set_option("display.width", 200)
    print(f"{len(d)} frames, count MAPE {d['count_ape_pct'].mean():.2f}%\n")
    for by in ("scene", "hair_color", "um_per_px_band"):
        print(summary(d, by).to_string(), "\n")


if __name__ == "__main__":
    main()
