"""Known answers of the width measures in :mod:`pipeline.measure`."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from scipy.ndimage import gaussian_filter1d

from pipeline.measure import half_max_width

DT = 0.5  # px between profile samples, as profile_widths samples them


def blurred_bar(width_px: float, sigma_px: float, height: float = 0.7, n: int = 161) -> np.ndarray:
    """A bar of ``width_px`` (exact area coverage per sample) blurred by a Gaussian of ``sigma_px``."""
    x = (np.arange(n) - n // 2) * DT
    fine = np.clip(np.minimum(x + DT / 2, width_px / 2) - np.maximum(x - DT / 2, -width_px / 2), 0, None) / DT
    return height * gaussian_filter1d(fine, sigma_px / DT, mode="constant")


@hsettings(max_examples=40, deadline=None)
@given(width=st.floats(6.0, 30.0), blur=st.floats(0.05, 1 / 6), height=st.floats(0.1, 1.0))
def test_half_max_width_of_a_resolved_bar_is_its_width(width, blur, height):
    # For a bar at least 6 blur sigmas wide the blurred edges cross half its height at the edges.
    assert half_max_width(blurred_bar(width, blur * width, height), DT) == pytest.approx(width, abs=0.15)


def test_half_max_width_of_a_gaussian_is_its_fwhm():
    x = (np.arange(121) - 60) * DT
    sigma = 3.0
    assert half_max_width(np.exp(-x ** 2 / (2 * sigma ** 2)), DT) == pytest.approx(
        2 * math.sqrt(2 * math.log(2)) * sigma, rel=0.01)


def test_half_max_width_is_nan_without_both_crossings():
    p = blurred_bar(20, 1.0)
    p[:p.size // 2 - 5] = p.max()  # a neighbour fused on the left: never below half there
    assert math.isnan(half_max_width(p, DT))
    assert math.isnan(half_max_width(np.zeros(41), DT))


def _profile_image(columns: np.ndarray, rows: int = 60) -> np.ndarray:
    return np.repeat(columns[None, :].astype(float), rows, axis=0)


def test_lobe_count_sees_two_shafts_with_a_seam():
    from pipeline.measure import lobe_count

    col = np.zeros(80)
    col[30:39] = 0.7
    col[41:50] = 0.7
    col[39:41] = 0.35  # the seam: half the darkness
    dark = _profile_image(col)  # shafts run down the rows
    path = np.column_stack([np.arange(5, 55, 1.0), np.full(50, 40.0)])
    k, width = lobe_count(dark, path, radius_px=10.0, min_dip=0.2)
    assert k == 2
    assert width == pytest.approx(20.0, abs=1.5)


def test_lobe_count_ignores_a_separate_neighbour():
    from pipeline.measure import lobe_count

    col = np.zeros(80)
    col[36:45] = 0.7  # the shaft under the centre line
    col[50:59] = 0.7  # a neighbour beyond a gap of skin
    dark = _profile_image(col)
    path = np.column_stack([np.arange(5, 55, 1.0), np.full(50, 40.0)])
    k, _ = lobe_count(dark, path, radius_px=10.0, min_dip=0.2)
    assert k == 1


def _highlighted_bar(width_px: float, band_px: float, band_level: float) -> np.ndarray:
    """A blurred bar whose middle ``band_px`` is lighter (``band_level`` of its darkness): a shaft's highlight."""
    bar = blurred_bar(width_px, 0.8)
    band = blurred_bar(band_px, 0.8, height=1.0)
    return bar * (1 - (1 - band_level) * band / band.max())


@hsettings(max_examples=30, deadline=None)
@given(width=st.floats(12.0, 40.0), band=st.floats(0.2, 0.4), level=st.floats(0.1, 0.45))
def test_outer_half_width_reads_a_highlighted_shaft_edge_to_edge(width, band, level):
    from pipeline.measure import outer_half_width

    p = _highlighted_bar(width, band * width, level)
    x = (np.arange(p.size) - p.size // 2) * DT
    inside = np.abs(x) <= width / 2 + 0.5
    assert outer_half_width(p, inside, DT) == pytest.approx(width, abs=0.2)


def test_outer_half_width_stays_inside_the_mask_run():
    from pipeline.measure import outer_half_width

    col = blurred_bar(16, 0.8)
    shift = int(24 / DT)
    p = col + np.roll(col, shift)  # a neighbour 24 px away, its own mask run
    x = (np.arange(p.size) - p.size // 2) * DT
    inside = (np.abs(x) <= 8.5) | (np.abs(x - 24) <= 8.5)
    assert outer_half_width(p, inside, DT) == pytest.approx(16, abs=0.2)
    # centre not in the mask: the plain half-maximum width
    assert outer_half_width(p, np.zeros(p.size, bool), DT) == half_max_width(p, DT)


def test_hair_thickness_of_a_highlighted_bar_is_its_width():
    from pipeline.measure import hair_widths_px

    width = 24.0
    col = np.zeros(120)
    x = np.arange(120) - 59.5  # pixel centres; the bar covers 24 whole pixels
    col[np.abs(x) < width / 2] = 0.8
    col[np.abs(x) < 4] = 0.25  # a highlight along the middle
    dark = gaussian_filter1d(_profile_image(col, rows=120), 1.0, axis=1)
    mask = _profile_image(np.abs(x) < width / 2, rows=120) > 0
    # the centre line runs along the left dark half, as a skeleton of a highlighted shaft may
    path = np.column_stack([np.arange(10, 110, 1.0), np.full(100, 59.5 - 6)])
    kw = dict(radius_px=width / 2, darkness=dark, full=0.8, method="edges")
    assert hair_widths_px(path, mask=mask, **kw).shaft == pytest.approx(width, abs=0.5)
    assert hair_widths_px(path, **kw).shaft < 0.5 * width  # the first dip ended the plain half-maximum lobe


def test_hair_thickness_percentile_reads_past_narrowed_stations():
    from pipeline.measure import hair_widths_px

    x = np.arange(100) - 49.5
    dark = np.zeros((200, 100))
    dark[:, np.abs(x) < 10] = 0.8
    dark[:80, :] = 0.0
    dark[:80, np.abs(x) < 6] = 0.8  # the first 80 rows of the shaft run narrower (a taper, a neighbour's cover)
    dark = gaussian_filter1d(dark, 1.0, axis=1)
    path = np.column_stack([np.arange(10, 190, 1.0), np.full(180, 49.5)])
    kw = dict(radius_px=10.0, darkness=dark, full=0.8, method="edges")
    assert hair_widths_px(path, percentile=50.0, **kw).shaft == pytest.approx(20, abs=0.5)
    assert hair_widths_px(path, percentile=30.0, **kw).shaft == pytest.approx(12, abs=0.5)


def test_thickness_percentile_is_validated():
    from pipeline.settings import Settings

    with pytest.raises(ValueError, match="thickness_percentile"):
        Settings(thickness_percentile=120)
    assert Settings().thickness_percentile == 70.0
