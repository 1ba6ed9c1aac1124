"""The phantom generator: reproducible, self-consistent truth, known geometry."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.synth import SCHEMA, generate, load_truth, render_frame, sample_scene

QUIET = dict(n_long_hairs=0, blur_sigma_px=0.3, blur_gradient=0.0, noise=0.0, vignetting=0.0, glare=0.0,
             color_cast=(1.0, 1.0, 1.0), jpeg_quality=None, header_strip=False, padding_strip=False,
             scale_bar=False, red_circle=False, scales=0.0, vessels=0.0, pigment_network=0.0, halos=0.0,
             empty_openings=0.0, ink=False)


def test_same_seed_same_frame_and_truth(tmp_path):
    a = generate(tmp_path / "a", 2, seed=123)
    b = generate(tmp_path / "b", 2, seed=123)
    assert a.equals(b)
    for name in a["image"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_truth_is_self_consistent(tmp_path):
    manifest = generate(tmp_path, 3, seed=77)
    for name in manifest["image"]:
        truth = load_truth(tmp_path / (name.rsplit(".", 1)[0] + ".json"))
        assert truth["schema"] == SCHEMA and truth["image"] == name
        f = truth["field"]
        inside = [f["row0"] <= h["emergence_rc"][0] < f["row1"] and f["col0"] <= h["emergence_rc"][1] < f["col1"]
                  for h in truth["hairs"]]
        assert inside == [h["in_field"] for h in truth["hairs"]]
        assert truth["count_in_field"] == sum(inside)
        area = (f["row1"] - f["row0"]) * (f["col1"] - f["col0"]) * truth["um_per_px"] ** 2 * 1e-8
        assert truth["field_area_cm2"] == pytest.approx(area, rel=1e-12)
        assert truth["density_per_cm2"] == pytest.approx(truth["count_in_field"] / area, rel=1e-12)
        units = {u["unit_id"]: u for u in truth["units"]}
        for h in truth["hairs"]:
            if h["kind"] == "clipped" and h["unit_id"] in units:
                u = units[h["unit_id"]]
                assert 1 <= u["n_hairs"] <= 4
                gap_px = np.hypot(*(np.subtract(h["emergence_rc"], u["opening_rc"])))
                assert gap_px <= 2.0 * h["width_um"] / truth["um_per_px"]


def test_zero_density_and_no_confounders_gives_no_hairs():
    rng = np.random.default_rng(1)
    img, truth = render_frame(sample_scene(rng, density_per_cm2=0.0, **QUIET), rng)
    assert truth["count_in_field"] == 0 and truth["hairs"] == []
    assert img.std(axis=(0, 1)).max() < 12  # only skin texture left


def test_opaque_shaft_has_its_width_across():
    """A single black 60 µm shaft at 3 µm/px is 20 px across (half-contrast width)."""
    rng = np.random.default_rng(5)
    params = sample_scene(rng, height=300, width=300, um_per_px=3.0, density_per_cm2=0.0, **QUIET)
    from pipeline import synth

    img = synth._skin(rng, params)
    hair = dict(path=np.column_stack([np.full(200, 150.0), np.linspace(50, 250, 200)]), width_um=60.0,
                kind="clipped", unit_id=0)
    synth._draw_hair(img, hair, params, synth.HAIR_COLOURS["black"][0], synth.HAIR_COLOURS["black"][1], rng)
    col = img[100:200, 150].mean(axis=1)
    skin, hair_level = np.median(img[:50, 150].mean(axis=1)), col.min()
    dark = col < (skin + hair_level) / 2
    assert dark.sum() == pytest.approx(20, abs=1.5)


def test_scale_bar_leg_is_one_millimetre():
    rng = np.random.default_rng(9)
    quiet = {**QUIET, "scale_bar": True}
    img, truth = render_frame(sample_scene(rng, height=600, width=800, um_per_px=4.0, density_per_cm2=0.0,
                                           skin_tone=0.1, **quiet), rng)
    row = int(0.93 * 600)
    line = np.abs(img[row].astype(int) - np.median(img[row - 30], axis=0)).max(axis=1) > 60
    cols = np.flatnonzero(line[: 800 // 2])
    assert cols.max() - cols.min() == pytest.approx(1000 / 4.0, abs=2)


def test_mean_density_matches_request():
    got = []
    for i in range(30):
        rng = np.random.default_rng([4242, i])
        params = sample_scene(rng, density_per_cm2=150.0, height=480, width=640, um_per_px=8.0, **QUIET)
        got.append(render_frame(params, rng)[1]["density_per_cm2"])
    assert np.mean(got) == pytest.approx(150.0, rel=0.15)


def test_manifest_and_truth_files_written(tmp_path):
    manifest = generate(tmp_path, 2, seed=3)
    assert list(manifest.columns) == ["image", "um_per_px", "field_id"]
    assert (tmp_path / "manifest.csv").is_file()
    stems = {p.stem for p in tmp_path.glob("*.json")}
    assert stems == {n.rsplit(".", 1)[0] for n in manifest["image"]}
    assert all(json.loads((tmp_path / f"{s}.json").read_text())["schema"] == SCHEMA for s in stems)
