"""Agreement with manual counts on real frames (../shared/data, evaluation only).

The data lives outside the project and is never copied into it; outside the
team it does not exist and these tests skip, saying why.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.core import analyze_frame
from pipeline.evaluate import lins_ccc, read_voc, subject_half

FDU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fdu_val"
needs_fdu = pytest.mark.skipif(
    not (FDU / "images").is_dir(),
    reason=f"real evaluation frames not found at {FDU} (team-only data; see README 'Accuracy')",
)


def _frames(half: str, step: int):
    images = sorted((FDU / "images").glob("*.jpg"))
    return [p for p in images if subject_half(p.stem) == half][::step]


@needs_fdu
def test_counts_agree_with_manual_counts_on_held_out_real_frames():
    """Half B (never used for tuning), every 4th frame: MAPE and Lin's CCC."""
    pred, true = [], []
    for path in _frames("B", 2):
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        pred.append(analyze_frame(img, um_per_px=2.78).metrics["hair_count"])
        true.append(read_voc(FDU / "annotations" / f"{path.stem}.xml").true_count)
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    mape = float(np.mean(np.abs(pred - true) / true) * 100)
    assert len(pred) >= 80
    assert mape <= 25.0, f"count MAPE {mape:.1f}% on {len(pred)} held-out real frames"
    assert lins_ccc(pred, true) >= 0.5


@needs_fdu
def test_scale_of_real_frames_gives_terminal_shafts():
    """At 2.78 µm/px the clipped donor-area hairs are mostly terminal (> 60 µm)."""
    widths = []
    for path in _frames("B", 20):
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        widths.extend(analyze_frame(img, um_per_px=2.78).hairs["thickness_um"].tolist())
    assert 50.0 <= float(np.median(widths)) <= 110.0
