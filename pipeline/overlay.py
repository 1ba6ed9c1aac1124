"""Overlay picture of a measured frame: every counted hair with its id, coloured by class."""
from __future__ import annotations

import cv2
import numpy as np

#: RGB colour per thickness class ("" = no calibration).
CLASS_COLOURS = {
    "vellus": (255, 220, 0),
    "intermediate": (255, 128, 0),
    "terminal": (0, 230, 90),
    "": (0, 200, 255),
}


def draw_overlay(image: np.ndarray, result, *, settings=None) -> np.ndarray:
    """Draw the counted hairs of ``result`` on a copy of ``image``.

    Parameters
    ----------
    image : ndarray of uint8, shape (M, N, 3)
        The RGB frame that was measured.
    result : FrameResult
        Output of :func:`pipeline.core.analyze_frame`.
    settings : Settings, optional
        Unused; accepted for a uniform signature.

    Returns
    -------
    ndarray of uint8, shape (M, N, 3)
        Centre lines coloured by class (vellus yellow, intermediate orange,
        terminal green), a ring at each emergence point, the hair id next
        to it; non-skin regions (text, overlays, glare) dimmed.
    """
    out = image.copy()
    if result.valid is not None:
        dim = ~result.valid
        out[dim] = (out[dim] * 0.4).astype(np.uint8)
    m, n = out.shape[:2]
    thick = max(1, int(round(min(m, n) / 400)))
    font = max(0.4, min(m, n) / 1400)
    hairs = result.hairs
    at = (hairs[["row", "col"]].to_numpy(float) if {"row", "col"} <= set(hairs.columns)  # the emergence points
          else np.full((len(hairs), 2), np.nan))
    for k, path in enumerate(result.paths):
        cls = str(hairs["class"].iloc[k]) if k < len(hairs) else ""
        colour = CLASS_COLOURS.get(cls if cls in CLASS_COLOURS else "", (0, 200, 255))
        pts = np.round(path[:, ::-1]).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], False, colour, thick, cv2.LINE_AA)
        row, col = at[k] if k < len(at) and np.isfinite(at[k]).all() else path[0]  # else the line's start
        root = (int(round(col)), int(round(row)))
        cv2.circle(out, root, 3 * thick + 2, (255, 255, 255), thick, cv2.LINE_AA)
        label = str(int(hairs["hair_id"].iloc[k])) if k < len(hairs) else str(k)
        org = (root[0] + 4 * thick, root[1] - 4 * thick)
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, font, colour, thick, cv2.LINE_AA)
    _legend(out, result, font, thick)
    return out


def _legend(out: np.ndarray, result, font: float, thick: int) -> None:
    """Count and density in the lower-left corner."""
    m = result.metrics
    text = f"hairs {m.get('hair_count', 0)}"
    dens = m.get("density_per_cm2")
    if dens is not None and np.isfinite(dens):
        text += f"  {dens:.0f}/cm2"
        mean = m.get("mean_thickness_um")
        if mean is not None and np.isfinite(mean):
            text += f"  mean {mean:.0f} um"
    org = (8, out.shape[0] - 10)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), thick, cv2.LINE_AA)
