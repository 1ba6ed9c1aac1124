"""Course comparison with known answers: pooling, repeatability, MDC, CI and the response rule."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from pipeline.course import (CourseSettings, compare_course, course_trend, mdc95, session_table, usable_frames,
                             within_visit_sd)
from pipeline.course import _field_table


def _frames(spec):
    """spec: list of (patient, site, date, hairs, area_cm2, terminal, vellus, units[, flags])."""
    rows, hairs = [], []
    for k, s in enumerate(spec):
        pid, site, date, n, area, term, vel, units = s[:8]
        flags = s[8] if len(s) > 8 else ""
        image = f"{pid}_{date}_{k}.png"
        rows.append(dict(image=image, patient_id=pid, site=site, session_date=date, hair_count=n, area_cm2=area,
                         terminal_count=term, vellus_count=vel, follicular_units=units, status="ok",
                         quality_flags=flags))
        hairs += [dict(image=image, hair_id=i + 1, thickness_um=70.0 if i < term else 25.0) for i in range(n)]
    return pd.DataFrame(rows), pd.DataFrame(hairs)


def test_session_values_pool_the_fields():
    images, hairs = _frames([("P", "vertex", "2026-01-01", 10, 0.1, 4, 6, 5),
                             ("P", "vertex", "2026-01-01", 20, 0.2, 6, 14, 10)])
    fields, thick = _field_table(images, hairs)
    s = session_table(fields, thick).iloc[0]
    assert (s.n_fields, s.n_hairs, s.area_cm2) == (2, 30, pytest.approx(0.3))
    assert s.density_per_cm2 == pytest.approx(100.0)              # 30 hairs / 0.3 cm²
    assert s.terminal_density_per_cm2 == pytest.approx(10 / 0.3)
    assert s.vellus_share_pct == pytest.approx(100 * 20 / 30)
    assert s.mean_thickness_um == pytest.approx((10 * 70 + 20 * 25) / 30)
    assert s.cumulative_thickness_mm_per_cm2 == pytest.approx((10 * 70 + 20 * 25) / 1000 / 0.3)
    assert s.hairs_per_unit == pytest.approx(2.0)


def test_within_visit_sd_and_mdc_exact():
    images, hairs = _frames([("P", "v", "2026-01-01", 10, 0.1, 0, 0, 5), ("P", "v", "2026-01-01", 12, 0.1, 0, 0, 6),
                             ("P", "v", "2026-02-01", 20, 0.1, 0, 0, 5), ("P", "v", "2026-02-01", 20, 0.1, 0, 0, 5)])
    sd = within_visit_sd(*_field_table(images, hairs))["density_per_cm2"]
    # session 1: 100 and 120 /cm² (SS 200), session 2: 200 and 200 (SS 0); dof 2 -> sqrt(100) = 10
    assert sd == pytest.approx(10.0)
    assert mdc95(sd, 2) == pytest.approx(1.959964 * math.sqrt(2) * 10 / math.sqrt(2))
    assert math.isnan(mdc95(math.nan, 3))


def _course(densities_per_session, *, fields=4, area=0.5, jitter=0.03, seed=0):
    """A course whose sessions have the given densities (/cm²), several fields each, jittered a little."""
    rng = np.random.default_rng(seed)
    spec = []
    for j, dens in enumerate(densities_per_session):
        for _ in range(fields):
            n = int(round(dens * area * (1 + rng.normal(0, jitter))))
            spec.append(("P1", "vertex", f"2026-0{j + 1}-01", n, area, n // 2, n // 5, max(1, n // 2)))
    return _frames(spec)


@pytest.mark.parametrize("densities, response", [
    ((150, 150, 150), "stable"),
    ((150, 165, 190), "improved"),
    ((150, 130, 100), "worsened"),
])
def test_response_rule(densities, response):
    images, hairs = _course(densities)
    out = compare_course(images, hairs, CourseSettings(n_boot=400))
    summary = out["summary"].iloc[0]
    assert summary.response == response
    assert summary.n_sessions == 3
    change = out["changes"].query("metric == 'density_per_cm2' and reference == 'baseline'")
    latest = change.iloc[-1]
    assert latest.change == pytest.approx(latest.value - latest.baseline)
    assert latest.ci_low < latest.change < latest.ci_high
    assert set(out["changes"]["reference"]) == {"baseline", "previous"}
    assert set(out["changes"]["method"]) == {"pooled"}


def test_course_trend_exact():
    days = 14.0 * np.arange(1, 6)
    trend, mdc = course_trend(days, 0.2 * days, 10.0)  # a straight line: +14 by day 70
    assert trend == pytest.approx(14.0)
    assert mdc == pytest.approx(10.0 * 70 / math.sqrt(2 * 14 ** 2 * 17.5))  # Sxx of 0, 14, ..., 70
    assert mdc == pytest.approx(8.4515, abs=1e-4)
    # one session after baseline: the line is the latest change, its MDC the latest's
    assert course_trend(np.array([30.0]), np.array([7.0]), 5.0) == pytest.approx((7.0, 5.0))
    # a last visit that reads high weighs one sixth: the line gives (0, 0, 0, 0, 0, 12) a change of 12 x 25/35
    trend, _ = course_trend(days, np.array([0, 0, 0, 0, 12.0]), 1.0)
    assert trend == pytest.approx(12 * 70 * (70 - 35) / (14 ** 2 * 17.5) / 1)  # slope x span
    assert trend == pytest.approx(12 * 25 / 35)


def test_trend_basis_calls_a_steady_gain_the_latest_visit_alone_cannot():
    """Five sessions rising steadily by 2.5%, the latest read 1 point low: the latest change (+9.5%) is inside the MDC,
    the trend (+12.3%) is beyond its smaller one. The summary carries both."""
    images, hairs = _course((200, 200, 200, 200, 200, 200), jitter=0.0)
    rows = []
    for k, pct in enumerate([2.5, 5.0, 7.5, 10.0, 9.5]):
        n0 = 100
        rows.append(dict(patient_id="P1", site="vertex", session_date=f"2026-0{k + 2}-01", reference_date="2026-01-01",
                         registered=True, common_area_cm2=0.5, n_before=n0, n_after=round(n0 * (1 + pct / 100), 1),
                         terminal_before=50, terminal_after=50, vellus_before=0, vellus_after=0,
                         thickness_sum_before_um=7000.0, thickness_sum_after_um=7000.0, persisting=n0, gained=0,
                         lost=0, rechecked=0))
    pairs = pd.DataFrame(rows)
    settings = CourseSettings(n_boot=200, matched_retest_sd_pct=5.0, response_basis="latest")
    latest = compare_course(images, hairs, settings, field_pairs=pairs)["summary"].iloc[0]
    assert latest.response == "stable" and latest.response_basis == "latest"
    assert latest.density_change_pct == pytest.approx(9.5) and latest.density_mdc == pytest.approx(1.959964 * 5 * 2)
    trend = compare_course(images, hairs, dataclasses.replace(settings, response_basis="trend"),
                           field_pairs=pairs)["summary"].iloc[0]
    assert trend.response == "improved" and trend.response_basis == "trend"
    assert trend.density_trend_mdc < latest.density_mdc
    assert trend.density_trend_pct > 9.8 > 9.5
    with pytest.raises(ValueError, match="response_basis"):
        CourseSettings(response_basis="slope")


def _matched_pairs(*, persisting, rechecked, gained, lost, area=0.15):
    """Field pairs (4 spots) of the second session against the first, all registered."""
    n_before, n_after = persisting + lost, persisting + gained
    return pd.DataFrame([dict(patient_id="P1", site="vertex", session_date="2026-02-01", reference_date="2026-01-01",
                              registered=True, common_area_cm2=area, n_before=n_before, n_after=n_after,
                              terminal_before=n_before // 2, terminal_after=n_after // 2, vellus_before=0,
                              vellus_after=0, thickness_sum_before_um=70.0 * n_before,
                              thickness_sum_after_um=70.0 * n_after, persisting=persisting, gained=gained,
                              lost=lost, rechecked=rechecked) for _ in range(4)])


@pytest.mark.parametrize("rechecked, response, agreement", [
    (0, "improved", 100 * 20 / 28),  # the visits pair 20 of the 28 hairs they count: +8 hairs on 20 is real
    (14, "indeterminate", 100 * 6 / 28),  # the re-examination had to decide 14 of the 20 persisting hairs
])
def test_a_matched_change_the_visits_do_not_agree_on_is_indeterminate(rechecked, response, agreement):
    images, hairs = _course((150, 150))
    pairs = _matched_pairs(persisting=20, rechecked=rechecked, gained=8, lost=0)
    out = compare_course(images, hairs, CourseSettings(n_boot=400), field_pairs=pairs)
    summary = out["summary"].iloc[0]
    assert summary.response == response
    assert summary.visit_agreement_pct == pytest.approx(agreement)
    density = out["changes"].query("metric == 'density_per_cm2' and reference == 'baseline'").iloc[0]
    assert density.method == "matched" and density.real_change  # the change itself is still reported as measured
    off = compare_course(images, hairs, CourseSettings(n_boot=400, min_agreement=0.0), field_pairs=pairs)
    assert off["summary"].iloc[0].response == "improved"


def test_flagged_and_incomplete_frames_are_left_out_with_a_reason():
    images, hairs = _frames([("P", "v", "2026-01-01", 10, 0.1, 0, 0, 5),
                             ("P", "v", "2026-01-01", 90, 0.1, 0, 0, 5, "blurred"),
                             ("", "v", "2026-01-01", 10, 0.1, 0, 0, 5)])
    used, left = usable_frames(images)
    assert len(used) == 1
    assert sorted(left["reason"]) == ["no patient_id, site or session_date", "quality flag: blurred"]
    used_forced, _ = usable_frames(images, CourseSettings(include_flagged=True))
    assert len(used_forced) == 2


def test_named_baseline():
    images, hairs = _course((150, 170, 190))
    out = compare_course(images, hairs, CourseSettings(n_boot=200, baseline="2026-02-01"))
    base = out["changes"].query("reference == 'baseline'")
    assert set(base["reference_date"]) == {"2026-02-01"}
    assert set(base["session_date"]) == {"2026-01-01", "2026-03-01"}


def test_session_dates_written_two_ways_are_one_calendar():
    # the same rising course, its first date written as DICOM's StudyDate writes it
    images, hairs = _course((150, 165, 190))
    iso = compare_course(images, hairs, CourseSettings(n_boot=200))
    images["session_date"] = images["session_date"].replace({"2026-01-01": "20260101"})
    mixed = compare_course(images, hairs, CourseSettings(n_boot=200))
    assert list(mixed["sessions"]["session_date"]) == ["2026-01-01", "2026-02-01", "2026-03-01"]
    assert mixed["summary"]["baseline_date"].iloc[0] == "2026-01-01"
    assert mixed["summary"]["response"].iloc[0] == iso["summary"]["response"].iloc[0] == "improved"
    assert CourseSettings(baseline="20260201").baseline == "2026-02-01"


def test_a_date_that_could_be_read_two_ways_is_left_out_not_guessed():
    images, hairs = _frames([("P", "v", "2026-01-02", 10, 0.1, 0, 0, 5), ("P", "v", "02/01/2026", 12, 0.1, 0, 0, 6)])
    used, left = usable_frames(images)
    assert list(used["session_date"]) == ["2026-01-02"]
    assert left["reason"].tolist() == ["session_date '02/01/2026' is not a date: write it YYYY-MM-DD or YYYYMMDD "
                                       "in the manifest"]
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        CourseSettings(baseline="02/01/2026")


def test_a_baseline_at_the_latest_session_makes_no_call():
    images, hairs = _course((150, 120, 100))
    out = compare_course(images, hairs, CourseSettings(n_boot=200, baseline="2026-03-01"))
    summary = out["summary"].iloc[0]
    assert summary["response"] == "no session after baseline"
    assert len(out["changes"].query("reference == 'baseline'")) > 0  # the earlier visits against it are still listed


def test_same_seed_same_intervals():
    images, hairs = _course((150, 170))
    a = compare_course(images, hairs, CourseSettings(n_boot=200, seed=3))["changes"]
    b = compare_course(images, hairs, CourseSettings(n_boot=200, seed=3))["changes"]
    pd.testing.assert_frame_equal(a, b)


def test_run_settings_are_read_back_from_run_json(tmp_path):
    import json

    from pipeline.course_io import run_settings
    from pipeline.settings import Settings

    s = Settings(weak_shafts_below=0.3, light_hair_model="")
    (tmp_path / "run.json").write_text(json.dumps({"settings": {**s.to_dict(), "from_a_newer_version": 1}}))
    assert run_settings(tmp_path) == s
    assert run_settings(tmp_path / "missing") == Settings()
    older = {k: v for k, v in Settings(light_hair_model="hairnet-light-v1").to_dict().items()
             if k != "bright_veto_model"}  # a run made before the veto had its own model
    (tmp_path / "run.json").write_text(json.dumps({"settings": older}))
    assert run_settings(tmp_path).bright_veto_model == "hairnet-light-v1"
    before_paint = {k: v for k, v in Settings().to_dict().items() if k != "paint_drawn_lines"}
    (tmp_path / "run.json").write_text(json.dumps({"settings": before_paint}))
    assert not run_settings(tmp_path).paint_drawn_lines  # a run before drawn lines were painted out masked them
    assert Settings().paint_drawn_lines
    before_dark_skin = {k: v for k, v in Settings().to_dict().items() if k != "weak_shafts_dark_skin_below"}
    (tmp_path / "run.json").write_text(json.dumps({"settings": before_dark_skin}))
    assert run_settings(tmp_path).weak_shafts_dark_skin_below == 0.0  # such a run read dark skin on darkness
    assert Settings().weak_shafts_dark_skin_below > 0


def test_re_examination_reads_the_map_the_frame_was_counted_on():
    """A routed frame (white hair: light_hair_model) is re-examined on the model's map, not the classical one."""
    from pipeline import segment
    from pipeline.core import analyze_frame
    from pipeline.course_io import _probability_cache
    from pipeline.settings import Settings
    from pipeline.synth import SceneParams, render_frame

    p = SceneParams(height=480, width=640, um_per_px=2.8, hair_color="white", skin_tone=2,
                    density_per_cm2=200.0, scales=False, halos=False)
    img, _ = render_frame(p, np.random.default_rng(5))
    counted = analyze_frame(img, um_per_px=2.8)
    assert counted.metrics["segmenter"] == "learned_light_hair"
    read = _probability_cache(Settings())("frame", img, 2.8)
    np.testing.assert_array_equal(read, counted.probability)
    assert not np.allclose(read, segment.hair_probability(img, um_per_px=2.8), atol=0.05)
    # its light shafts were not searched among dark ones, so there is no light-shaft map to re-read them on
    assert _probability_cache(Settings()).light("frame", img, 2.8) is None


def test_a_dark_frame_gives_the_map_its_grey_shafts_were_found_on():
    from pipeline.course_io import _probability_cache
    from pipeline.frame import _learned_maps, hair_map
    from pipeline.settings import Settings
    from pipeline.synth import SceneParams, render_frame

    p = SceneParams(height=480, width=640, um_per_px=2.8, hair_color="black", skin_tone=2,
                    density_per_cm2=150.0, scales=False, halos=False)
    img, _ = render_frame(p, np.random.default_rng(6))
    hm = hair_map(img, um_per_px=2.8, settings=Settings())
    assert hm.used == "classical"
    light = _probability_cache(Settings()).light("frame", img, 2.8)
    expected = _learned_maps(hm.image, hm.valid, 2.8, hm.settings, Settings().dark_frame_model)[0]
    np.testing.assert_array_equal(light, expected)
    off = Settings().replace(light_among_dark=0.0, model_veto_share=0.0)
    assert _probability_cache(off).light("frame", img, 2.8) is None


def test_pairs_read_on_a_model_map_are_re_examined_with_their_own_floor():
    """A frame read on a learned model's map (route ending in +model) takes recheck_floor_model; a shaft at 0.4
    there is evidence at the plain floor (0.3) and not at 0.5, so the loss stands."""
    from pipeline.register import match_visits, recheck_unmatched

    s = CourseSettings(recheck_floor=0.3, recheck_floor_model=0.5)
    assert s.floor_for("dark", "dark") == 0.3
    assert s.floor_for("colour+model", "colour+model") == 0.5
    assert s.floor_for("dark", "bright+model") == 0.5
    assert s.floor_for(None, float("nan")) == 0.3  # runs without a route column
    same = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    fixed = pd.DataFrame([dict(row=50, col=20, mid_row=50, mid_col=60, thickness_um=24.0, **{"class": "terminal"})])
    moving = fixed.iloc[:0]
    pf, pm = np.zeros((100, 120), np.float32), np.zeros((100, 120), np.float32)
    pf[47:54, 20:100], pm[47:54, 20:100] = 0.9, 0.4
    m = match_visits(fixed, moving, same, np.ones((100, 120), bool), gate_px=5.0)
    status = [recheck_unmatched(m, fixed, moving, same, pf, pm, um_per_px=4.0,
                                floor=s.floor_for(route, route))["status"].iloc[0] for route in ("dark", "colour+model")]
    assert status == ["persisting", "lost"]


def test_report_names_of_different_patients_differ():
    """``A/B`` and ``A_B`` each get a report (session 59: both were written to ``A_B.html``); a plain id keeps its
    name, and no name is hidden or climbs out of the folder."""
    from pipeline.course_io import report_name

    assert report_name("P007") == "P007" and report_name("Zoë") == "Zoë"
    names = {report_name(pid) for pid in ("A/B", "A_B", "A:B", "../x", ".x", "x")}
    assert len(names) == 6
    assert all("/" not in n and not n.startswith(".") for n in names)
    from pipeline.course_io import report_names

    stems = report_names(["P007", "p007", "A/B", report_name("A/B"), "x" * 300])
    assert len({n.lower() for n in stems.values()}) == 5 and max(len(n) for n in stems.values()) <= 120


def test_trend_points_put_the_baseline_at_zero_on_its_own_date():
    """With ``--baseline`` at a middle session the zero sits on that date, and the points run in date order
    (session 59: the zero was drawn on the first session's date and the line zigzagged back in time)."""
    from pipeline.report import trend_points

    ch = pd.DataFrame({"session_date": ["2026-01-10", "2026-03-07"], "change": [-5.0, 8.0], "ci_low": [-9.0, 2.0],
                       "ci_high": [-1.0, 14.0], "mdc": [6.0, 6.0], "real_change": [False, True]})
    pts = trend_points(pd.Series(["2026-02-07"]), ch)
    assert [d.strftime("%Y-%m-%d") for d in pts["date"]] == ["2026-01-10", "2026-02-07", "2026-03-07"]
    assert pts["change"].tolist() == [-5.0, 0.0, 8.0] and pts["real"].tolist() == [False, False, True]
    assert pts["below"].tolist() == [4.0, 0.0, 6.0] and pts["above"].tolist() == [4.0, 0.0, 6.0]


def test_a_pillarboxed_frame_is_reread_on_its_view_as_the_analysis_read_it():
    """The re-examination of gained and lost hairs reads each frame's maps as ``analyze_frame`` counted on them:
    a pillarboxed frame's on its view alone, placed back in the frame (session 61's review: read on the whole
    frame, the map near the view's edges was much weaker, and a hair counted there read as lost)."""
    import cv2

    from pipeline.course_io import _probability_cache
    from pipeline.frame import hair_map, light_shaft_map
    from pipeline.settings import Settings
    from pipeline.synth import render_frame, sample_scene

    rng = np.random.default_rng([61, 3])
    view, _ = render_frame(sample_scene(rng, height=480, width=640, um_per_px=2.78), rng)
    side = 107
    framed = cv2.copyMakeBorder(view, 0, 0, side, side, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    maps = _probability_cache(Settings())
    own = hair_map(view, um_per_px=2.78, settings=Settings())
    inside = slice(side, side + view.shape[1])
    prob, field = maps("f", framed, 2.78), maps.field("f", framed, 2.78)
    np.testing.assert_array_equal(prob[:, inside], own.prob)
    np.testing.assert_array_equal(field[:, inside], own.valid & np.asarray(own.field_rows, bool)[:, None])
    assert not prob[:, :side].any() and not field[:, inside.stop:].any() and prob.shape == framed.shape[:2]
    light, own_light = maps.light("f", framed, 2.78), light_shaft_map(own, um_per_px=2.78)
    assert (light is None) == (own_light is None)
    if light is not None:
        np.testing.assert_array_equal(light[:, inside], own_light)
