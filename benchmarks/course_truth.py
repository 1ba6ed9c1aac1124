"""True and measured density change of every simulated course, in the common region of its last visit.

Usage (after ``benchmarks/course_response.py`` has run into OUT)::

    python benchmarks/course_truth.py /tmp/course_bench [--seeds 1000:1010]

For every course (seed x responder / stable / decliner) it sums, over the
registered field pairs of the last session, the true hair counts in the true
common region (from the phantom truth and its exact transforms) and the
measured matched counts (``field_pairs.csv`` of ``tricho compare``), and
prints both changes in % with their mean and SD per course kind. It shows
whether a wrong call comes from the simulation (a field whose true change
is far from the nominal one) or from the measurement, and the ceiling: the
share of courses a measurement without error would call right at the same
MDC95, since the true change over the skin both visits show varies around
the nominal one. Writes
OUT/response_SEGMENTER/course_truth.csv.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_response import CMP_TAG_HELP, COURSES, _true_counts, run_tag  # noqa: E402


def course_changes(out: Path, segmenter: str = "classical", set_pairs: list[str] | None = None,
                   seeds: range | None = None, cmp_tag: str | None = None) -> pd.DataFrame:
    from pipeline.course import CourseSettings

    margin = CourseSettings().match_margin_um
    rows = []
    for seed_dir in sorted(out.glob("seed_*")):
        if seeds is not None and int(seed_dir.name.removeprefix("seed_")) not in seeds:
            continue
        for kind in COURSES:
            cmp_dir = seed_dir / f"{kind}_cmp_{cmp_tag or run_tag(segmenter, set_pairs)}"
            if not (cmp_dir / "field_pairs.csv").is_file():
                continue
            pairs = pd.read_csv(cmp_dir / "field_pairs.csv")
            pairs = pairs[pairs["registered"].astype(bool)]
            pairs = pairs[pairs["session_date"] == pairs["session_date"].max()]
            true = _true_counts(seed_dir / kind, pairs, margin).sum()
            before, after = pairs["n_before"].sum(), pairs["n_after"].sum()
            rows.append({"seed": seed_dir.name.removeprefix("seed_"), "course": kind,
                         "true_before": int(true["true_before"]), "true_after": int(true["true_after"]),
                         "true_change_pct": 100 * (true["true_after"] / max(true["true_before"], 1) - 1),
                         "measured_before": int(before), "measured_after": int(after),
                         "measured_change_pct": 100 * (after / max(before, 1) - 1)})
    return pd.DataFrame(rows)


EXPECTED = {kind: call for kind, (call, _, _) in COURSES.items()}


def _call(change_pct: float, mdc_pct: float) -> str:
    """The response a measurement without error would give (the CI is then a point)."""
    if abs(change_pct) <= mdc_pct:
        return "stable"
    return "improved" if change_pct > 0 else "worsened"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the --out folder of course_response.py")
    ap.add_argument("--segmenter", default="classical", choices=["classical", "learned"])
    ap.add_argument("--cmp-tag", default=None, help=CMP_TAG_HELP + " (default: the report's, by --segmenter and --set)")
    ap.add_argument("--seeds", default=None, help="START:STOP (Python range) of the seeds to read; default every "
                                                  "seed_* folder in OUT")
    ap.add_argument("--set", dest="set_pairs", action="append", default=[], metavar="KEY=VALUE",
                    help="the --set overrides the courses were run with (their folders are tagged with them)")
    ap.add_argument("--retest-sd-pct", type=float, default=None,
                    help="test-retest SD (%%) for the ceiling's MDC95 (default CourseSettings.matched_retest_sd_pct)")
    a = ap.parse_args()
    if a.retest_sd_pct is None:
        from pipeline.course import CourseSettings

        a.retest_sd_pct = CourseSettings().matched_retest_sd_pct
    seeds = None if a.seeds is None else range(*(int(v) for v in a.seeds.split(":")))
    table = course_changes(a.out, a.segmenter, a.set_pairs, seeds, a.cmp_tag)
    if table.empty:
        sys.exit(f"no finished courses under {a.out}: run benchmarks/course_response.py --out {a.out} first")
    pd.set_option("display.width", 160)
    print(table.round(1).to_string(index=False))
    print(table.groupby("course")[["true_change_pct", "measured_change_pct"]].agg(["mean", "std"]).round(1))
    mdc = 1.959964 * a.retest_sd_pct
    right = (table["course"].map(EXPECTED) == table["true_change_pct"].map(lambda c: _call(c, mdc))).mean()
    print(f"ceiling: a perfect measurement, called at the same MDC95 ({mdc:.1f}%), calls {100 * right:.0f}% "
          f"of these courses right (their true change in the common region decides)")
    dest = a.out / f"response_{a.cmp_tag or run_tag(a.segmenter, a.set_pairs)}"
    dest.mkdir(parents=True, exist_ok=True)
    table.to_csv(dest / "course_truth.csv", index=False)


if __name__ == "__main__":
    main()
