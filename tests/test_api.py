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


def test_compare_from_python_matches_the_same_spot_as_the_cli(tmp_path, fake_core):
    """A field imaged twice registers onto itself; Python's compare matches it as `tricho compare` does
    (session 59: it compared pooled only, with a CI and MDC several times as wide)."""
    import cv2

    from pipeline.course_io import run_compare

    frame = cv2.imread(str(SAMPLES / "P001_2026-01-10_vertex_1.jpg"))
    rows = ["image,um_per_px,patient_id,site,session_date,field_id"]
    for date in ("2026-01-10", "2026-03-07"):
        later = frame.copy()
        later[0, 0] = (0, 0, 0) if date > "2026-01-10" else later[0, 0]  # not the same bytes
        cv2.imwrite(str(tmp_path / f"{date}.png"), later)
        rows.append(f"{date}.png,2.78,P001,vertex,{date},1")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    run = analyze_folder(tmp_path, tmp_path / "run", overlays=False)
    course = compare(run)
    cli = run_compare(tmp_path / "run", tmp_path / "course")
    density = course.changes[course.changes["metric"] == "density_per_cm2"]
    assert set(density["method"]) == {"matched"} and len(course.matches) > 0
    pd.testing.assert_frame_equal(course.changes, cli["changes"])
    pd.testing.assert_frame_equal(compare(tmp_path / "run").changes, cli["changes"])
    assert set(compare(run, match=False).changes["method"]) == {"pooled"}


def test_unreadable_file_gives_an_error_row_not_an_exception(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("no photo")
    res = analyze_image(bad)
    assert res.images.loc[0, "status"] == "error" and "bad.jpg" in res.images.loc[0, "error"]
    assert len(res.hairs) == 0 and res.overlay is None and res.result is None


@pytest.mark.parametrize("bad", [0, -2.78, float("nan"), float("inf"), 1e6, "2.78", True])
def test_a_pixel_size_no_frame_can_have_is_refused_with_the_fix(bad):
    from pipeline.core import analyze_frame

    image = np.full((300, 400, 3), 200, np.uint8)
    with pytest.raises(ValueError, match="um_per_px must be a number of micrometres per pixel"):
        analyze_frame(image, um_per_px=bad)
    with pytest.raises(ValueError, match="um_per_px must be"):
        analyze_image(image, um_per_px=bad)


def test_numpy_scalars_lists_and_one_channel_arrays_are_taken():
    from pipeline.core import as_rgb8

    image = np.full((300, 400, 3), 200, np.uint8)
    image[100:108, 50:350] = 30
    one = analyze_image(image, um_per_px=np.float32(5.0)).images["hair_count"].iloc[0]
    assert one == 1
    assert analyze_image(image.tolist(), um_per_px=5.0).images["hair_count"].iloc[0] == 1
    assert (as_rgb8(image[..., :1]) == image[..., :1]).all()
    assert (as_rgb8(image / 255.0) == image).all()


@pytest.mark.parametrize("array, message", [
    (np.full((40, 40, 3), np.nan), "NaN or infinite"),
    (np.zeros((0, 0, 3)), "empty array"),
    (np.full((40, 40, 3), -5, np.int16), "negative values"),
    (np.zeros((40, 40, 3), bool), "numeric image array"),
    (np.zeros((40, 40, 2), np.uint8), "got shape"),
])
def test_arrays_that_are_no_image_are_refused_with_the_fix(array, message):
    from pipeline.core import as_rgb8

    with pytest.raises(ValueError, match=message):
        as_rgb8(array)


def test_compare_from_python_says_why_a_run_gives_no_course(tmp_path):
    from pipeline.course_io import CompareError

    image = np.full((300, 400, 3), 200, np.uint8)
    image[100:108, 50:350] = 30
    folder = tmp_path / "loose"
    folder.mkdir()
    import cv2

    cv2.imwrite(str(folder / "frame.png"), image)
    run = analyze_folder(folder, tmp_path / "run", um_per_px=5.0, overlays=False)
    with pytest.raises(CompareError, match="no patient_id, site or session_date"):
        compare(run)


def test_settings_refuse_values_of_the_wrong_type_or_out_of_order():
    from pipeline.settings import Settings

    with pytest.raises(TypeError, match="max_width_um takes a float"):
        Settings().replace(max_width_um="160")
    with pytest.raises(TypeError, match="count_hidden_roots takes a bool"):
        Settings().replace(count_hidden_roots="no")
    with pytest.raises(ValueError, match="must be below max_width_um"):
        Settings().replace(min_width_um=200.0)
    with pytest.raises(ValueError, match="hysteresis thresholds"):
        Settings().replace(darkness_threshold=5.0)
    assert Settings().replace(fused_quantile=50).fused_quantile == 50
