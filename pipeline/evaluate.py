"""Score an analysis run against truth: counts, density, thickness, agreement.

``tricho evaluate RUN_DIR --truth PATH`` compares the per-frame results of an
analysis run (``RUN_DIR/images.csv`` and ``RUN_DIR/hairs.csv``) with one of
two kinds of truth, matched to the run's frames by file *stem* (the name
without folder and extension):

* phantom truth, ``<stem>.json`` with ``"schema": "tricho-phantom-truth/1"``:
  every hair's emergence point, centre line and width, and the pixel size;
* Pascal VOC annotations, ``<stem>.xml``, one box per hair (as in the FDU
  validation set): a count and a rough position per hair, no pixel size.

The module is a thin batch layer over small pure functions: the statistics
(:func:`agreement`, :func:`lins_ccc`, :func:`bland_altman`), the hair matching
(:func:`match_hairs`) and the frame split (:func:`subject_half`) take arrays
or strings, never paths.

Coordinates are ``(row, col)`` in pixels; a frame of ``H x W`` pixels spans
``0 <= row < H`` and ``0 <= col < W``.

References
----------
.. [1] Lin, L. I.-K. (1989). A concordance correlation coefficient to
   evaluate reproducibility. *Biometrics* 45(1), 255–268.
   doi:10.2307/2532051
.. [2] Bland, J. M. & Altman, D. G. (1986). Statistical methods for assessing
   agreement between two methods of clinical measurement. *Lancet* 327(8476),
   307–310. doi:10.1016/S0140-6736(86)90837-8
.. [3] Kuhn, H. W. (1955). The Hungarian method for the assignment problem.
   *Naval Research Logistics Quarterly* 2, 83–97. doi:10.1002/nav.3800020109
.. [4] Rudnicka, L., Olszewska, M. & Rakowska, A. (2012). *Atlas of
   Trichoscopy*. Springer. doi:10.1007/978-1-4471-4486-1 (vellus <= 30 µm).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

__all__ = [
    "EvaluationError",
    "EvaluationSettings",
    "FrameTruth",
    "PHANTOM_SCHEMA",
    "REPORT_SCHEMA",
    "agreement",
    "bland_altman",
    "evaluate_command",
    "evaluate_run",
    "format_table",
    "lins_ccc",
    "load_truth",
    "match_hairs",
    "match_phantom_frame",
    "read_phantom_truth",
    "read_voc",
    "subject_half",
    "write_report",
]

#: ``schema`` key that marks a phantom truth JSON file.
PHANTOM_SCHEMA = "tricho-phantom-truth/1"
#: ``schema`` key written into the evaluation report.
REPORT_SCHEMA = "tricho-evaluation/1"
#: 1 µm² in cm².
CM2_PER_UM2 = 1e-8
#: How many names to show when listing frames in an error message.
_SHOW = 5


class EvaluationError(Exception):
    """A problem with the user's input that the message explains how to fix."""


@dataclass(frozen=True)
class EvaluationSettings:
    """Tunables of the evaluation, written into every report.

    Parameters
    ----------
    um_per_px_default : float
        Pixel size (µm/px) for truth without one (Pascal VOC). 2.78 µm/px is
        the FDU set's 70x trichoscope (measured on its 1.0 mm scale bar).
    margin_um : float
        Width of the border band left out of the *interior* counts (µm).
    vellus_max_um : float
        Truth hairs with ``width_um <= vellus_max_um`` are vellus (µm) [4]_.
    terminal_min_um : float
        Truth hairs with ``width_um > terminal_min_um`` are terminal (µm).
    min_box_side_px : float
        VOC boxes with a side shorter than this are dropped (pixels).
    gate_min_px : float
        Smallest matching distance gate (pixels).
    gate_widths : float
        Matching gate in shaft widths; the gate is
        ``max(gate_min_px, gate_widths * width_px)``.
    shaft_weight : float
        Weight of the shaft term in a phantom match's cost (see
        :func:`match_hairs`): hairs of one follicular unit share their
        opening, so the root distance alone cannot tell which of them a
        predicted hair is; the distance from its centre-line middle to each
        truth centre line can.  0 matches by the root alone.
    subset : {None, 'A', 'B'}
        Restrict to one half of the subjects (see :func:`subject_half`).
    """

    um_per_px_default: float = 2.78
    margin_um: float = 300.0
    vellus_max_um: float = 30.0
    terminal_min_um: float = 60.0
    min_box_side_px: float = 2.0
    gate_min_px: float = 10.0
    gate_widths: float = 1.5
    shaft_weight: float = 0.5
    subset: str | None = None

    def __post_init__(self) -> None:
        if not (self.um_per_px_default > 0 and math.isfinite(self.um_per_px_default)):
            raise EvaluationError(
                f"--um-per-px must be a positive number of micrometres per pixel, "
                f"not {self.um_per_px_default!r} (2.78 for the FDU set)"
            )
        if not self.margin_um >= 0:
            raise EvaluationError(f"--margin-um must be >= 0 µm, not {self.margin_um!r}")
        if not 0 < self.vellus_max_um <= self.terminal_min_um:
            raise EvaluationError(
                f"class limits must satisfy 0 < vellus_max_um ({self.vellus_max_um}) "
                f"<= terminal_min_um ({self.terminal_min_um})"
            )
        if not (self.shaft_weight >= 0 and math.isfinite(self.shaft_weight)):
            raise EvaluationError(f"shaft_weight must be a finite number >= 0, not {self.shaft_weight!r}")
        if self.subset not in (None, "A", "B"):
            raise EvaluationError(f"--half must be A or B, not {self.subset!r}")


@dataclass
class FrameTruth:
    """Truth for one frame, from either kind of file.

    Attributes
    ----------
    image : str
        File stem the frame is matched by (its path under the truth folder,
        without suffix, when stems repeat there).
    kind : {'phantom', 'voc'}
        Which kind of truth file it came from.
    path : str
        The truth file.
    height_px, width_px : int
        Frame size (pixels).
    um_per_px : float or None
        Pixel size (µm/px); None for VOC (no pixel size in the labels).
    true_count : int
        Hairs that count: phantom ``count_in_field``, VOC valid boxes.
    points_rc : ndarray of float, shape (K, 2)
        Positions used for the interior count (row, col; pixels): phantom
        emergence points of ``in_frame`` hairs, VOC box centres.
    density_per_cm2 : float
        True density (hairs/cm²); NaN for VOC (needs the run's area).
    field_rc : tuple of 4 float or None
        Phantom counting box ``(row0, row1, col0, col1)``, half-open (pixels).
    hairs : list of dict
        Phantom hairs: ``width_um``, ``in_field``, ``in_frame``,
        ``emergence_rc`` (2,) and ``centerline_rc`` (L, 2). Empty for VOC.
    classes : list of str
        VOC class of every valid box. Empty for phantoms.
    boxes_xyxy : ndarray of float, shape (K, 4)
        VOC: every valid box as ``(x0, y0, x1, y1)`` (pixels, corners
        sorted). Empty for phantoms.
    """

    image: str
    kind: str
    path: str
    height_px: int
    width_px: int
    um_per_px: float | None
    true_count: int
    points_rc: np.ndarray
    density_per_cm2: float = math.nan
    field_rc: tuple[float, float, float, float] | None = None
    hairs: list[dict[str, Any]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    boxes_xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))


# --------------------------------------------------------------------------
# Frame names and the subject split
# --------------------------------------------------------------------------

_FDU_NAME = re.compile(r"^(?P<date>\d+)_(?P<subject>[^_]+)_(?P<n>\d+)$")


def frame_stem(name: str) -> str:
    """File stem of a frame name or path (folder and extension removed).

    Handles both ``/`` and ``\\`` as folder separators, so a run written on
    Windows matches truth read on Linux.
    """
    return PureWindowsPath(str(name).strip()).stem


def subject_half(stem: str) -> str:
    """Half ('A' or 'B') a frame falls in, split by subject.

    FDU frame names are ``<date>_<subject>_<n>`` (``220105_A095_1`` is subject
    ``A095``). The half is the parity of the sha256 of the subject string, so
    every frame of a subject, on every visit, lands in the same half, the
    split is the same on every machine, and the halves are about equal
    (fdu_val: 158 frames / 104 subjects in A, 172 / 117 in B). A stem of
    another form (a phantom) is its own subject.

    Parameters
    ----------
    stem : str
        Frame file stem (a path is reduced to its stem).

    Returns
    -------
    {'A', 'B'}
    """
    stem = frame_stem(stem)
    match = _FDU_NAME.match(stem)
    subject = match.group("subject") if match else stem
    digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()
    return "A" if int(digest, 16) % 2 == 0 else "B"


# --------------------------------------------------------------------------
# Truth readers
# --------------------------------------------------------------------------

def _xml_number(node: ET.Element, tag: str) -> float:
    text = node.findtext(tag)
    if text is None:
        raise ValueError(f"<{tag}> is missing")
    return float(text.strip())


def read_voc(path: str | Path, *, min_box_side_px: float = 2.0) -> FrameTruth | None:
    """Read one Pascal VOC annotation as truth (one box per hair).

    Swapped ``min``/``max`` coordinates are sorted; boxes with a side shorter
    than ``min_box_side_px`` (pixels) are dropped; the true count is the
    number of remaining boxes. The class is read from ``<class>`` (FDU) or
    else ``<name>`` (standard VOC).

    Parameters
    ----------
    path : str or Path
        The ``.xml`` file.
    min_box_side_px : float
        Shortest allowed box side (pixels), measured as ``max - min``.

    Returns
    -------
    FrameTruth or None
        None when the file is not a VOC annotation (root not ``<annotation>``).

    Raises
    ------
    ValueError
        Unreadable XML, missing ``<size>`` or a box without coordinates.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML ({exc})") from exc
    if root.tag != "annotation":
        return None
    size = root.find("size")
    if size is None:
        raise ValueError("no <size> (image width and height) in the annotation")
    height, width = int(_xml_number(size, "height")), int(_xml_number(size, "width"))
    centres, classes, boxes = [], [], []
    for k, obj in enumerate(root.iter("object")):
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"<object> number {k + 1} has no <bndbox>")
        x0, x1 = sorted((_xml_number(box, "xmin"), _xml_number(box, "xmax")))
        y0, y1 = sorted((_xml_number(box, "ymin"), _xml_number(box, "ymax")))
        if x1 - x0 < min_box_side_px or y1 - y0 < min_box_side_px:
            continue
        centres.append(((y0 + y1) / 2.0, (x0 + x1) / 2.0))
        boxes.append((x0, y0, x1, y1))
        classes.append((obj.findtext("class") or obj.findtext("name") or "").strip())
    return FrameTruth(
        image=path.stem, kind="voc", path=str(path), height_px=height, width_px=width,
        um_per_px=None, true_count=len(centres),
        points_rc=np.asarray(centres, dtype=float).reshape(-1, 2), classes=classes,
        boxes_xyxy=np.asarray(boxes, dtype=float).reshape(-1, 4),
    )


def _phantom_hair(hair: dict[str, Any]) -> dict[str, Any]:
    emergence = np.asarray(hair["emergence_rc"], dtype=float).reshape(2)
    line = hair.get("centerline_rc")
    if line is None or len(line) == 0:
        line = [hair["emergence_rc"], hair.get("tip_rc", hair["emergence_rc"])]
    return {
        "hair_id": hair.get("hair_id"),
        "width_um": float(hair["width_um"]),
        "in_field": bool(hair["in_field"]),
        "in_frame": bool(hair["in_frame"]),
        "emergence_rc": emergence,
        "tip_rc": np.asarray(hair.get("tip_rc", line[-1]), dtype=float).reshape(2),
        "unit_id": hair.get("unit_id"),
        "centerline_rc": np.asarray(line, dtype=float).reshape(-1, 2),
    }


def read_phantom_truth(path: str | Path) -> FrameTruth | None:
    """Read one phantom truth file (``"schema": "tricho-phantom-truth/1"``).

    Parameters
    ----------
    path : str or Path
        The ``<stem>.json`` file.

    Returns
    -------
    FrameTruth or None
        None for JSON without that schema key (a manifest, a ``run.json``).

    Raises
    ------
    ValueError
        Unreadable JSON or a truth file with a key missing.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc})") from exc
    except RecursionError:
        raise ValueError("not a truth file (JSON nested too deeply to read)") from None
    if not isinstance(data, dict) or data.get("schema") != PHANTOM_SCHEMA:
        return None
    try:
        hairs = [_phantom_hair(h) for h in data["hairs"]]
        box = data["field"]
        field_rc = tuple(float(box[k]) for k in ("row0", "row1", "col0", "col1"))
        truth = FrameTruth(
            image=path.stem, kind="phantom", path=str(path),
            height_px=int(data["height_px"]), width_px=int(data["width_px"]),
            um_per_px=float(data["um_per_px"]), true_count=int(data["count_in_field"]),
            points_rc=np.array([h["emergence_rc"] for h in hairs if h["in_frame"]],
                               dtype=float).reshape(-1, 2),
            density_per_cm2=float(data["density_per_cm2"]), field_rc=field_rc, hairs=hairs,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"phantom truth is missing or has a bad value for {exc}") from exc
    return truth


def _truth_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = [p for p in path.rglob("*") if p.suffix.lower() in (".json", ".xml") and p.is_file()]
    return sorted(files)


def load_truth(
    path: str | Path, *, min_box_side_px: float = 2.0
) -> tuple[dict[str, FrameTruth], list[str]]:
    """Read every truth file under ``path`` (a folder, searched recursively, or a file).

    A file that cannot be read is reported in the returned warnings and the
    rest are still read; JSON without the phantom schema key and XML that is
    not a VOC annotation are ignored.

    Returns
    -------
    truths : dict of str to FrameTruth
        Keyed by file stem; when stems repeat under the folder (a course:
        one folder per session, the same field names in each), by the path
        under it without the suffix, and the run's frames are matched by path.
    warnings : list of str
        One line per unreadable file.

    Raises
    ------
    EvaluationError
        The path does not exist or holds no truth file.
    """
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"truth path {path} does not exist: give --truth a folder "
                              "of phantom <stem>.json or VOC <stem>.xml files, or one such file")
    truths: dict[str, FrameTruth] = {}
    warnings: list[str] = []
    files = _truth_files(path)
    by_path = path.is_dir() and len({f.stem for f in files}) < len(files)  # a course: same names per session
    for file in files:
        try:
            if file.suffix.lower() == ".json":
                truth = read_phantom_truth(file)
            else:
                truth = read_voc(file, min_box_side_px=min_box_side_px)
        except (OSError, ValueError) as exc:
            warnings.append(f"skipped truth file {file}: {exc}")
            continue
        if truth is None:
            continue
        if by_path:
            truth = dataclasses.replace(truth, image=file.relative_to(path).with_suffix("").as_posix())
        truths[truth.image] = truth
    if not truths:
        detail = f"; {len(warnings)} could not be read, e.g. {warnings[0]}" if warnings else ""
        raise EvaluationError(
            f"found no truth in {path}: expected phantom <stem>.json files with "
            f'"schema": "{PHANTOM_SCHEMA}" or Pascal VOC <stem>.xml annotations{detail}')
    return truths, warnings


def _key_by_path(names: pd.Series, keys: set[str]) -> pd.Series:
    """Each frame name's truth key when the truth is keyed by path: the key its suffix-less path
    ends with (either way round, at a folder boundary); else the suffix-less path itself."""
    out = []
    for name in names.astype(str):
        p = PureWindowsPath(name.strip()).with_suffix("").as_posix()
        hits = [k for k in keys if p == k or p.endswith("/" + k) or k.endswith("/" + p)]
        out.append(hits[0] if len(hits) == 1 else p)
    return pd.Series(out, index=names.index)


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------

_RUN_NUMERIC = ["um_per_px", "area_cm2", "hair_count", "density_per_cm2", "mean_thickness_um",
                "median_thickness_um", "vellus_count", "intermediate_count", "terminal_count"]
_HAIR_NUMERIC = ["row", "col", "length_um", "thickness_um"]


def _read_csv(path: Path, required: Iterable[str], numeric: Iterable[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, keep_default_na=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"cannot read {path}: {exc}; re-run the analysis to rewrite it")
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise EvaluationError(
            f"{path} lacks the column(s) {', '.join(missing)} (it has "
            f"{', '.join(map(str, table.columns))}); was it written by `tricho analyze`?")
    for column in numeric:
        table[column] = (pd.to_numeric(table[column], errors="coerce")
                         if column in table.columns else np.nan)
    table["stem"] = table["image"].astype(str).map(frame_stem)
    return table


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str]]:
    """Read ``images.csv`` and ``hairs.csv`` of an analysis run.

    Returns
    -------
    images : DataFrame
        One row per frame, with a ``stem`` column added and the numeric
        columns coerced to float (missing ones are NaN).
    hairs : DataFrame or None
        One row per hair with ``stem`` added; None when the run has no
        ``hairs.csv`` (interior counts and thickness are then not scored).
    warnings : list of str

    Raises
    ------
    EvaluationError
        No such folder, no ``images.csv`` or missing columns.
    """
    run_dir = Path(run_dir)
    how = "run `tricho analyze IMAGES --out RUN_DIR` first and pass that RUN_DIR"
    if not run_dir.is_dir():
        what = "is a file, not a run folder" if run_dir.exists() else "does not exist"
        raise EvaluationError(f"run folder {run_dir} {what}: {how}")
    images_csv = run_dir / "images.csv"
    if not images_csv.is_file():
        raise EvaluationError(f"{run_dir} has no images.csv, so it is not an analysis run: {how}")
    images = _read_csv(images_csv, ["image", "hair_count"], _RUN_NUMERIC)
    if "status" not in images.columns:
        images["status"] = "ok"
    images["status"] = images["status"].fillna("").astype(str).str.strip().str.lower()
    warnings: list[str] = []
    hairs_csv = run_dir / "hairs.csv"
    hairs = None
    if hairs_csv.is_file():
        hairs = _read_csv(hairs_csv, ["image", "row", "col"], _HAIR_NUMERIC)
    else:
        warnings.append(f"{run_dir} has no hairs.csv: interior counts, thickness and detection "
                        "are not scored; re-run the analysis to write it")
    return images, hairs, warnings


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------

def _pair(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=float).ravel()
    true = np.asarray(true, dtype=float).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"pred and true differ in length ({pred.size} vs {true.size})")
    keep = np.isfinite(pred) & np.isfinite(true)
    return pred[keep], true[keep]


def lins_ccc(pred: Any, true: Any) -> float:
    """Lin's concordance correlation coefficient [1]_.

    ``ccc = 2 s_xy / (s_x² + s_y² + (mean_x - mean_y)²)`` with moments over
    ``n`` (not ``n - 1``), as in Lin (1989). Pairs with a NaN are dropped.

    Parameters
    ----------
    pred, true : array_like, shape (n,)

    Returns
    -------
    float
        In [-1, 1]; NaN for fewer than 2 pairs or when both are constant.
    """
    x, y = _pair(pred, true)
    if x.size < 2:
        return math.nan
    sxy = np.mean((x - x.mean()) * (y - y.mean()))
    denominator = x.var() + y.var() + (x.mean() - y.mean()) ** 2
    return float(2.0 * sxy / denominator) if denominator > 0 else math.nan


def bland_altman(pred: Any, true: Any) -> dict[str, float]:
    """Bland–Altman bias and 95 % limits of agreement [2]_.

    Returns
    -------
    dict
        ``bias`` = mean(pred - true), ``sd`` = its standard deviation
        (``ddof=1``), ``loa_low`` / ``loa_high`` = ``bias -/+ 1.96 sd``, in
        the unit of the inputs; sd and limits are NaN below 2 pairs.
    """
    x, y = _pair(pred, true)
    d = x - y
    bias = float(d.mean()) if d.size else math.nan
    sd = float(d.std(ddof=1)) if d.size >= 2 else math.nan
    return {"bias": bias, "sd": sd, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def agreement(pred: Any, true: Any, *, unit: str) -> dict[str, float | int]:
    """Agreement of a measurement with truth over frames.

    Parameters
    ----------
    pred, true : array_like, shape (n,)
        Per-frame predicted and true values; pairs with a NaN are dropped.
    unit : str
        Suffix for keys in the measured unit (``'hairs'``, ``'per_cm2'``).

    Returns
    -------
    dict
        ``n`` pairs; ``mape_pct`` mean absolute percentage error over the
        ``n_mape`` pairs with ``true != 0`` (``n_true_zero`` left out);
        ``bias_pct`` mean of ``100 (pred - true) / true`` over the same pairs;
        ``bias_<unit>`` mean(pred - true), ``mae_<unit>``, ``sd_diff_<unit>``
        and ``loa_low_<unit>`` / ``loa_high_<unit>`` (Bland–Altman [2]_);
        ``ccc`` (Lin [1]_) and ``pearson_r``.
    """
    x, y = _pair(pred, true)
    nonzero = y != 0
    rel = 100.0 * (x[nonzero] - y[nonzero]) / y[nonzero]
    ba = bland_altman(x, y)
    return {
        "n": int(x.size),
        "mape_pct": float(np.mean(np.abs(rel))) if rel.size else math.nan,
        "n_mape": int(rel.size),
        "n_true_zero": int(np.count_nonzero(~nonzero)),
        "bias_pct": float(np.mean(rel)) if rel.size else math.nan,
        f"bias_{unit}": ba["bias"],
        f"mae_{unit}": float(np.mean(np.abs(x - y))) if x.size else math.nan,
        f"sd_diff_{unit}": ba["sd"],
        f"loa_low_{unit}": ba["loa_low"],
        f"loa_high_{unit}": ba["loa_high"],
        "ccc": lins_ccc(x, y),
        "pearson_r": _pearson(x, y),
    }


# --------------------------------------------------------------------------
# Geometry and matching
# --------------------------------------------------------------------------

def interior_mask(points_rc: np.ndarray, *, height_px: int, width_px: int,
                  margin_px: float, field_rc: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Which points lie at least ``margin_px`` from every border of the counting field.

    Parameters
    ----------
    points_rc : ndarray, shape (K, 2)
        (row, col) in pixels; the frame spans ``[0, height_px) x [0, width_px)``.
    height_px, width_px : int
        Frame size (pixels).
    margin_px : float
        Border band width (pixels).
    field_rc : tuple of 4 float, optional
        Counting box ``(row0, row1, col0, col1)`` (pixels), where it is
        smaller than the frame (a phantom's header or padding strip);
        default the whole frame.

    Returns
    -------
    ndarray of bool, shape (K,)
        True where ``min(row - row0, col - col0, row1 - row, col1 - col) >= margin_px``;
        NaN points are False.

    Examples
    --------
    >>> pts = np.array([[60.0, 100.0], [120.0, 100.0]])
    >>> interior_mask(pts, height_px=300, width_px=300, margin_px=30).tolist()
    [True, True]
    >>> interior_mask(pts, height_px=300, width_px=300, margin_px=30, field_rc=(50, 300, 0, 300)).tolist()
    [False, True]
    """
    row0, row1, col0, col1 = field_rc if field_rc is not None else (0.0, height_px, 0.0, width_px)
    p = np.asarray(points_rc, dtype=float).reshape(-1, 2)
    r, c = p[:, 0], p[:, 1]
    with np.errstate(invalid="ignore"):
        distance = np.minimum.reduce([r - row0, c - col0, row1 - r, col1 - c])
        return distance >= margin_px


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance (pixels) from each of ``points`` (N, 2) to the polyline ``line`` (L, 2)."""
    if len(line) == 1:
        return np.linalg.norm(points - line[0], axis=1)
    a, b = line[:-1], line[1:]
    ab = b - a
    length2 = np.maximum(np.sum(ab * ab, axis=1), 1e-12)
    ap = points[:, None, :] - a[None, :, :]
    t = np.clip(np.sum(ap * ab[None], axis=2) / length2, 0.0, 1.0)
    nearest = a[None] + t[..., None] * ab[None]
    return np.min(np.linalg.norm(points[:, None, :] - nearest, axis=2), axis=1)


def match_hairs(
    pred_rc: np.ndarray,
    lines_rc: list[np.ndarray],
    gates_px: np.ndarray,
    *,
    mid_rc: np.ndarray | None = None,
    shaft_weight: float = 0.0,
) -> list[tuple[int, int, float]]:
    """Match predicted hairs to truth hairs one to one (Hungarian method [3]_).

    A pair is allowed when the predicted (row, col) lies within the truth
    hair's gate of the nearest point of its centre line (pixels).  Among
    the allowed pairs the assignment maximises the number of matches, then
    minimises the total cost: that root distance, plus, when ``mid_rc`` is
    given, ``shaft_weight`` times the distance from the predicted hair's
    centre-line middle to the truth centre line (capped at the gate).  The
    second term decides between hairs that share one opening: each
    predicted hair pairs with the truth hair whose shaft it follows.

    Parameters
    ----------
    pred_rc : ndarray, shape (N, 2)
        Predicted emergence points (row, col; pixels).
    lines_rc : list of ndarray, each shape (L, 2)
        Truth centre lines (row, col; pixels), one per truth hair.
    gates_px : ndarray, shape (M,)
        Largest allowed distance to each truth hair (pixels).
    mid_rc : ndarray, shape (N, 2), optional
        Predicted centre-line middles (row, col; pixels); NaN rows add no
        shaft term.
    shaft_weight : float
        Weight of the shaft term (0: match by the root alone).

    Returns
    -------
    list of (int, int, float)
        ``(pred index, truth index, root distance in pixels)`` per matched pair.
    """
    pred_rc = np.asarray(pred_rc, dtype=float).reshape(-1, 2)
    if len(pred_rc) == 0 or len(lines_rc) == 0:
        return []
    gates = np.asarray(gates_px, dtype=float)[None, :]
    root = np.column_stack([_distance_to_polyline(pred_rc, line) for line in lines_rc])
    allowed = root <= gates
    if not allowed.any():
        return []
    cost = root
    if mid_rc is not None and shaft_weight > 0:
        mid = np.asarray(mid_rc, dtype=float).reshape(-1, 2)
        shaft = np.column_stack([_distance_to_polyline(mid, line) for line in lines_rc])
        cost = root + shaft_weight * np.nan_to_num(np.minimum(shaft, gates), nan=0.0)
    # A forbidden pair costs more than any complete set of allowed pairs, so
    # the optimum never trades an allowed match for a shorter total distance.
    forbidden = (cost[allowed].max() + 1.0) * (min(cost.shape) + 1)
    rows, cols = linear_sum_assignment(np.where(allowed, cost, forbidden))
    return [(int(i), int(j), float(root[i, j])) for i, j in zip(rows, cols) if allowed[i, j]]


# --------------------------------------------------------------------------
# One frame
# --------------------------------------------------------------------------

def _share_pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else math.nan


def _pred_shares(img: pd.Series) -> tuple[float, float]:
    counts = [img.get(k, math.nan) for k in ("vellus_count", "intermediate_count",
                                             "terminal_count")]
    if not all(np.isfinite(counts)):
        return math.nan, math.nan
    return _share_pct(counts[0], sum(counts)), _share_pct(counts[2], sum(counts))


def _in_box(points: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    r0, r1, c0, c1 = box
    r, c = points[:, 0], points[:, 1]
    return (r >= r0) & (r < r1) & (c >= c0) & (c < c1)


def match_phantom_frame(targets: list[dict[str, Any]], pred_hairs: pd.DataFrame, *, um_per_px: float,
                        field_rc: tuple[float, float, float, float],
                        settings: EvaluationSettings) -> tuple[list[tuple[int, int, float]], np.ndarray]:
    """Match a run's hairs of one phantom frame to its truth hairs, as ``tricho evaluate`` scores them.

    Predicted hairs count when their (row, col) lies in the counting field;
    each truth hair's gate is ``gate_widths`` of its width, at least
    ``gate_min_px``; with ``mid_row``/``mid_col`` in the table, hairs of one
    opening pair by their shafts (``shaft_weight``, :func:`match_hairs`).

    Parameters
    ----------
    targets : list of dict
        Truth hairs (``width_um``, ``centerline_rc`` as (L, 2) arrays).
    pred_hairs : DataFrame
        The frame's rows of ``hairs.csv`` (``row``, ``col``, ``thickness_um``).

    Returns
    -------
    pairs : list of (int, int, float)
        ``(index into the kept predictions, truth index, distance in pixels)``.
    kept : ndarray of int
        Row positions in ``pred_hairs`` of the predictions that took part.
    """
    pred_rc = pred_hairs[["row", "col"]].to_numpy(dtype=float)
    kept = np.flatnonzero(np.isfinite(pred_rc).all(axis=1) & _in_box(pred_rc, field_rc))
    gates = np.array([max(settings.gate_min_px, settings.gate_widths * h["width_um"] / um_per_px)
                      for h in targets])
    mid_rc = (pred_hairs[["mid_row", "mid_col"]].to_numpy(dtype=float)[kept]
              if {"mid_row", "mid_col"} <= set(pred_hairs) else None)
    return match_hairs(pred_rc[kept], [h["centerline_rc"] for h in targets], gates,
                       mid_rc=mid_rc, shaft_weight=settings.shaft_weight), kept


def _phantom_columns(truth: FrameTruth, img: pd.Series, pred_hairs: pd.DataFrame,
                     settings: EvaluationSettings) -> tuple[dict[str, Any], np.ndarray]:
    """Thickness, detection and class shares of one phantom frame."""
    counted = [h for h in truth.hairs if h["in_field"]]
    widths = np.array([h["width_um"] for h in counted], dtype=float)
    targets = [h for h in counted if h["in_frame"]]
    pairs, kept = match_phantom_frame(targets, pred_hairs, um_per_px=truth.um_per_px, field_rc=truth.field_rc,
                                      settings=settings)
    pred_um = pred_hairs["thickness_um"].to_numpy(float)[kept]
    diffs = np.array([pred_um[i] - targets[j]["width_um"] for i, j, _ in pairs], dtype=float)
    true_v = _share_pct(np.count_nonzero(widths <= settings.vellus_max_um), widths.size)
    true_t = _share_pct(np.count_nonzero(widths > settings.terminal_min_um), widths.size)
    pred_v, pred_t = _pred_shares(img)
    right, error_um = _root_placement(targets, pred_hairs, kept, pairs, truth.um_per_px)
    return {
        "n_true_detect": len(targets), "n_pred_detect": len(kept), "n_matched": len(pairs),
        "n_root_end_right": right, "emergence_error_um": error_um,
        "true_units": _unit_count(counted), "pred_units": img.get("follicular_units", math.nan),
        "true_mean_thickness_um": float(widths.mean()) if widths.size else math.nan,
        "pred_mean_thickness_um": img.get("mean_thickness_um", math.nan),
        "true_vellus_share_pct": true_v, "pred_vellus_share_pct": pred_v,
        "true_terminal_share_pct": true_t, "pred_terminal_share_pct": pred_t,
    }, diffs


def _root_placement(targets: list[dict[str, Any]], pred_hairs: pd.DataFrame, kept: np.ndarray,
                    pairs: list, um_per_px: float) -> tuple[int, float]:
    """Of the matched hairs: how many report their (row, col) at the root end (nearer the true
    emergence point than the true tip), and the median distance from the true emergence point (µm)."""
    if not pairs:
        return 0, math.nan
    points = pred_hairs[["row", "col"]].to_numpy(float)[kept]
    p = np.array([points[i] for i, _, _ in pairs])
    e = np.array([targets[j]["emergence_rc"] for _, j, _ in pairs])
    t = np.array([targets[j]["tip_rc"] for _, j, _ in pairs])
    to_root, to_tip = np.hypot(*(p - e).T), np.hypot(*(p - t).T)
    return int(np.count_nonzero(to_root <= to_tip)), float(np.median(to_root) * um_per_px)


def _unit_count(hairs: list[dict[str, Any]]) -> int:
    """Follicular units among counted truth hairs (a hair without a ``unit_id`` is its own unit)."""
    ids = [h["unit_id"] for h in hairs if h.get("unit_id") is not None]
    return len(set(ids)) + sum(h.get("unit_id") is None for h in hairs)


def _reference_points(pred_hairs: pd.DataFrame, kind: str) -> np.ndarray:
    """Predicted points comparable with the truth's: emergence points for phantoms
    (whose truth is the emergence point), centre-line middles for boxes (whose truth
    is the box centre, mid-shaft) when the run has them."""
    cols = ["mid_row", "mid_col"] if kind == "voc" and {"mid_row", "mid_col"} <= set(pred_hairs) else ["row", "col"]
    return pred_hairs[cols].to_numpy(float)


def _frame_row(truth: FrameTruth, img: pd.Series, pred_hairs: pd.DataFrame | None,
               settings: EvaluationSettings) -> tuple[dict[str, Any], np.ndarray]:
    """Per-frame table row and the matched thickness differences (µm)."""
    um_per_px = truth.um_per_px or settings.um_per_px_default
    margin_px = settings.margin_um / um_per_px
    # a phantom's field leaves out its header and padding strips, where no hair counts on either side
    size = {"height_px": truth.height_px, "width_px": truth.width_px, "margin_px": margin_px,
            "field_rc": truth.field_rc}
    true_interior = int(interior_mask(truth.points_rc, **size).sum())
    pred_interior = math.nan
    if pred_hairs is not None:
        pred_interior = int(interior_mask(_reference_points(pred_hairs, truth.kind), **size).sum())
    if truth.kind == "phantom":
        true_density = truth.density_per_cm2
    else:
        area = img.get("area_cm2", math.nan)
        if not (np.isfinite(area) and area > 0):
            area = truth.height_px * truth.width_px * um_per_px ** 2 * CM2_PER_UM2
        true_density = truth.true_count / area
    row = {
        "image": truth.image, "truth_kind": truth.kind, "half": subject_half(truth.image),
        "true_um_per_px": um_per_px, "pred_um_per_px": img.get("um_per_px", math.nan),
        "height_px": truth.height_px, "width_px": truth.width_px, "margin_px": margin_px,
        "true_count": truth.true_count, "pred_count": img["hair_count"],
        "true_count_interior": true_interior, "pred_count_interior": pred_interior,
        "true_density_per_cm2": true_density,
        "pred_density_per_cm2": img.get("density_per_cm2", math.nan),
    }
    diffs = np.empty(0)
    if truth.kind == "phantom" and pred_hairs is not None:
        extra, diffs = _phantom_columns(truth, img, pred_hairs, settings)
        row.update(extra)
    return row, diffs


def _add_error_columns(table: pd.DataFrame) -> pd.DataFrame:
    def ape(pred: pd.Series, true: pd.Series) -> pd.Series:
        return (100.0 * (pred - true).abs() / true).where(true != 0)

    t = table
    t["count_error"] = t["pred_count"] - t["true_count"]
    t["count_ape_pct"] = ape(t["pred_count"], t["true_count"])
    t["count_interior_error"] = t["pred_count_interior"] - t["true_count_interior"]
    t["count_interior_ape_pct"] = ape(t["pred_count_interior"], t["true_count_interior"])
    t["density_error_per_cm2"] = t["pred_density_per_cm2"] - t["true_density_per_cm2"]
    t["density_ape_pct"] = ape(t["pred_density_per_cm2"], t["true_density_per_cm2"])
    if "true_units" in t.columns:
        t["units_error"] = t["pred_units"].astype(float) - t["true_units"]
        t["units_ape_pct"] = ape(t["pred_units"].astype(float), t["true_units"])
    for name, unit in (("mean_thickness", "um"), ("vellus_share", "pct"),
                       ("terminal_share", "pct")):
        if f"true_{name}_{unit}" in t.columns:
            error = t[f"pred_{name}_{unit}"].astype(float) - t[f"true_{name}_{unit}"]
            t[f"{name}_error_{'pp' if unit == 'pct' else unit}"] = error
    return t


# --------------------------------------------------------------------------
# The run against truth
# --------------------------------------------------------------------------

def _names(items: Iterable[str]) -> str:
    items = sorted(items)
    more = f", ... ({len(items)} in all)" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def _match_frames(images: pd.DataFrame, truths: dict[str, FrameTruth], run_dir: Path,
                  truth_path: Path, subset: str | None) -> tuple[list[str], dict[str, Any]]:
    """Stems to evaluate and a summary of what was left out and why."""
    run_stems, truth_stems = set(images["stem"]), set(truths)
    common = run_stems & truth_stems
    if not common:
        raise EvaluationError(
            f"no frame of the run matches a truth file by file stem.\n"
            f"  run ({run_dir / 'images.csv'}): {_names(run_stems) or 'no frames'}\n"
            f"  truth ({truth_path}): {_names(truth_stems)}\n"
            "Point --truth at the truth of the images this run analysed.")
    shared = images["stem"].duplicated(keep=False) & images["stem"].isin(common)
    if shared.any():
        names = images.loc[shared, "image"].astype(str).tolist()
        raise EvaluationError(
            f"{run_dir / 'images.csv'} has frames that share a file stem with truth "
            f"({_names(names)}); frames are matched to truth by stem, so give the images "
            "distinct file names and re-run the analysis")
    status = images.drop_duplicates("stem").set_index("stem")["status"]
    excluded = sorted(s for s in common if subset and subject_half(s) != subset)
    errors = sorted(s for s in common - set(excluded) if status[s] != "ok")
    chosen = sorted(common - set(errors) - set(excluded))
    if not chosen:
        where = f" of half {subset}" if subset else ""
        why = (f"all {len(errors)} of them{where} have a status other than 'ok' (see the status and "
               "error columns of images.csv)" if errors else f"none of them is in half {subset}")
        raise EvaluationError(f"{len(common)} frames match the truth, but {why}.")
    frames = {
        "n_run": len(run_stems), "n_truth": len(truth_stems), "n_matched": len(common),
        "n_evaluated": len(chosen), "n_status_error": len(errors),
        "n_other_half": len(excluded), "status_error": errors,
        "run_only": sorted(run_stems - truth_stems), "truth_only": sorted(truth_stems - run_stems),
    }
    return chosen, frames


def _frame_warnings(row: dict[str, Any], truth: FrameTruth, n_hairs: int | None) -> list[str]:
    out = []
    pred_scale = row["pred_um_per_px"]
    if truth.kind == "phantom" and np.isfinite(pred_scale) and \
            abs(pred_scale / truth.um_per_px - 1) > 0.01:
        out.append(f"{truth.image}: run pixel size {pred_scale:.4g} µm/px differs from the "
                   f"truth's {truth.um_per_px:.4g} µm/px by more than 1 %")
    if truth.kind == "phantom":
        n_in_field = sum(h["in_field"] for h in truth.hairs)
        if n_in_field != truth.true_count:
            out.append(f"{truth.path}: count_in_field is {truth.true_count} but "
                       f"{n_in_field} hairs are flagged in_field")
    if not np.isfinite(row["pred_count"]):
        out.append(f"{truth.image}: status ok but no hair_count in images.csv; its count is "
                   "not scored")
    elif n_hairs is not None and n_hairs != row["pred_count"]:
        out.append(f"{truth.image}: images.csv says hair_count {row['pred_count']:g} but "
                   f"hairs.csv has {n_hairs} rows for it")
    return out


def _thickness_block(table: pd.DataFrame, diffs: np.ndarray) -> dict[str, float | int]:
    diffs = diffs[np.isfinite(diffs)]
    cols = ("n_true_detect", "n_pred_detect", "n_matched")
    if all(c in table.columns for c in cols):
        n_true, n_pred, n_match = (int(table[c].fillna(0).sum()) for c in cols)
    else:
        n_true = n_pred = n_match = 0
    precision = n_match / n_pred if n_pred else math.nan
    recall = n_match / n_true if n_true else math.nan
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else math.nan
    frame_err = table.get("mean_thickness_error_um", pd.Series(dtype=float)).dropna()
    return {
        "n": int(diffs.size), "mae_um": float(np.abs(diffs).mean()) if diffs.size else math.nan,
        "bias_um": float(diffs.mean()) if diffs.size else math.nan,
        "n_matched": n_match, "n_true": n_true, "n_pred": n_pred,
        "precision": precision, "recall": recall, "f1": f1,
        "n_frames": int(frame_err.size),
        "frame_mean_mae_um": float(frame_err.abs().mean()) if frame_err.size else math.nan,
    }


def _root_block(table: pd.DataFrame) -> dict[str, float | int]:
    """Where matched hairs report their emergence point (phantoms): the pooled share placed at the
    root end, and the median over frames of each frame's median distance to the true point (µm)."""
    if "n_root_end_right" not in table.columns:
        return {"n": 0, "right_share": math.nan, "frame_median_error_um": math.nan}
    n = int(table["n_matched"].fillna(0).sum())
    errors = table["emergence_error_um"].dropna()
    return {"n": n, "right_share": float(table["n_root_end_right"].fillna(0).sum() / n) if n else math.nan,
            "frame_median_error_um": float(errors.median()) if errors.size else math.nan}


def _share_block(table: pd.DataFrame, column: str) -> dict[str, float | int]:
    errors = table.get(column, pd.Series(dtype=float)).dropna()
    return {"n": int(errors.size),
            "mae_pp": float(errors.abs().mean()) if errors.size else math.nan,
            "bias_pp": float(errors.mean()) if errors.size else math.nan}


def _metrics(table: pd.DataFrame, diffs: np.ndarray) -> dict[str, dict[str, Any]]:
    return {
        "count": agreement(table["pred_count"], table["true_count"], unit="hairs"),
        "count_interior": agreement(table["pred_count_interior"], table["true_count_interior"],
                                    unit="hairs"),
        "density": agreement(table["pred_density_per_cm2"], table["true_density_per_cm2"],
                             unit="per_cm2"),
        "thickness": _thickness_block(table, diffs),
        "units": agreement(table.get("pred_units", pd.Series(dtype=float)),
                           table.get("true_units", pd.Series(dtype=float)), unit="units"),
        "root_end": _root_block(table),
        "vellus_share": _share_block(table, "vellus_share_error_pp"),
        "terminal_share": _share_block(table, "terminal_share_error_pp"),
    }


def evaluate_run(
    run_dir: str | Path,
    truth: str | Path,
    *,
    um_per_px_default: float = 2.78,
    margin_um: float = 300.0,
    subset: str | None = None,
    vellus_max_um: float = 30.0,
    terminal_min_um: float = 60.0,
    min_box_side_px: float = 2.0,
) -> dict[str, Any]:
    """Score an analysis run against phantom or VOC truth.

    Frames are matched by file stem (by path when stems repeat under the
    truth folder, :func:`load_truth`); only frames present on both sides with
    status ``ok`` are scored. Per frame: true and predicted count, the same in
    the interior (points at least ``margin_um`` from every border; predicted
    hairs by their (row, col), phantom hairs by emergence point, ``in_frame``
    only, VOC boxes by centre), density, and for phantoms thickness, detection
    and class shares (predicted hairs are held to the truth's counting rule:
    their (row, col) must lie in the phantom's field box).

    Parameters
    ----------
    run_dir : str or Path
        Analysis run folder with ``images.csv`` and ``hairs.csv``.
    truth : str or Path
        Folder (searched recursively) or single truth file.
    um_per_px_default : float
        Pixel size for truth without one (VOC), µm/px; sets the interior
        margin and, when the run has no ``area_cm2``, the frame area.
    margin_um : float
        Border band left out of the interior counts (µm).
    subset : {None, 'A', 'B'}
        Score only one half of the subjects (:func:`subject_half`).
    vellus_max_um, terminal_min_um : float
        Truth class limits on ``width_um`` (µm): vellus ``<= vellus_max_um``,
        terminal ``> terminal_min_um`` [4]_.
    min_box_side_px : float
        VOC boxes with a side shorter than this are dropped (pixels).

    Returns
    -------
    dict
        ``schema``, ``run_dir``, ``truth``, ``truth_kind``, ``settings``,
        ``frames`` (what was matched and left out), ``metrics`` (blocks
        ``count``, ``count_interior``, ``density``, ``thickness``,
        ``vellus_share``, ``terminal_share``, each with ``n``), ``warnings``
        and ``per_frame`` (DataFrame, one row per scored frame).

    Raises
    ------
    EvaluationError
        For input the user has to fix; the message says what to do.
    """
    settings = EvaluationSettings(
        um_per_px_default=float(um_per_px_default), margin_um=float(margin_um),
        vellus_max_um=float(vellus_max_um), terminal_min_um=float(terminal_min_um),
        min_box_side_px=float(min_box_side_px), subset=subset.upper() if subset else None)
    images, hairs, warnings = load_run(run_dir)
    truths, truth_warnings = load_truth(truth, min_box_side_px=settings.min_box_side_px)
    warnings += truth_warnings
    by_path = any("/" in key for key in truths)  # repeated stems: frames are matched by path
    if by_path:
        images["stem"] = _key_by_path(images["image"], set(truths))
        if hairs is not None:
            hairs["stem"] = _key_by_path(hairs["image"], set(truths))
    stems, frames = _match_frames(images, truths, Path(run_dir), Path(truth), settings.subset)
    frames["matched_by"] = "path" if by_path else "stem"
    by_stem = images.drop_duplicates("stem").set_index("stem")
    hair_groups = dict(tuple(hairs.groupby("stem"))) if hairs is not None else {}
    empty = hairs.iloc[0:0] if hairs is not None else None
    rows, diffs = [], []
    for stem in stems:
        pred_hairs = hair_groups.get(stem, empty)
        row, d = _frame_row(truths[stem], by_stem.loc[stem], pred_hairs, settings)
        rows.append(row)
        diffs.append(d)
        warnings += _frame_warnings(row, truths[stem],
                                    None if pred_hairs is None else len(pred_hairs))
    table = _add_error_columns(pd.DataFrame(rows))
    kinds = sorted(set(table["truth_kind"]))
    return {
        "schema": REPORT_SCHEMA, "run_dir": str(run_dir), "truth": str(truth),
        "truth_kind": kinds[0] if len(kinds) == 1 else "mixed",
        "settings": dataclasses.asdict(settings), "frames": frames,
        "metrics": _metrics(table, np.concatenate(diffs) if diffs else np.empty(0)),
        "warnings": warnings, "per_frame": table,
    }


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """JSON-safe copy: NaN and inf become None, numpy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return [_plain(r) for r in value.to_dict(orient="records")]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def write_report(result: dict[str, Any], path_json: str | Path) -> Path:
    """Write an :func:`evaluate_run` result as JSON (NaN written as null).

    The file holds every key of the result; ``per_frame`` becomes a list of
    row objects (one per frame, same columns as the table).

    Returns
    -------
    Path
        The file written.
    """
    path_json = Path(path_json)
    try:
        path_json.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_plain(result), indent=2, ensure_ascii=False, allow_nan=False)
        path_json.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise EvaluationError(f"cannot write the report to {path_json}: {exc}; "
                              "choose another --json path") from exc
    return path_json


#: (block, key, label) rows of the printed table, in order.
_TABLE_ROWS = [
    ("count", "mape_pct", "count MAPE (%)"),
    ("count", "bias_hairs", "count bias, pred − true (hairs)"),
    ("count", "bias_pct", "count bias (%)"),
    ("count", "mae_hairs", "count MAE (hairs)"),
    ("count", "loa_low_hairs", "count 95% limits of agreement, low (hairs)"),
    ("count", "loa_high_hairs", "count 95% limits of agreement, high (hairs)"),
    ("count", "ccc", "count Lin's CCC"),
    ("count", "pearson_r", "count Pearson r"),
    ("count_interior", "mape_pct", "interior count MAPE (%)"),
    ("count_interior", "bias_hairs", "interior count bias (hairs)"),
    ("count_interior", "mae_hairs", "interior count MAE (hairs)"),
    ("count_interior", "loa_low_hairs", "interior count LoA low (hairs)"),
    ("count_interior", "loa_high_hairs", "interior count LoA high (hairs)"),
    ("count_interior", "ccc", "interior count Lin's CCC"),
    ("density", "mape_pct", "density MAPE (%)"),
    ("density", "bias_per_cm2", "density bias (hairs/cm²)"),
    ("thickness", "mae_um", "thickness MAE, matched hairs (µm)"),
    ("thickness", "bias_um", "thickness bias, matched hairs (µm)"),
    ("thickness", "frame_mean_mae_um", "per-frame mean thickness MAE (µm)"),
    ("thickness", "precision", "detection precision"),
    ("thickness", "recall", "detection recall"),
    ("thickness", "f1", "detection F1"),
    ("units", "mape_pct", "follicular units MAPE (%)"),
    ("units", "bias_units", "follicular units bias, pred − true (units)"),
    ("root_end", "right_share", "emergence point at the root end (share of matched hairs)"),
    ("root_end", "frame_median_error_um", "emergence point error, median (µm)"),
    ("vellus_share", "mae_pp", "vellus share MAE (percentage points)"),
    ("terminal_share", "mae_pp", "terminal share MAE (percentage points)"),
]


def _block_n(block: str, key: str, stats: dict[str, Any]) -> int:
    if block == "thickness" and key in ("precision", "recall", "f1"):
        return stats["n_true"] if key == "recall" else stats["n_pred"] if key == "precision" \
            else stats["n_matched"]
    if block == "thickness" and key == "frame_mean_mae_um":
        return stats["n_frames"]
    if key in ("mape_pct", "bias_pct"):
        return stats["n_mape"]
    return stats["n"]


def format_table(result: dict[str, Any]):
    """Rich table of the aggregate statistics: metric, value, n.

    Rows whose value could not be computed (no such truth, too few frames)
    are left out, except the first count rows, shown as "–".
    """
    from rich.table import Table

    frames = result["frames"]
    half = result["settings"]["subset"]
    table = Table(title=f"{result['truth_kind']} truth: {frames['n_evaluated']} frames scored"
                        f"{f' (half {half})' if half else ''}, {frames['n_matched']} matched "
                        f"by {frames.get('matched_by', 'stem')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("n", justify="right")
    for block, key, label in _TABLE_ROWS:
        stats = result["metrics"][block]
        value = stats.get(key, math.nan)
        finite = value is not None and math.isfinite(value)
        if not finite and block != "count":
            continue
        table.add_row(label, f"{value:.3f}" if finite else "–", str(_block_n(block, key, stats)))
    return table


def evaluate_command(
    run_dir: str | Path,
    truth: str | Path,
    out_json: str | Path | None = None,
    um_per_px: float = 2.78,
    margin_um: float = 300.0,
    half: str | None = None,
    console=None,
) -> int:
    """``tricho evaluate``: score a run, print the table, write the JSON report.

    Parameters
    ----------
    run_dir, truth : str or Path
        As in :func:`evaluate_run`.
    out_json : str or Path, optional
        Report path; default ``RUN_DIR/evaluation.json``.
    um_per_px : float
        Pixel size for truth without one (µm/px).
    margin_um : float
        Interior border band (µm).
    half : {None, 'A', 'B'}
        Score one half of the subjects only.
    console : rich.console.Console, optional
        Where to print; default a new console on stdout (errors on stderr).

    Returns
    -------
    int
        Exit code: 0 when scored, 2 when it could not run because the input
        needs fixing (the message says how).
    """
    from rich.console import Console
    from rich.markup import escape

    out = console or Console()
    err = console or Console(stderr=True)
    try:
        result = evaluate_run(run_dir, truth, um_per_px_default=um_per_px,
                              margin_um=margin_um, subset=half)
        path = write_report(result, out_json or Path(run_dir) / "evaluation.json")
    except EvaluationError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    for line in result["warnings"]:
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    frames = result["frames"]
    if frames["n_status_error"]:
        err.print(f"[yellow]note:[/] {frames['n_status_error']} matched frame(s) with a status other than "
                  f"'ok' (an error, or a skipped copy of another frame) were not scored: "
                  f"{escape(_names(frames['status_error']))}", highlight=False)
    out.print(format_table(result))
    out.print(f"report written to {escape(str(path))}", highlight=False)
    return 0
