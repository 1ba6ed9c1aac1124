"""Tests of pipeline.evaluate: tiny fake runs and truth files with known answers."""
from __future__ import annotations

import io
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from rich.console import Console

from pipeline.evaluate import (
    EvaluationError,
    EvaluationSettings,
    agreement,
    bland_altman,
    evaluate_command,
    evaluate_run,
    format_table,
    interior_mask,
    lins_ccc,
    load_truth,
    match_hairs,
    read_voc,
    subject_half,
    write_report,
)

FDU_VAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fdu_val"


# --------------------------------------------------------------------------
# Builders of fake runs and truth
# --------------------------------------------------------------------------

def write_run(run_dir: Path, frames: list[dict], hairs: list[dict] | None = None) -> Path:
    """An analysis run folder: images.csv (+ hairs.csv unless ``hairs`` is None)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    defaults = {"um_per_px": 2.0, "area_cm2": np.nan, "density_per_cm2": np.nan,
                "mean_thickness_um": np.nan, "median_thickness_um": np.nan,
                "vellus_count": np.nan, "intermediate_count": np.nan,
                "terminal_count": np.nan, "status": "ok", "error": ""}
    pd.DataFrame([{**defaults, **f} for f in frames]).to_csv(run_dir / "images.csv", index=False)
    if hairs is not None:
        columns = ["image", "hair_id", "unit_id", "row", "col", "length_um", "thickness_um",
                   "class"]
        rows = [{"hair_id": k, "unit_id": k, "length_um": 500.0, "thickness_um": np.nan,
                 "class": "", **h} for k, h in enumerate(hairs)]
        pd.DataFrame(rows, columns=columns).to_csv(run_dir / "hairs.csv", index=False)
    return run_dir


def write_voc(path: Path, boxes: list[tuple], *, width: int = 1280, height: int = 1024) -> Path:
    """A FDU-style VOC file; ``boxes`` are (xmin, ymin, xmax, ymax) as written."""
    objects = "".join(
        f"<object><class>premium</class><pose>None</pose><difficult>0</difficult>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
        f"</bndbox></object>" for x0, y0, x1, y1 in boxes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>{path.stem}.jpg</filename><size><width>{width}"
                    f"</width><height>{height}</height><depth>3</depth></size>{objects}"
                    f"</annotation>")
    return path


def voc_boxes(n: int) -> list[tuple]:
    """``n`` valid 20 x 20 px boxes in the middle of a 1280 x 1024 frame."""
    return [(500 + 3 * k, 500, 520 + 3 * k, 520) for k in range(n)]


def hair(emergence, tip, width_um, *, in_field=True, in_frame=True, hair_id=0) -> dict:
    """A straight phantom hair from ``emergence`` to ``tip`` (row, col; pixels)."""
    line = np.linspace(emergence, tip, 11).tolist()
    return {"hair_id": hair_id, "unit_id": hair_id, "emergence_rc": list(emergence),
            "tip_rc": list(tip), "centerline_rc": line, "width_um": width_um,
            "length_um": 100.0, "in_field": in_field, "in_frame": in_frame}


def write_phantom(path: Path, hairs: list[dict], *, um_per_px: float = 2.0,
                  height: int = 200, width: int = 300, row0: int = 0) -> Path:
    """Phantom truth for a frame whose counting field is the whole frame below row ``row0``
    (a header strip above it)."""
    area_cm2 = (height - row0) * width * um_per_px ** 2 * 1e-8
    count = sum(h["in_field"] for h in hairs)
    data = {"schema": "tricho-phantom-truth/1", "image": f"{path.stem}.png",
            "um_per_px": um_per_px, "height_px": height, "width_px": width,
            "field": {"row0": row0, "row1": height, "col0": 0, "col1": width},
            "field_area_cm2": area_cm2, "count_in_field": count,
            "density_per_cm2": count / area_cm2, "hairs": hairs, "units": []}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def count_run(tmp_path: Path, pred: list[int], true: list[int]) -> dict:
    """Run VOC truth with ``true`` boxes per frame against predicted counts ``pred``."""
    truth = tmp_path / "truth"
    for k, n in enumerate(true):
        write_voc(truth / f"220105_A{k:03d}_1.xml", voc_boxes(n))
    run = write_run(tmp_path / "run", [{"image": f"imgs/220105_A{k:03d}_1.jpg",
                                        "hair_count": n} for k, n in enumerate(pred)], [])
    return evaluate_run(run, truth)


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------

def test_perfect_predictions_score_perfectly(tmp_path):
    stats = count_run(tmp_path, [8, 12, 25], [8, 12, 25])["metrics"]["count"]
    assert stats["n"] == 3
    assert stats["mape_pct"] == 0.0
    assert stats["bias_hairs"] == 0.0
    assert stats["mae_hairs"] == 0.0
    assert stats["loa_low_hairs"] == 0.0 and stats["loa_high_hairs"] == 0.0
    assert_allclose(stats["ccc"], 1.0)
    assert_allclose(stats["pearson_r"], 1.0)


def test_known_counts_give_known_errors(tmp_path):
    result = count_run(tmp_path, [10, 20], [8, 25])
    stats = result["metrics"]["count"]
    assert stats["mape_pct"] == 22.5          # mean(|10-8|/8, |20-25|/25) = mean(25 %, 20 %)
    assert stats["bias_hairs"] == -1.5        # mean(+2, -5)
    assert stats["bias_pct"] == 2.5           # mean(+25 %, -20 %)
    assert stats["mae_hairs"] == 3.5
    # Lin: means 15 and 16.5, variances 25 and 72.25, covariance 42.5 (over n).
    assert_allclose(stats["ccc"], 85 / 99.5)
    sd = 7 / math.sqrt(2)                     # sd of (+2, -5) with ddof=1
    assert_allclose(stats["sd_diff_hairs"], sd)
    assert_allclose(stats["loa_low_hairs"], -1.5 - 1.96 * sd)
    assert_allclose(stats["loa_high_hairs"], -1.5 + 1.96 * sd)
    table = result["per_frame"].set_index("image")
    assert table.loc["220105_A000_1", "count_error"] == 2
    assert table.loc["220105_A001_1", "count_ape_pct"] == 20.0


def test_lins_ccc_matches_hand_computation():
    # means 2 and 7/3; variances 2/3 and 14/9; covariance 1; (2 - 7/3)^2 = 1/9
    assert_allclose(lins_ccc([1, 2, 3], [1, 2, 4]), 2 / (2 / 3 + 14 / 9 + 1 / 9))
    assert_allclose(lins_ccc([1, 2, 3], [1, 2, 4]), 6 / 7)
    assert_allclose(lins_ccc([1, 2, 3], [3, 2, 1]), -1.0)
    assert math.isnan(lins_ccc([5], [5]))


def test_bland_altman_limits_are_bias_plus_minus_196_sd():
    ba = bland_altman([3, 5, 9], [1, 4, 4])   # differences 2, 1, 5
    sd = math.sqrt(13 / 3)                    # sum of squares 78/9 over n - 1 = 2
    assert_allclose(ba["bias"], 8 / 3)
    assert_allclose(ba["sd"], sd)
    assert_allclose(ba["loa_low"], 8 / 3 - 1.96 * sd)
    assert_allclose(ba["loa_high"], 8 / 3 + 1.96 * sd)


def test_mape_leaves_out_frames_with_no_true_hair():
    stats = agreement([10, 3], [8, 0], unit="hairs")
    assert stats["n"] == 2 and stats["n_mape"] == 1 and stats["n_true_zero"] == 1
    assert stats["mape_pct"] == 25.0
    assert stats["bias_hairs"] == 2.5


# --------------------------------------------------------------------------
# Truth readers
# --------------------------------------------------------------------------

def test_voc_sorts_swapped_corners_and_drops_degenerate_boxes(tmp_path):
    path = write_voc(tmp_path / "f.xml", [
        (10, 20, 50, 80),      # normal
        (50, 80, 10, 20),      # both swapped: same box
        (30, 100, 60, 40),     # y swapped
        (200, 300, 201, 400),  # 1 px wide: degenerate
        (400, 500, 480, 500),  # 0 px high: degenerate
        (600, 600, 602, 602),  # exactly 2 px: kept
    ], width=640, height=480)
    truth = read_voc(path)
    assert truth.true_count == 4
    assert (truth.height_px, truth.width_px) == (480, 640)
    assert truth.um_per_px is None
    assert_allclose(truth.points_rc, [[50, 30], [50, 30], [70, 45], [601, 601]])
    assert truth.classes == ["premium"] * 4


def test_voc_reads_the_class_tag_and_falls_back_to_name(tmp_path):
    path = tmp_path / "g.xml"
    path.write_text("<annotation><size><width>100</width><height>100</height></size>"
                    "<object><name>hair</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
                    "<xmax>9</xmax><ymax>9</ymax></bndbox></object>"
                    "<object><class>undersize</class><bndbox><xmin>1</xmin><ymin>1</ymin>"
                    "<xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    assert read_voc(path).classes == ["hair", "undersize"]


def test_truth_folder_ignores_json_without_schema_and_reports_broken_files(tmp_path):
    truth = tmp_path / "truth"
    write_phantom(truth / "deep" / "p1.json", [hair((100, 100), (100, 150), 40)])
    (truth / "manifest.json").write_text(json.dumps({"images": ["p1.png"]}))
    (truth / "run.json").write_text("[1, 2]")
    (truth / "broken.xml").write_text("<annotation><size>")
    truths, warnings = load_truth(truth)
    assert list(truths) == ["p1"]
    assert truths["p1"].kind == "phantom" and truths["p1"].true_count == 1
    assert len(warnings) == 1 and "broken.xml" in warnings[0]


# --------------------------------------------------------------------------
# Interior, density, thickness, shares
# --------------------------------------------------------------------------

def test_interior_mask_keeps_points_at_least_margin_from_every_border():
    points = [[50, 150], [10, 150], [100, 150], [100, 249], [150, 250], [np.nan, 5]]
    inside = interior_mask(points, height_px=200, width_px=300, margin_px=50)
    assert inside.tolist() == [True, False, True, True, True, False]


def test_interior_count_leaves_out_a_hair_10_px_from_the_border(tmp_path):
    # 2 um/px and a 100 um margin: 50 px band; frame 200 x 300 px.
    hairs = [hair((100, 150), (100, 190), 40, hair_id=0),
             hair((10, 150), (60, 150), 40, hair_id=1),       # 10 px from the top
             hair((100, 290), (100, 250), 40, hair_id=2),     # 10 px from the right
             hair((-5, 100), (30, 100), 40, hair_id=3, in_field=False, in_frame=True)]
    write_phantom(tmp_path / "truth" / "p1.json", hairs)
    run = write_run(tmp_path / "run", [{"image": "p1.png", "hair_count": 3}],
                    [{"image": "p1.png", "row": 100, "col": 150},
                     {"image": "p1.png", "row": 190, "col": 150},   # 10 px from the bottom
                     {"image": "p1.png", "row": 100, "col": 60}])
    result = evaluate_run(run, tmp_path / "truth", margin_um=100.0)
    frame = result["per_frame"].iloc[0]
    assert frame["margin_px"] == 50.0
    assert frame["true_count"] == 3 and frame["pred_count"] == 3
    assert frame["true_count_interior"] == 1
    assert frame["pred_count_interior"] == 2
    assert result["metrics"]["count_interior"]["bias_hairs"] == 1.0
    assert result["metrics"]["count"]["mape_pct"] == 0.0


def test_interior_is_measured_from_the_counting_field_under_a_header_strip(tmp_path):
    # 2 um/px and a 60 um margin: 30 px band; a 50 px header strip above the field.
    hairs = [hair((150, 150), (150, 190), 40, hair_id=0),
             hair((40, 150), (10, 150), 40, hair_id=1, in_field=False, in_frame=True),  # under the header
             hair((70, 100), (110, 100), 40, hair_id=2)]                               # 20 px below the header
    write_phantom(tmp_path / "truth" / "p1.json", hairs, row0=50)
    run = write_run(tmp_path / "run", [{"image": "p1.png", "hair_count": 2}],
                    [{"image": "p1.png", "row": 150, "col": 150}, {"image": "p1.png", "row": 70, "col": 100}])
    frame = evaluate_run(run, tmp_path / "truth", margin_um=60.0)["per_frame"].iloc[0]
    # a perfect run: the hair under the header counts on neither side, the one near the strip on neither
    assert frame["true_count"] == 2 and frame["pred_count"] == 2
    assert frame["true_count_interior"] == 1 and frame["pred_count_interior"] == 1


def test_voc_density_uses_the_run_area_or_the_default_pixel_size(tmp_path):
    truth = tmp_path / "truth"
    write_voc(truth / "a.xml", voc_boxes(8), width=1000, height=1000)
    write_voc(truth / "b.xml", voc_boxes(10), width=1000, height=1000)
    run = write_run(tmp_path / "run", [
        {"image": "a.jpg", "hair_count": 8, "area_cm2": 0.05, "density_per_cm2": 160.0},
        {"image": "b.jpg", "hair_count": 10, "density_per_cm2": 260.0}], [])
    # b: no area in the run, so 1000 x 1000 px x (2 um)^2 = 0.04 cm2 -> 250 /cm2.
    result = evaluate_run(run, truth, um_per_px_default=2.0)
    table = result["per_frame"].set_index("image")
    assert_allclose(table["true_density_per_cm2"], [160.0, 250.0])
    density = result["metrics"]["density"]
    assert density["n"] == 2
    assert_allclose(density["bias_per_cm2"], 5.0)
    assert_allclose(density["mape_pct"], 2.0)
    assert table.loc["a", "margin_px"] == 150.0     # 300 um at 2 um/px


def thickness_case(tmp_path, **kwargs) -> dict:
    """Two counted truth hairs (60 and 20 um) and one outside the field; two predictions."""
    hairs = [hair((100, 100), (100, 200), 60.0, hair_id=0),
             hair((150, 100), (150, 200), 20.0, hair_id=1),
             hair((-20, 50), (10, 50), 80.0, hair_id=2, in_field=False, in_frame=True)]
    write_phantom(tmp_path / "truth" / "p1.json", hairs)
    run = write_run(tmp_path / "run", [{
        "image": "p1.png", "hair_count": 2, "mean_thickness_um": 45.0,
        "vellus_count": 0, "intermediate_count": 1, "terminal_count": 1}], [
        # 50 px from hair 0's emergence but 3 px from its centre line
        {"image": "p1.png", "row": 103, "col": 150, "thickness_um": 70.0},
        # nowhere near a hair
        {"image": "p1.png", "row": 20, "col": 250, "thickness_um": 30.0}])
    return evaluate_run(run, tmp_path / "truth", **kwargs)


def test_thickness_matching_scores_a_known_pair(tmp_path):
    result = thickness_case(tmp_path)
    thick = result["metrics"]["thickness"]
    assert thick["n_matched"] == 1 and thick["n"] == 1
    assert thick["mae_um"] == 10.0 and thick["bias_um"] == 10.0
    assert thick["n_true"] == 2 and thick["n_pred"] == 2
    assert thick["precision"] == 0.5 and thick["recall"] == 0.5 and thick["f1"] == 0.5
    # per-frame mean: 45 predicted vs (60 + 20) / 2 = 40 true
    assert thick["n_frames"] == 1 and thick["frame_mean_mae_um"] == 5.0


def test_vellus_share_uses_the_class_limits(tmp_path):
    result = thickness_case(tmp_path / "default")
    assert result["metrics"]["vellus_share"] == {"n": 1, "mae_pp": 50.0, "bias_pp": -50.0}
    assert result["metrics"]["terminal_share"]["mae_pp"] == 50.0   # 50 % pred vs 0 % true
    narrow = thickness_case(tmp_path / "narrow", vellus_max_um=15.0, terminal_min_um=55.0)
    assert narrow["metrics"]["vellus_share"]["mae_pp"] == 0.0
    assert narrow["metrics"]["terminal_share"]["mae_pp"] == 0.0
    assert narrow["settings"]["vellus_max_um"] == 15.0


def test_root_end_and_units_are_scored_on_phantoms(tmp_path):
    # Two hairs of one opening (unit 7) and one single hair (unit 8); the run reports the first at its
    # emergence point, the second at its tip (orientation wrong) and the third 2 px off its emergence
    # point, and 2 units for 3 true ones.
    a = hair((100.0, 50.0), (100.0, 150.0), 60.0, hair_id=0) | {"unit_id": 7}
    b = hair((104.0, 50.0), (150.0, 140.0), 60.0, hair_id=1) | {"unit_id": 7}
    c = hair((40.0, 200.0), (40.0, 280.0), 60.0, hair_id=2) | {"unit_id": 8}
    d = hair((160.0, 200.0), (160.0, 280.0), 60.0, hair_id=3) | {"unit_id": 9}
    truth = write_phantom(tmp_path / "t" / "f.json", [a, b, c, d])
    run = write_run(tmp_path / "run", [{"image": "f.png", "hair_count": 3, "follicular_units": 2}],
                    [{"image": "f.png", "row": 100.0, "col": 50.0, "thickness_um": 60.0},
                     {"image": "f.png", "row": 150.0, "col": 140.0, "thickness_um": 60.0},
                     {"image": "f.png", "row": 42.0, "col": 200.0, "thickness_um": 60.0}])
    result = evaluate_run(run, truth)
    frame = result["per_frame"].iloc[0]
    assert frame["n_matched"] == 3 and frame["n_root_end_right"] == 2
    assert frame["emergence_error_um"] == 4.0  # median of 0, 2 and ~106 px distances, at 2 um/px
    assert frame["true_units"] == 3 and frame["pred_units"] == 2
    assert result["metrics"]["root_end"] == {"n": 3, "right_share": 2 / 3, "frame_median_error_um": 4.0}
    units = result["metrics"]["units"]
    assert units["n"] == 1 and units["bias_units"] == -1.0 and units["mape_pct"] == pytest.approx(100 / 3)


def test_box_truth_has_no_root_or_unit_scores(tmp_path):
    result = count_run(tmp_path, [3], [3])
    assert result["metrics"]["root_end"]["n"] == 0 and result["metrics"]["units"]["n"] == 0


def test_matching_is_one_to_one_and_globally_optimal():
    points = [np.array([[0.0, 0.0]]), np.array([[0.0, 10.0]])]
    # Greedy nearest would give pred 0 -> truth 0 (4 px), then pred 1 -> truth 1 (14 px).
    pairs = match_hairs(np.array([[0.0, 4.0], [0.0, -4.0]]), points, np.array([20.0, 20.0]))
    assert sorted(pairs) == [(0, 1, 6.0), (1, 0, 4.0)]


def test_hairs_of_one_opening_pair_by_the_shaft_they_follow():
    # Two truth hairs leave one opening at (0, 0): one along +col, one along +row.
    lines = [np.array([[0.0, 0.0], [0.0, 100.0]]), np.array([[0.0, 0.0], [100.0, 0.0]])]
    roots = np.array([[0.0, 0.0], [0.0, 0.0]])
    mids = np.array([[50.0, 0.0], [0.0, 50.0]])  # prediction 0 follows the row-wise shaft
    gates = np.array([10.0, 10.0])
    assert sorted(match_hairs(roots, lines, gates, mid_rc=mids, shaft_weight=0.5)) == [(0, 1, 0.0), (1, 0, 0.0)]
    # The shaft term only breaks ties: it never turns a forbidden root into a match.
    far = np.array([[0.0, 30.0]])
    assert match_hairs(far, lines[1:], gates[1:], mid_rc=np.array([[50.0, 0.0]]), shaft_weight=0.5) == []
    # NaN middles (no centre line) fall back to the root distance.
    assert match_hairs(roots[:1], lines, gates, mid_rc=np.full((1, 2), np.nan), shaft_weight=0.5)[0][2] == 0.0
    with pytest.raises(EvaluationError, match="shaft_weight"):
        EvaluationSettings(shaft_weight=-1.0)


def test_matching_respects_the_gate_and_measures_to_the_segment():
    line = [np.array([[0.0, 0.0], [0.0, 100.0]])]
    assert match_hairs(np.array([[12.0, 50.0]]), line, np.array([10.0])) == []
    assert match_hairs(np.array([[-7.0, 50.0]]), line, np.array([10.0])) == [(0, 0, 7.0)]
    # A closer forbidden pair must not steal the only allowed match.
    gates = np.array([1.0, 30.0])
    lines = [np.array([[0.0, 0.0]]), np.array([[0.0, 20.0]])]
    assert match_hairs(np.array([[0.0, 2.0]]), lines, gates) == [(0, 1, 18.0)]


# --------------------------------------------------------------------------
# Frames: stems, status, halves
# --------------------------------------------------------------------------

def test_frames_match_by_stem_and_error_frames_are_left_out(tmp_path):
    truth = tmp_path / "truth"
    for stem, n in (("x1", 5), ("x2", 6), ("x3", 7)):
        write_voc(truth / f"{stem}.xml", voc_boxes(n))
    run = write_run(tmp_path / "run", [
        {"image": "/data/site/x1.jpg", "hair_count": 5},
        {"image": "C:\\photos\\x2.JPG", "hair_count": 6},
        {"image": "x3.jpg", "hair_count": np.nan, "status": "error", "error": "unreadable"},
        {"image": "y9.jpg", "hair_count": 1}], [])
    result = evaluate_run(run, truth)
    frames = result["frames"]
    assert list(result["per_frame"]["image"]) == ["x1", "x2"]
    assert frames["n_matched"] == 3 and frames["n_evaluated"] == 2
    assert frames["status_error"] == ["x3"]
    assert frames["run_only"] == ["y9"] and frames["truth_only"] == []


def test_repeated_stems_match_by_path_as_in_a_course(tmp_path):
    """One folder per session with the same field names: truth and frames pair by their paths."""
    truth = tmp_path / "course"
    counts = {"P1/2026-01-05/vertex_1": 5, "P1/2026-01-19/vertex_1": 8, "P1/2026-01-19/vertex_2": 6}
    for key, n in counts.items():
        write_voc(truth / f"{key}.xml", voc_boxes(n))
    run = write_run(tmp_path / "run", [
        {"image": "P1/2026-01-05/vertex_1.jpg", "hair_count": 5},
        {"image": "P1\\2026-01-19\\vertex_1.jpg", "hair_count": 9},
        {"image": "elsewhere/P1/2026-01-19/vertex_2.jpg", "hair_count": 6},
        {"image": "P2/2026-01-05/vertex_1.jpg", "hair_count": 1}], [])
    result = evaluate_run(run, truth)
    table = result["per_frame"].set_index("image")
    assert table["true_count"].to_dict() == counts
    assert table.loc["P1/2026-01-19/vertex_1", "pred_count"] == 9
    assert result["frames"]["run_only"] == ["P2/2026-01-05/vertex_1"]


def test_subject_half_keeps_every_frame_of_a_subject_together():
    frames = ["220105_A095_1", "220105_A095_3", "220105_A095_4", "220207_A095_2",
              "images/220105_A095_9.jpg"]
    assert len({subject_half(f) for f in frames}) == 1
    halves = [subject_half(f"220101_S{k:04d}_1") for k in range(1000)]
    assert set(halves) == {"A", "B"}
    assert 400 < halves.count("A") < 600
    assert subject_half("220105_A095_1") == subject_half("220105_A095_1")


def test_subset_scores_one_half_only(tmp_path):
    stems = [f"220101_S{k:03d}_{n}" for k in range(20) for n in (1, 2)]
    truth = tmp_path / "truth"
    for stem in stems:
        write_voc(truth / f"{stem}.xml", voc_boxes(10))
    run = write_run(tmp_path / "run", [{"image": f"{s}.jpg", "hair_count": 10} for s in stems],
                    [])
    halves = {h: evaluate_run(run, truth, subset=h) for h in ("A", "B")}
    scored = {h: set(r["per_frame"]["image"]) for h, r in halves.items()}
    assert scored["A"].isdisjoint(scored["B"]) and scored["A"] | scored["B"] == set(stems)
    assert all(subject_half(s) == "A" for s in scored["A"])
    assert halves["A"]["frames"]["n_other_half"] == len(scored["B"])


# --------------------------------------------------------------------------
# Errors a person can act on
# --------------------------------------------------------------------------

def test_run_without_images_csv_says_what_to_run(tmp_path):
    (tmp_path / "run").mkdir()
    write_voc(tmp_path / "truth" / "a.xml", voc_boxes(3))
    with pytest.raises(EvaluationError, match=r"no images\.csv.*tricho analyze"):
        evaluate_run(tmp_path / "run", tmp_path / "truth")


def test_empty_truth_folder_says_so(tmp_path):
    run = write_run(tmp_path / "run", [{"image": "a.jpg", "hair_count": 3}], [])
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "manifest.json").write_text("{}")
    with pytest.raises(EvaluationError, match="found no truth"):
        evaluate_run(run, tmp_path / "truth")
    with pytest.raises(EvaluationError, match="does not exist"):
        evaluate_run(run, tmp_path / "nowhere")


def test_no_matching_stems_lists_names_from_both_sides(tmp_path):
    run = write_run(tmp_path / "run", [{"image": "run_frame_1.jpg", "hair_count": 3}], [])
    write_voc(tmp_path / "truth" / "truth_frame_1.xml", voc_boxes(3))
    with pytest.raises(EvaluationError) as info:
        evaluate_run(run, tmp_path / "truth")
    assert "run_frame_1" in str(info.value) and "truth_frame_1" in str(info.value)


def test_two_run_frames_with_one_truth_stem_are_an_error(tmp_path):
    run = write_run(tmp_path / "run", [{"image": "site1/a.jpg", "hair_count": 3},
                                       {"image": "site2/a.jpg", "hair_count": 4},
                                       {"image": "x/b.jpg", "hair_count": 3},
                                       {"image": "y/b.jpg", "hair_count": 3}], [])
    write_voc(tmp_path / "truth" / "a.xml", voc_boxes(3))
    with pytest.raises(EvaluationError, match="share a file stem") as info:
        evaluate_run(run, tmp_path / "truth")
    assert "site1/a.jpg" in str(info.value) and "b.jpg" not in str(info.value)


def test_only_error_frames_matched_says_so(tmp_path):
    run = write_run(tmp_path / "run", [{"image": "a.jpg", "hair_count": np.nan,
                                        "status": "error", "error": "unreadable"}], [])
    write_voc(tmp_path / "truth" / "a.xml", voc_boxes(3))
    with pytest.raises(EvaluationError, match="status other than 'ok'"):
        evaluate_run(run, tmp_path / "truth")
    copy = write_run(tmp_path / "copy", [{"image": "a.jpg", "hair_count": np.nan, "status": "skipped",
                                          "error": "same content as b.jpg: measured once"}], [])
    with pytest.raises(EvaluationError, match="status other than 'ok'"):
        evaluate_run(copy, tmp_path / "truth")


def test_bad_half_is_an_evaluation_error(tmp_path):
    run = write_run(tmp_path / "run", [{"image": "a.jpg", "hair_count": 3}], [])
    write_voc(tmp_path / "truth" / "a.xml", voc_boxes(3))
    with pytest.raises(EvaluationError, match="--half"):
        evaluate_run(run, tmp_path / "truth", subset="C")


# --------------------------------------------------------------------------
# Report and command
# --------------------------------------------------------------------------

def test_report_json_holds_stats_and_frames_with_nan_as_null(tmp_path):
    result = count_run(tmp_path, [10, 20], [8, 25])
    path = write_report(result, tmp_path / "out" / "evaluation.json")
    data = json.loads(path.read_text())
    assert data["schema"] == "tricho-evaluation/1"
    assert data["metrics"]["count"]["mape_pct"] == 22.5
    assert data["metrics"]["thickness"]["mae_um"] is None          # VOC: no thickness
    assert data["metrics"]["thickness"]["n"] == 0
    assert [r["image"] for r in data["per_frame"]] == ["220105_A000_1", "220105_A001_1"]
    assert data["per_frame"][0]["pred_density_per_cm2"] is None
    assert data["settings"]["margin_um"] == 300.0


def test_evaluate_command_prints_and_writes_default_json(tmp_path):
    result = count_run(tmp_path, [10, 20], [8, 25])
    console = Console(file=io.StringIO(), width=120)
    code = evaluate_command(tmp_path / "run", tmp_path / "truth", console=console)
    assert code == 0
    text = console.file.getvalue()
    assert "count MAPE (%)" in text and "22.500" in text
    saved = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert saved["metrics"]["count"]["bias_hairs"] == result["metrics"]["count"]["bias_hairs"]
    assert format_table(result).row_count >= 8


def test_evaluate_command_reports_input_errors_without_a_traceback(tmp_path):
    console = Console(file=io.StringIO(), width=200)
    code = evaluate_command(tmp_path / "missing_run", tmp_path, console=console)
    assert code == 2
    assert "does not exist" in console.file.getvalue()


# --------------------------------------------------------------------------
# The real FDU validation labels
# --------------------------------------------------------------------------

@pytest.mark.skipif(not (FDU_VAL / "annotations").is_dir(),
                    reason=f"FDU validation labels not found at {FDU_VAL}/annotations "
                           "(see ../shared/data/README.md)")
def test_fdu_val_annotations_match_the_readme():
    truths, warnings = load_truth(FDU_VAL / "annotations")
    assert warnings == []
    assert len(truths) == 330
    counts = [t.true_count for t in truths.values()]
    # README: "5 to 28 per image, median 12"
    assert min(counts) == 5 and max(counts) == 28 and statistics.median(counts) == 12
    assert 330 * 5 <= sum(counts) <= 330 * 28
    assert {t.kind for t in truths.values()} == {"voc"}
    assert {(t.height_px, t.width_px) for t in truths.values()} == {(1024, 1280)}
    halves = [subject_half(s) for s in truths]
    assert 0.4 < halves.count("A") / len(halves) < 0.6


def test_box_truth_is_compared_with_hair_middles_phantoms_with_emergence_points():
    from pipeline.evaluate import _reference_points

    hairs = pd.DataFrame({"row": [5.0], "col": [6.0], "mid_row": [50.0], "mid_col": [60.0]})
    assert _reference_points(hairs, "voc").tolist() == [[50.0, 60.0]]
    assert _reference_points(hairs, "phantom").tolist() == [[5.0, 6.0]]
    assert _reference_points(hairs[["row", "col"]], "voc").tolist() == [[5.0, 6.0]]
