"""The phantom generator: reproducible, self-consistent truth, known geometry and optics."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import map_coordinates

from pipeline import synth
from pipeline.synth import (
    HAIR_COLORS, SCHEMA, SceneParams, generate, load_truth, paint_hair, render_frame, sample_scene,
)

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"

#: No optics, no overlays, no confounders: what is left is skin and hairs.
QUIET = dict(
    n_long_hairs=0, uncut_fraction=0.0, blur_sigma_px=0.0, blur_gradient_px=0.0, noise_gain=0.0, noise_read=0.0, vignetting=0.0,
    glare=0.0, white_balance=(1.0, 1.0, 1.0), jpeg_quality=None, header_strip=False, padding_strip=False,
    scale_bar=False, red_circle=False, scales=False, vessels=False, pigment_network=False, halos=False,
    empty_openings=False, ink_blotch=False,
)
SMALL = dict(height=480, width=640)

TOP_KEYS = {"schema", "image", "seed", "um_per_px", "height_px", "width_px", "field", "field_area_cm2",
            "count_in_field", "density_per_cm2", "hairs", "units", "empty_openings_rc", "params"}
HAIR_KEYS = {"hair_id", "unit_id", "emergence_rc", "tip_rc", "centerline_rc", "width_um", "length_um", "color",
             "kind", "in_field", "in_frame", "together"}
UNIT_KEYS = {"unit_id", "opening_rc", "n_hairs", "in_field", "together"}


def _frame(seed, **overrides):
    rng = np.random.default_rng(seed)
    return render_frame(sample_scene(rng, **overrides), rng)


def _in_field(rc, f):
    return f["row0"] <= rc[0] < f["row1"] and f["col0"] <= rc[1] < f["col1"]


def _check_truth(truth):
    """Every invariant of one truth dict; used on generated and committed frames."""
    assert set(truth) == TOP_KEYS and truth["schema"] == SCHEMA
    f = truth["field"]
    assert set(f) == {"row0", "row1", "col0", "col1"}
    p = truth["params"]
    assert f["row0"] == (p["header_px"] if p["header_strip"] else 0)
    assert f["row1"] == truth["height_px"] - (p["padding_px"] if p["padding_strip"] else 0)
    assert (f["col0"], f["col1"]) == (0, truth["width_px"])
    area = (f["row1"] - f["row0"]) * (f["col1"] - f["col0"]) * truth["um_per_px"] ** 2 * 1e-8
    assert truth["field_area_cm2"] == pytest.approx(area, rel=1e-12)
    inside = [_in_field(h["emergence_rc"], f) for h in truth["hairs"]]
    assert inside == [h["in_field"] for h in truth["hairs"]]
    assert truth["count_in_field"] == sum(inside)
    assert truth["density_per_cm2"] == truth["count_in_field"] / truth["field_area_cm2"]
    assert [h["hair_id"] for h in truth["hairs"]] == list(range(len(truth["hairs"])))
    units = {u["unit_id"]: u for u in truth["units"]}
    assert sorted(units) == list(range(len(units)))
    for u in truth["units"]:
        assert set(u) == UNIT_KEYS and 1 <= u["n_hairs"] <= 4
        assert u["in_field"] == _in_field(u["opening_rc"], f)
    for h in truth["hairs"]:
        assert set(h) == HAIR_KEYS and h["in_frame"] and h["unit_id"] in units
        assert h["color"] in HAIR_COLORS and h["kind"] in ("clipped", "long")
        line = np.asarray(h["centerline_rc"])
        assert np.allclose(line[0], h["emergence_rc"], atol=0.01) and np.allclose(line[-1], h["tip_rc"], atol=0.01)
        steps = np.hypot(*np.diff(line, axis=0).T)
        assert steps.max() <= 2.02  # ~2 px spacing (coordinates rounded to 0.01 px)
        assert steps.sum() * truth["um_per_px"] == pytest.approx(h["length_um"], rel=2e-3, abs=0.05)


def test_same_seed_gives_identical_files(tmp_path):
    a = generate(tmp_path / "a", 2, seed=123, **SMALL)
    b = generate(tmp_path / "b", 2, seed=123, **SMALL)
    assert a.equals(b)
    for name in list(a["image"]) + [n.rsplit(".", 1)[0] + ".json" for n in a["image"]] + ["manifest.csv"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_any_frame_reproduces_alone(tmp_path):
    manifest = generate(tmp_path, 3, seed=8, image_format="png", jpeg_quality=None, **SMALL)
    assert list(manifest["image"]) == [f"phantom_8_{i:04d}.png" for i in range(3)]
    img, truth = _frame([8, 2], jpeg_quality=None, **SMALL)
    on_disk = cv2.imread(str(tmp_path / "phantom_8_0002.png"))[..., ::-1]
    assert np.array_equal(img, on_disk)
    saved = load_truth(tmp_path / "phantom_8_0002.json")
    assert saved["seed"] == [8, 2] and saved["image"] == "phantom_8_0002.png"
    assert saved["hairs"] == json.loads(json.dumps(truth["hairs"]))


def test_manifest_and_truth_files(tmp_path):
    manifest = generate(tmp_path, 3, seed=77, **SMALL)
    assert list(manifest.columns) == ["image", "um_per_px", "field_id"]
    assert pd.read_csv(tmp_path / "manifest.csv").equals(manifest)
    for name, um in zip(manifest["image"], manifest["um_per_px"]):
        truth = load_truth(tmp_path / (name.rsplit(".", 1)[0] + ".json"))
        assert truth["image"] == name and truth["um_per_px"] == um
        assert name.endswith(".jpg") == (truth["params"]["jpeg_quality"] is not None)
        _check_truth(truth)


def test_truth_is_self_consistent_across_varied_scenes():
    kinds = set()
    for i in range(6):
        _, truth = _frame([31, i], header_strip=i % 2 == 0, padding_strip=i % 3 == 0, n_long_hairs=3 * (i % 2),
                          **SMALL)
        _check_truth(truth)
        kinds |= {h["kind"] for h in truth["hairs"]}
    assert kinds == {"clipped", "long"}


def test_uncut_scene_hairs_emerging_in_view_are_long_and_passing_ones_come_from_outside():
    common = dict(density_per_cm2=200.0, um_per_px=3.0, **{**QUIET, **SMALL, "n_long_hairs": 5})
    _, clipped = _frame(7, **common)
    _, uncut = _frame(7, **{**common, "uncut_fraction": 1.0})
    assert {h["kind"] for h in clipped["hairs"] if h["in_field"]} == {"clipped"}
    in_field = [h for h in uncut["hairs"] if h["in_field"]]
    assert in_field and all(h["kind"] == "long" for h in in_field)
    assert all(h["length_um"] >= 4000 for h in in_field)  # they leave the field, as in real long-hair frames
    passing = [h for h in uncut["hairs"] if h["kind"] == "long" and not h["in_field"]]
    assert 1 <= len(passing)  # emerged just outside (within 0.2 mm) or one of the 5 from further out
    assert uncut["count_in_field"] == clipped["count_in_field"]  # same openings: the counting truth is unchanged


def test_sampled_uncut_scenes_are_70x_and_have_fewer_passing_than_emerging_hairs():
    scenes = [sample_scene(np.random.default_rng(s)) for s in range(400)]
    uncut = [p for p in scenes if p.uncut_fraction > 0]
    assert 10 <= len(uncut) <= 50  # about 7% x 75% of 400
    for p in uncut:
        field_cm2 = p.height * p.width * p.um_per_px ** 2 * 1e-8
        assert p.um_per_px * p.width <= 3.6 * 1280 + 1e-6  # a 70x field, at most 4.6 mm wide
        assert 0.8 <= p.uncut_fraction <= 1.0
        assert p.n_long_hairs <= 1.2 * p.density_per_cm2 * field_cm2 + 1


def test_zero_density_and_no_confounders_gives_no_hairs():
    img, truth = _frame(1, density_per_cm2=0.0, skin_texture=0.0, **QUIET, **SMALL)
    assert truth["count_in_field"] == 0 and truth["hairs"] == [] and truth["units"] == []
    assert truth["density_per_cm2"] == 0.0
    assert img.min() > 60  # no dark shaft anywhere: only skin


def _cross_section(img, centre_rc, angle_rad, half=30):
    """Grey-level profile through ``centre_rc`` along direction ``angle_rad`` (0.1 px steps)."""
    t = np.arange(-half, half, 0.1)
    rows = centre_rc[0] + t * np.sin(angle_rad)
    cols = centre_rc[1] + t * np.cos(angle_rad)
    return map_coordinates(img.mean(axis=2), [rows, cols], order=1), 0.1


@pytest.mark.parametrize("angle_deg", [0.0, 33.0, 90.0])
def test_opaque_black_shaft_is_its_diameter_across(angle_deg):
    """A black 60 µm shaft at 3 µm/px is 20 px across (half-contrast width, perpendicular to it)."""
    skin = np.full((300, 300, 3), 0.6, np.float32)
    a = np.radians(angle_deg)
    d = np.array([np.sin(a), np.cos(a)])
    line = np.array([150, 150]) + np.outer(np.linspace(-110, 110, 111), d)
    img = paint_hair(skin, line, width_um=60.0, um_per_px=3.0, color="black")
    profile, step = _cross_section(img, (150.0, 150.0), a + np.pi / 2)
    dark = profile < (0.6 + profile.min()) / 2
    assert dark.sum() * step == pytest.approx(20.0, abs=1.5)
    assert profile.min() < 0.2  # close to opaque


def test_blur_keeps_integrated_contrast():
    """Blur widens a thin shaft but keeps contrast x width (DESIGN.md, the profile method)."""
    skin = np.full((200, 200, 3), 0.6, np.float32)
    line = np.array([[100.0, 10.0], [100.0, 190.0]])
    sharp = paint_hair(skin, line, width_um=40.0, um_per_px=2.5, color="black")
    soft = cv2.GaussianBlur(sharp, (0, 0), 3.0)
    areas = [np.sum(0.6 - im[50:150, 100].mean(axis=1)) for im in (sharp, soft)]
    assert areas[1] == pytest.approx(areas[0], rel=0.01)
    wide = paint_hair(skin, line, width_um=100.0, um_per_px=2.5, color="black")
    contrast = 0.6 - wide[100, 100].mean()
    assert areas[0] / contrast == pytest.approx(16.0, rel=0.05)  # 40 µm / 2.5 µm/px = 16 px
    vellus = paint_hair(skin, line, width_um=20.0, um_per_px=2.5, color="black")
    ratio = np.sum(0.6 - vellus[50:150, 100].mean(axis=1)) / contrast / 8.0
    assert 0.75 < ratio < 0.97  # vellus hairs carry less pigment: a little lighter


def test_white_hair_on_light_skin_shows_by_a_faint_rim():
    skin = np.full((120, 200, 3), 0.62, np.float32)
    img = paint_hair(skin, np.array([[60.0, 20.0], [60.0, 180.0]]), width_um=80.0, um_per_px=3.0, color="white")
    col = img[30:90, 100].mean(axis=1)
    assert col.min() < 0.62 - 0.04  # darker refraction edge
    assert col.max() > 0.62 + 0.05  # brighter, translucent shaft


def test_cut_tip_is_sharp_and_emergence_fades():
    skin = np.full((100, 300, 3), 0.6, np.float32)
    img = paint_hair(skin, np.array([[50.0, 50.0], [50.0, 250.0]]), width_um=60.0, um_per_px=3.0).mean(axis=2)
    along = img[50, :]
    assert along[252] > 0.55 and along[247] < 0.25  # sharp tip within +-2.5 px of col 250
    assert along[51] > along[60] > along[75]  # fades in over about one diameter (20 px)


def test_scale_bar_legs_are_one_millimetre():
    um = 4.0
    corner = (430, 40)
    img, _ = _frame(9, density_per_cm2=0.0, skin_texture=0.0, um_per_px=um, skin_tone=2, **{
        **QUIET, "scale_bar": True, "scale_bar_rc": corner, "scale_bar_color": "dark"}, **SMALL)
    grey = img.mean(axis=2)
    dark = grey < grey[200, 300] - 60
    cols = np.flatnonzero(dark[corner[0]])
    cols = cols[: np.flatnonzero(np.diff(np.r_[cols, 10**6]) > 1)[0] + 1]  # first run: the leg, not the label
    rows = np.flatnonzero(dark[:, corner[1]])
    assert cols.max() - cols.min() + 1 == pytest.approx(1000 / um, abs=2)
    assert rows.max() - rows.min() + 1 == pytest.approx(1000 / um, abs=2)
    assert cols.min() == corner[1] and rows.max() == corner[0]


def test_mean_density_matches_request():
    got = []
    for i in range(40):
        _, truth = _frame([4242, i], density_per_cm2=150.0, um_per_px=8.0, skin_texture=0.0, **QUIET, **SMALL)
        got.append(truth["density_per_cm2"])
    assert np.mean(got) == pytest.approx(150.0, rel=0.15)
    assert np.std(got) > 0  # fields differ, as real fields do


def test_units_share_an_opening():
    _, truth = _frame(12, density_per_cm2=280.0, unit_size_probs=(0.1, 0.4, 0.4, 0.1), um_per_px=8.0, **QUIET, **SMALL)
    by_unit = {}
    for h in truth["hairs"]:
        by_unit.setdefault(h["unit_id"], []).append(h)
    assert {len(v) for v in by_unit.values()} >= {3, 4}
    um = truth["um_per_px"]
    for u in truth["units"]:
        hairs = by_unit[u["unit_id"]]
        assert len(hairs) <= u["n_hairs"] <= 4
        if len(hairs) < u["n_hairs"]:
            continue  # part of the unit lies outside the frame
        widest = max(h["width_um"] for h in hairs) / um
        spacing = 1.4 if u["together"] else 1.0  # lying together: 0.9-1.4 times a V's spacing
        for h in hairs:  # lateral offset <= 1.07 widths x spacing, along the hair <= 0.3
            assert np.hypot(*np.subtract(h["emergence_rc"], u["opening_rc"])) <= np.hypot(1.07 * spacing, 0.3) * widest
        if len(hairs) == 2:  # neighbours emerge 0.8-1.2 mean widths apart across a V, 0.72-1.68 lying together
            mean_px = np.mean([h["width_um"] for h in hairs]) / um
            least = 0.72 if u["together"] else 0.8
            assert np.hypot(*np.subtract(hairs[0]["emergence_rc"], hairs[1]["emergence_rc"])) >= least * mean_px - 2e-3
        tips = [tuple(h["tip_rc"]) for h in hairs]
        assert len(set(tips)) == len(tips)


def _heading_deg(hair):
    line = np.asarray(hair["centerline_rc"])
    d = line[min(len(line) - 1, 8)] - line[0]
    return math.degrees(math.atan2(d[0], d[1]))


def test_units_lie_together_or_open_and_the_layout_draws_nothing_else():
    """Whether units lie together changes their geometry only: the layout's other draws (openings, sizes,
    widths, lengths, colours, cut angles) and the stream after it are the same for any share (without long
    or uncut hairs, whose choice follows the moved geometry)."""
    kw = dict(density_per_cm2=280.0, unit_size_probs=(0.1, 0.6, 0.2, 0.1), um_per_px=8.0, **QUIET, **SMALL)
    layouts = []
    for share in (0.0, 1.0):
        rng = np.random.default_rng(21)
        lay = synth._layout(sample_scene(rng, unit_parallel_share=share, **kw), rng)
        layouts.append((lay, rng.random()))
    (lay0, next0), (lay1, next1) = layouts
    same = ("unit_id", "width_um", "length_um", "color", "kind", "tan_cut", "tone")
    assert [[getattr(h, k) for k in same] for h in lay0.hairs] == [[getattr(h, k) for k in same] for h in lay1.hairs]
    assert np.array_equal(lay0.openings, lay1.openings) and next0 == next1
    assert not any(h.together for h in lay0.hairs)
    _, apart = _frame(21, unit_parallel_share=0.0, **kw)
    _, together = _frame(21, unit_parallel_share=1.0, **kw)
    multi = [u for u in together["units"] if u["n_hairs"] >= 2]
    assert multi and all(u["together"] for u in multi) and not any(u["together"] for u in apart["units"])
    assert not any(u["together"] for u in together["units"] if u["n_hairs"] == 1)
    # two-hair units: lying together, neighbours diverge by up to 5 deg per mean width between them (at most
    # 1.68 widths: 8.4 deg) plus a little jitter; a V by 8-25 deg per width (at least 0.8 widths)
    for truth, lo, hi in ((together, 0.0, 9.5), (apart, 5.0, 40.0)):
        spreads = []
        for u in truth["units"]:
            hairs = [h for h in truth["hairs"] if h["unit_id"] == u["unit_id"]]
            if len(hairs) == u["n_hairs"] == 2 and min(h["length_um"] for h in hairs) > 200:
                a, b = (_heading_deg(h) for h in hairs)
                spreads.append(abs((a - b + 180) % 360 - 180))
        assert len(spreads) >= 5 and lo <= min(spreads) and max(spreads) <= hi, (lo, hi, spreads)


def test_width_mix_follows_the_requested_shares():
    widths = []
    for i in range(3):
        _, truth = _frame([5, i], frac_vellus=0.3, frac_intermediate=0.3, density_per_cm2=300.0, um_per_px=8.0,
                          **QUIET, **SMALL)
        widths += [h["width_um"] for h in truth["hairs"]]
    widths = np.array(widths)
    assert len(widths) > 150 and widths.min() >= 10 and widths.max() <= 120
    assert np.mean(widths <= 30) == pytest.approx(0.3, abs=0.08)
    assert np.mean((widths > 30) & (widths <= 60)) == pytest.approx(0.3, abs=0.08)


def test_sample_scene_ranges_and_overrides():
    scenes = [sample_scene(np.random.default_rng([3, i])) for i in range(300)]
    fov_mm = np.array([s.um_per_px * s.width / 1000 for s in scenes])  # the lens' field, whatever the sensor
    fine = fov_mm <= 3.6 * 1.28 + 1e-9  # 70x: 2.8-4.6 mm; 20x-40x: 6.4-11.5 mm
    assert np.all(fine & (fov_mm >= 2.2 * 1.28) | (fov_mm >= 5.0 * 1.28) & (fov_mm <= 9.0 * 1.28 + 1e-9))
    assert 0.6 < fine.mean() < 0.9
    for i in range(40):  # a fixed width keeps the 1280 px ranges (some of these draw a smaller sensor)
        um = sample_scene(np.random.default_rng([3, i]), width=640, height=480).um_per_px
        assert 2.2 <= um <= 3.6 or 5.0 <= um <= 9.0
    assert {(s.height, s.width) for s in scenes} == {(1024, 1280), (768, 1024), (480, 640)}
    dens = np.array([s.density_per_cm2 for s in scenes])
    assert dens.min() >= 40 and dens.max() <= 300
    assert {s.hair_color for s in scenes} == set(HAIR_COLORS) and {s.skin_tone for s in scenes} == set(range(1, 7))
    assert any(s.n_long_hairs > 0 for s in scenes) and any(s.jpeg_quality for s in scenes)
    base = sample_scene(np.random.default_rng(17))
    fixed = sample_scene(np.random.default_rng(17), density_per_cm2=150, hair_color="black")
    assert fixed.density_per_cm2 == 150 and fixed.hair_color == "black"
    assert fixed.skin_tone == base.skin_tone and fixed.blur_sigma_px == base.blur_sigma_px
    with pytest.raises(TypeError, match="unknown scene parameter"):
        sample_scene(np.random.default_rng(0), densty=100)
    with pytest.raises(ValueError, match="hair_color"):
        SceneParams(hair_color="purple")


def test_load_truth_rejects_other_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"schema": "something/else"}))
    with pytest.raises(ValueError, match="not a phantom truth file"):
        load_truth(path)


def test_committed_samples_are_consistent():
    manifest = pd.read_csv(SAMPLES / "manifest.csv")
    assert list(manifest.columns) == ["image", "um_per_px", "patient_id", "site", "session_date", "field_id"]
    assert len(manifest) == 6 and set(manifest["patient_id"]) == {"P001"} and set(manifest["site"]) == {"vertex"}
    density = {}
    for row in manifest.itertuples():
        assert (SAMPLES / row.image).is_file()
        truth = load_truth(SAMPLES / (row.image.rsplit(".", 1)[0] + ".json"))
        _check_truth(truth)
        assert truth["image"] == row.image and truth["um_per_px"] == row.um_per_px == 2.78
        assert (truth["height_px"], truth["width_px"]) == (1024, 1280)
        density.setdefault(row.session_date, []).append(truth["density_per_cm2"])
    first, second = (np.mean(density[d]) for d in sorted(density))
    assert second > first  # the responder
    assert sum(p.stat().st_size for p in SAMPLES.iterdir()) < 8e6
