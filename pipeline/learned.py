"""Learned hair segmenter: a compact U-Net written with torch alone.

The network sees an RGB frame resampled to a fixed pixel size
(``config["model_um_per_px"]``, 5 µm/px for the shipped model) and predicts,
per pixel, three maps in [0, 1]:

``hair``
    the shaft mask (what :func:`pipeline.segment.hair_probability` gives on
    the classical path, so it plugs into the same shafts and measurement code);
``centre``
    the shaft centre lines;
``tip``
    a heat map of the cut tips (one per clipped hair, even when several hairs
    share one opening).

A model is a folder ``models/NAME/`` holding ``config.json``,
``thresholds.json``, ``weights.pt``, the same weights exported to ONNX
(``weights.onnx``, run by ONNX Runtime when present: faster on a CPU),
optionally an 8-bit copy of it (``weights.int8.onnx``, :func:`add_int8`; run
with ``learned_backend="onnx-int8"``), ``weights.sha256`` (one line per weights file, checked on load) and
``MODEL_CARD.md``.  It is found by name under the project's ``models/``
folder (or ``$TRICHO_MODELS``), or given as a path.  Nothing is downloaded.
"""
from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from pipeline.settings import Settings

HEADS = ("hair", "centre", "tip")
WEIGHTS = "weights.pt"
ONNX_WEIGHTS = "weights.onnx"
INT8_WEIGHTS = "weights.int8.onnx"
ONNX_INPUT = "x"  # the input's name in every exported model (:func:`export_onnx`)
BACKENDS = ("auto", "onnx", "onnx-int8", "torch")
CALIBRATION_CROPS = 16


class ModelError(RuntimeError):
    """A model folder that cannot be used (missing, corrupt, wrong hash)."""


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class HairNet(nn.Module):
    """U-Net with ``len(widths) - 1`` poolings; input RGB in [-0.5, 0.5].

    Parameters
    ----------
    widths : tuple of int
        Channels per level, finest first.
    n_out : int
        Output maps (logits), one per entry of ``HEADS``.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 48, 64), n_out: int = len(HEADS)) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.down = nn.ModuleList()
        c = 3
        for w in self.widths:
            self.down.append(_block(c, w))
            c = w
        self.up = nn.ModuleList(_block(self.widths[i] + self.widths[i + 1], self.widths[i])
                                for i in reversed(range(len(self.widths) - 1)))
        self.head = nn.Conv2d(self.widths[0], n_out, 1)

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this (pixels)."""
        return 2 ** (len(self.widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            if x.shape[-2] * 2 == skip.shape[-2] and x.shape[-1] * 2 == skip.shape[-1]:
                # sides a multiple of the stride: a doubling, the same values as asking for the skip's size;
                # exported to ONNX as a constant scale, which ONNX Runtime upsamples in its blocked
                # channel layout (about a fifth faster on one core than a size computed at run time)
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            else:
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.head(x)


def to_input(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float tensor (1, 3, H, W) in [-0.5, 0.5]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255).sub_(0.5)[None]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class LearnedModel:
    """A loaded model folder (see the module docstring).

    Attributes
    ----------
    name : str
    path : Path
    net : HairNet
        In eval mode, on the CPU.
    config : dict
        ``config.json``; ``model_um_per_px`` is the pixel size it works at.
    thresholds : dict
        ``thresholds.json``: hysteresis ``low`` / ``high`` on the hair map,
        tuned on phantoms held out from training.
    sha256 : str
        Of ``weights.pt`` (the reference weights, whatever runs them).
    backend : str
        ``"onnx"``, ``"onnx-int8"`` or ``"torch"``: what runs the network.
    forward : callable
        Input batch (1, 3, H, W) float32 -> logits (1, n_out, H, W) float32,
        run by ``backend``.
    run_file, run_sha256 : str
        The weights file ``backend`` runs and its sha256 as checked on load.
    """

    name: str
    path: Path
    net: HairNet
    config: dict
    thresholds: dict
    sha256: str
    backend: str = "torch"
    forward: Callable[[np.ndarray], np.ndarray] | None = None
    run_file: str = WEIGHTS
    run_sha256: str = ""

    @property
    def um_per_px(self) -> float:
        return float(self.config["model_um_per_px"])

    def predict(self, image: np.ndarray, *, um_per_px: float, tile: int = 768,
                overlap: int = 64, heads: tuple[str, ...] = HEADS) -> dict[str, np.ndarray]:
        """Per-pixel maps of an RGB uint8 frame, at the frame's resolution.

        The frame is resampled to the model's pixel size, cut into tiles of
        at most ``tile`` pixels overlapping by at least ``overlap`` (blended
        with a linear ramp, :func:`predict_tiled`), and the maps resampled back.

        Returns
        -------
        dict of str -> ndarray of float32, shape (M, N)
            One map in [0, 1] per entry of ``heads`` (by default every one of ``HEADS``).
        """
        h, w = image.shape[:2]
        f = float(um_per_px) / self.um_per_px
        small = cv2.resize(image, (max(8, round(w * f)), max(8, round(h * f))),
                           interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        maps = predict_tiled(self.forward or self.net, small, tile=tile, overlap=overlap,
                             outputs=[HEADS.index(k) for k in heads])
        return {k: cv2.resize(maps[i], (w, h), interpolation=cv2.INTER_LINEAR) for i, k in enumerate(heads)}

    def hair_probability(self, image: np.ndarray, *, um_per_px: float | None,
                         settings: Settings = Settings(), valid: np.ndarray | None = None) -> np.ndarray:
        """Drop-in for :func:`pipeline.segment.hair_probability` (same arguments and output)."""
        prob = self.predict(image, um_per_px=um_per_px or settings.scale_um_per_px)["hair"]
        if valid is not None:
            prob = np.where(valid, prob, 0.0)
        return prob.astype(np.float32)


def _ramp(n: int, overlap: int) -> np.ndarray:
    r = np.ones(n, np.float32)
    k = min(overlap, n // 2)
    if k > 0:
        edge = (np.arange(k, dtype=np.float32) + 0.5) / k
        r[:k], r[n - k:] = edge, edge[::-1]
    return r


def _spans(n: int, tile: int, overlap: int, stride: int) -> tuple[list[int], int]:
    """Starts and common length of the fewest equal tiles that cover ``n`` pixels padded to the stride.

    The side is first padded to ``N``, a multiple of ``stride``. Each tile is
    at most ``tile`` long, starts on a multiple of ``stride`` (so the
    network's pooling grid is the whole frame's, and a tile's inside reads as
    the whole frame would) and overlaps the next by at least ``overlap``; the
    tiles are spread evenly, so the pixels run through the network are about
    ``N`` plus the overlaps. Returns ``([0], N)`` when ``N <= tile``.
    """
    padded = -(-n // stride) * stride
    if padded <= tile:
        return [0], padded
    units, size_max, over = padded // stride, max(1, tile // stride), -(-overlap // stride)
    k = -(-(units - over) // max(1, size_max - over))
    size = min(size_max, -(-(units + (k - 1) * over) // k))
    return [stride * (i * (units - size) // (k - 1)) for i in range(k)], stride * size


def torch_forward(net: HairNet) -> Callable[[np.ndarray], np.ndarray]:
    """``net`` as a function of numpy arrays: (1, 3, H, W) float32 -> logits."""
    net.eval()

    @torch.no_grad()
    def forward(x: np.ndarray) -> np.ndarray:
        return net(torch.from_numpy(x)).numpy()

    forward.stride = net.stride
    return forward


def predict_tiled(net: HairNet | Callable[[np.ndarray], np.ndarray], image: np.ndarray, *,
                  tile: int = 768, overlap: int = 64, outputs: list[int] | None = None) -> np.ndarray:
    """Sigmoid maps (n_out, H, W) of an RGB uint8 image at the model's scale.

    Parameters
    ----------
    net : HairNet or callable
        The network, or a forward function of numpy arrays with a
        ``stride`` attribute (what :func:`torch_forward` and
        :func:`onnx_forward` return).
    image : ndarray of uint8, shape (H, W, 3)
    tile, overlap : int
        Largest tile side and least overlap in pixels. The image is padded
        (mirrored) to a multiple of the stride and cut into the fewest equal
        tiles that start on the stride (:func:`_spans`); they are blended
        with a linear ramp.
    outputs : list of int, optional
        The network's outputs wanted, in this order (default: all of them).
    """
    forward = torch_forward(net) if isinstance(net, nn.Module) else net
    stride = forward.stride
    h, w = image.shape[:2]
    (rows, th), (cols, tw) = _spans(h, tile, overlap, stride), _spans(w, tile, overlap, stride)
    padded = cv2.copyMakeBorder(image, 0, -h % stride, 0, -w % stride, cv2.BORDER_REFLECT_101)
    out = weight = wt = None
    for r0 in rows:
        for c0 in cols:
            logits = forward(to_input(padded[r0:r0 + th, c0:c0 + tw]).numpy())[0]
            if outputs is not None:
                logits = logits[outputs]
            y = 1.0 / (1.0 + np.exp(-logits))
            if len(rows) == len(cols) == 1:  # one tile: its weights are all 1, the blend is the map itself
                return np.ascontiguousarray(y[:, :h, :w], np.float32)
            if out is None:  # the tiles are of one size: one set of blend weights
                out, weight = np.zeros((y.shape[0],) + padded.shape[:2], np.float32), np.zeros(padded.shape[:2], np.float32)
                wt = np.outer(_ramp(th, overlap if len(rows) > 1 else 0), _ramp(tw, overlap if len(cols) > 1 else 0))
            out[:, r0:r0 + th, c0:c0 + tw] += y * wt
            weight[r0:r0 + th, c0:c0 + tw] += wt
    out /= np.maximum(weight, 1e-6)
    return np.ascontiguousarray(out[:, :h, :w])


def onnx_forward(path: Path, stride: int, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """An ONNX Runtime session on ``path`` (CPU, ``threads`` threads) as a forward function like
    :func:`torch_forward`.

    Raises
    ------
    ImportError
        onnxruntime is not installed.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def forward(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]

    forward.stride = stride
    return forward


def export_onnx(net: HairNet, path: str | os.PathLike) -> Path:
    """Export ``net`` to ONNX (opset 17, any tile height and width divisible by its stride).

    Needs the ``onnx`` package (a project dependency); the file is what
    :func:`onnx_forward` runs.
    """
    net.eval()
    x = torch.zeros(1, 3, 4 * net.stride, 4 * net.stride)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net, x, str(path), input_names=[ONNX_INPUT], output_names=["logits"], opset_version=17,
                          dynamic_axes={ONNX_INPUT: {2: "h", 3: "w"}, "logits": {2: "h", 3: "w"}}, dynamo=False)
    return Path(path)


def models_root() -> Path:
    """Where models are looked up by name: ``$TRICHO_MODELS`` or the project's ``models/``."""
    env = os.environ.get("TRICHO_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "models"


def resolve(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if (p / "config.json").is_file():
        return p
    q = models_root() / str(name_or_path)
    if (q / "config.json").is_file():
        return q
    raise ModelError(f"model {str(name_or_path)!r} not found (looked in {p} and {q}): give a model folder "
                     f"with config.json, or train one with `tricho train --out models/NAME`")


def save_model(folder: str | os.PathLike, net: HairNet, config: dict, thresholds: dict) -> Path:
    """Write a model folder (weights in torch and ONNX form, their sha256, config, thresholds)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    cfg = {**config, "widths": list(net.widths), "heads": list(HEADS)}
    torch.save(net.state_dict(), out / WEIGHTS)
    export_onnx(net, out / ONNX_WEIGHTS)
    (out / INT8_WEIGHTS).unlink(missing_ok=True)  # a former model's 8-bit copy must not be listed as this one's
    _write_digests(out)
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "thresholds.json").write_text(json.dumps(thresholds, indent=2) + "\n")
    return out


def read_digests(folder: Path) -> dict[str, str]:
    """``weights.sha256`` of a model folder as {file name: sha256}.

    Raises
    ------
    OSError, ValueError
        The file is missing or a line is not ``sha256  name``.
    """
    return {f: d for d, f in (line.split() for line in (folder / "weights.sha256").read_text().splitlines()
                              if line.strip())}


def _write_digests(folder: Path) -> None:
    """``weights.sha256``: one ``sha256  file`` line per weights file present (the ``sha256sum`` format)."""
    (folder / "weights.sha256").write_text("".join(f"{file_sha256(folder / f)}  {f}\n"
                                                   for f in (WEIGHTS, ONNX_WEIGHTS, INT8_WEIGHTS)
                                                   if (folder / f).is_file()))


def _checked(path: Path, digests: dict[str, str], name: str) -> str:
    """sha256 of ``path / name``, checked against ``weights.sha256``."""
    expected = digests.get(name)
    if expected is None:
        raise ModelError(f"{path / 'weights.sha256'} lists no sha256 for {name}; restore the folder from git "
                         f"or retrain with `tricho train --out {path}`")
    digest = file_sha256(path / name)
    if digest != expected:
        raise ModelError(f"{path / name}: sha256 {digest[:12]}… does not match weights.sha256 "
                         f"({expected[:12]}…); the file is corrupt or was replaced: restore it from git "
                         f"or retrain with `tricho train --out {path}`")
    return digest


def _onnx_or_none(path: Path, digests: dict[str, str], stride: int, backend: str):
    """The ONNX Runtime forward of the folder with the file it runs and that file's checked sha256, or
    None when ``auto`` falls back to torch.

    ``backend="onnx-int8"`` runs ``weights.int8.onnx``, the others ``weights.onnx``.
    Runs on as many threads as torch was given (1 in a batch worker, see :func:`load_model`)."""
    file, fix = (INT8_WEIGHTS, "make it with `tricho quantize`") if backend == "onnx-int8" else \
        (ONNX_WEIGHTS, "export it with pipeline.learned.add_onnx")
    reason = None
    if file not in digests or not (path / file).is_file():
        reason = f"{path} has no checked {file} ({fix})"
    else:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            reason = "onnxruntime is not installed (pip install onnxruntime)"
    if reason is not None:
        if backend != "auto":
            raise ModelError(f"learned_backend={backend!r} cannot run: {reason}; or use learned_backend=torch")
        return None
    digest = _checked(path, digests, file)  # before the file is opened
    return onnx_forward(path / file, stride, torch.get_num_threads()), file, digest


@functools.lru_cache(maxsize=8)
def load_model(name_or_path: str, backend: str = "auto") -> LearnedModel:
    """Load a model folder by name or path; the weights' sha256 are checked.

    Parameters
    ----------
    name_or_path : str
    backend : {"auto", "onnx", "onnx-int8", "torch"}
        What runs the network (see ``Settings.learned_backend``).

    Raises
    ------
    ModelError
        Folder missing, a file missing, weights that do not match
        ``weights.sha256`` (a corrupt or swapped file), or ``backend="onnx"``
        (``"onnx-int8"``) without ``weights.onnx`` (``weights.int8.onnx``) or
        onnxruntime.
    """
    if backend not in BACKENDS:
        raise ModelError(f"backend must be one of {BACKENDS}, not {backend!r}")
    path = resolve(name_or_path)
    try:
        config = json.loads((path / "config.json").read_text())
        thresholds = json.loads((path / "thresholds.json").read_text())
        digests = read_digests(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"model folder {path} is incomplete or unreadable ({exc}); retrain it with "
                         f"`tricho train --out {path}`") from exc
    digest = _checked(path, digests, WEIGHTS)
    net = HairNet(tuple(config["widths"]), len(config.get("heads", HEADS)))
    net.load_state_dict(torch.load(path / WEIGHTS, map_location="cpu", weights_only=True))
    net.eval()
    if multiprocessing.parent_process() is not None:
        torch.set_num_threads(1)  # a batch worker: the pool already uses every core
    onnx = None if backend == "torch" else _onnx_or_none(path, digests, net.stride, backend)
    if onnx is None:
        return LearnedModel(path.name, path, net, config, thresholds, digest, "torch", torch_forward(net), WEIGHTS, digest)
    forward, file, file_digest = onnx
    ran = "onnx-int8" if backend == "onnx-int8" else "onnx"
    return LearnedModel(path.name, path, net, config, thresholds, digest, ran, forward, file, file_digest)


def add_onnx(folder: str | os.PathLike) -> Path:
    """Export a model folder's checked ``weights.pt`` to ``weights.onnx`` and list its sha256.

    For folders written before models carried ONNX weights; :func:`save_model`
    writes both.
    """
    model = load_model(str(folder), "torch")
    export_onnx(model.net, model.path / ONNX_WEIGHTS)
    _write_digests(model.path)
    load_model.cache_clear()
    return model.path / ONNX_WEIGHTS


def calibration_crops(config: dict, n: int = CALIBRATION_CROPS, size: int = 384) -> list[np.ndarray]:
    """``n`` phantom crops (``size`` px square, centred) as the network takes them, for int8 calibration.

    Frames ``[train.HOLDOUT_SEED + 2, i]`` at the model's pixel size and of its
    scene mix (``config["scenes"]``, ``config["unit_parallel_share"]``): a stream neither training nor the
    threshold tuning draws from.
    """
    from pipeline.train import HOLDOUT_SEED, render_example

    return [centre_input(render_example((HOLDOUT_SEED + 2, i), config["model_um_per_px"], config.get("scenes", "all"),
                                        unit_parallel_share=config.get("unit_parallel_share", 0.0))[0], size)
            for i in range(n)]


def centre_input(image: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` crop of an RGB uint8 frame as the network takes it (:func:`to_input`)."""
    r0, c0 = max((image.shape[0] - size) // 2, 0), max((image.shape[1] - size) // 2, 0)
    return to_input(image[r0:r0 + size, c0:c0 + size]).numpy()


def quantize_onnx(src: Path, dst: Path, crops: list[np.ndarray]) -> Path:
    """Write ``dst``, an 8-bit copy of the ONNX model ``src`` calibrated on ``crops``.

    ONNX Runtime static quantization, QDQ format: int8 weights per output
    channel, uint8 activations with min-max ranges over ``crops``
    (Jacob et al. 2018, "Quantization and training of neural networks for
    efficient integer-arithmetic-only inference", CVPR).  Weights take 7 bits
    (``reduce_range``): x86 CPUs without VNNI multiply uint8 by int8 with an
    instruction that adds pairs of products in 16 bits, which 8-bit weights
    can overflow (2 x 255 x 128 > 32767) and 7-bit ones cannot
    (2 x 255 x 64 = 32640), as ONNX Runtime's documentation recommends for
    such CPUs; a test model's 8-bit-weight copy lost its whole mask on one.
    """
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Crops(CalibrationDataReader):
        def __init__(self, name: str):
            self.feeds = iter({name: c} for c in crops)

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # auto_merge: the decoder's constant doubling (HairNet.forward) leaves the symbolic shape inference two
        # names for one side (2 x h of the coarser level, h of the skip); without it the inference stops
        quant_pre_process(str(src), str(pre), auto_merge=True)
        quantize_static(str(pre), str(dst), Crops(ONNX_INPUT), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        reduce_range=True)
    return Path(dst)


def add_int8(folder: str | os.PathLike, n: int = CALIBRATION_CROPS) -> Path:
    """Write a model folder's ``weights.int8.onnx`` (from its checked ``weights.onnx``) and list its sha256.

    Calibrated on ``n`` held-out phantom crops (:func:`calibration_crops`);
    the same folder and ``n`` give the same file.  Run it with
    ``learned_backend="onnx-int8"``.
    """
    load_model.cache_clear()  # the folder as it is on disk now
    path = resolve(folder)
    if not (path / ONNX_WEIGHTS).is_file():
        raise ModelError(f"cannot quantize {path}: it has no {ONNX_WEIGHTS}; export it first with "
                         f"python -c \"from pipeline.learned import add_onnx; add_onnx('{path}')\"")
    model = load_model(str(path), "onnx")
    quantize_onnx(model.path / ONNX_WEIGHTS, model.path / INT8_WEIGHTS, calibration_crops(model.config, n))
    _write_digests(model.path)
    load_model.cache_clear()
    return model.path / INT8_WEIGHTS


def load_problem(name_or_path: str, backend: str = "auto") -> str:
    """Why the model folder ``name_or_path`` does not load (the :class:`ModelError` message), or ``""``."""
    try:
        load_model(name_or_path, backend)
    except ModelError as exc:
        return str(exc)
    return ""


def available(name_or_path: str, backend: str = "auto") -> bool:
    """Whether the model folder ``name_or_path`` loads (found, weights matching their sha256)."""
    return not load_problem(name_or_path, backend)


def uses_learned(settings: Settings) -> bool:
    """Whether ``settings`` select the learned path (``auto`` follows the model's own card)."""
    if settings.segmenter == "classical":
        return False
    if settings.segmenter == "learned":
        return True
    try:
        return bool(load_model(settings.model, settings.learned_backend).config.get("auto_prefer", False))
    except ModelError:
        return False
