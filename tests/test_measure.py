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
