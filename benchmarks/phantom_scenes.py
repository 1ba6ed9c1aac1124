"""Count error of a phantom run split by scene: long-hair or clipped, hair colour, pixel size, or any scene parameter.

Usage (a run of ``tricho analyze`` on phantom frames with truth)::

    tricho synth /tmp/s97 --n 48 --seed 97
    tricho analyze /tmp/s97 --out /tmp/r97 --workers 2
    python benchmarks/phantom_scenes.py /tmp/r97 /tmp/s97 [RUN2 TRUTH2 ...] [--by skin_tone --by glare:0,0.01,0.3,1]

Per frame it takes ``tricho evaluate``'s count error and detection counts,
the truth's scene parameters (every scalar of its ``params``) and the route
the run took (``images.csv`` ``segmenter``); a frame is a long-hair scene
when the generator drew long hairs across it or left hairs uncut
(``n_long_hairs`` > 0 or ``uncut_fraction`` > 0). Prints, per group, the
frames, their mean true count, count MAPE and bias, the pooled detection
recall and precision, and how many of the mean's points each group carries
(its share of the summed absolute percentage errors), so one can see which
scenes hold the error.

Without ``--by`` the groups are the scene kind, the hair colour, the pixel
size band and the route. ``--by NAME`` groups by any column of the table
(a scene parameter such as ``skin_tone``, ``header_strip``, ``blur_sigma_px``);
``--by NAME:E0,E1,...`` bins a numeric one at those edges (right-closed, the
lowest edge included, as ``pandas.cut`` with ``include_lowest``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

#: Groups printed when no ``--by`` is given; the pixel size in bands of these edges (µm/px).
DEFAULT_GROUPS = ("scene", "hair_color", "um_per_px:0,4,8,100", "segmenter")


#: Route of a frame the run's ``images.csv`` names no ``segmenter`` for (a run without that column, or an empty cell).
NO_ROUTE = "(no route recorded)"
#: Group of a frame whose value is missing (a parameter the scene leaves None, e.g. ``jpeg_quality`` of a PNG).
MISSING = "(none)"
#: Group of a frame whose value lies outside the ``--by`` bin edges.
OUTSIDE = "(outside the edges)"


def scene_table(run: Path, truth: Path) -> pd.DataFrame:
    """One row per scored frame: count error, detection counts, the route and every scalar scene parameter."""
    from pipeline.evaluate import evaluate_run

    per_frame = evaluate_run(run, truth)["per_frame"]
    params = {p.stem: json.loads(p.read_text()) for p in truth.rglob("*.json") if p.stem in set(per_frame["image"])}
    route = routes(pd.read_csv(run / "images.csv"))
    rows = []
    for f in per_frame.itertuples(index=False):
        t = params[f.image]
        p = t["params"]
        row = {k: v for k, v in p.items() if isinstance(v, (bool, int, float, str)) or v is None}
        row.update({"image": f.image, "true_count": f.true_count, "count_error": f.count_error,
                    "count_ape_pct": f.count_ape_pct, "n_true_detect": f.n_true_detect,
                    "n_pred_detect": f.n_pred_detect, "n_matched": f.n_matched, "um_per_px": t["um_per_px"],
                    "segmenter": route.get(f.image, NO_ROUTE),
                    "scene": "long hair" if p["n_long_hairs"] > 0 or p["uncut_fraction"] > 0 else "clipped"})
        rows.append(row)
    return pd.DataFrame(rows)


def routes(images: pd.DataFrame) -> dict[str, str]:
    """Each frame's route (``segmenter``) by its file stem, read as ``tricho evaluate`` reads frame names."""
    from pipeline.evaluate import frame_stem

    if "segmenter" not in images.columns:
        return {}
    return {frame_stem(i): (NO_ROUTE if pd.isna(r) else str(r)) for i, r in zip(images["image"], images["segmenter"])}


def grouping(d: pd.DataFrame, spec: str) -> pd.Series:
    """The group key of each frame for one ``--by`` spec: ``NAME`` or ``NAME:E0,E1,...`` (bin edges).

    Every frame gets a key, in the groups' natural order: the values (or bins) in order, then
    :data:`OUTSIDE` (a value outside the edges) and :data:`MISSING` (no value).
    """
    name, _, edges = spec.partition(":")
    if name not in d.columns:
        raise SystemExit(f"--by {spec}: no column {name!r}; scene parameters and columns are: {', '.join(sorted(d.columns))}")
    if not edges:
        present = sorted(d[name].dropna().unique(), key=_natural)
        key = d[name].astype(object).where(d[name].notna(), MISSING)
        return _ordered(key, present, name)
    try:
        bins = [float(e) for e in edges.split(",")]
    except ValueError:
        raise SystemExit(f"--by {spec}: bin edges must be numbers separated by commas, e.g. {name}:0,4,8,100") from None
    if len(bins) < 2 or any(b <= a for a, b in zip(bins, bins[1:])):
        raise SystemExit(f"--by {spec}: give at least two bin edges, each larger than the one before, e.g. {name}:0,4,8,100")
    values = pd.to_numeric(d[name], errors="coerce")
    if values.isna().all() and d[name].notna().any():
        raise SystemExit(f"--by {spec}: {name!r} is not numeric; group by it without edges (--by {name})")
    binned = pd.cut(values, bins, include_lowest=True)
    key = binned.astype(str).where(binned.notna(), OUTSIDE).where(values.notna(), MISSING)
    return _ordered(key, [str(c) for c in binned.cat.categories], name)


def _natural(v) -> tuple:
    """Sort key: numbers (and booleans) by value, before anything else by its text."""
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def _ordered(key: pd.Series, values: list, name: str) -> pd.Series:
    """``key`` as an ordered categorical: ``values``, then :data:`OUTSIDE` and :data:`MISSING` where they occur."""
    cats = list(values) + [c for c in (OUTSIDE, MISSING) if (key == c).any() and c not in values]
    return pd.Series(pd.Categorical(key, categories=cats, ordered=True), index=key.index, name=name)


def summary(d: pd.DataFrame, by: pd.Series | str) -> pd.DataFrame:
    """Per group: frames, mean true count, count MAPE and bias, pooled recall and precision, points of the MAPE."""
    g = d.groupby(by, observed=True, dropna=False)
    out = g.agg(frames=("count_ape_pct", "size"), mean_true_count=("true_count", "mean"),
                count_mape_pct=("count_ape_pct", "mean"), count_bias_hairs=("count_error", "mean"))
    sums = g[["n_matched", "n_true_detect", "n_pred_detect"]].sum()
    out["recall"] = sums["n_matched"] / sums["n_true_detect"]
    out["precision"] = sums["n_matched"] / sums["n_pred_detect"]
    out["points_of_the_mape"] = g["count_ape_pct"].sum() / d["count_ape_pct"].notna().sum()
    return out.round(3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", type=Path, help="RUN TRUTH [RUN TRUTH ...]")
    ap.add_argument("--by", action="append", default=[], metavar="NAME[:E0,E1,...]",
                    help="group by this column (repeatable); with edges, bin a numeric one")
    a = ap.parse_args()
    if len(a.pairs) % 2:
        ap.error("give the runs and their truth folders in pairs: RUN TRUTH [RUN TRUTH ...]")
    d = pd.concat([scene_table(r, t) for r, t in zip(a.pairs[::2], a.pairs[1::2])], ignore_index=True)
    pd.set_option("display.width", 200)
    print(f"{len(d)} frames, count MAPE {d['count_ape_pct'].mean():.2f}%\n")
    for spec in a.by or DEFAULT_GROUPS:
        print(summary(d, grouping(d, spec)).to_string(), "\n")


if __name__ == "__main__":
    main()
