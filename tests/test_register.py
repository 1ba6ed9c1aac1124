"""Same-spot courses: the phantom course generator, registration and hair matching, matched compare."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline import synth
from pipeline.cli import app
from pipeline.register import (apply_rc, common_region, invert, match_visits, recheck_unmatched, register_frames,
                               register_points)
from pipeline.synth_course import CourseSpec, generate_course, render_course


def _scene(seed, **kw):
    rng = np.random.default_rng(seed)
    base = dict(height=512, width=640, um_per_px=3.0, hair_color="black", skin_tone=3, header_strip=False,
                padding_strip=False, scale_bar=False, red_circle=False, n_long_hairs=0, glare=0.0)
    return synth.sample_scene(rng, **{**base, **kw})


def test_course_keeps_the_follicles_and_moves_the_field():
    frames = render_course(_scene(3, density_per_cm2=200), CourseSpec(n_sessions=3, density_change_pct=0,
                                                                     turnover_pct=0, thickening_um=0), 7)
    t0, t2 = frames[0][1], frames[2][1]
    assert t0["transform"] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    m = np.array(t2["transform"])
    by_track = {h["track_id"]: h for h in t2["hairs"]}
    common = [h for h in t0["hairs"] if h["track_id"] in by_track]
    assert len(common) >= 0.6 * len(t0["hairs"])
    for h in common:  # every persisting follicle sits where the transform puts it
        moved = apply_rc(m, np.array([h["emergence_rc"]]))[0]
        assert np.allclose(moved, by_track[h["track_id"]]["emergence_rc"], atol=0.01)
        assert by_track[h["track_id"]]["width_um"] == h["width_um"]


def test_density_change_shows_in_the_truth():
    spec = CourseSpec(n_sessions=4, density_change_pct=40, turnover_pct=0, max_shift_um=0, max_rotation_deg=0)
    frames = render_course(_scene(4, density_per_cm2=220, height=1024, width=1280), spec, 9)
    counts = [t["count_in_field"] for _, t in frames]
    assert counts == sorted(counts)  # gains only, no losses
    assert abs(counts[-1] - round(1.4 * counts[0])) <= 1  # the photographed field itself gains 40%


@pytest.mark.parametrize("pct", [15.0, -15.0, 0.0])
def test_the_field_realises_the_course_change_with_turnover(pct):
    """A course labelled +15 / -15 / 0% has that change in the photographed field, not a random draw
    around it (a hair's emergence can sit a pixel off its unit's opening at the border: +-1 hair)."""
    spec = CourseSpec(n_sessions=6, density_change_pct=pct, turnover_pct=2.0, max_shift_um=0, max_rotation_deg=0)
    frames = render_course(_scene(8, density_per_cm2=260, height=1024, width=1280), spec, 21)
    first, final = frames[0][1], frames[-1][1]
    assert abs(final["count_in_field"] - round(first["count_in_field"] * (1 + pct / 100))) <= 1
    tracks = [{h["track_id"] for h in t["hairs"] if h["in_field"]} for _, t in frames]
    assert tracks[0] - tracks[-1] and tracks[-1] - tracks[0]  # some lost and some gained (turnover)


@pytest.mark.parametrize("pct", [15.0, -15.0, 0.0])
@pytest.mark.parametrize("share", [0.0, 0.5])
def test_small_fields_get_the_course_change_exactly(pct, share):
    """Fields of 15-40 hairs (70x, a sparse site) still get the labelled change, to the hair, in the
    units whose opening is in the first frame: with few candidate units of 2-4 hairs a single greedy
    draw stopped short of the new hairs the turnover needs, and stable courses lost 3% on average.
    Hairs leaving or joining a unit that stays count like whole units."""
    from pipeline.synth_course import plan_course

    spec = CourseSpec(n_sessions=6, density_change_pct=pct, turnover_pct=2.0, within_unit_share=share)
    for seed in range(12):
        p0 = _scene(seed, height=1024, width=1280, um_per_px=3.6, density_per_cm2=110.0 + 10 * seed,
                    unit_size_probs=(0.3, 0.4, 0.2, 0.1))
        plan = plan_course(p0, spec, seed)
        shape = (p0.height, p0.width)
        first, last = plan.first_frame_count(shape, 0), plan.first_frame_count(shape, 5)
        assert last - first == round(pct / 100 * first), (seed, first, last)
        inside = (plan.base.openings[:, 0] >= 0) & (plan.base.openings[:, 0] < shape[0]) \
            & (plan.base.openings[:, 1] >= 0) & (plan.base.openings[:, 1] < shape[1])
        assert (plan.lost_at[inside] <= 5).any() or pct > 0  # the turnover does happen
        split = int((plan.base_group != np.arange(len(plan.base_group))).sum() + (plan.extra_group >= 0).sum())
        assert (split > 0) == (share > 0), seed


def test_hairs_join_and_leave_units_that_stay():
    """With ``within_unit_share`` a hair that appears later emerges in a unit that was there from the
    first session (same truth unit, beside its hairs), and a hair that goes leaves its unit behind."""
    spec = CourseSpec(n_sessions=4, density_change_pct=0, turnover_pct=5.0, within_unit_share=1.0,
                      max_shift_um=0, max_rotation_deg=0)
    frames = render_course(_scene(8, density_per_cm2=220, height=1024, width=1280,
                                  unit_size_probs=(0.2, 0.5, 0.2, 0.1)), spec, 21)
    t0, t3 = frames[0][1], frames[-1][1]
    unit_of = [{h["track_id"]: h["unit_id"] for h in t["hairs"]} for t in (t0, t3)]
    members = [{} for _ in range(2)]
    for side, t in enumerate((t0, t3)):
        for h in t["hairs"]:
            members[side].setdefault(h["unit_id"], set()).add(h["track_id"])
    joined = set(unit_of[1]) - set(unit_of[0])
    left = set(unit_of[0]) - set(unit_of[1])
    assert joined and left
    # a joining hair shares its unit with hairs present at the start; a leaving one's unit-mates stay
    assert any(members[1][unit_of[1][k]] - {k} <= set(unit_of[0]) and len(members[1][unit_of[1][k]]) > 1
               for k in joined)
    assert any(len(members[0][unit_of[0][k]]) > 1 and members[0][unit_of[0][k]] - {k} <= set(unit_of[1])
               for k in left)


def test_registration_recovers_the_repositioning():
    """Points anywhere in a small 640 x 512 frame come back within 10 px (30 µm, half the 60 µm matching gate)."""
    frames = render_course(_scene(5), CourseSpec(n_sessions=3), 11)
    for img, truth in frames[1:]:
        reg = register_frames(frames[0][0], img)
        assert reg is not None and reg.n_inliers >= 20
        m = np.array(truth["transform"])
        pts = np.array([[50.0, 50.0], [256.0, 320.0], [460.0, 600.0]])
        back = apply_rc(reg.matrix, apply_rc(m, pts))  # session-0 -> session -> back
        assert np.abs(back - pts).max() < 10.0
        assert np.abs(back[1] - pts[1]).max() < 4.0  # the middle of the frame


def test_unrelated_frames_do_not_register():
    a = render_course(_scene(5), CourseSpec(n_sessions=1), 11)[0][0]
    b = render_course(_scene(6, skin_tone=2), CourseSpec(n_sessions=1), 12)[0][0]
    assert register_frames(a, b) is None


def test_point_registration_of_shifted_openings():
    rng = np.random.default_rng(0)
    fixed = rng.uniform(0, 500, (30, 2))
    phi = np.radians(3.0)
    rot = np.array([[np.cos(phi), np.sin(phi)], [-np.sin(phi), np.cos(phi)]])
    truth = np.hstack([rot, [[12.0], [-20.0]]])  # moving = truth(fixed)
    moving = apply_rc(truth, fixed[:25]) + rng.normal(0, 0.5, (25, 2))
    moving = np.vstack([moving, rng.uniform(0, 500, (5, 2))])  # 5 new openings
    reg = register_points(fixed, moving, radius_px=8.0)
    assert reg is not None and reg.n_inliers >= 24
    assert np.abs(apply_rc(reg.matrix, apply_rc(truth, fixed)) - fixed).max() < 1.5


def test_match_visits_counts_persisting_gained_lost():
    fixed = pd.DataFrame({"row": [10.0, 50.0, 90.0], "col": [10.0, 50.0, 90.0], "mid_row": [20.0, 60.0, 100.0],
                          "mid_col": [10.0, 50.0, 90.0], "thickness_um": [60.0, 70.0, 80.0]})
    shift = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, -5.0]])  # moving -> fixed
    moving = pd.DataFrame({"row": [5.0, 45.0, 150.0], "col": [15.0, 55.0, 150.0], "mid_row": [25.0, 55.0, 160.0],
                           "mid_col": [15.0, 55.0, 150.0], "thickness_um": [62.0, 75.0, 40.0]})
    region = np.ones((200, 200), bool)
    m = match_visits(fixed, moving, shift, region, gate_px=3.0)
    assert sorted(m["status"]) == ["gained", "lost", "persisting", "persisting"]
    pers = m[m.status == "persisting"].sort_values("fixed_index")
    assert pers["fixed_index"].tolist() == [0, 1] and pers["moving_index"].tolist() == [0, 1]
    assert (pers["thickness_after_um"] - pers["thickness_before_um"]).tolist() == [2.0, 5.0]


def test_common_region_of_a_shifted_frame():
    shift = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 20.0]])  # moving row r -> fixed row r + 10
    region = common_region((100, 100), (100, 100), shift)
    assert region.sum() == 90 * 80 and not region[:10].any() and not region[:, :20].any()


def test_common_region_keeps_a_margin_inside_both_frames():
    same = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    region = common_region((100, 100), (100, 100), same, margin_px=10)
    assert region.sum() == 80 * 80 and region[10:90, 10:90].all()
    shift = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 20.0]])
    assert common_region((100, 100), (100, 100), shift, margin_px=10).sum() == 70 * 60


def test_invert_undoes_a_similarity():
    a = np.deg2rad(7.0)
    m = np.array([[np.cos(a), -np.sin(a), 12.0], [np.sin(a), np.cos(a), -4.0]]) * [[1.02], [1.02]]
    m[:, 2] = [12.0, -4.0]
    pts = np.array([[10.0, 20.0], [300.0, -5.0]])
    assert apply_rc(invert(m), apply_rc(m, pts)) == pytest.approx(pts)


def _hairs(rows):
    """Hair table of horizontal hairs (row, col of the root; middle 40 px to the right)."""
    return pd.DataFrame([dict(row=r, col=c, mid_row=r, mid_col=c + 40, thickness_um=24.0, **{"class": "terminal"})
                         for r, c in rows])


def _shaft(prob, r, c, value):
    prob[r - 3:r + 4, c:c + 80] = value


def test_recheck_turns_a_flipped_detection_into_persisting():
    same = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    fixed, moving = _hairs([(50, 20), (120, 20)]), _hairs([(50, 20)])
    pf, pm = np.zeros((200, 200), np.float32), np.zeros((200, 200), np.float32)
    _shaft(pf, 50, 20, 0.8), _shaft(pf, 120, 20, 0.8), _shaft(pm, 50, 20, 0.8)
    _shaft(pm, 120, 20, 0.3)  # the second shaft is there after too, under the detection threshold
    m = match_visits(fixed, moving, same, np.ones((200, 200), bool), gate_px=5.0)
    assert sorted(m["status"]) == ["lost", "persisting"]
    out = recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0)
    assert sorted(out["status"]) == ["persisting", "persisting"] and out["rechecked"].sum() == 1
    again = out[out.rechecked].iloc[0]
    assert again.thickness_after_um == again.thickness_before_um == 24.0
    pm[117:124] = 0.0  # really gone after: stays lost
    out = recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0)
    assert sorted(out["status"]) == ["lost", "persisting"] and not out["rechecked"].any()


def test_recheck_reads_a_light_shaft_on_the_map_it_was_found_on():
    """A grey shaft among dark ones: nothing on either darkness map, there on both light-shaft maps."""
    same = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    fixed, moving = _hairs([(50, 20), (120, 20)]), _hairs([(50, 20)])
    pf, pm = np.zeros((200, 200), np.float32), np.zeros((200, 200), np.float32)
    _shaft(pf, 50, 20, 0.8), _shaft(pm, 50, 20, 0.8)
    lf, lm = np.zeros_like(pf), np.zeros_like(pm)
    _shaft(lf, 120, 20, 0.9), _shaft(lm, 120, 20, 0.5)
    m = match_visits(fixed, moving, same, np.ones((200, 200), bool), gate_px=5.0)
    assert sorted(recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0)["status"]) == ["lost", "persisting"]
    calls = []
    out = recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0, fixed_light=lf,
                            moving_light=lambda: calls.append(1) or lm)
    assert sorted(out["status"]) == ["persisting", "persisting"] and out["rechecked"].sum() == 1 and calls == [1]
    lm[:] = 0.0  # gone on the later light map too: a real loss
    out = recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0, fixed_light=lf, moving_light=lm)
    assert sorted(out["status"]) == ["lost", "persisting"]
    # a dark shaft's call is not read on the light maps: it stays lost though the later light map shows it
    _shaft(pf, 120, 20, 0.8), _shaft(lm, 120, 20, 0.9)
    out = recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0, fixed_light=lf, moving_light=lm)
    assert sorted(out["status"]) == ["lost", "persisting"]
    # without a light map for one frame, nothing changes
    _shaft(pf, 120, 20, 0.0)
    out = recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0, fixed_light=None, moving_light=lm)
    assert sorted(out["status"]) == ["lost", "persisting"]


def test_recheck_does_not_let_an_old_hair_explain_a_new_neighbour():
    same = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    fixed, moving = _hairs([(50, 20)]), _hairs([(50, 20), (54, 20)])  # a new hair beside it, same unit
    pf, pm = np.zeros((200, 200), np.float32), np.zeros((200, 200), np.float32)
    _shaft(pf, 50, 20, 0.8), _shaft(pm, 50, 20, 0.8), _shaft(pm, 54, 20, 0.8)
    m = match_visits(fixed, moving, same, np.ones((200, 200), bool), gate_px=3.0)
    out = recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0)
    assert sorted(out["status"]) == ["gained", "persisting"]
    # nor does reading through counted hairs: the new hair's own line is bare skin before
    out = recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0, through_counted=0.3)
    assert sorted(out["status"]) == ["gained", "persisting"]
    # without the old hair's stripe taken out, its shaft 7 px away would have explained it
    far = fixed.assign(row=150.0, mid_row=150.0)
    m2 = match_visits(far, moving.iloc[[1]].reset_index(drop=True), same, np.ones((200, 200), bool), gate_px=3.0)
    out2 = recheck_unmatched(m2, far, moving.iloc[[1]].reset_index(drop=True), same, pf, pm, um_per_px=4.0)
    assert "persisting" in set(out2["status"])


def test_recheck_through_counted_reads_a_hair_traced_inside_another():
    """Two hairs end to end before (the second's root on the first's tip); after, one long trace runs
    over both and counts once. The lost hair's shaft lies inside the counted hair's stripe: only
    ``through_counted`` reads it there, and not where the map is bare."""
    same = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    fixed = _hairs([(50, 20), (50, 100)])
    moving = pd.DataFrame([dict(row=50, col=20, mid_row=51, mid_col=100, thickness_um=24.0, **{"class": "terminal"})])
    pf, pm = np.zeros((200, 220), np.float32), np.zeros((200, 220), np.float32)
    _shaft(pf, 50, 20, 0.8), _shaft(pf, 50, 100, 0.8)
    pm[47:54, 20:180] = 0.8
    m = match_visits(fixed, moving, same, np.ones((200, 220), bool), gate_px=5.0)
    assert sorted(m["status"]) == ["lost", "persisting"]
    assert sorted(recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0)["status"]) == ["lost", "persisting"]
    out = recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0, through_counted=0.3)
    assert sorted(out["status"]) == ["persisting", "persisting"] and out["rechecked"].sum() == 1
    pm[47:54, 100:180] = 0.0  # the second hair really gone after
    out = recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0, through_counted=0.3)
    assert sorted(out["status"]) == ["lost", "persisting"]


def test_compare_matches_a_phantom_course(tmp_path):
    spec = CourseSpec(n_sessions=2, density_change_pct=20)
    generate_course(tmp_path / "course", patient_id="P1", site="vertex", seed=5, spec=spec, n_fields=2,
                    height=768, width=1024, hair_color="black", skin_tone=3, glare=0.0)
    runner = CliRunner()
    res = runner.invoke(app, ["analyze", str(tmp_path / "course"), "--out", str(tmp_path / "run"), "--quiet",
                              "--no-overlays", "--workers", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compare", str(tmp_path / "run"), "--out", str(tmp_path / "cmp"), "--boot", "200"])
    assert res.exit_code == 0, res.output
    pairs = pd.read_csv(tmp_path / "cmp" / "field_pairs.csv")
    assert len(pairs) == 2 and pairs["registered"].all() and set(pairs["how"]) <= {"skin", "openings"}
    assert (pairs["persisting"] + pairs["lost"] == pairs["n_before"]).all()
    assert (pairs["persisting"] + pairs["gained"] == pairs["n_after"]).all()
    changes = pd.read_csv(tmp_path / "cmp" / "changes.csv")
    density = changes.query("metric == 'density_per_cm2' and reference == 'baseline'").iloc[0]
    assert density.method == "matched"
    area = pairs["common_area_cm2"].sum()
    assert density.change == pytest.approx((pairs["n_after"].sum() - pairs["n_before"].sum()) / area)
    matches = pd.read_csv(tmp_path / "cmp" / "matches.csv")
    assert set(matches["status"]) <= {"persisting", "gained", "lost"}
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["matched"] is True
    page = (tmp_path / "cmp" / "reports" / "P1.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "patient P1" in page
    assert page.count("data:image/png;base64,") >= 2  # trends and the matched-hair map
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained


def test_the_fields_of_one_course_are_one_patient(tmp_path):
    """Spots of one site share the patient's hair, skin and device; their densities differ a little."""
    from pipeline.synth_course import COURSE_DENSITY_PER_CM2, FIELD_DENSITY_SPREAD, PATIENT_TRAITS

    for seed in (3, 4):
        generate_course(tmp_path / str(seed), patient_id="P", site="vertex", seed=seed,
                        spec=CourseSpec(n_sessions=1), n_fields=3, height=240, width=320)
        truths = [json.loads(p.read_text()) for p in sorted((tmp_path / str(seed)).rglob("*.json"))]
        params = [t["params"] for t in truths]
        assert len(params) == 3
        for key in PATIENT_TRAITS:
            assert all(p[key] == params[0][key] for p in params), key
        density = [p["density_per_cm2"] for p in params]
        assert max(density) / min(density) <= FIELD_DENSITY_SPREAD[1] / FIELD_DENSITY_SPREAD[0] + 1e-9
        low, high = COURSE_DENSITY_PER_CM2
        assert low * FIELD_DENSITY_SPREAD[0] <= min(density) and max(density) <= high * FIELD_DENSITY_SPREAD[1]
        assert len(set(density)) == 3  # each spot its own
        assert len({p.read_bytes() for p in (tmp_path / str(seed)).rglob("*.png")}) == 3  # three spots


def test_a_patch_one_visit_cannot_count_on_is_left_out_of_the_comparison(tmp_path):
    """Glare over part of the later visit hides the hairs there (no probability, no count): they are
    compared only where both visits could count, not read as lost."""
    import cv2

    spec = CourseSpec(n_sessions=2, density_change_pct=0, thickening_um=0, turnover_pct=0, max_shift_um=0,
                      max_rotation_deg=0)
    generate_course(tmp_path / "course", patient_id="P1", site="vertex", seed=5, spec=spec, n_fields=1,
                    height=768, width=1024, hair_color="black", skin_tone=3, glare=0.0)
    first, later = sorted((tmp_path / "course").rglob("*.png"))
    truth = json.loads(first.with_suffix(".json").read_text())
    r, c = next(np.round(h["emergence_rc"]).astype(int) for h in truth["hairs"]
                if h["in_field"] and 150 <= h["emergence_rc"][0] < 618 and 200 <= h["emergence_rc"][1] < 824)
    box = (r - 100, r + 100, c - 150, c + 150)  # 7.6% of the frame, blown out around a baseline hair's root
    image = cv2.imread(str(later))
    image[box[0]:box[1], box[2]:box[3]] = 255
    cv2.imwrite(str(later), image)
    runner = CliRunner()
    res = runner.invoke(app, ["analyze", str(tmp_path / "course"), "--out", str(tmp_path / "run"), "--quiet",
                              "--no-overlays", "--workers", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compare", str(tmp_path / "run"), "--out", str(tmp_path / "cmp"), "--boot", "200",
                              "--include-flagged"])  # the patch flags the frame overexposed
    assert res.exit_code == 0, res.output
    pair = pd.read_csv(tmp_path / "cmp" / "field_pairs.csv").iloc[0]
    assert pair["registered"]
    frame_cm2 = 768 * 1024 * truth["um_per_px"] ** 2 * 1e-8
    assert pair["common_area_cm2"] < 0.95 * frame_cm2  # the patch is not compared
    matches = pd.read_csv(tmp_path / "cmp" / "matches.csv")
    under = matches["row"].between(box[0], box[1]) & matches["col"].between(box[2], box[3])
    assert not under.any()  # the baseline's hair under the patch is not read as lost


def test_report_shows_each_visit_s_own_overlay_when_names_collide(tmp_path, fake_core):
    """``visit.jpg`` and ``visit.png`` get overlays ``visit.png`` and ``visit_2.png``; the report showed the first
    as both baseline and latest (session 59)."""
    import base64

    import cv2

    from pipeline.batch import overlay_names, run_batch
    from pipeline.course_io import run_compare

    assert overlay_names(["visit.jpg", "visit.png", "a/b.png"]) == ["visit.png", "visit_2.png", "a__b.png"]
    folder = tmp_path / "in"
    folder.mkdir()
    for k, (name, date) in enumerate((("visit.jpg", "2026-01-10"), ("visit.png", "2026-03-07"))):
        image = np.full((120, 160, 3), 200, np.uint8)
        image[:, 20 + 60 * k:30 + 60 * k] = 40  # the visits differ, so do their overlays
        cv2.imwrite(str(folder / name), image)
    (folder / "manifest.csv").write_text("image,um_per_px,patient_id,site,session_date,field_id\n"
                                         "visit.jpg,5,P1,vertex,2026-01-10,1\nvisit.png,5,P1,vertex,2026-03-07,1\n")
    run_batch([folder], tmp_path / "run", progress=False)
    run_compare(tmp_path / "run", tmp_path / "cmp")
    page = (tmp_path / "cmp" / "reports" / "P1.html").read_text()
    shown = [base64.b64decode(chunk.split('"')[0]) for chunk in page.split("data:image/jpeg;base64,")[1:]]
    assert len(shown) == 2 and shown[0] != shown[1]
