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


def _ridges(*cols: int, n: int = 80, height: float = 0.9) -> np.ndarray:
    """A centre-line map with a ridge (Gaussian, sigma 1 px) down each of ``cols``."""
    x = np.arange(n, dtype=float)
    return _profile_image(sum(height * np.exp(-(x - c) ** 2 / 2.0) for c in cols))


def _stripe(c0: int, c1: int, n: int = 80) -> np.ndarray:
    col = np.zeros(n, bool)
    col[c0:c1] = True
    return _profile_image(col).astype(bool)


PATH = np.column_stack([np.arange(5, 55, 1.0), np.full(50, 40.0)])  # down column 40


@pytest.mark.parametrize("cols, expected", [((40,), 1), ((35, 45), 2), ((32, 40, 48), 3)])
def test_ridge_count_counts_the_centre_lines_inside_a_stripe(cols, expected):
    from pipeline.measure import ridge_count

    k, width, shifts = ridge_count(_ridges(*cols), _stripe(30, 51), PATH, radius_px=10.5, level=0.3)
    assert k == expected
    assert width == pytest.approx(21.0, abs=1.0)  # the stripe's mask run
    assert [c for _, c in shifts] == pytest.approx([c - 40 for c in cols] if k > 1 else [], abs=0.6)


def test_ridge_count_ignores_ridges_outside_the_stripe_and_faint_ones():
    from pipeline.measure import ridge_count

    # a separate neighbour's centre line beyond a gap of skin, and a faint second ridge inside
    centre = _ridges(40, 56) + _ridges(46, height=0.2)
    k, *_ = ridge_count(centre, _stripe(34, 51) | _stripe(53, 60), PATH, radius_px=8.5, level=0.3)
    assert k == 1
    k, *_ = ridge_count(centre, _stripe(34, 51), PATH, radius_px=8.5, level=0.15)
    assert k == 2


def test_ridge_count_reads_the_shorter_hair_by_the_median():
    from pipeline.measure import ridge_count

    centre = _ridges(35, 45)
    centre[40:, :] = _ridges(35)[40:, :]  # the second hair's cut tip at row 40: 2 ridges on 35 of 50 rows
    k, *_ = ridge_count(centre, _stripe(30, 51), PATH, radius_px=10.5, level=0.3)
    assert k == 2
    centre[20:, :] = _ridges(35)[20:, :]  # ... at row 20: 2 ridges on 15 of 50 rows
    k, *_ = ridge_count(centre, _stripe(30, 51), PATH, radius_px=10.5, level=0.3)
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


def _arc_mask(radius: int, mid_deg: float, extent: float = 100, size: int = 160) -> np.ndarray:
    import cv2

    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (size // 2, size // 2), (radius, radius), 0, mid_deg - extent / 2, mid_deg + extent / 2, 1, 3)
    return mask.astype(bool)


def test_a_smoothly_curved_hair_is_one_hair_in_every_orientation():
    """A 100° arc (radius 25-35 px, 3 px wide) turns about 30° over the corner test's span: one hair however it
    lies, turned or flipped. Session 59: the turn was read along the raw pixel path, whose slanted runs reach
    1.4 times as far, and 127 of these 432 arcs split in two (28 of the 54 differently by orientation); read
    along the arc's length one does (a hook the skeleton leaves at one end of one of them)."""
    from pipeline import shafts
    from pipeline.settings import Settings

    counts = []
    for radius in (25, 30, 35):
        for mid_deg in range(0, 90, 5):
            mask = _arc_mask(radius, mid_deg)
            for m in [np.rot90(mask, k) for k in range(4)] + [np.rot90(mask[:, ::-1], k) for k in range(4)]:
                counts.append(len(shafts.trace_hairs(m.copy(), settings=Settings())))
    assert len(counts) == 432 and sum(n > 1 for n in counts) <= 1 and max(counts) <= 2


@pytest.mark.parametrize("angle_deg", [0, 10, 22.5, 30, 45, 67.5, 90])
def test_a_straight_hair_is_as_long_at_any_angle(angle_deg):
    """A 150-px centre line reads 150 px at any angle (session 59: the 8-connected staircase read up to 8% long
    at 22.5°)."""
    import cv2

    from pipeline import shafts

    mask = np.zeros((240, 240), np.uint8)
    t = math.radians(angle_deg)
    a = np.array([120 - 75 * math.cos(t), 120 - 75 * math.sin(t)])
    b = np.array([120 + 75 * math.cos(t), 120 + 75 * math.sin(t)])
    cv2.line(mask, tuple(int(round(v)) for v in a), tuple(int(round(v)) for v in b), 1, 1)
    path = np.argwhere(mask)
    path = path[np.argsort(path @ np.array([math.sin(t), math.cos(t)]))]  # along the line
    assert shafts.Hair(path).length_px == pytest.approx(150, abs=2.5)


@pytest.mark.parametrize("radius", [12, 25, 60])
def test_a_curved_hair_reads_its_arc_length(radius):
    """A quarter circle's centre line reads its arc, pi r / 2, within 0.3 px (session 60: read on the 1-px
    resampling, the length stopped at the last whole step and a quarter circle of radius 12 read 17.97 px for
    18.85)."""
    from skimage.draw import circle_perimeter

    from pipeline import shafts

    rr, cc = circle_perimeter(100, 100, radius)
    keep = (rr <= 100) & (cc >= 100)
    pts = np.column_stack([rr[keep], cc[keep]])
    pts = pts[np.argsort(np.arctan2(100 - pts[:, 0], pts[:, 1] - 100))]
    assert shafts.Hair(pts).length_px == pytest.approx(math.pi * radius / 2, abs=0.3)
