"""The Python API: the CLI's three jobs as functions returning tables.

Every table has the columns of the matching CSV (``images.csv``,
``hairs.csv``, ``sessions.csv``, ``changes.csv``, ``summary.csv``), so a
notebook and a batch run can be compared line by line.

Examples
--------
A generated phantom frame, measured in memory:

>>> import numpy as np
>>> from pipeline.synth import render_frame, sample_scene
>>> rng = np.random.default_rng(5)
>>> image, truth = render_frame(sample_scene(rng, height=480, width=640, um_per_px=2.78), rng)
>>> res = analyze_image(image, um_per_px=truth["um_per_px"])
>>> list(res.images.columns[:4])
['image', 'um_per_px', 'area_cm2', 'hair_count']
>>> int(res.images.loc[0, "hair_count"]) == len(res.hairs)
True
>>> res.images.loc[0, "calibration_source"]
'cli'
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline.course import CourseSettings, compare_course
from pipeline.settings import Settings

__all__ = ["CourseComparison", "FolderAnalysis", "ImageAnalysis", "analyze_folder", "analyze_image", "compare"]


@dataclass
class ImageAnalysis:
    """One frame's result.

    Attributes
    ----------
    images : DataFrame
        One row, the ``images.csv`` columns.
    hairs : DataFrame
        One row per counted hair, the ``hairs.csv`` columns.
    result : pipeline.core.FrameResult or None
        The core's full result (centre lines, masks), None when the frame failed.
    overlay : ndarray of uint8, shape (M, N, 3) or None
        The overlay picture (every counted hair drawn with its id).
    """

    images: pd.DataFrame
    hairs: pd.DataFrame
    result: object | None = None
    overlay: np.ndarray | None = None


@dataclass
class FolderAnalysis:
    """A batch run's tables (read back from its CSV files) and where it wrote them."""

    images: pd.DataFrame
    hairs: pd.DataFrame
    out_dir: Path
    summary: object


@dataclass
class CourseComparison:
    """``tricho compare``'s tables: ``sessions``, ``changes``, ``summary``, ``left_out``, ``repeatability``,
    and, when the same spot was matched across visits, ``field_pairs`` and ``matches``."""

    sessions: pd.DataFrame
    changes: pd.DataFrame
    summary: pd.DataFrame
    left_out: pd.DataFrame
    repeatability: pd.DataFrame
    field_pairs: pd.DataFrame = field(default_factory=pd.DataFrame)
    matches: pd.DataFrame = field(default_factory=pd.DataFrame)


def analyze_image(image: str | os.PathLike | np.ndarray, *, um_per_px: float | None = None,
                  settings: Settings = Settings(), name: str | None = None) -> ImageAnalysis:
    """Measure one frame given as a file or as an RGB array.

    Parameters
    ----------
    image : path or ndarray, shape (M, N, 3) or (M, N)
        A file is read (and calibrated: DICOM, scale bar) as in a batch; an
        array is measured as it is.
    um_per_px : float, optional
        Pixel size (µm/px) when the file gives none (the CLI's ``--um-per-px``).
    settings : Settings
    name : str, optional
        The ``image`` column (default: the file name, or ``"array"``).
    """
    from pipeline import batch, core, overlay

    um_per_px = core.check_um_per_px(um_per_px)
    if not isinstance(image, (str, os.PathLike)):
        return _analyze_array(np.asarray(image), um_per_px=um_per_px, settings=settings, name=name or "array")
    path = Path(image)
    key = name or path.name
    seen: dict[str, object] = {}

    def analyze(frame: np.ndarray, **kwargs):  # keep the frame as read and its result for the overlay
        seen["image"], seen["result"] = frame, core.analyze_frame(frame, **kwargs)
        return seen["result"]

    res = batch._process_frame(0, str(path), {"cli": um_per_px}, settings, None, analyze, overlay.draw_overlay)
    res["sha256"] = _sha(path)
    images, hairs = batch._tables([batch.Frame(path=path, key=key)], [res])
    if res["status"] != "ok":
        return ImageAnalysis(images, hairs)
    result = seen["result"]
    return ImageAnalysis(images, hairs, result, overlay.draw_overlay(seen["image"], result, settings=settings))


def _sha(path: Path) -> str | None:
    from pipeline.imageio import file_sha256

    try:
        return file_sha256(path)
    except OSError:
        return None


def _analyze_array(image: np.ndarray, *, um_per_px: float | None, settings: Settings, name: str) -> ImageAnalysis:
    from pipeline import batch, core, overlay

    rgb = core.as_rgb8(image)
    result = core.analyze_frame(rgb, um_per_px=um_per_px, settings=settings)
    res = {"index": 0, "metrics": dict(result.metrics), "hairs": pd.DataFrame(result.hairs), "status": "ok",
           "error": "", "traceback": None, "sha256": None, "width_px": rgb.shape[1], "height_px": rgb.shape[0],
           "um_per_px": um_per_px, "calibration_source": "cli" if um_per_px else "none", "file_metadata": {}}
    images, hairs = batch._tables([batch.Frame(path=Path(name), key=name)], [res])
    return ImageAnalysis(images, hairs, result, overlay.draw_overlay(rgb, result, settings=settings))


def analyze_folder(inputs: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike | None = None,
                   *, um_per_px: float | None = None, workers: int = 1, settings: Settings = Settings(),
                   overlays: bool = True, **kwargs) -> FolderAnalysis:
    """Run a batch (as ``tricho analyze``) and return its tables.

    ``out`` defaults to a new temporary folder; other keyword arguments go
    to :func:`pipeline.batch.run_batch` (``db``, ``scheduler``, ``pseudonymize``).
    """
    from pipeline.batch import run_batch

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="tricho_"))
    summary = run_batch(list(inputs), out_dir, um_per_px=um_per_px, workers=workers, settings=settings,
                        overlays=overlays, progress=False, **kwargs)
    kinds = {"patient_id": str, "site": str, "session_date": str, "field_id": str, "quality_flags": str}
    images = pd.read_csv(out_dir / "images.csv", dtype=kinds, keep_default_na=False, na_values=[""])
    hairs = pd.read_csv(out_dir / "hairs.csv")
    return FolderAnalysis(images, hairs, out_dir, summary)


def compare(results: FolderAnalysis | str | os.PathLike | tuple[pd.DataFrame, pd.DataFrame], *,
            settings: CourseSettings = CourseSettings(), match: bool = True) -> CourseComparison:
    """Compare sessions per patient and site (as ``tricho compare``).

    ``results``: a :class:`FolderAnalysis`, an analysis output folder, or
    an ``(images, hairs)`` pair of tables.  With ``match`` (default) and a
    run folder to read the frames from (the first two forms), fields that
    share a ``field_id`` across sessions are registered and their hairs
    matched, as ``tricho compare`` does (:func:`pipeline.course_io.match_fields`);
    a pair of tables alone is compared pooled.
    """
    from pipeline.course_io import _check_usable, _read, match_fields

    folder = None
    if isinstance(results, FolderAnalysis):
        (images, hairs), label, folder = (results.images, results.hairs), results.out_dir, results.out_dir
    elif isinstance(results, tuple):
        (images, hairs), label = results, Path("the (images, hairs) tables")
    else:
        images, hairs = _read(Path(results) / "images.csv"), _read(Path(results) / "hairs.csv")
        label = folder = Path(results)
    _check_usable(images, settings, label)
    pairs, matches = (match_fields(images, hairs, Path(folder), settings) if match and folder is not None
                      else (pd.DataFrame(), pd.DataFrame()))
    tables = compare_course(images, hairs, settings, field_pairs=pairs if len(pairs) else None)
    return CourseComparison(**tables, field_pairs=pairs, matches=matches)
