"""The per-frame core: pixels and pixel size in, tables out.

``analyze_frame`` is a pure function of (image, pixel size, settings): it
reads no file and writes nothing.  The batch layer (``pipeline.batch``) is
the only place that touches files, workers and progress.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.settings import Settings

#: Columns of the per-hair table, in contract order (``hairs.csv``).
HAIR_COLUMNS = [
    "hair_id", "unit_id", "row", "col", "length_um", "thickness_um", "class",
    "length_px", "thickness_px", "touches_border", "root_known", "mid_row", "mid_col",
]

#: Per-frame metric columns, in contract order (``images.csv``).
METRIC_COLUMNS = [
    "um_per_px", "area_cm2", "hair_count", "density_per_cm2",
    "mean_thickness_um", "median_thickness_um",
    "vellus_count", "intermediate_count", "terminal_count",
    "vellus_share_pct", "intermediate_share_pct", "terminal_share_pct",
    "cumulative_thickness_mm_per_cm2", "follicular_units", "hairs_per_unit",
    "units_per_cm2", "single_hair_unit_share_pct", "note",
    "focus_score", "overexposed_pct", "underexposed_pct", "glare_pct", "skin_pct", "quality_flags",
    "segmenter", "route", "route_source", "long_shaft_pct",
]


MIN_SIDE_PX = 32
MIN_SIDE_HAIR_WIDTHS = 2.0


class UnusableImageError(ValueError):
    """A readable image the core cannot measure (too small to hold a hair and the skin around it)."""


#: Largest pixel size taken (µm/px): a 1280-px frame 100 mm wide; trichoscope frames are 1-20 µm/px.
MAX_UM_PER_PX = 100.0


def check_um_per_px(um_per_px) -> float | None:
    """The pixel size as a float, or None; a value no frame can have is refused with the fix.

    Examples
    --------
    >>> check_um_per_px(np.float32(2.5))
    2.5
    >>> check_um_per_px(-2.78)
    Traceback (most recent call last):
    ...
    ValueError: um_per_px must be a number of micrometres per pixel above 0 and at most 100 (trichoscope frames are about 1-20), not -2.78
    """
    if um_per_px is None:
        return None
    ok = isinstance(um_per_px, numbers.Real) and not isinstance(um_per_px, bool)
    value = float(um_per_px) if ok else math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_UM_PER_PX):
        raise ValueError(f"um_per_px must be a number of micrometres per pixel above 0 and at most "
                         f"{MAX_UM_PER_PX:g} (trichoscope frames are about 1-20), not {um_per_px!r}")
    return value


def check_frame_size(shape: tuple[int, ...], um_per_px: float | None, settings: Settings = Settings()) -> None:
    """Refuse a frame too small to measure, with a message a person can act on.

    The skin level is a median over a window about twice the widest shaft
    (``settings.max_width_um``), so a frame must span at least
    ``MIN_SIDE_HAIR_WIDTHS`` of those, and ``MIN_SIDE_PX`` pixels, on its
    shorter side.

    Raises
    ------
    UnusableImageError
        The shorter side is below either limit.
    """
    height, width = int(shape[0]), int(shape[1])
    scale = um_per_px or settings.scale_um_per_px
    need = max(MIN_SIDE_PX, int(np.ceil(MIN_SIDE_HAIR_WIDTHS * settings.max_width_um / scale)))
    if min(height, width) < need:
        raise UnusableImageError(
            f"image is {width} x {height} px, too small to measure: its shorter side needs at least {need} px "
            f"({need * scale / 1000:.2f} mm at {scale:g} µm/px); check that this is the full photo and not "
            "a thumbnail or a crop, and that the pixel size is right")


@dataclass
class FrameResult:
    """What the core returns for one frame.

    Attributes
    ----------
    hairs : pandas.DataFrame
        One row per counted hair, columns ``HAIR_COLUMNS``. ``row, col`` is
        the emergence point (pixels) where it can be told, else the
        root-side end. µm columns are NaN without a pixel size.
    metrics : dict
        Per-frame metrics keyed by ``METRIC_COLUMNS``.
    paths : list of ndarray
        Centre line of every counted hair, each ``(K, 2)`` float (row, col),
        emergence end first; same order as ``hairs``.
    valid : ndarray of bool, shape (M, N)
        Pixels that are skin (not overlay, text, scale bar or glare).
    probability : ndarray of float32, shape (M, N)
        Hair probability in [0, 1].
    mask : ndarray of bool, shape (M, N)
        Binary hair mask the shafts were traced from.
    """

    hairs: pd.DataFrame
    metrics: dict[str, Any]
    paths: list[np.ndarray] = field(default_factory=list)
    valid: np.ndarray | None = None
    probability: np.ndarray | None = None
    mask: np.ndarray | None = None


def analyze_frame(
    image: np.ndarray,
    *,
    um_per_px: float | None,
    settings: Settings = Settings(),
) -> FrameResult:
    """Measure one scalp frame: count hairs, measure shafts, derive density.

    Parameters
    ----------
    image : ndarray, shape (M, N, 3) or (M, N)
        RGB or grey frame, uint8 (other dtypes are rescaled to 8 bits).
    um_per_px : float or None
        Pixel size (µm/px). Without it, hairs are counted but no µm,
        density or class is reported and ``metrics["note"]`` says why.
    settings : Settings
        Tunables; see :class:`pipeline.settings.Settings`.

    Returns
    -------
    FrameResult
        ``hairs`` table (one row per counted hair) and per-frame ``metrics``.

    Raises
    ------
    UnusableImageError
        The frame is too small to measure (:func:`check_frame_size`).

    Notes
    -----
    Counting rule: a hair counts when its emergence point lies inside the
    field (the frame minus full-width header/padding strips). A hair cut by
    the border counts only when its visible end is its root end.

    A view saved in a wider frame (uniform bars down its sides, a pillarbox)
    is measured alone, as if it had been saved without the bars, and its
    hairs, centre lines and maps placed back in the whole frame.
    """
    from pipeline import frame as _frame

    um_per_px = check_um_per_px(um_per_px)
    rgb = as_rgb8(image)
    check_frame_size(rgb.shape, um_per_px, settings)
    seen, view = view_of(rgb)
    if view is None:
        return _frame.measure_frame(rgb, um_per_px=um_per_px, settings=settings)
    try:  # the view, as if it had been saved alone
        check_frame_size(seen.shape, um_per_px, settings)
    except UnusableImageError as e:
        raise UnusableImageError(f"the view between its side bars (columns {view.start}-{view.stop - 1}): "
                                 f"{e}") from None
    return _in_frame(_frame.measure_frame(seen, um_per_px=um_per_px, settings=settings), view, rgb.shape[:2])


def view_of(image: np.ndarray) -> tuple[np.ndarray, slice | None]:
    """The part of a frame that is measured, and its columns: a pillarboxed frame's view between its side bars
    (:func:`pipeline.segment.view_columns`, contiguous) and their slice, else the frame itself and None."""
    from pipeline import segment

    view = segment.view_columns(image)
    return (image, None) if view is None else (np.ascontiguousarray(image[:, view]), view)


def _in_frame(result: FrameResult, view: slice, shape: tuple[int, int]) -> FrameResult:
    """A view's result (:func:`analyze_frame`) placed in the whole frame of ``shape``: columns shifted by the
    view's first, maps empty (no skin, no hair) outside it."""
    hairs = result.hairs.copy()
    for column in ("col", "mid_col"):
        hairs[column] = hairs[column] + view.start
    paths = [p + np.array([0.0, view.start]) for p in result.paths]
    return FrameResult(hairs, result.metrics, paths, placed_in_frame(result.valid, view, shape),
                       placed_in_frame(result.probability, view, shape), placed_in_frame(result.mask, view, shape))


def placed_in_frame(a: np.ndarray | None, view: slice, shape: tuple[int, int]) -> np.ndarray | None:
    """A map of a frame's view (the columns ``view`` of a frame of ``shape``, :func:`analyze_frame`) in the whole
    frame: zero (no skin, no hair) outside the view; None stays None."""
    if a is None:
        return None
    out = np.zeros(shape, a.dtype)
    out[:, view] = a
    return out


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """An (M, N, 3) uint8 view of a grey/RGB(A) array of any numeric dtype.

    Floats are read as 0-1 when no value exceeds 1 by more than rounding (1.05), else as 0-255; unsigned
    integers by the bit depth their largest value needs (at least 8). Refused, with the fix: another shape,
    an empty array, non-finite or negative values, and other dtypes (bool, strings, objects).
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected an (M, N) grey, (M, N, 1), (M, N, 3) RGB or (M, N, 4) RGBA image array, "
                         f"got shape {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"expected a numeric image array (uint8, uint16, int or float), got dtype {a.dtype}")
    if a.size == 0:
        raise UnusableImageError(f"image is {a.shape[1]} x {a.shape[0]} px: an empty array holds nothing to measure")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = int(np.count_nonzero(~np.isfinite(a).all(axis=2)))
        raise ValueError(f"image has {bad} pixels that are NaN or infinite; fill or crop them before measuring")
    if a.min() < 0:
        raise ValueError(f"image has negative values (down to {a.min()}); give it as 0-255, 0-1 or unsigned counts")
    if a.dtype.kind == "f":
        hi = 1.0 if a.max() <= 1.05 else 255.0
        return np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
    hi = max(255, int(a.max()))
    bits = int(np.ceil(np.log2(hi + 1)))
    return (a.astype(np.float64) / (2 ** bits - 1) * 255.0 + 0.5).astype(np.uint8)
