"""The one batch layer: files, manifests, workers, progress and outputs.

Everything that touches the file system around the per-frame core lives here
(after skan's ``pipe.process_images``): ``collect_inputs`` turns files,
folders and ``manifest.csv`` files into a list of ``Frame``; ``run_batch``
reads each frame, runs ``pipeline.core.analyze_frame`` and
``pipeline.overlay.draw_overlay`` in-process or in worker processes, and
writes the run's outputs:

``OUT/images.csv``
    One row per frame, columns ``image_columns(...)`` (see ``LEAD_IMAGE_COLUMNS``).
``OUT/hairs.csv``
    One row per counted hair, columns ``hair_columns()``.
``OUT/overlays/<image key, '/' -> '__', extension .png>``
    The frame with every counted hair drawn.
``OUT/run.json``
    Package version, settings and digest, options, timings, environment.
``OUT/errors.log``
    Tracebacks of unexpected (internal) errors, only when there were any.

A failure in one frame never stops the batch: it becomes that frame's row
with ``status='error'`` and a one-line ``error`` a person can act on.
``BatchError`` is raised only when the batch cannot run at all (no inputs,
unreadable manifest, bad options), before any frame is processed.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import multiprocessing
import numbers
import os
import posixpath
import pickle
import platform
import statistics
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

import pipeline
from pipeline import calibration as _calibration
from pipeline import core as _core
from pipeline import overlay as _overlay
from pipeline.course import iso_date
from pipeline.imageio import (IMAGE_EXTENSIONS, OTHER_PHOTO_EXTENSIONS, ImageReadError, dicom_patient_id,
                              file_sha256, is_dicom, read_frame)
from pipeline.settings import Settings
from pipeline.store import ResultStore, StoreError, code_digest, default_url, result_key

__all__ = [
    "BatchError", "BatchSummary", "Frame", "MANIFEST_NAME", "NO_CALIBRATION_NOTE",
    "collect_inputs", "hair_columns", "image_columns", "overlay_name", "read_manifest", "run_batch",
]

MANIFEST_NAME = "manifest.csv"
#: Manifest columns with a meaning; any other column is carried into images.csv as is.
MANIFEST_META_COLUMNS = ["patient_id", "site", "session_date", "field_id", "device"]
NO_CALIBRATION_NOTE = "no pixel size: give --um-per-px or a manifest um_per_px column"

#: First columns of images.csv, in contract order.
LEAD_IMAGE_COLUMNS = [
    "image", "um_per_px", "area_cm2", "hair_count", "density_per_cm2",
    "mean_thickness_um", "median_thickness_um", "vellus_count", "intermediate_count",
    "terminal_count", "cumulative_thickness_mm_per_cm2", "follicular_units",
    "hairs_per_unit", "status", "error",
]
TAIL_IMAGE_COLUMNS = ["calibration_source", "sha256", "width_px", "height_px"]
#: First columns of hairs.csv, in contract order.
LEAD_HAIR_COLUMNS = ["image", "hair_id", "unit_id", "row", "col", "length_um", "thickness_um", "class"]
_INT_COLUMNS = {
    "hair_count", "vellus_count", "intermediate_count", "terminal_count",
    "follicular_units", "width_px", "height_px", "hair_id", "unit_id",
}


class BatchError(Exception):
    """The batch cannot run at all (bad inputs or options); the text says why and what to do."""


@dataclass(frozen=True)
class Frame:
    """One image to analyse.

    Attributes
    ----------
    path : pathlib.Path
        The image file.
    key : str
        Image key: path relative to its input folder, posix separators (the
        file name for a file given directly). The ``image`` column.
    metadata : dict
        Manifest columns other than ``image`` and ``um_per_px`` (strings).
    um_per_px : float or None
        Pixel size from the manifest (µm/px), if it gave one.
    error : str or None
        A problem known before reading (bad manifest row, listed file
        missing): the frame becomes an error row without being read.
    notes : tuple of str
        Warnings carried into the ``note`` column (e.g. not in the manifest).
    layout : str
        For a folder without manifest: ``"fits"`` when the path follows
        ``PATIENT/SESSION_DATE/SITE[_FIELD].ext`` (metadata taken from it),
        ``"misfit"`` otherwise; ``""`` for manifest rows and files.
    """

    path: Path
    key: str
    metadata: dict[str, Any] = field(default_factory=dict)
    um_per_px: float | None = None
    error: str | None = None
    notes: tuple[str, ...] = ()
    layout: str = ""


@dataclass
class BatchSummary:
    """What a run did. ``exit_code``: 0 no frame failed, 1 some frames failed.

    ``n_skipped``: frames with the same bytes as an earlier one (measured
    once); ``n_flagged``: ok frames that failed a quality check;
    ``n_reused``: frames whose stored result was reused, not measured again.
    """

    n_frames: int
    n_ok: int
    n_error: int
    out_dir: Path
    seconds: float
    n_hairs: int = 0
    mean_density_per_cm2: float | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)
    n_internal_errors: int = 0
    n_skipped: int = 0
    n_flagged: int = 0
    n_reused: int = 0

    @property
    def exit_code(self) -> int:
        return 0 if self.n_error == 0 else 1


# --------------------------------------------------------------------------- inputs


def collect_inputs(inputs: Sequence[str | os.PathLike], *, out_dir: str | os.PathLike | None = None) -> list[Frame]:
    """Turn files and folders into the ordered list of frames to analyse.

    Parameters
    ----------
    inputs : sequence of path
        Files are taken as given, whatever their extension (a file that is not
        an image gets an error row); a ``.csv`` file is read as a manifest of
        its folder. Folders are walked recursively for ``IMAGE_EXTENSIONS``
        and ``OTHER_PHOTO_EXTENSIONS`` (case-insensitive) and for DICOM files
        without an extension, in sorted order, skipping hidden entries,
        ``out_dir`` and the output folders of earlier runs (:func:`is_run_folder`). A ``manifest.csv`` at the top of a folder lists its
        frames (see ``read_manifest``); images in the folder but not in the
        manifest are still processed, with a note.
    out_dir : path, optional
        Output folder, skipped while walking.

    Returns
    -------
    list of Frame
        Deterministic order: inputs in the order given; within a folder the
        manifest order, then unlisted images sorted by key. A file reached
        twice is kept once; clashing keys from different inputs are prefixed
        with the input folder's name.

    Raises
    ------
    BatchError
        An input does not exist, or a manifest cannot be read at all.
    """
    skip = Path(out_dir).resolve() if out_dir is not None else None
    frames: list[Frame] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise BatchError(f"input not found: {path}; check the path (give image files or folders)")
        if path.is_dir():
            found = _folder_frames(path, skip)
        elif path.suffix.lower() == ".csv":
            found = _manifest_frames(path, path.parent, skip)
        else:
            found = [Frame(path=path, key=path.name)]
        frames.extend(_prefix_clashes(found, frames, path))
    return _drop_repeats(frames)


def _folder_frames(folder: Path, skip: Path | None) -> list[Frame]:
    if skip is not None and folder.resolve() == skip:
        raise BatchError(f"the output folder {folder} is also an input folder; choose another --out")
    manifest = folder / MANIFEST_NAME
    if manifest.is_file():
        return _manifest_frames(manifest, folder, skip)
    frames = []
    for p in _walk_images(folder, skip):
        meta = layout_metadata(_key(p, folder))
        frames.append(Frame(path=p, key=_key(p, folder), metadata=meta, layout="fits" if meta else "misfit"))
    return frames


def layout_metadata(key: str) -> dict[str, str]:
    """Metadata from the folder layout ``PATIENT/SESSION_DATE/SITE[_FIELD].ext``.

    ``SESSION_DATE`` is ``YYYY-MM-DD`` or ``YYYYMMDD`` (written ISO);
    ``_FIELD`` is a trailing ``_`` + digits. A key that does not fit gives ``{}``.

    Examples
    --------
    >>> layout_metadata("P007/2026-03-01/vertex_2.jpg")
    {'patient_id': 'P007', 'session_date': '2026-03-01', 'site': 'vertex', 'field_id': '2'}
    >>> layout_metadata("scan_001.jpg")
    {}
    """
    parts = PurePosixPath(key).parts
    if len(parts) < 3:
        return {}
    patient, session, name = parts[-3], parts[-2], PurePosixPath(parts[-1]).stem
    date = iso_date(session)
    if date is None or not patient or not name:
        return {}
    site, _, field_id = name.rpartition("_")
    if not (site and field_id.isdigit()):
        site, field_id = name, ""
    out = {"patient_id": patient, "session_date": date, "site": site}
    if field_id:
        out["field_id"] = field_id
    return out


def _walk_images(folder: Path, skip: Path | None) -> list[Path]:
    """Image files under ``folder``, recursively, sorted by posix key.

    Photos in formats not read (``OTHER_PHOTO_EXTENSIONS``: HEIC, camera raw, ...) are listed too, so
    each gets an error row saying how to export it instead of being left out unsaid.
    """
    wanted = IMAGE_EXTENSIONS | OTHER_PHOTO_EXTENSIONS.keys()
    found = []
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        dirs[:] = [d for d in dirs if not d.startswith(".") and (root_path / d).resolve() != skip
                   and not is_run_folder(root_path / d)]
        found += [root_path / f for f in files if not f.startswith(".") and
                  (Path(f).suffix.lower() in wanted or (_maybe_bare_dicom(f) and is_dicom(root_path / f)))]
    return sorted(found, key=lambda p: _key(p, folder))


def _maybe_bare_dicom(name: str) -> bool:
    """A name DICOM exports give files without an image extension: none (``IM000001``) or a UID's last part
    (``1.2.826.0.1.3680043.2.498.1``)."""
    suffix = Path(name).suffix
    return not suffix or suffix[1:].isdigit()


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` is the output of a ``tricho analyze`` run (its ``run.json`` and ``images.csv``):
    a walk skips it, so an earlier run kept beside the photos is not read as frames (its overlays)."""
    return (folder / "run.json").is_file() and (folder / "images.csv").is_file()


def _key(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def _manifest_frames(manifest: Path, folder: Path, skip: Path | None) -> list[Frame]:
    frames = read_manifest(manifest, folder)
    listed = {f.path.resolve() for f in frames}
    note = f"not listed in {manifest.name}: processed without its metadata or pixel size"
    extra = [
        Frame(path=p, key=_key(p, folder), notes=(note,))
        for p in _walk_images(folder, skip)
        if p.resolve() not in listed and p.resolve() != manifest.resolve()
    ]
    return frames + extra


def read_manifest(manifest: str | os.PathLike, folder: str | os.PathLike | None = None) -> list[Frame]:
    """Read a manifest CSV into frames, one per data row.

    Columns: ``image`` (required; path relative to ``folder``, default the
    manifest's folder), ``um_per_px`` (optional, µm/px, positive), and any
    others (``patient_id``, ``site``, ``session_date``, ``field_id``...)
    kept as text. Header names are matched after stripping spaces, and the
    known ones case-insensitively.

    A bad row (empty ``image``, bad ``um_per_px``, listed file missing,
    image listed twice) gives a frame with ``error`` naming the manifest and
    line; the other rows go on.

    Raises
    ------
    BatchError
        The file is not UTF-8 text, not parseable CSV, empty, or has no
        ``image`` column.
    """
    manifest = Path(manifest)
    folder = Path(folder) if folder is not None else manifest.parent
    header, rows = _read_manifest_rows(manifest)
    frames, seen = [], {}
    for line, row in rows:
        frame = _manifest_row_frame(manifest, folder, line, header, row, seen)
        frames.append(frame)
    return frames


def _read_manifest_rows(manifest: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    fix = "save it as comma-separated UTF-8 text with an 'image' column"
    try:
        with open(manifest, "r", encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, strict=True)
            records = []
            for cells in reader:
                if any(c.strip() for c in cells):
                    records.append((reader.line_num, cells))
    except UnicodeDecodeError as exc:
        raise BatchError(f"{manifest}: not UTF-8 text ({exc.reason} at byte {exc.start}); {fix}") from None
    except csv.Error as exc:
        raise BatchError(f"{manifest} line {reader.line_num}: not parseable as CSV ({exc}); {fix}") from None
    except OSError as exc:
        raise BatchError(f"{manifest}: cannot be read ({exc.strerror}); check its permissions") from None
    if not records:
        raise BatchError(f"{manifest}: empty manifest; {fix} and one row per image")
    header = [_canonical_column(c) for c in records[0][1]]
    if "image" not in header:
        raise BatchError(
            f"{manifest} line {records[0][0]}: no 'image' column (found: {', '.join(header) or 'nothing'}); "
            "name the column holding each image's path relative to the manifest's folder 'image'"
        )
    return header, records[1:]


def _canonical_column(name: str) -> str:
    name = name.strip()
    return name.lower() if name.lower() in {"image", "um_per_px", *MANIFEST_META_COLUMNS} else name


def _manifest_row_frame(
    manifest: Path, folder: Path, line: int, header: list[str], cells: list[str], seen: dict[str, int]
) -> Frame:
    where = f"{manifest} line {line}"
    values = dict.fromkeys(header, "") | dict(zip(header, (c.strip() for c in cells)))
    image = values.pop("image", "").replace("\\", "/")
    raw_scale = values.pop("um_per_px", "")
    metadata = {k: v for k, v in values.items() if k}
    if any(c.strip() for c in cells[len(header):]):
        return Frame(manifest, f"({manifest.name} line {line})", metadata,
                     error=f"{where}: {len(cells)} cells for {len(header)} columns; give every row one cell per header column")
    if not image:
        return Frame(manifest, f"({manifest.name} line {line})", metadata,
                     error=f"{where}: empty 'image' cell; write the image's path relative to {folder}")
    key = posixpath.normpath(str(PurePosixPath(image)))  # "sub/../a.png" is "a.png": one image, one row
    path = folder / key
    if key in seen:
        return Frame(path, key, metadata,
                     error=f"{where}: {key} is already listed on line {seen[key]}; keep one row per image")
    seen[key] = line
    scale, scale_error = _parse_um_per_px(raw_scale)
    if scale_error:
        return Frame(path, key, metadata, error=f"{where}: {scale_error}")
    metadata = _with_layout(key, metadata)
    if not path.is_file():
        return Frame(path, key, metadata, scale,
                     error=f"{where}: listed image {key} not found at {path}; fix the path in the manifest or add the file")
    return Frame(path, key, metadata, scale)


def _with_layout(key: str, metadata: dict[str, str]) -> dict[str, str]:
    """Manifest metadata over what the folder layout says (a non-empty manifest cell wins)."""
    merged = dict(layout_metadata(key))
    for k, v in metadata.items():
        if v or k not in merged:
            merged[k] = v
    return merged


def _parse_um_per_px(text: str) -> tuple[float | None, str | None]:
    if text == "":
        return None, None
    try:
        return _core.check_um_per_px(float(text)), None
    except ValueError:
        return None, (f"um_per_px {text!r} is not a pixel size (a positive number of micrometres per pixel, at "
                      f"most {_core.MAX_UM_PER_PX:g}); write it as e.g. 2.78 or leave the cell empty")


def _prefix_clashes(found: list[Frame], earlier: list[Frame], source: Path) -> list[Frame]:
    """Prefix keys that clash with earlier inputs' keys with this input's name."""
    taken = {f.key for f in earlier}
    resolved = {f.path.resolve() for f in earlier}
    out = []
    for f in found:
        if f.key in taken and f.path.resolve() not in resolved:
            name = source.resolve().name if source.is_dir() else source.resolve().parent.name
            f = Frame(f.path, f"{name}/{f.key}", f.metadata, f.um_per_px, f.error, f.notes, f.layout)
        out.append(f)
    return out


def _drop_repeats(frames: list[Frame]) -> list[Frame]:
    """Keep the first frame reaching a file (error rows are always kept)."""
    seen: set[Path] = set()
    out = []
    for f in frames:
        if f.error is None:
            real = f.path.resolve()
            if real in seen:
                continue
            seen.add(real)
        out.append(f)
    return out


# --------------------------------------------------------------------------- columns


def image_columns(metadata_columns: Iterable[str] = ()) -> list[str]:
    """Column order of images.csv for the given manifest metadata columns."""
    metric_rest = [c for c in _core.METRIC_COLUMNS if c not in LEAD_IMAGE_COLUMNS]
    fixed = LEAD_IMAGE_COLUMNS + metric_rest
    meta = list(dict.fromkeys(metadata_columns))
    ordered = [c for c in MANIFEST_META_COLUMNS if c in meta] + [c for c in meta if c not in MANIFEST_META_COLUMNS]
    return fixed + ordered + TAIL_IMAGE_COLUMNS


def hair_columns() -> list[str]:
    """Column order of hairs.csv."""
    return LEAD_HAIR_COLUMNS + [c for c in _core.HAIR_COLUMNS if c not in LEAD_HAIR_COLUMNS]


def overlay_name(key: str) -> str:
    """Overlay file name for an image key: '/' -> '__', extension '.png'."""
    return PurePosixPath(key.replace("/", "__")).with_suffix(".png").name


def overlay_names(keys: Iterable[str]) -> list[str]:
    """The overlay file of each image key, in a run's frame order (images.csv's rows): :func:`overlay_name`,
    with ``_2``, ``_3``, ... where two keys give one name (``visit.jpg`` and ``visit.png``)."""
    names, used = [], set()
    for key in keys:
        name = overlay_name(key)
        stem, n = name[:-4], 2
        while name in used:
            name, n = f"{stem}_{n}.png", n + 1
        used.add(name)
        names.append(name)
    return names


def _metadata_column_names(frames: list[Frame]) -> list[str]:
    """Manifest columns, renamed ``manifest_<name>`` where they clash with output columns."""
    reserved = set(image_columns())
    names = []
    for f in frames:
        names += [_meta_name(k, reserved) for k in f.metadata]
    return list(dict.fromkeys(names))


def _meta_name(name: str, reserved: set[str]) -> str:
    return f"manifest_{name}" if name in reserved else name


# --------------------------------------------------------------------------- one frame


def _process_frame(
    index: int,
    path: str,
    calibration: dict[str, Any],
    settings: Settings,
    overlay_path: str | None,
    analyze: Callable,
    draw: Callable,
) -> dict[str, Any]:
    """Read, calibrate, analyse and draw one frame. Module-level and plain-argument (spawn-safe).

    ``calibration`` holds the given inputs (``manifest``, ``device``, ``cli``);
    the pixel size is resolved here because the DICOM header and a burned-in
    scale bar are only known once the file is read
    (:func:`pipeline.calibration.resolve_um_per_px`).

    Never raises: an error becomes ``status='error'`` with a one-line message,
    and an unexpected one also carries its traceback.
    """
    start = time.perf_counter()
    out: dict[str, Any] = {"index": index, "metrics": {}, "hairs": None, "status": "ok", "error": "",
                           "traceback": None, "width_px": None, "height_px": None,
                           "um_per_px": None, "calibration_source": "none", "file_metadata": {}}
    try:
        image, info = read_frame(path)
        out["height_px"], out["width_px"] = int(image.shape[0]), int(image.shape[1])
        out["file_metadata"] = {k: v for k, v in info.items() if k != "um_per_px"}
        um, source, note = _calibration.resolve_um_per_px(
            image, manifest=calibration.get("manifest"), dicom=info.get("um_per_px"),
            device=calibration.get("device"), cli=calibration.get("cli"), bar_um=settings.scale_bar_um)
        out["um_per_px"], out["calibration_source"] = um, source
        try:
            _core.check_um_per_px(um)
        except ValueError as exc:
            raise _core.UnusableImageError(f"the pixel size from {source} is out of range: {exc}; check the "
                                           "calibration (a trichoscope frame is about 1-20 µm/px)") from None
        result = analyze(image, um_per_px=um, settings=settings)
        if overlay_path is not None:
            _save_png(draw(image, result, settings=settings), Path(overlay_path))
        out["metrics"] = dict(result.metrics)
        if note:
            core_note = out["metrics"].get("note")
            out["metrics"]["note"] = "; ".join(n for n in (core_note if isinstance(core_note, str) else "", note) if n)
        out["hairs"] = pd.DataFrame(result.hairs)
    except ImageReadError as exc:
        out.update(status="error", error=_one_line(str(exc)))
    except _core.UnusableImageError as exc:
        out.update(status="error", error=_one_line(f"{path}: {exc}"))
    except Exception as exc:  # noqa: BLE001 - one frame must never stop the batch
        out.update(status="error", error=_one_line(f"internal error: {type(exc).__name__}: {exc}"),
                   traceback=traceback.format_exc())
    out["seconds"] = time.perf_counter() - start
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _save_png(rgb: np.ndarray, target: Path) -> None:
    """Write an RGB overlay as PNG atomically; fast zlib level (overlays are for looking)."""
    import cv2

    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1], dtype=np.uint8),
                            [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"could not encode overlay {target.name}")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, target)


# --------------------------------------------------------------------------- run


def run_batch(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    um_per_px: float | None = None,
    workers: int = 1,
    settings: Settings = Settings(),
    overlays: bool = True,
    progress: bool = True,
    console=None,
    db: str | None = None,
    scheduler: str | None = None,
    pseudonymize: str | None = None,
) -> BatchSummary:
    """Analyse every frame of ``inputs`` and write the run's outputs to ``out_dir``.

    Parameters
    ----------
    inputs : sequence of path
        Image files, folders, manifests (see ``collect_inputs``).
    out_dir : path
        Output folder (created). Nothing is written anywhere else (but the
        ``db`` server when given).
    um_per_px : float, optional
        Pixel size (µm/px) for frames with no better calibration (manifest,
        DICOM, scale bar, device; see :mod:`pipeline.calibration`). Without
        any, a frame gets counts only: µm, area and density columns are empty
        and ``note`` says so.
    workers : int
        1 runs in this process; more uses that many worker processes
        (spawned). Output is identical for any number of workers.
    settings : Settings
        Core settings, written with their digest into run.json.
    overlays : bool
        Write ``overlays/<key>.png``.
    progress : bool
        Show a progress bar (frames, rate, ETA) on ``console``.
    console : rich.console.Console, optional
        Where progress and warnings go (default: stderr).
    db : str, optional
        SQLAlchemy URL of the results store (default: SQLite
        ``OUT/results.sqlite``). A frame whose result key (content hash,
        settings digest, version, calibration inputs) is already stored is
        not measured again.
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:port``): the
        same per-frame tasks run on its workers instead of local processes.
    pseudonymize : str, optional
        Secret key: every patient identifier (manifest, folder layout, DICOM
        PatientID) is replaced by a keyed pseudonym
        (:class:`pipeline.pseudonym.Pseudonymizer`) in every output — tables,
        overlay names, store, run.json, messages.

    Returns
    -------
    BatchSummary

    Raises
    ------
    BatchError
        Before any frame is processed: bad option, missing input, unreadable
        manifest, no images found, analysis functions that cannot be sent to
        worker processes, a store that cannot be opened, an unreachable scheduler.
    """
    console = console or _stderr_console()
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    out_dir = Path(out_dir)
    _check_options(um_per_px, workers)
    workers = int(workers)
    frames = collect_inputs(inputs, out_dir=out_dir)
    if not frames:
        raise BatchError(f"no images found in {', '.join(map(str, inputs))} "
                         f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))}); check the folder")
    pseudo = _pseudonymizer(pseudonymize)
    if pseudo is not None:
        if db is None:
            _refuse_plain_store(out_dir)
        _known_dicom_patients(frames, pseudo)
        frames = [_pseudonymized_frame(f, pseudo) for f in frames]
    _prepare_out_dir(out_dir, overlays)
    store = _open_store(db, out_dir)
    try:
        _print_warnings(frames, console)
        run_id = store.start_run(settings_json=json.dumps(settings.to_dict(), sort_keys=True),
                                 settings_digest=settings.digest(), version=pipeline.__version__,
                                 inputs=[_shown(str(p), pseudo) for p in inputs])
        plan = _plan(frames, out_dir, um_per_px, settings, overlays, store, pseudo)
        computed = _run_jobs(plan, out_dir, settings, workers, scheduler, progress, console, store, pseudo)
        results = _collect(plan, store)
        if settings.series_route:
            computed += _reroute_series(frames, plan, results, settings, store, pseudo,
                                        lambda again: _run_jobs(again, out_dir, settings, workers, scheduler,
                                                                progress, console, store, pseudo))
        images, hairs = _tables(frames, results)
        records = [_run_frame_record(f, r) for f, r in zip(frames, results)]
        if pseudo is not None:
            images, hairs = _pseudonymized_table(images, pseudo), _pseudonymized_table(hairs, pseudo)
            for r in results:
                r["traceback"] = pseudo.text(r["traceback"])
            records = [{k: pseudo.text(v) if k != "metadata" else
                        {m: x if m in NOT_FREE_TEXT else pseudo.text(x) for m, x in v.items()}
                        for k, v in rec.items()} for rec in records]
        store.finish_run(run_id, records)
    finally:
        store.close()
    _write_outputs(out_dir, images, hairs, results, frames)
    seconds = time.perf_counter() - t0
    extra = {"run_id": run_id, "store": _shown(store.safe_url, pseudo), "scheduler": scheduler,
             "frames_measured": computed, "frames_reused": sum(1 for p in plan if p["reused"]),
             "pseudonymized": pseudo is not None}
    shown_inputs = [_shown(str(p), pseudo) for p in inputs]  # again: identifiers met while measuring are known now
    _write_run_json(out_dir, shown_inputs, um_per_px, workers, overlays, settings, started, seconds, results,
                    images, extra, pseudo)
    return _summary(images, hairs, results, out_dir, seconds, reused=extra["frames_reused"])


def _pseudonymizer(key: str | None):
    if key is None:
        return None
    from pipeline.pseudonym import Pseudonymizer

    try:
        return Pseudonymizer(key)
    except ValueError as exc:
        raise BatchError(str(exc)) from None


def _known_dicom_patients(frames: list[Frame], pseudo) -> None:
    """Let ``pseudo`` know every DICOM frame's PatientID (its header only) before keys and overlay names are
    written: a file named after its patient (``PAT-9_visit.dcm``) is then named by the pseudonym from the start."""
    for frame in frames:
        if frame.error is None and is_dicom(frame.path):
            ident = dicom_patient_id(frame.path)
            if ident:
                pseudo.patient(ident)


def _pseudonymized_frame(frame: Frame, pseudo) -> Frame:
    """A frame whose patient id, key, notes and error carry pseudonyms (the path stays, to read the file)."""
    meta = dict(frame.metadata)
    if meta.get("patient_id"):
        meta["patient_id"] = pseudo.patient(meta["patient_id"])
    return Frame(frame.path, pseudo.text(frame.key), meta, frame.um_per_px, pseudo.text(frame.error),
                 tuple(pseudo.text(n) for n in frame.notes), frame.layout)


#: Metadata columns that are not free text: ``patient_id`` is pseudonymised as a whole
#: (:meth:`~pipeline.pseudonym.Pseudonymizer.patient`), and a session date never holds an identifier (a patient
#: ``20`` must not rewrite the date ``2026-01-20``); site and field are free text (a manifest may write
#: ``P007 vertex``).
NOT_FREE_TEXT = frozenset({"patient_id", "session_date"})


def _shown(text: str, pseudo) -> str:
    """``text`` as a run pseudonymised with ``pseudo`` may show it (unchanged without one)."""
    return text if pseudo is None else pseudo.text(text)


def _pseudonymized_table(table: pd.DataFrame, pseudo) -> pd.DataFrame:
    """Every free-text column of ``table`` with the identifiers seen replaced by their pseudonyms."""
    table = table.copy()
    for column in table.columns:
        if column in NOT_FREE_TEXT:
            continue
        if table[column].dtype == object or str(table[column].dtype) in ("string", "str"):
            table[column] = table[column].map(pseudo.text)
    return table


def _open_store(db: str | None, out_dir: Path) -> ResultStore:
    try:
        return ResultStore(db or default_url(out_dir))
    except StoreError as exc:
        raise BatchError(str(exc)) from None


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _check_options(um_per_px: float | None, workers: int) -> None:
    try:
        _core.check_um_per_px(um_per_px)
    except ValueError as exc:
        raise BatchError(str(exc)) from None
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise BatchError(f"workers must be a whole number >= 1, not {workers!r}")


def folder_problem(path: Path, what: str) -> str | None:
    """Create the output folder ``path`` (named ``what`` in the message); None, or why it cannot be."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        return f"{what} {path}: a file is in the way (the output is a folder); give a new or existing folder"
    except OSError as exc:
        return f"{what} {path}: cannot create the folder ({exc.strerror or exc}); give a writable folder"
    return None


def _refuse_plain_store(out_dir: Path) -> None:
    """A pseudonymised run does not write into a folder whose store holds a run without pseudonyms: its
    ``results.sqlite`` keeps that run's identifiers (a DICOM PatientID), which the folder would then carry out."""
    try:
        earlier = json.loads((out_dir / "run.json").read_text())
    except (OSError, ValueError):
        return
    if isinstance(earlier, dict) and earlier.get("pseudonymized") is False and (out_dir / "results.sqlite").exists():
        raise BatchError(f"{out_dir} holds a run without pseudonyms, whose results.sqlite keeps patient identifiers; "
                         "give a new --out for the pseudonymised run (or delete that folder)")


def _prepare_out_dir(out_dir: Path, overlays: bool) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if overlays:
            (out_dir / "overlays").mkdir(exist_ok=True)
    except OSError as exc:
        raise BatchError(f"cannot create output folder {out_dir} ({exc.strerror}); choose a writable --out") from None


def _print_warnings(frames: list[Frame], console) -> None:
    from rich.markup import escape

    misfit = sorted({str(f.path.parent) for f in frames if f.layout == "misfit"})  # the folder as on disk, not "."
    for folder in misfit:
        message = (f"folder {folder!r}: no {MANIFEST_NAME} and the layout is not PATIENT/SESSION_DATE/SITE[_FIELD].ext; "
                   "its frames get no patient, session or site (add a manifest.csv to give them)")
        console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)
    unlisted = [f.key for f in frames if f.notes]
    if unlisted:
        shown = ", ".join(unlisted[:5]) + (" ..." if len(unlisted) > 5 else "")
        console.print(f"[yellow]warning:[/yellow] {len(unlisted)} image(s) not listed in their "
                      f"{MANIFEST_NAME}, processed without its metadata: {escape(shown)}", highlight=False)


def _calibration_inputs(frame: Frame, um_per_px: float | None) -> dict[str, Any]:
    """What the user gave for a frame's pixel size (part of its result key)."""
    device = str(frame.metadata.get("device", "") or "").strip() or None
    return {"manifest": frame.um_per_px, "device": device, "cli": None if um_per_px is None else float(um_per_px)}


def _plan(frames: list[Frame], out_dir: Path, um_per_px: float | None, settings: Settings, overlays: bool,
          store: ResultStore, pseudo=None) -> list[dict[str, Any]]:
    """Per frame: its hash, result key, overlay target, and whether a stored result is reused.

    A frame with a known problem, or whose file cannot be hashed, is an
    error; a second frame with the same bytes as an earlier one is
    ``skipped`` (measured once). A run pseudonymised with a key reuses only
    results stored under that key (:func:`_result_digest`).
    """
    names = overlay_names(f.key for f in frames)
    digest, version = _result_digest(settings, pseudo), pipeline.__version__
    plan, first_by_hash = [], {}
    for i, (frame, name) in enumerate(zip(frames, names)):
        item = {"index": i, "frame": frame, "sha256": None, "key": None, "reused": False, "error": frame.error,
                "status": "error" if frame.error else "ok", "calibration": _calibration_inputs(frame, um_per_px),
                "overlay": str(out_dir / "overlays" / name) if overlays else None}
        if frame.error is None:
            try:
                item["sha256"] = file_sha256(frame.path)
            except OSError as exc:
                item.update(status="error", error=f"{frame.path}: cannot be read ({exc.strerror}); check the file "
                                                  "and its permissions")
        if item["sha256"] is not None:
            if item["sha256"] in first_by_hash:
                item.update(status="skipped", error=f"same content as {first_by_hash[item['sha256']]}: measured once; "
                                                    "remove the copy if it is not meant to be there")
            else:
                first_by_hash[item["sha256"]] = frame.key
                item["key"] = result_key(item["sha256"], digest, version, item["calibration"])
        plan.append(item)
    _mark_reused(plan, store)
    return plan


def _mark_reused(plan: list[dict[str, Any]], store: ResultStore) -> None:
    """Set ``reused`` on the plan items whose result the store holds (and whose overlay exists, when wanted)."""
    known = store.known(p["key"] for p in plan if p["key"])
    for item in plan:
        item["reused"] = item["key"] in known and (item["overlay"] is None or Path(item["overlay"]).is_file())


def series_routes(images: pd.DataFrame) -> pd.Series:
    """The route each frame of a course's spot should take: the one most of the spot's frames take.

    A spot is one ``patient_id``, ``site`` and ``field_id`` (frames without
    ``patient_id`` or ``site`` belong to none). A frame's lighting changes
    from visit to visit and can tip it over a threshold of the per-frame
    choice (:func:`pipeline.frame.hair_map`: darkness, brightness or colour
    map, light-hair model or not), which changes its count by more than a
    treatment does; its hair does not change colour, so every frame of the
    spot is read one way. Ties go to the route of the earliest
    ``session_date`` (then the first row).

    Parameters
    ----------
    images : DataFrame
        ``images.csv`` rows: ``status``, ``route`` and the metadata columns.

    Returns
    -------
    Series of str
        Indexed like ``images``: the spot's route for the ``ok`` frames of a
        spot whose own ``route`` differs from it; nothing for the others.
    """
    keys = [c for c in ("patient_id", "site", "field_id") if c in images.columns]
    if not {"patient_id", "site"} <= set(keys) or "route" not in images.columns:
        return pd.Series(dtype=object)
    ok = images[(images["status"] == "ok") & images["route"].fillna("").astype(str).ne("")]
    ok = ok.dropna(subset=["patient_id", "site"])
    if "session_date" in ok.columns:
        ok = ok.sort_values("session_date", kind="stable", na_position="last")
    out = {}
    for _, spot in ok.groupby([ok[k].fillna("").astype(str) for k in keys], sort=False):
        counts = spot["route"].value_counts(sort=False)  # first-seen order: earliest session first
        best = counts.index[int(np.argmax(counts.to_numpy()))]
        out.update({i: best for i in spot.index[spot["route"] != best]})
    return pd.Series(out, dtype=object)


def _reroute_series(frames, plan, results, settings, store, pseudo, run) -> int:
    """Measure again, by its spot's route (:func:`series_routes`), every frame that took another route.

    ``results`` is updated in place (each such frame's result replaced, and
    ``route_source`` set to ``series`` on it); ``run`` measures a list of
    plan items. Returns the number of frames measured.
    """
    routes = series_routes(pd.DataFrame([{**_frame_metadata(f, r), "status": r["status"],
                                          "route": r["metrics"].get("route")} for f, r in zip(frames, results)]))
    if routes.empty:
        return 0
    again = []
    for i, route in routes.items():
        item, forced = plan[int(i)], settings.replace(route=str(route))
        key = result_key(item["sha256"], _result_digest(forced, pseudo), pipeline.__version__, item["calibration"])
        again.append({**item, "key": key, "settings": forced, "result": None})
    _mark_reused(again, store)
    computed = run(again)
    for item, new in zip(again, _collect(again, store)):
        if new["status"] == "ok":
            new["metrics"] = {**new["metrics"], "route_source": "series"}
            results[item["index"]] = new
    return computed


def _run_jobs(plan, out_dir, settings, workers, scheduler, progress, console, store, pseudo=None) -> int:
    """Measure every planned frame without a stored result; store each ok result as it arrives.

    A plan item's own ``settings`` (a fixed route, :func:`_reroute_series`)
    win over ``settings``. Returns the number of frames measured. Error
    results are kept on the plan items (``result``) and not stored, so a
    rerun tries them again.
    """
    analyze, draw = _core.analyze_frame, _overlay.draw_overlay
    todo = [p for p in plan if p["key"] and not p["reused"]]
    jobs = [(p["index"], str(p["frame"].path), p["calibration"], p.get("settings", settings), p["overlay"], analyze,
             draw) for p in todo]
    by_index = {p["index"]: p for p in plan}
    with _progress_bar(progress, console) as bar:
        task = bar.add_task("frames", total=len(plan), completed=len(plan) - len(todo))
        for res in _execute(jobs, workers, scheduler):
            item = by_index[res["index"]]
            if pseudo is not None:
                meta = res.get("file_metadata") or {}
                if meta.get("patient_id"):
                    meta["patient_id"] = pseudo.patient(meta["patient_id"])
                res["error"] = pseudo.text(res["error"])
            item["result"] = res
            if res["status"] == "ok":
                store.put(item["key"], sha256=item["sha256"], settings_digest=item.get("settings", settings).digest(),
                          version=pipeline.__version__, result=res, um_per_px=res["um_per_px"],
                          calibration_source=res["calibration_source"])
            bar.advance(task)
    return len(todo)


def _collect(plan: list[dict[str, Any]], store: ResultStore) -> list[dict[str, Any]]:
    """One result per frame, in input order; ok results are read back from the store."""
    stored = store.get(p["key"] for p in plan if p["key"] and (p["reused"] or p.get("result", {}).get("status") == "ok"))
    out = []
    for item in plan:
        base = {"index": item["index"], "metrics": {}, "hairs": None, "status": item["status"],
                "error": item["error"] or "", "traceback": None, "sha256": item["sha256"], "width_px": None,
                "height_px": None, "seconds": None, "um_per_px": None, "calibration_source": "none",
                "file_metadata": {}, "reused": item["reused"], "key": item["key"]}
        fresh = item.get("result")
        if fresh is not None:
            base.update({k: fresh[k] for k in ("status", "error", "traceback", "width_px", "height_px", "seconds",
                                               "um_per_px", "calibration_source", "file_metadata")})
        row = stored.get(item["key"]) if item["key"] else None
        if row is not None and base["status"] == "ok":
            base.update(metrics=row["metrics"], hairs=row["hairs"], width_px=row["width_px"],
                        height_px=row["height_px"], um_per_px=row["um_per_px"],
                        calibration_source=row["calibration_source"], file_metadata=row["file_metadata"])
            if item["reused"]:
                base["seconds"] = None
        out.append(base)
    return out


def _execute(jobs: list[tuple], workers: int, scheduler: str | None = None) -> Iterable[dict]:
    if scheduler:
        yield from _execute_dask(jobs, scheduler)
        return
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            yield _process_frame(*job)
        return
    _check_picklable(jobs[0][5:])
    yield from _execute_pool(jobs, workers)


def _execute_pool(jobs: list[tuple], workers: int) -> Iterable[dict]:
    """The jobs in worker processes; a worker that dies does not take the rest of the batch with it.

    A process killed mid-frame (out of memory on a huge frame, a crash in a
    native library) breaks the whole pool, and every frame not yet finished
    fails with it. Those frames are run again: first in a new pool of one
    worker, where they run in turn, so the first to break it is the frame
    that kills a worker (its row says so) and the frames after it run again;
    then with all workers as before.
    """
    context = multiprocessing.get_context("spawn")
    pending, width = list(jobs), workers
    while pending:
        broken = []
        with ProcessPoolExecutor(max_workers=min(width, len(pending)), mp_context=context,
                                 initializer=_one_thread_worker) as pool:
            order = {}
            for i, job in enumerate(pending):
                try:
                    order[pool.submit(_process_frame, *job)] = i
                except BrokenProcessPool as exc:  # a worker died while jobs were still being handed out
                    broken += [(j, exc) for j in range(i, len(pending))]
                    break
            for future in as_completed(order):
                try:
                    yield future.result()
                except BrokenProcessPool as exc:
                    broken.append((order[future], exc))
                except Exception as exc:  # noqa: BLE001 - a job that could not be sent or returned
                    yield _worker_died(pending[order[future]][0], exc)
        broken.sort(key=lambda item: item[0])
        if broken and width == 1:  # one at a time: the first unfinished frame is the one that killed its worker
            yield _worker_died(pending[broken[0][0]][0], broken[0][1])
            broken = broken[1:]
            width = workers
        elif broken:
            width = 1
        pending = [pending[i] for i, _ in broken]


def _one_thread_worker() -> None:
    """A pool worker runs OpenCV on one thread, as torch and ONNX Runtime already are there (the pool uses
    every core; threads inside each worker only contend: 60 phantom frames with 2 workers took 34.8 / 35.4 s
    with OpenCV's own threads, 33.8 / 33.8 s without, 2026-12-05)."""
    import cv2

    cv2.setNumThreads(1)


def _execute_dask(jobs: list[tuple], scheduler: str) -> Iterable[dict]:
    """The same per-frame tasks on a Dask distributed cluster (the workers must see the input paths)."""
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise BatchError("--scheduler needs dask.distributed: pip install 'distributed'") from None
    try:
        client = Client(scheduler, timeout="20s", set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - unreachable or refusing scheduler
        raise BatchError(f"cannot reach the Dask scheduler {scheduler} ({type(exc).__name__}: {exc}); "
                         "check the address and that the scheduler runs") from None
    try:
        futures = {client.submit(_process_frame, *job, pure=False): job for job in jobs}
        for future in dask_completed(list(futures), loop=client.loop):
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - a worker died
                yield _worker_died(futures[future][0], exc)
    finally:
        client.close()


def _check_picklable(functions: tuple) -> None:
    for fn in functions:
        try:
            pickle.dumps(fn)
        except Exception as exc:  # noqa: BLE001
            raise BatchError(f"{fn!r} cannot be sent to worker processes ({exc}); "
                             "use workers=1 or a module-level function") from None


def _worker_died(index: int, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, BrokenProcessPool):
        message = ("the worker process measuring this frame died (out of memory on a very large frame, or a crash "
                   "in a native library); the other frames were measured; downscale the frame or rerun it alone "
                   "with --workers 1")
    else:
        message = f"internal error: {type(exc).__name__}: worker process failed ({exc})"
    return {"index": index, "metrics": {}, "hairs": None, "status": "error", "error": _one_line(message),
            "traceback": "".join(traceback.format_exception(exc)), "width_px": None, "height_px": None,
            "seconds": None, "um_per_px": None, "calibration_source": "none", "file_metadata": {}}


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs):
        return 0

    def advance(self, *args, **kwargs):
        pass


def _progress_bar(show: bool, console):
    if not show:
        return _NoProgress()
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,
                               TextColumn, TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:.2f} frames/s" if task.speed else "-- frames/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)


# --------------------------------------------------------------------------- tables and outputs


def _tables(frames: list[Frame], results: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    metas = [_frame_metadata(f, r) for f, r in zip(frames, results)]
    reserved = set(image_columns())
    meta_names = list(dict.fromkeys(_meta_name(k, reserved) for m in metas for k in m))
    columns = image_columns(meta_names)
    rows, hair_tables = [], []
    for frame, res, meta in zip(frames, results, metas):
        scale = res.get("um_per_px")
        scale = None if scale is None or (isinstance(scale, float) and math.isnan(scale)) else float(scale)
        rows.append(_image_row(frame, res, meta, scale, reserved))
        if res["status"] == "ok" and res["hairs"] is not None and len(res["hairs"]):
            hair_tables.append(_hair_rows(frame.key, res["hairs"], scale))
    images = pd.DataFrame(rows).reindex(columns=columns)
    hairs = pd.concat(hair_tables, ignore_index=True) if hair_tables else pd.DataFrame()
    hairs = hairs.reindex(columns=hair_columns())
    return _integers(images), _integers(hairs)


def _frame_metadata(frame: Frame, res: dict) -> dict[str, Any]:
    """Manifest / folder-layout metadata, completed by what the file says (DICOM PatientID, StudyDate)."""
    meta = dict(frame.metadata)
    for k, v in (res.get("file_metadata") or {}).items():
        if v not in (None, "") and not meta.get(k):
            meta[k] = v
    return meta


def _is_physical(column: str) -> bool:
    """A column that needs a pixel size (µm, cm² or um_per_px itself)."""
    return column.endswith("_um") or "cm2" in column or column == "um_per_px"


def _image_row(frame: Frame, res: dict, meta: dict, scale: float | None, reserved: set[str]) -> dict:
    metrics = {k: v for k, v in res["metrics"].items() if k in _core.METRIC_COLUMNS}
    if scale is None:
        metrics.update({k: None for k in metrics if _is_physical(k)})
    core_note = metrics.get("note")
    notes = [core_note.strip() if isinstance(core_note, str) else ""]
    notes += [NO_CALIBRATION_NOTE] if scale is None and res["status"] == "ok" and "no pixel size" not in notes[0] else []
    notes += list(frame.notes)
    row = {**metrics, "image": frame.key, "um_per_px": scale, "status": res["status"], "error": res["error"],
           "note": "; ".join(n for n in notes if n), "calibration_source": res.get("calibration_source") or "none",
           "sha256": res["sha256"], "width_px": res["width_px"], "height_px": res["height_px"]}
    row.update({_meta_name(k, reserved): v for k, v in meta.items()})
    return row


def _run_frame_record(frame: Frame, res: dict) -> dict[str, Any]:
    return {"image": frame.key, "path": str(frame.path), "result_key": res.get("key") if res["status"] == "ok" else None,
            "status": res["status"], "error": res["error"], "metadata": _frame_metadata(frame, res)}


def _hair_rows(key: str, hairs: pd.DataFrame, scale: float | None) -> pd.DataFrame:
    hairs = hairs.copy()
    if scale is None:
        for column in hairs.columns:
            if _is_physical(column):
                hairs[column] = np.nan
    hairs.insert(0, "image", key)
    return hairs


def _integers(table: pd.DataFrame) -> pd.DataFrame:
    """Whole-number columns as nullable integers, so CSV shows 9 not 9.0."""
    for column in _INT_COLUMNS.intersection(table.columns):
        values = pd.to_numeric(table[column], errors="coerce")
        finite = values.dropna()
        if len(finite) == len(table[column].dropna()) and np.all(np.mod(finite, 1) == 0):
            table[column] = values.astype("Int64")
    return table


def _write_outputs(out_dir: Path, images: pd.DataFrame, hairs: pd.DataFrame, results: list[dict],
                   frames: list[Frame]) -> None:
    _atomic_write(out_dir / "images.csv", images.to_csv(index=False, lineterminator="\n"))
    _atomic_write(out_dir / "hairs.csv", hairs.to_csv(index=False, lineterminator="\n"))
    for name, table in (("images", images), ("hairs", hairs)):
        _atomic_parquet(out_dir / f"{name}.parquet", table)
    logs = [f"== {frames[i].key} ({frames[i].path})\n{r['traceback']}" for i, r in enumerate(results) if r["traceback"]]
    log_path = out_dir / "errors.log"
    if logs:
        _atomic_write(log_path, "\n".join(logs))
    elif log_path.is_file():
        log_path.unlink()  # stale, from an earlier run into the same folder


#: images.csv columns that hold numbers whatever a run gives them: a run whose frames all lack a pixel size
#: has only empty ``um_per_px`` values, which must still be numbers in Parquet (not text), so that runs read
#: together keep one type per column.
NUMERIC_IMAGE_COLUMNS = frozenset(_core.METRIC_COLUMNS) - {"note", "quality_flags", "segmenter", "route",
                                                            "route_source"} | {"width_px", "height_px"}


def _atomic_parquet(target: Path, table: pd.DataFrame) -> None:
    """Write a table as Parquet (pyarrow) to a temporary file, then rename over ``target``: object columns as
    text, but :data:`NUMERIC_IMAGE_COLUMNS` as numbers."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        table = table.copy()
        for c in table.columns:
            if table[c].dtype == object and c in NUMERIC_IMAGE_COLUMNS:
                table[c] = pd.to_numeric(table[c], errors="coerce").astype("float64")
        text = {c: "string" for c in table.columns if table[c].dtype == object}
        table.astype(text).to_parquet(tmp, index=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write(target: Path, text: str) -> None:
    """Write text to a temporary file next to ``target``, then rename over it."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_run_json(out_dir, inputs, um_per_px, workers, overlays, settings, started, seconds, results, images,
                    extra: dict | None = None, pseudo=None) -> None:
    per_frame = [r["seconds"] for r in results if r.get("seconds") is not None]
    n_ok = int((images["status"] == "ok").sum())
    models = _models_record(settings)
    record = {
        "package": "tricho-pipeline",
        "version": pipeline.__version__,
        "code_digest": code_digest(),
        "settings": settings.to_dict(),
        "settings_digest": settings.digest(),
        "inputs": [str(p) for p in inputs],
        "out_dir": pseudo.text(str(out_dir)) if pseudo is not None else str(out_dir),
        "um_per_px": um_per_px,
        "workers": workers,
        "overlays": overlays,
        "started_utc": started.isoformat(),
        "finished_utc": datetime.now(timezone.utc).isoformat(),
        "seconds": {
            "total": seconds,
            "per_frame_mean": statistics.fmean(per_frame) if per_frame else None,
            "per_frame_median": statistics.median(per_frame) if per_frame else None,
            "per_frame_max": max(per_frame) if per_frame else None,
        },
        "frames": {"total": len(images), "ok": n_ok, "error": int((images["status"] == "error").sum()),
                   "skipped": int((images["status"] == "skipped").sum()),
                   "flagged": int(_flagged(images).sum())},
        "model": models[0] if models else None,  # the one that segments frames
        "models": models,
        **(extra or {}),
        "environment": _environment(),
    }
    _atomic_write(out_dir / "run.json", json.dumps(record, indent=2, default=str) + "\n")


def _result_digest(settings: Settings, pseudo=None) -> str:
    """What beside the file's bytes decides a frame's result, hashed: the settings and the weights file
    each learned model runs (so re-quantizing or retraining a model under the same name is not reused),
    and, in a pseudonymised run, its key's fingerprint: a stored result holds the file's own metadata (a
    DICOM PatientID) as the run that measured it wrote it, plain or under its key."""
    runs = [m["weights_run_sha256"] for m in _models_record(settings)]
    parts = [settings.digest(), runs] + ([pseudo.fingerprint()] if pseudo is not None else [])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _models_record(settings: Settings) -> list[dict[str, Any]]:
    """Every learned model a run may use, each with its ``role``: ``segmenter`` (learned path),
    ``light_hair`` (``Settings.light_hair_model``), ``bright_veto`` (``Settings.bright_veto_model``, run on
    light hair on dark skin) and ``dark_frame`` (``Settings.dark_frame_model``, run on frames of dark hair on
    the classical path); the first is the one that segments frames."""
    from pipeline import learned

    def record(name: str, role: str) -> dict[str, Any] | None:
        try:
            model = learned.load_model(name, settings.learned_backend)
        except learned.ModelError:
            return None
        return {"name": model.name, "path": str(model.path), "sha256": model.sha256, "device": "cpu",
                "backend": model.backend, "weights_run": model.run_file, "weights_run_sha256": model.run_sha256,
                "role": role}

    if learned.uses_learned(settings):
        wanted = [(settings.model, "segmenter")]
    else:
        wanted = settings.classical_models()
    return [r for r in (record(name, role) for name, role in wanted if name) if r is not None]


def _flagged(images: pd.DataFrame) -> pd.Series:
    flags = images["quality_flags"] if "quality_flags" in images else pd.Series("", index=images.index)
    return (images["status"] == "ok") & flags.astype("string").fillna("").str.len().gt(0)


def _environment() -> dict[str, str]:
    import cv2
    import PIL

    return {"python": sys.version.split()[0], "numpy": np.__version__, "opencv": cv2.__version__,
            "pillow": PIL.__version__, "pandas": pd.__version__, "platform": platform.platform()}


def _summary(images: pd.DataFrame, hairs: pd.DataFrame, results: list[dict], out_dir: Path,
             seconds: float, *, reused: int = 0) -> BatchSummary:
    ok = images["status"] == "ok"
    bad = images["status"] == "error"
    density = pd.to_numeric(images.loc[ok, "density_per_cm2"], errors="coerce").dropna()
    failed = images.loc[bad, ["image", "error"]]
    return BatchSummary(
        n_frames=len(images), n_ok=int(ok.sum()), n_error=int(bad.sum()), out_dir=out_dir, seconds=seconds,
        n_hairs=int(pd.to_numeric(images.loc[ok, "hair_count"], errors="coerce").fillna(0).sum()),
        mean_density_per_cm2=float(density.mean()) if len(density) else None,
        errors=[(str(a), str(b)) for a, b in failed.itertuples(index=False)],
        n_internal_errors=sum(1 for r in results if r["traceback"]),
        n_skipped=int((images["status"] == "skipped").sum()), n_flagged=int(_flagged(images).sum()),
        n_reused=reused,
    )
