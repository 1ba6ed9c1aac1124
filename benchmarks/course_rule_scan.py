"""How the response rule's knobs would move the right call on simulated courses already compared.

Usage (after ``benchmarks/course_response.py``; tuning seeds only)::

    python benchmarks/course_rule_scan.py /tmp/s27/c8 /tmp/s28/c0 /tmp/s28/c4

Reads each course's ``summary.csv`` (``seed_S/COURSE_cmp_SEGMENTER/``) and
calls it again offline with the trend rule
(:func:`pipeline.course.trend_response`), for a grid of MDC scales ``k`` (the
MDC and the distance from the trend to each end of its 95% interval both
multiplied by ``k``; 1 is the rule as it is) and agreement limits
(``CourseSettings.min_agreement``, %). An approximation: the intervals are
not bootstrapped again (``course_response.py --reuse-runs --retest-sd-pct X``
redoes a setting exactly). Prints the share of courses called right per
cell.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pipeline.course import trend_response

EXPECTED = {"responder": "improved", "stable": "stable", "decliner": "worsened"}


def read_courses(roots: list[Path]) -> pd.DataFrame:
    """One row per compared course: seed, course, the trend, its MDC and interval, the visit agreement."""
    rows = []
    for root in roots:
        for f in sorted(root.glob("seed_*/*_cmp_*/summary.csv")):
            r = pd.read_csv(f).iloc[0]
            rows.append(dict(seed=int(f.parts[-3][5:]), course=f.parts[-2].split("_")[0],
                             trend=r.density_trend, mdc=r.density_trend_mdc, lo=r.density_trend_ci_low,
                             hi=r.density_trend_ci_high, agreement=r.visit_agreement_pct, called=r.response))
    return pd.DataFrame(rows)


def call(r: pd.Series, k: float, min_agreement_pct: float) -> str:
    """The response of one course with the MDC and interval scaled by ``k``."""
    if r.agreement < min_agreement_pct:
        return "indeterminate"
    return trend_response(r.trend, k * r.mdc, r.trend - k * (r.trend - r.lo), r.trend + k * (r.hi - r.trend))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("roots", nargs="+", type=Path, help="course_response.py --out folders")
    ap.add_argument("--k", nargs="+", type=float, default=[0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])
    ap.add_argument("--min-agreement", nargs="+", type=float, default=[40.0, 35.0, 30.0, 0.0])
    a = ap.parse_args()
    d = read_courses(a.roots)
    if d.empty:
        raise SystemExit(f"no seed_*/*_cmp_*/summary.csv under {', '.join(map(str, a.roots))}")
    truth = d.course.map(EXPECTED)
    seeds = ", ".join(map(str, sorted(d.seed.unique().tolist())))
    print(f"{len(d)} courses, seeds {seeds}; as called: {(d.called == truth).mean():.3f} right")
    table = pd.DataFrame({f"k={k}": [float((d.apply(call, axis=1, args=(k, m)) == truth).mean())
                                     for m in a.min_agreement] for k in a.k},
                         index=pd.Index(a.min_agreement, name="min agreement (%)"))
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
