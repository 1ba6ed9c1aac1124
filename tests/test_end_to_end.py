"""End to end on the committed samples: the README's main job, through the CLI."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"
IMAGE_CONTRACT = ["image", "um_per_px", "area_cm2", "hair_count", "density_per_cm2", "mean_thickness_um",
                  "median_thickness_um", "vellus_count", "intermediate_count", "terminal_count",
                  "cumulative_thickness_mm_per_cm2", "follicular_units", "hairs_per_unit", "status", "error"]
HAIR_CONTRACT = ["image", "hair_id", "unit_id", "row", "col", "length_um", "thickness_um", "class"]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_analyze_and_evaluate_the_samples(tmp_path):
    before = _digest(SAMPLES)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["analyze", str(SAMPLES), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    images = pd.read_csv(out / "images.csv")
    hairs = pd.read_csv(out / "hairs.csv")
    assert list(images.columns[:15]) == IMAGE_CONTRACT
    assert list(hairs.columns[:8]) == HAIR_CONTRACT
    assert len(images) == 6 and set(images["status"]) == {"ok"}
    assert set(images["patient_id"]) == {"P001"} and set(images["calibration_source"]) == {"manifest"}
    assert images["hair_count"].sum() == len(hairs)
    area = 1280 * 1024 * (2.78e-4) ** 2
    assert (images["area_cm2"] <= area + 1e-12).all()
    assert (images["density_per_cm2"] - images["hair_count"] / images["area_cm2"]).abs().max() < 1e-9
    assert len(list((out / "overlays").glob("*.png"))) == 6
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["vellus_max_um"] == 30.0
    assert _digest(SAMPLES) == before  # inputs untouched

    res = CliRunner().invoke(app, ["evaluate", str(out), "--truth", str(SAMPLES)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "evaluation.json").read_text())
    assert report["frames"]["n_evaluated"] == 6
    assert report["metrics"]["count"]["n"] == 6

    res = CliRunner().invoke(app, ["compare", str(out), "--out", str(tmp_path / "course"), "--boot", "200"])
    assert res.exit_code == 0, res.output
    summary = pd.read_csv(tmp_path / "course" / "summary.csv")
    assert (summary["patient_id"].tolist(), summary["n_sessions"].tolist()) == (["P001"], [2])
    assert summary["response"].iloc[0] in {"improved", "stable", "worsened"}
    # two sessions: the course's line is its latest change, with the latest's MDC
    assert summary["response_basis"].iloc[0] == "trend"
    assert summary["density_trend"].iloc[0] == pytest.approx(summary["density_change"].iloc[0])
    assert summary["density_trend_mdc"].iloc[0] == pytest.approx(summary["density_mdc"].iloc[0])
    assert summary["density_trend_ci_low"].iloc[0] == pytest.approx(summary["density_ci_low"].iloc[0])
    # the two sample sessions are unrelated scenes: no field may pass for the same spot (ORB once paired
    # field 3 by chance, 21 inliers laying the later frame over 24% of the first: CourseSettings.min_overlap)
    pairs = pd.read_csv(tmp_path / "course" / "field_pairs.csv")
    assert len(pairs) == 3 and not pairs["registered"].astype(bool).any()
    sessions = pd.read_csv(tmp_path / "course" / "sessions.csv")
    assert sessions["n_fields"].tolist() == [3, 3]
    assert sessions["n_hairs"].sum() == images["hair_count"].sum()
    changes = pd.read_csv(tmp_path / "course" / "changes.csv")
    assert set(changes["metric"]) >= {"density_per_cm2", "mean_thickness_um", "vellus_share_pct"}


def test_compare_without_a_run_folder_exits_2(tmp_path):
    res = CliRunner().invoke(app, ["compare", str(tmp_path / "nope"), "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "tricho analyze" in res.output
    res = CliRunner().invoke(app, ["compare", str(tmp_path / "nope"), "--out", str(tmp_path / "c"),
                                   "--response-basis", "slope"])
    assert res.exit_code == 2 and "--response-basis" in res.output
    res = CliRunner().invoke(app, ["compare", str(tmp_path / "nope"), "--out", str(tmp_path / "c"),
                                   "--baseline", "02/01/2026"])
    assert res.exit_code == 2 and "--baseline" in res.output and "YYYY-MM-DD" in res.output
    assert "Traceback" not in res.output


def test_compare_tells_why_a_run_gives_no_course_and_refuses_bad_paths(tmp_path, fake_core):
    from conftest import frame_with_hairs, write_png
    from pipeline.batch import run_batch

    loose = tmp_path / "loose"
    for k in range(2):
        write_png(loose / f"frame_{k}.png", frame_with_hairs(2 + k))
    run = tmp_path / "run"
    run_batch([loose], run, um_per_px=5.0, progress=False)
    res = CliRunner().invoke(app, ["compare", str(run), "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "2 frame(s): no patient_id, site or session_date" in res.output and "manifest.csv" in res.output
    assert not (tmp_path / "c").exists()

    res = CliRunner().invoke(app, ["compare", str(run / "images.csv"), "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "is a file" in res.output

    clinic = tmp_path / "clinic"
    for date, n in (("2026-01-10", 2), ("2026-03-07", 3)):
        write_png(clinic / "P007" / date / "vertex_1.png", frame_with_hairs(n))
    course_run = tmp_path / "course_run"
    run_batch([clinic], course_run, um_per_px=5.0, progress=False)
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("not a folder")
    res = CliRunner().invoke(app, ["compare", str(course_run), "--out", str(blocker), "--boot", "100"])
    assert res.exit_code == 2 and "a file is in the way" in res.output
    assert blocker.read_text() == "not a folder"
    res = CliRunner().invoke(app, ["compare", str(course_run), "--out", str(tmp_path / "c2"), "--boot", "100",
                                   "--baseline", "1999-01-01"])
    assert res.exit_code == 2 and "2026-01-10, 2026-03-07" in res.output
    res = CliRunner().invoke(app, ["compare", str(course_run), "--out", str(tmp_path / "c3"), "--boot", "100",
                                   "--baseline", "2026-01-10"])
    assert res.exit_code == 0, res.output
