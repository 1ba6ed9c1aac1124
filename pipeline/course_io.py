"""File layer of ``tricho compare``: read an analysis run, write the course tables.

``run_compare(RESULTS, OUT)`` reads ``RESULTS/images.csv`` and
``RESULTS/hairs.csv`` (an ``tricho analyze`` output folder), runs
:func:`pipeline.course.compare_course` and writes ``OUT/sessions.csv``,
``OUT/changes.csv``, ``OUT/summary.csv``, ``OUT/left_out.csv``,
``OUT/repeatability.csv`` and ``OUT/compare.json`` (settings, version,
inputs, the response rule).
"""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

import pipeline
from pipeline.course import CourseSettings, compare_course

RESPONSE_RULE = ("improved / worsened: the density change of the latest session against baseline exceeds the "
                 "minimal detectable change (MDC95 = 2.77 x SEM from the within-visit spread between fields) "
                 "and its 95% bootstrap CI excludes zero; otherwise stable")


class CompareError(Exception):
    """The comparison cannot run (missing or unreadable run folder); the text says what to do."""


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""],
                           dtype={"patient_id": str, "site": str, "session_date": str, "field_id": str,
                                  "quality_flags": str, "image": str})
    except FileNotFoundError:
        raise CompareError(f"{path} not found: give the output folder of `tricho analyze`") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CompareError(f"{path}: cannot be read as CSV ({exc}); rerun `tricho analyze`") from None


def run_compare(results: str | Path, out: str | Path, settings: CourseSettings = CourseSettings()) -> dict:
    """Compare the sessions of an analysis run and write the tables (see the module doc).

    Returns
    -------
    dict of str -> DataFrame
        As :func:`pipeline.course.compare_course`.
    """
    results, out = Path(results), Path(out)
    images = _read(results / "images.csv")
    hairs = _read(results / "hairs.csv")
    tables = compare_course(images, hairs, settings)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        tmp = out / f".{name}.csv.tmp"
        table.to_csv(tmp, index=False, lineterminator="\n")
        tmp.replace(out / f"{name}.csv")
    record = {"package": "tricho-pipeline", "version": pipeline.__version__, "results": str(results),
              "settings": dataclasses.asdict(settings), "response_rule": RESPONSE_RULE,
              "created_utc": datetime.now(timezone.utc).isoformat(),
              "counts": {k: int(len(v)) for k, v in tables.items()}}
    (out / "compare.json").write_text(json.dumps(record, indent=2) + "\n")
    return tables
