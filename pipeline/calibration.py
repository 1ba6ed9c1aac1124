"""Pixel size (µm/px) of a frame, from the most trusted source there is.

Order of trust (``calibration_source`` names the one used):

1. ``manifest`` — the manifest's ``um_per_px`` cell for the frame;
2. ``dicom`` — the DICOM file's Pixel Spacing (0028,0030) or Imager Pixel Spacing;
3. ``scale_bar`` — an L-shaped bar burned into the frame, its legs read as
   ``Settings.scale_bar_um`` long (the devices we know label it "1.0 mm");
4. ``device`` — a named device profile (``devices.csv`` shipped with the
   package, or the user's own table): µm/px at the device's native width,
   rescaled to the frame's width;
5. ``cli`` — ``tricho analyze --um-per-px``;
6. ``none`` — counts only; no µm, area or density.
"""
from __future__ import annotations

import csv
import functools
import math
from importlib import resources
from pathlib import Path

import numpy as np

from pipeline import segment

__all__ = ["DeviceProfile", "device_profiles", "device_um_per_px", "resolve_um_per_px", "scale_bar_um_per_px"]


def scale_bar_um_per_px(image: np.ndarray, *, bar_um: float = 1000.0, leg_tolerance: float = 0.03) -> float | None:
    """Pixel size read from an L-shaped scale bar burned into the frame.

    Parameters
    ----------
    image : ndarray, shape (M, N, 3), uint8
    bar_um : float
        Length each leg stands for (µm); "1.0 mm" on the devices we know.
    leg_tolerance : float
        The two legs of the L are equal; when the detected lengths differ by
        more than this fraction (a leg hidden by hair or lost on light skin)
        the bar is not trusted and the next source of calibration is used:
        an 18% error in pixel size is a 40% error in density.

    Returns
    -------
    float or None
        ``bar_um`` / (mean leg length in pixels), or None without a
        trustworthy bar.
    """
    found = segment.find_scale_bar(image)
    if found is None:
        return None
    _, horizontal, vertical = found
    longer = max(horizontal, vertical)
    if longer <= 0 or abs(horizontal - vertical) > leg_tolerance * longer:
        return None
    return bar_um / ((horizontal + vertical) / 2)


class DeviceProfile(dict):
    """One row of a device table: ``device``, ``um_per_px``, ``native_width_px``, ``note``."""


@functools.lru_cache(maxsize=8)
def device_profiles(table: str | None = None) -> dict[str, DeviceProfile]:
    """Device profiles by lower-case name, from ``table`` (CSV) or the shipped ``devices.csv``.

    Raises
    ------
    ValueError
        A row without a positive ``um_per_px`` or ``native_width_px``, naming
        the file and line.
    """
    if table is None:
        text = resources.files("pipeline").joinpath("devices.csv").read_text(encoding="utf-8")
        source = "pipeline/devices.csv"
    else:
        text, source = Path(table).read_text(encoding="utf-8"), str(table)
    out: dict[str, DeviceProfile] = {}
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for n, row in enumerate(csv.DictReader(lines), start=2):
        try:
            um, width = float(row["um_per_px"]), float(row["native_width_px"])
            if not (um > 0 and width > 0 and math.isfinite(um) and math.isfinite(width)):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{source} row {n}: needs columns device, um_per_px, native_width_px with "
                             "positive numbers") from None
        out[row["device"].strip().lower()] = DeviceProfile(device=row["device"].strip(), um_per_px=um,
                                                           native_width_px=width, note=row.get("note", ""))
    return out


def device_um_per_px(device: str, width_px: int, *, table: str | None = None) -> float | None:
    """Pixel size of a frame ``width_px`` wide from a named device (None if unknown).

    ``width_px`` is the frame's long side: a device's ``native_width_px`` is
    its image's width as it records it (landscape), and a frame turned
    upright by its EXIF orientation has the same pixels on its height.
    """
    prof = device_profiles(table).get(str(device).strip().lower())
    if prof is None or width_px <= 0:
        return None
    return prof["um_per_px"] * prof["native_width_px"] / float(width_px)


def resolve_um_per_px(
    image: np.ndarray,
    *,
    manifest: float | None = None,
    dicom: float | None = None,
    device: str | None = None,
    cli: float | None = None,
    bar_um: float = 1000.0,
    read_bar: bool = True,
    devices_table: str | None = None,
) -> tuple[float | None, str, str]:
    """The pixel size to use for a frame, its source and a note.

    Returns
    -------
    (um_per_px, source, note)
        ``source`` is one of ``manifest``, ``dicom``, ``scale_bar``,
        ``device``, ``cli``, ``none``; ``note`` says what a person should
        know (an unknown device name, a scale bar that disagrees).
    """
    if manifest is not None:
        return float(manifest), "manifest", ""
    if dicom is not None:
        return float(dicom), "dicom", ""
    note = ""
    if read_bar:
        bar = scale_bar_um_per_px(image, bar_um=bar_um)
        if bar is not None:
            return bar, "scale_bar", ""
    if device:
        um = device_um_per_px(device, max(image.shape[:2]), table=devices_table)  # long side: EXIF may turn a frame
        if um is not None:
            return um, "device", ""
        known = ", ".join(sorted(p["device"] for p in device_profiles(devices_table).values()))
        note = f"device {device!r} not in the device table ({known}); add it or give um_per_px"
    if cli is not None:
        return float(cli), "cli", note
    return None, "none", note
