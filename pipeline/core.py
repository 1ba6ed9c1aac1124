"""The per-frame core: pixels and pixel size in, tables out.

``analyze_frame`` is a pure function of (image, pixel size, settings): it
reads no file and writes nothing.  The batch layer (``pipeline.batch``) is
the only place that touches files, workers and progress.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.settings import Settings

#: Columns of the per-hair table, in contract order (``hairs.csv``).
HAIR_COLUMNS = [
    "hair_id", "unit_id", "row", "col", "length_um", "thickness_um", "class",
    "length_px", "thickness_px", "touches_border", "root_known",
]

#: Per-frame metric columns, in contract order (``images.csv``).
METRIC_COLUMNS = [
    "um_per_px", "area_cm2", "hair_count", "density_per_cm2",
    "mean_thickness_um", "median_thickness_um",
    "vellus_count", "intermediate_count", "terminal_count",
    "vellus_share_pct", "intermediate_share_pct", "terminal_share_pct",
    "cumulative_thickness_mm_per_cm2", "follicular_units", "hairs_per_unit",
    "units_per_cm2", "single_hair_unit_share_pct", "note",
]


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
