"""The Python API: same tables as the CLI, and the doctests of the public modules."""
from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import analyze_folder, analyze_image, compare
from pipeline.batch import hair_columns, image_columns

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


@pytest.mark.parametrize("module", ["pipeline.api", "pipeline.batch", "pipeline.course"])
def test_doctests(module):
    import importlib

    failed, tried = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failed == 0


def test_analyze_image_from_a_file_matches_the_batch(tmp_path):
    frame = SAMPLES / "P001_2026-01-10_vertex_1.jpg"
    one = analyze_image(frame, um_per_px=2.78)
    folder = analyze_folder([frame], tmp_path / "run", um_per_px=2.78, overlays=False)
    assert list(one.images.columns) == image_columns()
    assert list(one.hairs.columns) == hair_columns()
    assert one.images.loc[0, "hair_count"] == folder.images.loc[0, "hair_count"] == len(one.hairs)
    pd.testing.assert_frame_equal(one.hairs.reset_index(drop=True), folder.hairs.reset_index(drop=True),
                                  check_dtype=False)
    h, w = int(one.images.loc[0, "height_px"]), int(one.images.loc[0, "width_px"])
    assert one.overlay.shape == (h, w, 3) and one.overlay.dtype == np.uint8  # the README's res.overlay
    assert len(one.result.paths) == len(one.hairs)


def test_analyze_folder_and_compare_the_samples(tmp_path):
    run = analyze_folder(SAMPLES, tmp_path / "run", overlays=False)
    assert len(run.images) == 6 and run.summary.n_ok == 6
    course = compare(run)
    assert course.summary["n_sessions"].tolist() == [2]
    again = compare(tmp_path / "run")
    pd.testing.assert_frame_equal(course.changes, again.changes)


def test_unreadable_file_gives_an_error_row_not_an_exception(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("no photo")
    res = analyze_image(bad)
    assert res.images.loc[0, "status"] == "error" and "bad.jpg" in res.images.loc[0, "error"]
    assert len(res.hairs) == 0 and res.overlay is None and res.result is None
