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

``--theil-sen`` also calls every course on a robust line: the Theil-Sen
slope (``scipy.stats.theilslopes``, median of the pairwise slopes) through
baseline (0, 0) and every session's density change against baseline, its
MDC95 from the SD of that estimate under independent visit errors
(simulated, seeded: the same error model the least-squares line's MDC
assumes) and the interval moved and narrowed as the rule does. Read from
each course's ``changes.csv``; printed beside the rule as called (the
least-squares line).
"""
from __future__ import annotations

import argparse
import functools
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import theilslopes

from pipeline.course import trend_response

EXPECTED = {"responder": "improved", "stable": "stable", "decliner": "worsened"}


def _report_folders(root: Path, name: str) -> list[Path]:
    """``name`` in every course's compare folder as ``tricho compare`` compares (``COURSE_cmp_SEGMENTER``, with a
    ``--set`` hash or not), not the tuning comparisons ``course_response.py`` tags ``_cmpHASH``."""
    return [f for f in sorted(root.glob(f"seed_*/*_cmp_*/{name}"))
            if not re.search(r"_cmp[0-9a-f]{8}$", f.parent.name)]


def read_courses(roots: list[Path]) -> pd.DataFrame:
    """One row per compared course: seed, course, the trend, its MDC and interval, the visit agreement."""
    rows = []
    for root in roots:
        for f in _report_folders(root, "summary.csv"):
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


def _theil_sen(days: np.ndarray, change: np.ndarray) -> float:
    """Change by the latest session on the Theil-Sen line through (0, 0) and every session."""
    t, y = np.r_[0.0, days], np.r_[0.0, change]
    return float(theilslopes(y, t)[0]) * float(t[-1])


@functools.lru_cache(maxsize=None)
def _theil_sen_sd(days: tuple[float, ...], n: int = 4000) -> float:
    """SD of :func:`_theil_sen` per unit SD of a visit's error (baseline's included), simulated with a fixed seed
    (courses of one protocol share their session days, so it is simulated once per schedule)."""
    e = np.random.default_rng(0).standard_normal((n, len(days) + 1))
    return float(np.std([_theil_sen(np.asarray(days), row[1:] - row[0]) for row in e]))


def line_calls(roots: list[Path], min_agreement_pct: float = 40.0) -> pd.DataFrame:
    """Per compared course: right call as called (the least-squares line, ``summary.csv``) and on the
    Theil-Sen line (from ``changes.csv``)."""
    rows = []
    for root in roots:
        for f in _report_folders(root, "changes.csv"):
            ch = pd.read_csv(f)
            d = ch[(ch.metric == "density_per_cm2") & (ch.reference == "baseline")].sort_values("session_date")
            s = pd.read_csv(f.parent / "summary.csv").iloc[0]
            if d.empty:
                continue
            days = (pd.to_datetime(d.session_date) - pd.Timestamp(s.baseline_date)).dt.days.to_numpy(float)
            change, last = d.change.to_numpy(float), d.iloc[-1]
            sigma = last.mdc / (1.96 * np.sqrt(2.0))  # one visit's error SD, as the rule's MDC95 assumes
            trend, mdc = _theil_sen(days, change), 1.96 * sigma * _theil_sen_sd(tuple(days))
            k = mdc / last.mdc  # the latest change's interval moved to the line and narrowed, as the rule does
            called = trend_response(trend, mdc, trend - k * (last.change - last.ci_low),
                                    trend + k * (last.ci_high - last.change))
            if last.method == "matched" and s.visit_agreement_pct < min_agreement_pct:
                called = "indeterminate"
            course = f.parts[-2].split("_")[0]
            rows.append({"course": course, "least squares": s.response == EXPECTED[course],
                         "Theil-Sen": called == EXPECTED[course]})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("roots", nargs="+", type=Path, help="course_response.py --out folders")
    ap.add_argument("--k", nargs="+", type=float, default=[0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])
    ap.add_argument("--min-agreement", nargs="+", type=float, default=[40.0, 35.0, 30.0, 0.0])
    ap.add_argument("--theil-sen", action="store_true", help="also call every course on a Theil-Sen line")
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
    if a.theil_sen:
        lines = line_calls(a.roots)
        print(f"\nright call on the course's line ({len(lines)} courses, agreement limit 40%): "
              + ", ".join(f"{k} {lines[k].mean():.3f}" for k in ("least squares", "Theil-Sen")))


if __name__ == "__main__":
    main()
