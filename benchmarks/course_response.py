"""Simulated treatment courses: is the response called right, and how exact is the matched change?

Usage::

    python benchmarks/course_response.py --seeds 1000:1020 --out /tmp/course_bench
    python benchmarks/course_response.py --retest --seeds 0:10 --out /tmp/course_retest
    python benchmarks/course_response.py --seeds 0:8 --set light_hair_model=/path/to/candidate

Default mode: per seed, three phantom courses of one spot per field (3 fields,
6 sessions two weeks apart): a responder (+15% density by the last session),
a stable scalp (0%) and a decliner (-15%), each with 2% turnover per session
and thickening of +4 µm for the responder. Every frame goes through
``tricho analyze``, every course through ``tricho compare``; the call
(improved / stable / worsened) is compared with the truth, and for each
matched session the measured change in hair count in the common region is
compared with the true change there (from the phantom truth and its exact
transform). A course called ``indeterminate`` (the visits agree on too few
hairs, ``CourseSettings.min_agreement``) is not a right call; the report gives
the right-call rate over all courses, the share called indeterminate and the
right-call rate over the courses the tool did call.

``--retest``: courses with no change at all (two sessions, 3 fields) give the
test-retest SD of a matched count change, in % of the count: the value for
``CourseSettings.matched_retest_sd_pct``. Use seeds below 1000 for this
(tuning); report seeds >= 1000.

Frames already in OUT are reused only when the same generator source rendered them (a ``.generator``
stamp per course folder holds its sha256); others are rendered again, so a stale OUT cannot pass old
phantoms off as new ones.

``--set KEY=VALUE`` changes a per-frame setting (as ``tricho analyze --set``), e.g. to try a candidate model
on the same phantoms; its runs go to folders tagged with a hash of the overrides.

Every comparison is made as ``tricho compare`` makes it (``CourseSettings()``, its bootstrap draws and seed
too); ``--n-boot`` and the tuning options change that, and their compare folders are tagged apart.

Writes OUT/{retest,response}_{segmenter}[_{hash of --set}][_cmp{hash of comparison overrides}]/course_response.json
(and the calls and errors as CSV). The change error is the mean absolute difference of measured and true
change in hair count, in % of the measured baseline count, over every follow-up session of every course; the
last session's alone and the mean by follow-up are given beside it.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

COURSES = {"responder": ("improved", 15.0, 4.0), "stable": ("stable", 0.0, 0.0), "decliner": ("worsened", -15.0, 0.0)}


def _render(job: tuple) -> None:
    from pipeline.synth_course import CourseSpec, generate_course

    out, seed, kind, sessions, change, thick, turnover, share = job
    spec = CourseSpec(n_sessions=sessions, density_change_pct=change, thickening_um=thick, turnover_pct=turnover,
                      **({} if share is None else {"within_unit_share": share}))
    generate_course(Path(out) / kind, patient_id=f"S{seed}{kind[0].upper()}", site="vertex", seed=seed, spec=spec,
                    n_fields=3)


def _true_counts(folder: Path, pairs: pd.DataFrame, margin_um: float) -> pd.DataFrame:
    """True hair counts per field pair inside the true common region (exact transforms),
    ``margin_um`` inside both frames as the measured one (``CourseSettings.match_margin_um``):
    columns ``true_before`` (reference visit) and ``true_after``."""
    from pipeline.register import apply_rc

    out = []
    for r in pairs.itertuples(index=False):
        t0 = json.loads((folder / r.reference_image).with_suffix(".json").read_text())
        t1 = json.loads((folder / r.image).with_suffix(".json").read_text())
        in_both, back = in_both_frames(t0, t1, margin_um)
        e0 = np.array([x["emergence_rc"] for x in t0["hairs"]]).reshape(-1, 2)
        e1 = apply_rc(back, np.array([x["emergence_rc"] for x in t1["hairs"]]).reshape(-1, 2))
        out.append((int(in_both(e0).sum()), int(in_both(e1).sum())))
    return pd.DataFrame(out, index=pairs.index, columns=["true_before", "true_after"], dtype=float)


def in_both_frames(t0: dict, t1: dict, margin_um: float):
    """For a field pair's truth (reference visit ``t0``, later visit ``t1``): a test of reference-visit
    points (n, 2) that lie ``margin_um`` inside both frames (exact transforms), and the matrix that takes
    the later visit's pixels to the reference visit's.

    Each truth's ``transform`` takes the course's first-visit pixels to that visit's, so the reference
    visit need not be the first (``--baseline`` at a later session)."""
    from pipeline.register import apply_rc

    m0, m1 = (np.vstack([np.array(t["transform"], float), [0, 0, 1]]) for t in (t0, t1))
    ahead = (m1 @ np.linalg.inv(m0))[:2]  # reference-visit pixels -> later-visit pixels
    back = (m0 @ np.linalg.inv(m1))[:2]  # later-visit pixels -> reference-visit pixels
    m = margin_um / t0["um_per_px"]

    def inside(rc, t):
        rc = np.asarray(rc, float).reshape(-1, 2)
        h, w = t["height_px"], t["width_px"]
        return (rc[:, 0] >= m) & (rc[:, 0] < h - m) & (rc[:, 1] >= m) & (rc[:, 1] < w - m)

    def in_both(rc0):  # reference-visit points seen in both frames
        rc0 = np.asarray(rc0, float).reshape(-1, 2)
        return inside(rc0, t0) & inside(apply_rc(ahead, rc0), t1)

    return in_both, back


def _true_change(folder: Path, pairs: pd.DataFrame, margin_um: float) -> pd.Series:
    """True hair-count change per field pair inside the true common region (see ``_true_counts``)."""
    counts = _true_counts(folder, pairs, margin_um)
    return counts["true_after"] - counts["true_before"]


GENERATOR_STAMP = ".generator"


def _share(within_unit_share: float | None) -> float:
    """``CourseSpec.within_unit_share`` of the rendered courses (None: its default)."""
    from pipeline.synth_course import CourseSpec

    return CourseSpec().within_unit_share if within_unit_share is None else within_unit_share


def generator_stamp(within_unit_share: float | None = None) -> str:
    """sha256 of the generator's source (``synth.py``, ``synth_course.py``) and the share of hairs that
    leave or join a unit (``CourseSpec.within_unit_share``; None: its default): frames rendered by
    another version are rendered again instead of being silently reused."""
    import pipeline

    root = Path(pipeline.__file__).parent
    h = hashlib.sha256()
    for name in ("synth.py", "synth_course.py"):
        h.update((root / name).read_bytes())
    return f"{h.hexdigest()} within_unit_share={_share(within_unit_share):g}"


def run_tag(segmenter: str, set_pairs: list[str] | None) -> str:
    """The suffix of a course's run and compare folders: runs under other per-frame settings (``--set``) get
    their own folders, so ``--reuse-runs`` never mixes them."""
    return segmenter + ("_" + hashlib.sha256("\n".join(sorted(set_pairs)).encode()).hexdigest()[:8]
                        if set_pairs else "")


#: The ``--cmp-tag`` help of the scripts that read a course's comparison.
CMP_TAG_HELP = ("the compare folders' suffix: 'classical' (the report's, as tricho compare compares) or the "
                "compare_tag course_response.py wrote into course_response.json for a tuning comparison")


def compare_tag(tag: str, course_settings) -> str:
    """The suffix of a course's compare folder: ``tag`` (:func:`run_tag`), plus a hash of the comparison
    settings that differ from ``CourseSettings()``'s, so a tuning comparison never overwrites the report's
    (which ``course_truth.py`` reads)."""
    from pipeline.course import CourseSettings

    base = dataclasses.asdict(CourseSettings())
    changed = sorted(f"{k}={v!r}" for k, v in dataclasses.asdict(course_settings).items() if base[k] != v)
    return tag + ("_cmp" + hashlib.sha256("\n".join(changed).encode()).hexdigest()[:8] if changed else "")


def _stamp_of(folder: Path) -> str | None:
    f = folder / GENERATOR_STAMP
    return f.read_text().strip() if f.is_file() else None


def run(seeds: list[int], out: Path, *, retest: bool, workers: int, segmenter: str = "classical",
        retest_sd_pct: float | None = None, recheck: bool = True, reuse_runs: bool = False,
        recheck_overrides: dict | None = None, set_pairs: list[str] | None = None,
        within_unit_share: float | None = None, n_boot: int | None = None) -> dict:
    from pipeline.batch import run_batch
    from pipeline.course import CourseSettings
    from pipeline.course_io import run_compare
    from pipeline.settings import Settings

    settings = Settings.from_overrides(set_pairs).replace(segmenter=segmenter)
    tag = run_tag(segmenter, set_pairs)
    overrides = dict(recheck_overrides or {})
    if retest_sd_pct is not None:
        overrides["matched_retest_sd_pct"] = retest_sd_pct
    if n_boot is not None:
        overrides["n_boot"] = n_boot
    if not recheck:
        overrides["recheck_ratio"] = 0.0
    # the comparison as ``tricho compare`` makes it (its bootstrap draws and seed too: until session 60 each
    # course was compared with 500 draws seeded by its phantom seed, and one call of 30 turned on that draw)
    course_settings = dataclasses.replace(CourseSettings(), **overrides)
    cmp_tag = compare_tag(tag, course_settings)

    courses = {"retest": ("stable", 0.0, 0.0)} if retest else COURSES
    sessions, turnover = (2, 0.0) if retest else (6, 2.0)
    stamp = generator_stamp(within_unit_share)
    jobs, fresh = [], set()
    for s in seeds:
        for kind, (_, change, thick) in courses.items():
            folder = out / f"seed_{s}" / kind
            if (folder / "manifest.csv").is_file() and _stamp_of(folder) == stamp:
                continue
            if folder.exists():
                print(f"note: {folder} was rendered by another generator version (or without a stamp); "
                      f"rendering it again", file=sys.stderr)
                shutil.rmtree(folder)
            jobs.append((str(out / f"seed_{s}"), s, kind, sessions, change, thick, turnover, within_unit_share))
            fresh.add(folder)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_render, jobs))
    for folder in fresh:
        (folder / GENERATOR_STAMP).write_text(stamp + "\n")
    calls, errors, rows = [], [], []
    for s in seeds:
        for kind, (expected, _, _) in courses.items():
            folder = out / f"seed_{s}" / kind
            run_dir = folder.parent / f"{kind}_run_{tag}"
            if folder in fresh or not (reuse_runs and (run_dir / "images.csv").is_file()):
                run_batch([folder], run_dir, workers=workers, overlays=False, progress=False, settings=settings)
            tables = run_compare(run_dir, folder.parent / f"{kind}_cmp_{cmp_tag}", course_settings)
            summary = tables["summary"].iloc[0]
            calls.append({"seed": s, "course": kind, "expected": expected, "called": summary["response"],
                          "density_change_pct": summary["density_change_pct"],
                          "visit_agreement_pct": summary.get("visit_agreement_pct")})
            pairs = tables["field_pairs"]
            if len(pairs) and "n_before" in pairs:
                follow_ups = sorted(pairs["session_date"].unique())  # every follow-up, registered or not
                pairs = pairs[pairs["registered"].astype(bool)].copy()
                pairs["true_change"] = _true_change(folder, pairs, course_settings.match_margin_um)
                pairs["measured_change"] = pairs["n_after"] - pairs["n_before"]
                per_session = pairs.groupby("session_date")[["true_change", "measured_change", "n_before"]].sum()
                for date, r in per_session.iterrows():
                    errors.append({"seed": s, "course": kind, "session_date": date,
                                   "follow_up": follow_ups.index(date) + 1, "last": date == follow_ups[-1],
                                   **r.to_dict()})
            rows.append({"seed": s, "course": kind, "registered_pairs": int(len(pairs)),
                         "all_pairs": int(len(tables["field_pairs"]))})
    calls, errors, reg = pd.DataFrame(calls), pd.DataFrame(errors), pd.DataFrame(rows)
    report = {"seeds": [min(seeds), max(seeds)], "n_seeds": len(seeds), "retest": retest, "segmenter": segmenter,
              "settings_overrides": list(set_pairs or []), "compare_overrides": overrides,
              "n_boot": course_settings.n_boot, "bootstrap_seed": course_settings.seed, "compare_tag": cmp_tag,
              "matched_retest_sd_pct_used": course_settings.matched_retest_sd_pct,
              "recheck_ratio": course_settings.recheck_ratio, "recheck_floor": course_settings.recheck_floor,
              "recheck_floor_model": course_settings.recheck_floor_model,
              "recheck_through_counted": course_settings.recheck_through_counted,
              "within_unit_share": _share(within_unit_share),
              "response_basis": course_settings.response_basis,
              "registered_share": float(reg["registered_pairs"].sum() / max(reg["all_pairs"].sum(), 1))}
    if len(errors):
        err = errors["measured_change"] - errors["true_change"]
        rel = err.abs() / errors["n_before"] * 100
        last, nth = errors["last"].astype(bool), errors["follow_up"]
        report["matched_change_error_pct_of_count"] = {
            "over": "every follow-up session of every course",
            "mean_abs": float(rel.mean()), "median_abs": float(rel.median()),
            "sd": float((err / errors["n_before"]).std() * 100), "n_sessions": int(len(errors)),
            "last_session_mean_abs": float(rel[last].mean()), "last_session_median_abs": float(rel[last].median()),
            "mean_abs_by_follow_up": {int(k): round(float(v), 3) for k, v in rel.groupby(nth).mean().items()}}
    if retest and len(errors):
        rel = errors["measured_change"] / errors["n_before"] * 100
        report["matched_retest_sd_pct"] = float(rel.std())
        report["matched_retest_robust_sd_pct"] = float(1.4826 * (rel - rel.median()).abs().median())
    if not retest:
        calls["right"] = calls["expected"] == calls["called"]
        report["right_call_rate"] = float(calls["right"].mean())
        called = calls["called"] != "indeterminate"
        report["indeterminate_share"] = float((~called).mean())
        report["right_call_rate_when_called"] = float(calls.loc[called, "right"].mean()) if called.any() else None
        report["right_call_rate_by_course"] = calls.groupby("course")["right"].mean().round(3).to_dict()
        report["calls"] = calls.groupby(["course", "called"]).size().unstack(fill_value=0).to_dict()
    out.mkdir(parents=True, exist_ok=True)
    out = out / f"{'retest' if retest else 'response'}_{cmp_tag}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "course_response.json").write_text(json.dumps(report, indent=2, default=str))
    calls.to_csv(out / "calls.csv", index=False)
    errors.to_csv(out / "matched_errors.csv", index=False)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1000:1020", help="START:STOP (Python range)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/course_bench"))
    ap.add_argument("--retest", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--segmenter", default="classical", choices=["classical", "learned"])
    ap.add_argument("--no-recheck", action="store_true",
                    help="count gained and lost hairs as detected, without re-examining them in the other visit")
    ap.add_argument("--recheck-ratio", type=float, default=None, help="CourseSettings.recheck_ratio to use (tuning)")
    ap.add_argument("--recheck-floor", type=float, default=None, help="CourseSettings.recheck_floor to use (tuning)")
    ap.add_argument("--recheck-floor-model", type=float, default=None,
                    help="CourseSettings.recheck_floor_model to use (tuning)")
    ap.add_argument("--recheck-through-counted", type=float, default=None,
                    help="CourseSettings.recheck_through_counted to use (tuning)")
    ap.add_argument("--within-unit-share", type=float, default=None,
                    help="CourseSpec.within_unit_share of the rendered courses (default: CourseSpec's); 0 gives "
                         "the courses of before 2026-12-03 (whole units lost and gained only)")
    ap.add_argument("--response-basis", choices=["latest", "trend"], default=None,
                    help="CourseSettings.response_basis to use (default: CourseSettings')")
    ap.add_argument("--retest-sd-pct", type=float, default=None,
                    help="same-spot test-retest SD to use (default: CourseSettings')")
    ap.add_argument("--n-boot", type=int, default=None,
                    help="bootstrap draws of each comparison (default: CourseSettings', as tricho compare; fewer "
                         "for quick tuning runs, whose compare folders are then tagged apart)")
    ap.add_argument("--reuse-runs", action="store_true",
                    help="keep the analyze runs already in OUT (only the comparison is redone, e.g. after a "
                         "CourseSettings change; the per-frame results do not depend on it)")
    ap.add_argument("--set", dest="set_pairs", action="append", metavar="KEY=VALUE",
                    help="override a per-frame Settings field for the analyze runs, as tricho analyze --set "
                         "(repeatable); the runs and the report go to folders tagged with these overrides")
    a = ap.parse_args()
    start, stop = (int(v) for v in a.seeds.split(":"))
    seeds = list(range(start, stop))
    if not a.retest and min(seeds) < 1000:
        print("note: seeds below 1000 are tuning seeds; report seeds >= 1000", file=sys.stderr)
    report = run(seeds, a.out, retest=a.retest, workers=a.workers, segmenter=a.segmenter,
                 retest_sd_pct=a.retest_sd_pct, recheck=not a.no_recheck, reuse_runs=a.reuse_runs,
                 recheck_overrides={k: v for k, v in (("recheck_ratio", a.recheck_ratio),
                                                      ("recheck_floor", a.recheck_floor),
                                                      ("recheck_floor_model", a.recheck_floor_model),
                                                      ("recheck_through_counted", a.recheck_through_counted),
                                                      ("response_basis", a.response_basis))
                                    if v is not None},
                 set_pairs=a.set_pairs, within_unit_share=a.within_unit_share, n_boot=a.n_boot)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
