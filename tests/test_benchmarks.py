"""The benchmark scripts at least parse: they are run by hand, so nothing else would notice a syntax error."""
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_benchmark_parses(script: Path):
    compile(script.read_text(encoding="utf-8"), str(script), "exec")


def _module(name: str):
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stages_module():
    return _module("phantom_stages")


def _hair(hair_id, unit_id, line, width_um=20.0):
    line = [list(map(float, p)) for p in line]
    return {"hair_id": hair_id, "unit_id": unit_id, "emergence_rc": line[0], "centerline_rc": line,
            "width_um": width_um}


def test_emergence_covered_by_another_units_shaft_only():
    ps = _stages_module()
    # at 2 um/px the half widths are 5 px: A runs along row 50; B emerges on A's shaft; C, A's unit-mate,
    # emerges on it too (a shared opening is not a cover); D emerges 20 px away
    a = _hair(0, 0, [(50, c) for c in range(10, 100)])
    b = _hair(1, 1, [(50 + r, 60) for r in range(0, 40)])
    c = _hair(2, 0, [(50 + r, 20 + r) for r in range(0, 30)])
    d = _hair(3, 2, [(70 + r, 90) for r in range(0, 30)])
    hairs = [a, b, c, d]
    assert ps.emergence_covered(hairs, hairs, 2.0).tolist() == [False, True, False, False]


def test_border_distance_is_to_the_nearest_field_edge_and_negative_outside():
    ps = _stages_module()
    field = (40.0, 1000.0, 0.0, 1200.0)  # a header strip above row 40
    points = [(50.0, 600.0), (500.0, 3.0), (990.0, 600.0), (20.0, 600.0), (500.0, 1210.0)]
    assert ps.border_distance(points, field).tolist() == [10.0, 3.0, 10.0, -20.0, -10.0]


def test_visible_part_keeps_the_line_inside_the_field_or_its_emergence():
    ps = _stages_module()
    field = (40.0, 1000.0, 0.0, 1200.0)
    up = np.array([(60.0 - r, 300.0) for r in range(0, 40)])  # emerges at row 60, runs up under the header
    assert ps.visible_part(up, field)[:, 0].tolist() == [60.0 - r for r in range(0, 20)]
    gone = np.array([(40.5, 300.0), (30.0, 300.0), (20.0, 300.0)])  # one point inside: the emergence alone
    assert ps.visible_part(gone, field).tolist() == [[40.5, 300.0]]


def test_footprint_share_reads_a_sliver_at_the_border_as_segmented():
    ps = _stages_module()
    field = (0.0, 100.0, 0.0, 100.0)
    # a 20 px shaft emerging 3 px inside the left edge and running down just outside it: its centre line
    # inside the field is one point, but its right half lies in the frame as a sliver 7 px wide
    line = np.array([(20.0, 3.0)] + [(20.0 + k, -3.0) for k in range(1, 60)])
    mask = np.zeros((100, 100), bool)
    mask[10:90, 0:7] = True  # the sliver the core segmented
    assert len(ps.visible_part(line, field)) == 1  # the emergence point alone
    assert ps.footprint_share(line, 20.0, mask, field) == pytest.approx(0.79, abs=0.02)  # all but its cap
    assert ps.footprint_share(line, 20.0, np.zeros((100, 100), bool), field) == 0.0
    away = np.array([(20.0, -40.0), (80.0, -40.0)])  # wholly outside the field
    assert np.isnan(ps.footprint_share(away, 20.0, mask, field))
    # only the shaft's pixels inside the field count: below a header of 30 rows the sliver is all of it
    assert ps.footprint_share(line, 20.0, mask, (30.0, 100.0, 0.0, 100.0)) == pytest.approx(0.89, abs=0.02)


def test_a_segmented_sliver_is_not_filed_as_not_segmented():
    from types import SimpleNamespace

    ps = _stages_module()
    field = (0.0, 100.0, 0.0, 100.0)
    line = np.array([(20.0, 3.0)] + [(20.0 + k, -3.0) for k in range(1, 60)])
    mask = np.zeros((100, 100), bool)
    mask[25:90, 0:7] = True  # the sliver, not reaching up to the emergence point
    stages = SimpleNamespace(mask=mask, valid=np.ones((100, 100), bool), traced=[], cands=[])
    visible = ps.visible_part(line, field)
    args = (visible, 20.0, stages, np.zeros((0, 2)), set())
    assert ps._lost_at(*args) == "not segmented"  # its centre line in the field: the emergence point alone
    share = ps.footprint_share(line, 20.0, mask, field)
    assert share >= 0.5
    assert ps._lost_at(*args, share) == "not traced"  # segmented; nothing traced along it


def test_a_miss_along_a_stripe_rooted_elsewhere_is_joined_to_another_hair():
    from types import SimpleNamespace

    ps = _stages_module()
    line = np.array([(50.0, float(c)) for c in range(10, 61)])  # the missed hair, emerging at (50, 10)
    path = np.array([(50.0, float(c)) for c in range(10, 111)])  # a counted stripe along it and on for 50 px
    mask = np.zeros((100, 200), bool)
    mask[45:56, 5:115] = True
    stripe = SimpleNamespace(path=path)

    def lost(root: int, openings):
        cand = SimpleNamespace(hair=stripe, radius_px=4.0, root=root, emergence=None)
        stages = SimpleNamespace(mask=mask, valid=np.ones_like(mask), traced=[stripe], cands=[cand])
        return ps._lost_at(line, 8.0, stages, np.zeros((0, 2)), {id(cand)}, float("nan"), openings)

    assert lost(1, np.array([(50.0, 10.0)])) == "joined to another hair"  # rooted 100 px away, at (50, 110)
    assert lost(0, np.array([(50.0, 10.0)])) == "counted as a unit-mate"  # rooted at its own opening
    assert lost(1, np.array([(50.0, 10.0), (50.0, 108.0)])) == "counted as a unit-mate"  # a mate's opening there
    assert lost(1, None) == "counted as a unit-mate"  # without the unit's openings, as before


def test_extra_kind_sorts_unmatched_hairs_by_what_lies_under_them():
    ps = _stages_module()
    a = _hair(0, 0, [(50, c) for c in range(10, 110)])
    out = _hair(1, 1, [(150, c) for c in range(10, 60)])  # the density rule does not count it
    truth = {"um_per_px": 2.0, "hairs": [a, out]}
    targets = [{**a, "centerline_rc": np.asarray(a["centerline_rc"])}]
    matched = {0: np.array([(50.0, c) for c in range(10, 60)])}  # the found hair's read centre line: A's first half
    piece = np.array([(50.0, c) for c in range(62, 108)])
    twin = np.array([(52.0, c) for c in range(12, 58)])
    skin = np.array([(300.0, c) for c in range(10, 60)])
    assert ps.extra_kind(piece, truth, targets, {0}, matched) == "piece of a found hair"
    assert ps.extra_kind(twin, truth, targets, {0}, matched) == "twin of a found hair"
    assert ps.extra_kind(piece, truth, targets, set(), {}) == "on a missed hair"
    assert ps.extra_kind(np.array(out["centerline_rc"]), truth, targets, {0}, matched) == "on an uncounted hair"
    assert ps.extra_kind(skin, truth, targets, {0}, matched) == "on skin"


def test_tips_along_a_stripe_count_its_hairs_but_not_at_its_root():
    import dataclasses
    from types import SimpleNamespace

    from pipeline.frame import Candidate

    th = _module("tip_head")
    path = np.array([(50.0, c) for c in range(10, 110)])
    stripe = Candidate(SimpleNamespace(path=path), 6.0, 3.0, 1.0, (False, False), np.zeros(2), root=0)
    far_end, mid, at_root, off = (50.0, 109.0), (51.0, 60.0), (50.0, 12.0), (70.0, 60.0)
    assert len(th.tips_along([stripe], np.zeros((0, 2)))) == 1
    assert len(th.tips_along([stripe], np.array([far_end, off]))) == 1
    two = th.tips_along([stripe], np.array([far_end, mid, at_root]))
    assert len(two) == 2 and all(c.thickness_px == 3.0 for c in two)
    assert len(th.tips_along([dataclasses.replace(stripe, root=None)], np.array([far_end, mid, at_root]))) == 3


def test_tip_peaks_match_truth_tips_within_reach():
    th = _module("tip_head")
    truth = np.array([(10.0, 10.0), (50.0, 50.0)])
    peaks = np.array([(12.0, 10.0), (50.0, 58.0), (90.0, 90.0)])
    assert th.match_points(peaks, truth, np.array([3.0, 5.0])) == (1, 1)
    assert th.match_points(peaks, truth, np.array([3.0, 9.0])) == (2, 2)
    assert th.match_points(np.zeros((0, 2)), truth, np.array([3.0, 3.0])) == (0, 0)


def test_root_heat_map_peaks_are_one_at_each_point_and_gaussian_around():
    rc = _module("root_count")
    m = rc.blobs([np.array([10.0, 10.0]), np.array([10.4, 30.0]), np.array([-5.0, 3.0])], (40, 50))
    assert m[10, 10] == 1.0 and m[10, 30] == 1.0  # the nearest pixel of each point is a positive
    assert int((m >= 0.999).sum()) == 2  # the point off the map adds nothing
    assert m[10, 12] == pytest.approx(np.exp(-4 / (2 * rc.SIGMA_PX ** 2)), rel=1e-5)
    assert m[0, 45] == 0.0


def test_root_peaks_pair_one_to_one_within_the_gate():
    rc = _module("root_count")
    points = np.array([(10.0, 10.0), (12.0, 10.0), (80.0, 80.0)])
    assert rc.matched(np.array([(11.0, 10.0)]), points, 3.0) == 1  # one peak, two points near: one pair
    assert rc.matched(np.array([(10.0, 10.0), (12.0, 11.0), (40.0, 40.0)]), points, 3.0) == 2
    assert rc.matched(np.zeros((0, 2)), points, 3.0) == 0


def test_interior_counts_points_at_least_the_margin_from_every_border():
    rc = _module("root_count")
    pts = np.array([(10.0, 10.0), (9.9, 50.0), (50.0, 89.9), (50.0, 90.1), (89.9, 50.0)])
    assert rc._interior(pts, (100, 100), 10.0) == 3  # (10, 10), (50, 89.9), (89.9, 50)
    assert rc._interior(np.zeros((0, 2)), (100, 100), 10.0) == 0


def test_root_count_real_reads_voc_boxes_and_reports_each_half(tmp_path, capsys):
    import cv2
    import pandas as pd
    import torch

    rc = _module("root_count")
    net = tmp_path / "net"
    net.mkdir()
    torch.manual_seed(0)
    torch.save(rc.HairNet(rc.WIDTHS, n_out=3).state_dict(), net / "weights.pt")
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "220105_A095_1.png"), np.full((120, 160, 3), 200, np.uint8))
    boxes = "".join(f"<object><class>single</class><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x0 + 8}</xmax>"
                    f"<ymax>{y0 + 30}</ymax></bndbox></object>" for x0, y0 in ((5, 5), (70, 40), (100, 50)))
    (tmp_path / "annotations" / "220105_A095_1.xml").write_text(
        f"<annotation><size><width>160</width><height>120</height></size>{boxes}</annotation>")
    rows = pd.DataFrame(rc.count_real(str(net), tmp_path / "annotations" / "220105_A095_1.xml",
                                      tmp_path / "images" / "220105_A095_1.png", 10.0))
    assert list(rows["threshold"]) == list(rc.REAL_THRESHOLDS)
    assert set(rows["truth"]) == {3}
    # box centres (20, 9), (55, 74), (65, 104); 0.3 mm at 10 µm/px is 30 px: the first is outside
    assert set(rows["truth_interior"]) == {2} and set(rows["half"]) == {"A"}
    classical = pd.DataFrame({"image": ["220105_A095_1"], "classical": [2], "classical_interior": [1]})
    rc.report_real(rows, classical)
    out = capsys.readouterr().out
    assert "whole frame" in out and "mean of both" in out


def test_reencode_stability_pairs_each_jpeg_copy_with_its_png_copy():
    import pandas as pd

    rs = _module("reencode_stability")
    images = pd.DataFrame({
        "image": ["a__png.png", "a__q95.jpg", "a__q75.jpg", "b__png.png", "b__q95.jpg", "b__q75.jpg", "c__png.png"],
        "hair_count": [10, 12, 9, 5, 5, 4, 7], "status": ["ok"] * 6 + ["error"]})
    d = rs.changes(images).sort_values(["frame", "quality"]).reset_index(drop=True)
    assert d[["frame", "quality"]].values.tolist() == [["a", "q75"], ["a", "q95"], ["b", "q75"], ["b", "q95"]]
    assert d["change"].tolist() == [-1, 2, -1, 0]
    assert d["png"].tolist() == [10, 10, 5, 5]


def test_reencode_stability_copies_are_the_same_pixels_up_to_jpeg(tmp_path):
    from PIL import Image

    from pipeline.imageio import read_image

    rs = _module("reencode_stability")
    src = tmp_path / "src"
    src.mkdir()
    rgb = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(src / "f.png")
    out = tmp_path / "out"
    out.mkdir()
    rs.write_copies([src / "f.png"], out, [95, 75])
    assert sorted(p.name for p in out.iterdir()) == ["f__png.png", "f__q75.jpg", "f__q95.jpg"]
    np.testing.assert_array_equal(read_image(out / "f__png.png"), rgb)
    err95 = np.abs(read_image(out / "f__q95.jpg").astype(int) - rgb).mean()
    err75 = np.abs(read_image(out / "f__q75.jpg").astype(int) - rgb).mean()
    assert 0 < err95 < err75


def test_reencode_stability_turned_copies_and_their_manifest(tmp_path):
    import cv2
    import pandas as pd

    from pipeline.imageio import read_image

    rs = _module("reencode_stability")
    src = tmp_path / "src"
    src.mkdir()
    rgb = np.random.default_rng(2).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    cv2.imwrite(str(src / "f.png"), rgb[..., ::-1])
    out = tmp_path / "out"
    out.mkdir()
    rs.write_copies([src / "f.png"], out, [], turns=True, um_per_px={"f.png": 4.5})
    np.testing.assert_array_equal(read_image(out / "f__r90.png"), np.rot90(rgb))
    np.testing.assert_array_equal(read_image(out / "f__r180.png"), rgb[::-1, ::-1])
    np.testing.assert_array_equal(read_image(out / "f__fh.png"), rgb[:, ::-1])
    np.testing.assert_array_equal(read_image(out / "f__fv.png"), rgb[::-1])
    m = pd.read_csv(out / "manifest.csv")
    assert sorted(m["image"]) == ["f__fh.png", "f__fv.png", "f__png.png", "f__r180.png", "f__r90.png"]
    assert set(m["um_per_px"]) == {4.5}


def test_reencode_stability_scores_each_copy_and_the_median_against_truth():
    import pandas as pd

    rs = _module("reencode_stability")
    images = pd.DataFrame({"image": ["a__png.png", "a__r90.png", "a__fh.png", "b__png.png", "b__r90.png", "b__fh.png"],
                           "hair_count": [8, 10, 11, 4, 5, 6], "status": ["ok"] * 6})
    s = rs.truth_scores(rs.copies(images), {"a": 10, "b": 5})
    # a: 20 / 0 / 10%, median 10 -> 0%; b: 20 / 0 / 20%, median 5 -> 0%
    assert s["count_mape_pct"].round(6).to_dict() == {"fh": 15.0, "median": 0.0, "png": 20.0, "r90": 0.0}
    assert set(s["frames"]) == {2}


def test_paired_runs_pairs_frames_by_name_and_gives_the_standard_error():
    pr = _module("paired_runs")
    import pandas as pd

    def table(preds):
        return pd.DataFrame({"image": list(preds), "true_count": 10, "pred_count": list(preds.values()),
                             "ape_pct": [abs(p - 10) * 10.0 for p in preds.values()], "segmenter": "classical"})

    a = table({"f1": 10, "f2": 8, "f3": 12, "only_a": 5})
    b = table({"f3": 11, "f2": 8, "f1": 13, "only_b": 10})  # other order; f1 worse by 30, f3 better by 10
    r = pr.paired(a, b)
    assert (r["n_frames"], r["only_a"], r["only_b"]) == (3, 1, 1)
    assert (r["moved"], r["better"], r["worse"]) == (2, 1, 1)
    assert r["mape_a_pct"] == pytest.approx(40 / 3) and r["mape_b_pct"] == pytest.approx(20.0)
    diffs = np.array([30.0, 0.0, -10.0])
    assert r["diff_pp"] == pytest.approx(diffs.mean())
    assert r["se_pp"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(3))
    assert r["ci95_pp"][1] - r["ci95_pp"][0] == pytest.approx(2 * 1.96 * r["se_pp"])
    same = pr.paired(a, a)
    assert (same["diff_pp"], same["se_pp"], same["moved"]) == (0.0, 0.0, 0)


def test_phantom_scenes_groups_by_any_parameter_with_pooled_recall_and_points_of_the_mape():
    ps = _module("phantom_scenes")
    import pandas as pd

    d = pd.DataFrame({"skin_tone": [1, 1, 6, 6], "glare": [0.0, 0.2, 0.5, 0.0],
                      "true_count": [10, 30, 20, 40], "count_error": [-1, -3, 2, -4],
                      "count_ape_pct": [10.0, 10.0, 10.0, 10.0], "n_true_detect": [10, 30, 20, 40],
                      "n_matched": [9, 21, 10, 30], "n_pred_detect": [9, 27, 20, 36]})
    by_tone = ps.summary(d, ps.grouping(d, "skin_tone"))
    assert by_tone["frames"].tolist() == [2, 2]
    assert by_tone.loc[1, "recall"] == pytest.approx(30 / 40)  # pooled over the group's hairs, not averaged
    assert by_tone.loc[6, "precision"] == pytest.approx(40 / 56, abs=1e-3)
    assert by_tone.loc[1, "count_bias_hairs"] == -2.0
    assert by_tone["points_of_the_mape"].sum() == pytest.approx(10.0)  # the groups' points add up to the MAPE
    by_glare = ps.summary(d, ps.grouping(d, "glare:0,0.1,1"))
    assert by_glare["frames"].tolist() == [2, 2]  # the lowest edge is included: glare 0 is in the first bin
    with pytest.raises(SystemExit, match="no column 'nope'"):
        ps.grouping(d, "nope")
    with pytest.raises(SystemExit, match="bin edges must be numbers"):
        ps.grouping(d, "glare:0,x")
    for bad in ("glare:0.5,0.1", "glare:0.1,0.1,1", "glare:0.1"):
        with pytest.raises(SystemExit, match="at least two bin edges"):
            ps.grouping(d, bad)


def test_phantom_scenes_keeps_every_frame_in_a_group_and_reads_routes_as_evaluate_names_frames():
    ps = _module("phantom_scenes")
    import pandas as pd

    d = pd.DataFrame({"jpeg_quality": [None, 80, 95, None], "um_per_px": [2.5, 5.0, 12.0, 3.0],
                      "true_count": [10, 10, 10, 10], "count_error": [1, -1, -2, 0],
                      "count_ape_pct": [10.0, 10.0, 20.0, 0.0], "n_true_detect": [10] * 4,
                      "n_matched": [9] * 4, "n_pred_detect": [10] * 4})
    by_q = ps.summary(d, ps.grouping(d, "jpeg_quality"))  # a PNG frame's quality is None: its own group
    assert by_q.index.astype(str).tolist() == ["80.0", "95.0", ps.MISSING]
    assert by_q.loc[ps.MISSING, "frames"] == 2
    by_px = ps.summary(d, ps.grouping(d, "um_per_px:2,4,8"))  # 12 µm/px lies outside the edges
    assert len(by_px) == 3 and by_px.index[-1] == ps.OUTSIDE
    assert by_px["frames"].tolist() == [2, 1, 1]
    assert by_px["points_of_the_mape"].sum() == pytest.approx(d["count_ape_pct"].mean())  # no frame dropped
    images = pd.DataFrame({"image": ["C:\\scans\\phantom_95_0001.jpg", "/data/phantom_95_0002.png"],
                           "segmenter": ["classical", "learned_light_hair"]})
    assert ps.routes(images) == {"phantom_95_0001": "classical", "phantom_95_0002": "learned_light_hair"}
    assert ps.routes(images.drop(columns="segmenter")) == {}


def test_paired_runs_says_which_share_of_the_added_hairs_a_truth_hair_explains(tmp_path):
    pr = _module("paired_runs")
    import pandas as pd

    def table(detected, matched):
        return pd.DataFrame({"image": ["f1", "f2", "f3"], "detected": detected, "matched": matched})

    hits = pr.detections(table([10, 8, 4], [9, 8, 3]), table([14, 8, 6], [10, 8, 4]))
    assert (hits["detected_a"], hits["detected_b"], hits["matched_a"], hits["matched_b"]) == (22, 28, 20, 22)
    assert hits["added_matched_share"] == pytest.approx(2 / 6)
    assert np.isnan(pr.detections(table([10, 8, 4], [9, 8, 3]), table([10, 8, 4], [9, 8, 3]))["added_matched_share"])
    # box truth (fdu_val) ties no hair: nothing to say
    run = tmp_path / "r"
    run.mkdir()
    (run / "evaluation.json").write_text(json.dumps({"per_frame": [
        {"image": "f1", "true_count": 10, "pred_count": 9, "count_ape_pct": 10.0}]}))
    boxes = pr.frame_table(run)
    assert pr.detections(boxes, boxes) is None


def test_same_output_tells_a_moved_count_and_a_rounding_apart(tmp_path):
    import pandas as pd

    so = _module("same_output")
    images = pd.DataFrame({"image": ["a.jpg", "b.jpg"], "hair_count": [2, 1], "route": ["dark", "dark"]})
    hairs = pd.DataFrame({"image": ["a.jpg", "a.jpg", "b.jpg"], "hair_id": [0, 1, 0],
                          "thickness_um": [40.0, 61.0, 12.0], "class": ["intermediate", "terminal", "vellus"]})
    for name, imgs, hs in (("a", images, hairs),
                           ("b", images, hairs.assign(thickness_um=[40.0, 61.00005, 12.0])),
                           ("c", images.assign(hair_count=[2, 2]), hairs)):
        (tmp_path / name).mkdir()
        imgs.to_csv(tmp_path / name / "images.csv", index=False)
        hs.to_csv(tmp_path / name / "hairs.csv", index=False)
    assert so.compare_runs(tmp_path / "a", tmp_path / "a", {})[1]
    assert not so.compare_runs(tmp_path / "a", tmp_path / "b", {})[1]
    assert so.compare_runs(tmp_path / "a", tmp_path / "b", {"thickness_um": 1e-4})[1]
    lines, agree = so.compare_runs(tmp_path / "a", tmp_path / "c", {})
    assert not agree and "hair_count differs on 1 (b.jpg)" in lines[0]


def test_visibility_reads_a_bands_colour_distance_from_the_skin_beside_it():
    import cv2

    vis = _module("phantom_visibility")
    bgr = np.full((100, 100, 3), 150, np.uint8)
    bgr[48:53] = 50  # a 5 px band centred on row 50
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB).astype(np.float32)
    line = np.array([[50.0, 10.0], [50.0, 90.0]])
    contrast, to_noise = vis.line_contrast(lab, line, 5.0)
    assert contrast == pytest.approx(float(lab[0, 0, 0] - lab[50, 50, 0]))  # grey: lightness only
    assert to_noise > 1e3  # flat skin beside it has no grain
    blank = vis.line_contrast(np.full_like(lab, lab[0, 0]), line, 5.0)
    assert blank[0] == 0.0
    assert np.isnan(vis.line_contrast(lab, np.array([[50.0, 10.0], [50.0, 13.0]]), 5.0)[0])
    # along the top edge the skin above lies outside the image: no sample there, no contrast
    assert np.isnan(vis.line_contrast(lab, np.array([[1.0, 10.0], [1.0, 90.0]]), 5.0)[0])
    # a shaft that fades in at its emergence: the first diameter (and 20% of the line) is not read
    faded = bgr.copy()
    faded[48:53, 10:26] = 150  # the band starts only 16 px along the line
    assert vis.line_contrast(cv2.cvtColor(faded, cv2.COLOR_BGR2LAB).astype(np.float32), line, 5.0)[0] == \
        pytest.approx(contrast)


def test_visibility_count_error_against_only_the_hairs_above_a_floor():
    import pandas as pd

    vis = _module("phantom_visibility")
    table = pd.DataFrame({"frame": ["f1", "f1", "f1", "f2", "f2"], "contrast": [1.0, 10.0, np.nan, 5.0, 30.0]})
    counts = pd.Series({"f1": 2, "f2": 2})
    assert vis.mape_above(table, counts, 0.0) == pytest.approx((100 / 3 / 2, -0.5))
    assert vis.mape_above(table, counts, 4.0) == pytest.approx((0.0, 0.0))
    assert vis.mape_above(table, counts, 40.0) == pytest.approx((100.0, 1.0))  # f2 has none left: skipped


def test_direction_agreement_counts_own_evidence_for_and_against_the_frames_direction():
    from pipeline.frame import Candidate
    from pipeline.shafts import Hair

    da = _module("direction_agreement")

    def cand(scores, *, root=0, confident=False, cut=(False, False)):
        return Candidate(hair=Hair(path=np.array([[10.0, 5.0], [60.0, 5.0]]), end_kinds=["free", "free"]),
                         thickness_px=4.0, radius_px=2.0, contrast=1.0, cut=cut, scores=np.asarray(scores, float),
                         root=root, confident=confident)

    # vertical hairs: two whose top end scores higher, one whose bottom does, one cut (not asked), one fork
    # rooted at the bottom
    cands = [cand((0.3, 0.1)), cand((0.2, 0.0)), cand((0.0, 0.1)), cand((0.0, 0.9), cut=(True, False)),
             cand((0.0, 0.0), root=1, confident=True)]
    down = np.array([1.0, 0.0])  # root on top, tip below
    got = da.frame_votes(cands, down)
    assert (got["own_agree"], got["own_against"], got["forks_for"]) == (2, 1, -1.0)
    assert (got["own_net"], got["own_size"]) == pytest.approx((0.3, 0.5))
    flipped = da.frame_votes(cands, -down)
    assert (flipped["own_agree"], flipped["own_against"], flipped["forks_for"]) == (1, 2, 1.0)
    assert da.frame_votes(cands, None)["decided"] is False


def test_low_magnification_copy_keeps_every_box_the_evaluation_keeps(tmp_path):
    """fdu_low_mag.py shrinks a frame and its boxes together: the same boxes count (a narrow box widened to the
    evaluation's 2 px limit, a degenerate one still dropped), each centre divided by the factor."""
    from pipeline.evaluate import read_voc

    low = _module("fdu_low_mag")
    boxes = ((30, 40, 90, 200), (100, 10, 104, 60), (200, 200, 201, 250),  # wide, 4 px (1.3 px shrunk), degenerate
             (250, 200, 300, 241))  # past the frame's edge
    objects = "".join(f"<object><class>single</class><bndbox><xmin>{x1}</xmin><ymin>{y0}</ymin><xmax>{x0}</xmax>"
                      f"<ymax>{y1}</ymax></bndbox></object>" for x0, y0, x1, y1 in boxes)  # x swapped, as in fdu_val
    xml = tmp_path / "220105_A095_1.xml"
    xml.write_text(f"<annotation><size><width>300</width><height>240</height></size>{objects}</annotation>")
    low.shrink_annotation(xml, 3.0, 100, 80).write(tmp_path / "small.xml")
    full, small = read_voc(xml), read_voc(tmp_path / "small.xml")
    assert full.true_count == small.true_count == 3
    assert (small.width_px, small.height_px) == (100, 80)
    np.testing.assert_allclose(small.points_rc[:2], full.points_rc[:2] / 3.0, atol=0.01)
    np.testing.assert_allclose(small.points_rc[2], [(200 / 3 + 80) / 2, (250 / 3 + 100) / 2], atol=0.01)  # clipped
    image = np.zeros((240, 300, 3), np.uint8)
    image[:, 150:] = 90
    assert low.shrink_image(image, 3.0).shape == (80, 100, 3)


def test_phantom_components_puts_truth_and_counted_hairs_on_mask_components():
    pc = _module("phantom_components")
    import pandas as pd

    labels = np.zeros((20, 20), int)
    labels[2:5, 2:18] = 1  # two touching shafts read as one component
    labels[10:12, 2:18] = 2
    assert pc.component_of(labels, np.array([[3.0, 4.0], [3.0, 9.0], [15.0, 9.0]])) == 1
    assert pc.component_of(labels, np.array([[15.0, 9.0]])) == 0
    # truth: two on component 1, one on 2, one on none; counted: one on 1, two on 2, one on nothing
    table = pc.tally([1, 1, 2, 0], [1, 2, 2, 0])
    assert table.to_dict("list") == {"label": [0, 1, 2], "truth": [1, 2, 1], "counted": [0, 1, 2]}
    s = pc.summary(table.assign(frame="f", um_per_px=5.0, why=""))
    assert s.loc["all", ["truth", "unsegmented", "merged_short", "single_over", "false"]].tolist() == [4, 1, 1, 1, 0]
    assert pc.root_side(np.arange(24.0).reshape(12, 2)).tolist() == [[4.0, 5.0], [6.0, 7.0], [8.0, 9.0], [10.0, 11.0]]


def _shifted_truth(dr: float, dc: float, size=(100, 120)) -> dict:
    """A course visit's truth whose ``transform`` (2 x 3, row and col) moves first-visit pixels by (dr, dc)."""
    return {"transform": [[1.0, 0.0, dr], [0.0, 1.0, dc]], "height_px": size[0], "width_px": size[1],
            "um_per_px": 5.0}


def test_course_truth_region_for_a_baseline_that_is_not_the_first_visit():
    """The common region of two later visits, each shifted from the first visit, is the overlap of those two:
    a point of the reference visit 25 px from its right edge lies in the later visit shifted 20 px further
    left; it did not (before session 60) when the reference visit was taken as the first."""
    from pipeline.register import apply_rc

    course = _module("course_response")
    t0, t1 = _shifted_truth(0, -10), _shifted_truth(0, -30)  # first-visit pixels -> 10 and 30 px to the left
    in_both, back = course.in_both_frames(t0, t1, margin_um=0.0)
    pts = np.array([[50, 5], [50, 19], [50, 20], [50, 95], [50, 119]], float)  # reference-visit pixels
    assert in_both(pts).tolist() == [False, False, True, True, True]
    assert apply_rc(back, np.array([[50.0, 0.0]])).tolist() == [[50.0, 20.0]]


def test_course_compare_folders_are_tagged_by_their_settings():
    import dataclasses

    from pipeline.course import CourseSettings

    course = _module("course_response")
    assert course.compare_tag("classical", CourseSettings()) == "classical"
    quick = course.compare_tag("classical", dataclasses.replace(CourseSettings(), n_boot=500))
    assert quick.startswith("classical_cmp") and quick != course.compare_tag(
        "classical", dataclasses.replace(CourseSettings(), recheck_ratio=0.0))


def test_realism_reads_a_fade_at_one_end_and_a_sharp_cut_at_the_other():
    realism = _module("realism")
    level = np.zeros((100, 200))
    level[45:56, 50:151] = 1.0
    level[45:56, 50:60] = np.arange(10) / 10.0  # a fade over one width (10 px) from column 50
    path = np.stack([np.full(101, 50.0), np.arange(50, 151, dtype=float)], axis=1)
    fade = realism.ramp(realism.end_profile(level, path, 10.0, 0))
    cut = realism.ramp(realism.end_profile(level, path, 10.0, 1))
    assert fade == pytest.approx((0.2, 0.8, 1.0))
    assert cut == pytest.approx((0.0, 0.0, 1.0))
    assert realism.end_profile(level, path[:10], 10.0, 0) is None  # shorter than 1.5 widths
    assert np.isnan(realism.ramp(np.zeros(len(realism.T_WIDTHS)))[0])  # no shaft to read
    level[45:56, :50] = 0.3  # a dark background beyond the faded end (a halo): the ramp rises from it
    level[45:56, 50:60] = 0.3 + 0.07 * np.arange(10)
    assert realism.ramp(realism.end_profile(level, path, 10.0, 0)) == pytest.approx((0.2, 0.8, 0.7))
    level[45:56, :60] = 1.0  # the shaft's level beyond the end: no ramp to read there
    assert np.isnan(realism.ramp(realism.end_profile(level, path, 10.0, 0))[0])


def test_realism_summary_reads_the_root_and_tip_ramps_by_the_tools_root_end():
    import pandas as pd

    realism = _module("realism")
    frames = pd.DataFrame({"image": ["a", "b", "c"], "source": ["real", "phantom", "phantom"], "counted": [3, 5, 4],
                           "rooted_inside": [2, 5, 4], "stripes_over_1_2x": [1, 0, 2], "stripes_over_1_6x": [1, 0, 1],
                           "stripes_read": [2, 5, 3]})
    ends = pd.DataFrame({"image": ["a", "b", "b"], "source": ["real", "phantom", "phantom"], "root_end": [0, 1, 0],
                         "t20_0": [-1.0, 0.0, np.nan], "t80_0": [0.5, 0.1, np.nan], "t20_1": [0.0, -2.0, 0.0],
                         "t80_1": [0.3, 0.0, 0.1], "truth_root": [np.nan, 0, 1], "width_px": [10.0, 4.0, 4.0],
                         "um_per_px": [3.0, 2.0, 2.0]})
    table = realism.summary(frames, ends)
    assert table.loc["root_ramp", "real"] == pytest.approx(1.5) and table.loc["tip_ramp", "real"] == pytest.approx(0.3)
    assert table.loc["root_ramp", "phantom"] == pytest.approx(2.0) and table.loc["tip_ramp", "phantom"] == pytest.approx(0.1)
    assert table.loc["root_ramp_um", "real"] == pytest.approx(45.0) and table.loc["root_ramp_um", "phantom"] == pytest.approx(16.0)
    assert table.loc["ramp_unread_share", "phantom"] == 0.5 and table.loc["ramp_unread_share", "real"] == 0.0
    assert table.loc["root_at_truth_emergence_share", "phantom"] == 0.0
    assert table.loc["split_hairs_per_frame", "real"] == 1 and table.loc["split_hairs_per_frame", "phantom"] == 0
    assert table.loc["share_of_stripes_over_1_2x", "phantom"] == pytest.approx(2 / 8)  # pooled, not a mean of shares
    assert table.loc["counted", "phantom"] == pytest.approx(4.5)
    assert realism.truth_root_end(np.array([[0.0, 0.0], [0.0, 30.0]]), np.array([[1.0, 31.0]]), 5.0) == 1
    assert realism.truth_root_end(np.array([[0.0, 0.0], [0.0, 30.0]]), np.array([[50.0, 50.0]]), 5.0) == -1


def test_realism_box_overlap_of_labels_and_of_phantom_hairs(tmp_path):
    realism = _module("realism")
    iou = realism.max_box_iou([(0, 0, 10, 10), (5, 0, 15, 10), (100, 100, 110, 110)])
    assert iou == pytest.approx([1 / 3, 1 / 3, 0.0])
    assert realism.max_box_iou([(0, 0, 1, 1)]).tolist() == [0.0]
    xml = tmp_path / "f.xml"  # corners swapped as fdu_val has them; a 1-px box dropped as evaluate drops it
    xml.write_text("<annotation><size><width>64</width><height>48</height></size>"
                   "<object><bndbox><xmin>20</xmin><ymin>30</ymin><xmax>10</xmax><ymax>5</ymax></bndbox></object>"
                   "<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>9</ymax></bndbox></object>"
                   "</annotation>")
    assert realism.label_boxes(xml).tolist() == [[10.0, 5.0, 20.0, 30.0]]
    truth = {"height_px": 48, "width_px": 64, "um_per_px": 2.0, "hairs": [
        {"in_frame": True, "width_um": 8.0, "emergence_rc": [10.0, 10.0], "centerline_rc": [[10.0, 10.0], [10.0, 30.0]]},
        {"in_frame": True, "width_um": 4.0, "emergence_rc": [40.0, 60.0],
         "centerline_rc": [[40.0, c] for c in range(60, 91)]},  # runs out: boxed to the edge
        {"in_frame": True, "width_um": 4.0, "emergence_rc": [20.0, 70.0],
         "centerline_rc": [[20.0, c] for c in range(70, 50, -1)]},  # runs in from outside: not boxed
        {"in_frame": False, "width_um": 4.0, "emergence_rc": [5.0, 5.0], "centerline_rc": [[5.0, 5.0], [6.0, 6.0]]}]}
    assert realism.truth_boxes(truth).tolist() == [[8.0, 8.0, 32.0, 12.0], [59.0, 39.0, 64.0, 41.0]]
    assert realism.box_record(np.array([(0, 0, 10, 10), (5, 0, 15, 10)])) == {
        "boxes": 2, "boxes_iou_over_0_2": 2, "boxes_iou_over_0_4": 0}
