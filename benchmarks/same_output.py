"""Do two ``tricho analyze`` runs of the same frames give the same output? For changes meant to keep it.

Usage::

    python benchmarks/same_output.py RUN_A RUN_B [--tolerance COLUMN=ABS ...]

A speed-up or a refactoring of the core should leave every count, every hair and
every frame value as it was. This compares ``images.csv`` (frames by ``image``)
and ``hairs.csv`` (hairs by ``image`` and ``hair_id``) of two runs column by
column, exactly, and prints per column the largest absolute difference (numbers)
or how many values differ (text), the frames whose ``hair_count`` differs, and
one verdict line. ``--tolerance thickness_um=1e-4`` accepts differences up to that
size in a column (e.g. a model re-exported with another rounding). Columns that
only one run has are listed and not compared.

Exit status 0 when the runs agree (within the tolerances), 1 when they do not.
(2026-12-05, session 48: the per-frame core's speed-up compared on fdu_val and
six phantom suites; docs/HISTORY.md.)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def compare_tables(a: pd.DataFrame, b: pd.DataFrame, keys: list[str],
                   tolerance: dict[str, float]) -> tuple[list[str], bool]:
    """Lines describing how two tables with the same ``keys`` differ, and whether they agree.

    Rows are paired by ``keys``; rows only one table has make them disagree.
    """
    lines, agree = [], True
    a, b = a.set_index(keys).sort_index(), b.set_index(keys).sort_index()
    if not a.index.equals(b.index):
        only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
        lines.append(f"  rows only in A: {len(only_a)}, only in B: {len(only_b)} (e.g. {list(only_a[:3]) + list(only_b[:3])})")
        common = a.index.intersection(b.index)
        a, b = a.loc[common], b.loc[common]
        agree = False
    one_sided = sorted(set(a.columns) ^ set(b.columns))
    if one_sided:
        lines.append(f"  columns in one run only (not compared): {one_sided}")
    for col in [c for c in a.columns if c in b.columns]:
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            nan_differs = int((np.isnan(xv) != np.isnan(yv)).sum())
            both = ~np.isnan(xv) & ~np.isnan(yv)
            worst = float(np.abs(xv[both] - yv[both]).max()) if both.any() else 0.0
            if worst > 0 or nan_differs:
                ok = worst <= tolerance.get(col, 0.0) and not nan_differs
                agree &= ok
                lines.append(f"  {col}: largest difference {worst:.3g}" + (f", {nan_differs} empty in one run only" if nan_differs else "")
                             + ("" if ok else "  <- differs"))
        else:
            differs = int((x.fillna("").astype(str) != y.fillna("").astype(str)).sum())
            if differs:
                agree = False
                lines.append(f"  {col}: {differs} values differ  <- differs")
    return lines, agree


def compare_runs(run_a: Path, run_b: Path, tolerance: dict[str, float]) -> tuple[list[str], bool]:
    """Lines comparing two runs' ``images.csv`` and ``hairs.csv``, and whether the runs agree."""
    lines, agree = [], True
    images = [pd.read_csv(r / "images.csv") for r in (run_a, run_b)]
    hairs = [pd.read_csv(r / "hairs.csv") for r in (run_a, run_b)]
    counts = images[0].set_index("image").hair_count.fillna(-1).align(
        images[1].set_index("image").hair_count.fillna(-1), join="inner")
    moved = counts[0].index[counts[0] != counts[1]]
    lines.append(f"frames: {len(images[0])} / {len(images[1])}; hair_count differs on {len(moved)}"
                 + (f" ({', '.join(map(str, moved[:5]))}{', ...' if len(moved) > 5 else ''})" if len(moved) else ""))
    lines.append(f"hairs: {len(hairs[0])} / {len(hairs[1])}")
    for name, (a, b), keys in (("images.csv", images, ["image"]), ("hairs.csv", hairs, ["image", "hair_id"])):
        table_lines, table_agree = compare_tables(a, b, keys, tolerance)
        lines.append(f"{name}: {'same' if table_agree and not table_lines else 'agree within tolerance' if table_agree else 'DIFFER'}")
        lines.extend(table_lines)
        agree &= table_agree
    return lines, agree


def _tolerances(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        col, _, value = item.partition("=")
        try:
            out[col] = float(value)
        except ValueError:
            sys.exit(f"--tolerance {item!r}: give COLUMN=ABS, e.g. thickness_um=1e-4")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--tolerance", action="append", default=[], metavar="COLUMN=ABS")
    args = ap.parse_args()
    for run in (args.run_a, args.run_b):
        for f in ("images.csv", "hairs.csv"):
            if not (run / f).is_file():
                sys.exit(f"{run / f} not found: give two `tricho analyze --out` folders")
    lines, agree = compare_runs(args.run_a, args.run_b, _tolerances(args.tolerance))
    print("\n".join(lines))
    print("SAME OUTPUT" if agree else "OUTPUT DIFFERS")
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()
