"""Quality gate of one frame: focus, exposure, glare, usable skin.

Pure: an RGB frame and its skin mask in, a dict of measures and flags out.
A flagged frame keeps its measurements (``images.csv``) but is left out of
course comparisons unless forced.

Measures (columns of ``images.csv``)
------------------------------------
``focus_score``
    Variance of the Laplacian of the grey frame divided by its squared mean
    (a normalised Laplacian variance, Pech-Pacheco et al. 2000,
    doi:10.1109/ICPR.2000.903548), on skin pixels, after resampling the
    frame to 5 µm/px so that one threshold serves every magnification.
``overexposed_pct`` / ``underexposed_pct``
    Share of field pixels with a channel at 250+ / all channels at 10 or less.
``glare_pct``
    Share of field pixels that are near-white and colourless (specular glare).
``skin_pct``
    Share of the frame that is usable skin (not overlays, text, strips, glare); of a pillarboxed frame, the
    share of its view (:func:`pipeline.segment.view_columns`: the bars are not part of the photograph).
``quality_flags``
    ``;``-joined names of the failed checks: ``blurred``, ``overexposed``,
    ``underexposed``, ``glare``, ``little_skin``; empty when all pass.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pipeline.segment import channel_max, channel_min
from pipeline.settings import Settings

QUALITY_COLUMNS = ["focus_score", "overexposed_pct", "underexposed_pct", "glare_pct", "skin_pct", "quality_flags"]
FOCUS_UM_PER_PX = 5.0


def focus_score(image: np.ndarray, valid: np.ndarray | None = None, *, um_per_px: float) -> float:
    """Normalised Laplacian variance at 5 µm/px on skin pixels (dimensionless).

    Parameters
    ----------
    image : ndarray, shape (M, N, 3), uint8
    valid : ndarray of bool, shape (M, N), optional
        Skin pixels; overlays and text would otherwise read as sharp.
    um_per_px : float
        Pixel size of ``image`` (µm/px).
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    f = float(um_per_px) / FOCUS_UM_PER_PX
    if abs(f - 1) > 0.05:
        size = (max(8, round(grey.shape[1] * f)), max(8, round(grey.shape[0] * f)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        if valid is not None:
            valid = cv2.resize(valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    keep = np.ones(grey.shape, bool) if valid is None else cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if keep.sum() < 100:
        return float("nan")
    mean = float(grey[keep].mean())
    return float(lap[keep].var() / max(mean, 1.0) ** 2 * 1e3)


def _run(selected: np.ndarray) -> slice | np.ndarray:
    """A bool selection along one axis as a slice when what it selects is one run (a view where indexing by
    the bools copies the frame), else itself."""
    if selected.dtype != bool:
        return selected
    at = np.flatnonzero(selected)
    return slice(at[0], at[-1] + 1) if len(at) and at[-1] - at[0] + 1 == len(at) else selected


def assess(image: np.ndarray, valid: np.ndarray, field_rows: np.ndarray, *, um_per_px: float,
           settings: Settings = Settings()) -> dict[str, Any]:
    """Quality measures and flags of one frame (see the module doc).

    Parameters
    ----------
    image : ndarray, shape (M, N, 3), uint8
    valid : ndarray of bool, shape (M, N)
        Usable skin pixels.
    field_rows : ndarray of bool, shape (M,)
        Rows of the counting field (frame minus header/padding strips). Exposure and glare are read over
        these rows and the columns that hold any skin (a pillarboxed frame's black side bars are not
        underexposed skin).
    um_per_px : float
        Pixel size, or the assumed one without calibration (µm/px).
    settings : Settings
        ``min_focus_score``, ``max_overexposed_pct``, ``max_underexposed_pct``,
        ``max_glare_pct``, ``min_skin_pct``.
    """
    cols = valid.any(axis=0)  # side bars (and columns with no skin at all) are no field
    field = image[_run(field_rows)][:, _run(cols) if cols.any() else slice(None)]
    n = max(1, field.shape[0] * field.shape[1])
    hi, lo = channel_max(field), channel_min(field)
    over = 100.0 * np.count_nonzero(hi >= 250) / n
    under = 100.0 * np.count_nonzero(hi <= 10) / n
    glare = 100.0 * np.count_nonzero((lo >= 235) & (hi - lo < 20)) / n  # 8-bit: the max is never below the min
    skin = 100.0 * float(valid.mean())
    focus = focus_score(image, valid, um_per_px=um_per_px)
    flags = [name for name, bad in (
        ("blurred", not (focus >= settings.min_focus_score)),
        ("overexposed", over > settings.max_overexposed_pct),
        ("underexposed", under > settings.max_underexposed_pct),
        ("glare", glare > settings.max_glare_pct),
        ("little_skin", skin < settings.min_skin_pct),
    ) if bad]
    return {"focus_score": round(focus, 4), "overexposed_pct": round(over, 3), "underexposed_pct": round(under, 3),
            "glare_pct": round(glare, 3), "skin_pct": round(skin, 2), "quality_flags": ";".join(flags)}
