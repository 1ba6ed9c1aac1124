"""Shared fixtures: a fake per-frame core with known answers, and tiny image folders.

``fake_analyze_frame`` is module-level so that worker processes (spawned by
``run_batch(workers>1)``) can unpickle it by name: ``run_batch`` hands the
function it finds at ``pipeline.core.analyze_frame`` to its workers.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline import core

DARK_LEVEL = 60
SKIN_LEVEL = 200


def fake_analyze_frame(image, *, um_per_px, settings=None):
    """Known answers: one hair per 1000 dark pixels (grey mean < 128).

    Hair ``i`` (1-based) sits at row ``i``, col ``2 i``; it is 100 px long
    and 10 px thick, unit ``(i + 1) // 2``; class 'intermediate'.
    """
    grey = image.astype(np.float64).mean(axis=2)
    count = int((grey < 128).sum()) // 1000
    scale = np.nan if um_per_px is None else float(um_per_px)
    ids = np.arange(1, count + 1)
    hairs = pd.DataFrame({
        "hair_id": ids, "unit_id": (ids + 1) // 2, "row": ids, "col": 2 * ids,
        "length_um": 100 * scale, "thickness_um": 10 * scale, "class": "intermediate",
        "length_px": 100.0, "thickness_px": 10.0, "touches_border": False, "root_known": True,
    }, columns=core.HAIR_COLUMNS)
    area_cm2 = image.shape[0] * image.shape[1] * scale**2 * 1e-8
    units = int((count + 1) // 2)
    metrics = {c: np.nan for c in core.METRIC_COLUMNS}
    metrics.update(
        um_per_px=scale, area_cm2=area_cm2, hair_count=count, density_per_cm2=count / area_cm2,
        mean_thickness_um=10 * scale if count else np.nan, median_thickness_um=10 * scale if count else np.nan,
        vellus_count=0, intermediate_count=count, terminal_count=0,
        cumulative_thickness_mm_per_cm2=count * 10 * scale / 1000 / area_cm2,
        follicular_units=units, hairs_per_unit=count / units if units else np.nan, note="",
    )
    return core.FrameResult(hairs=hairs, metrics=metrics)


def dying_analyze_frame(image, *, um_per_px, settings=None):
    """As :func:`fake_analyze_frame`, but the process dies (as if killed out of memory) on a frame of 5 hairs."""
    if int((image.astype(np.float64).mean(axis=2) < 128).sum()) // 1000 == 5:
        os._exit(3)
    return fake_analyze_frame(image, um_per_px=um_per_px, settings=settings)


@pytest.fixture
def fake_core(monkeypatch):
    """Replace the per-frame core with ``fake_analyze_frame``."""
    monkeypatch.setattr(core, "analyze_frame", fake_analyze_frame)
    return fake_analyze_frame


def frame_with_hairs(n_hairs: int, *, shape=(100, 100)) -> np.ndarray:
    """RGB skin-coloured frame whose first ``10 * n_hairs`` rows are dark (1000 dark px per hair)."""
    image = np.full((*shape, 3), SKIN_LEVEL, dtype=np.uint8)
    image[: 10 * n_hairs] = DARK_LEVEL
    return image


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")
    return path


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, keyed by relative path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def good_folder(tmp_path) -> Path:
    """Folder of 9 PNGs, ``img_k.png`` holding ``k`` hairs for k = 0..8."""
    folder = tmp_path / "in"
    for k in range(9):
        write_png(folder / f"img_{k}.png", frame_with_hairs(k))
    return folder
