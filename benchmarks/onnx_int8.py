"""Would 8-bit weights and activations run the shipped models faster, and what would they change?

Usage::

    python benchmarks/onnx_int8.py --out /tmp/int8            # builds OUT/hairnet-v2-int8, OUT/hairnet-light-v2-int8
    tricho analyze ../shared/data/fdu_val/images --out /tmp/fdu_int8 --um-per-px 2.78 \\
        --set dark_frame_model=/tmp/int8/hairnet-v2-int8 --set light_hair_model=/tmp/int8/hairnet-light-v2-int8

For each model it writes a copy of the model folder whose ``weights.onnx`` is
quantized statically (ONNX Runtime, QDQ format, int8 weights, uint8
activations; ``weights.pt`` stays the float model's, and the copy's card says so), calibrated on ``--calib`` crops of held-out phantoms
(``[train.HOLDOUT_SEED + 2, i]``, a stream neither training, threshold
tuning nor ``model_by_width.py`` draws from; the model's own scene mix),
and its ``weights.sha256`` rewritten, so ``tricho analyze --set
...=FOLDER`` runs it through the normal ONNX backend. It prints the forward
time of one 576 x 720 tile (a 1280 x 1024 frame at 2.78 µm/px at the
models' 5 µm/px) on one thread, float against int8, alternated, and the
largest and mean difference of the hair probability on those held-out
frames. Nothing is shipped by this script: the copies live in OUT.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_speed import _median_seconds  # noqa: E402


def _sessions(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _held_out(config: dict, n: int, size: int) -> list[np.ndarray]:
    """``n`` held-out phantom crops at the model's pixel size, as the network takes them (:func:`learned.to_input`)."""
    from pipeline.learned import to_input
    from pipeline.train import HOLDOUT_SEED, render_example

    crops = []
    for i in range(n):
        img, _ = render_example((HOLDOUT_SEED + 2, i), config["model_um_per_px"], config.get("scenes", "all"))
        r0, c0 = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        crop = img[max(r0, 0):max(r0, 0) + size, max(c0, 0):max(c0, 0) + size]
        crops.append(to_input(crop).numpy())
    return crops


def quantize(src: Path, dst: Path, crops: list[np.ndarray]) -> Path:
    """Copy model folder ``src`` to ``dst`` with a statically quantized ``weights.onnx``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from pipeline.learned import ONNX_WEIGHTS, _write_digests

    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    name = _sessions(src / ONNX_WEIGHTS).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter({name: c} for c in crops)

        def get_next(self):
            return next(self.it, None)

    pre = dst / "pre.onnx"
    quant_pre_process(str(src / ONNX_WEIGHTS), str(pre))
    quantize_static(str(pre), str(dst / ONNX_WEIGHTS), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    pre.unlink()
    _write_digests(dst)
    card = dst / "MODEL_CARD.md"
    card.write_text(f"> **Not a shipped model**: an int8 copy of `{src.name}` made by `benchmarks/onnx_int8.py` for "
                    f"measurement. Only `weights.onnx` is quantized (`weights.pt` is the float model's, so run it "
                    f"with the ONNX backend); the numbers below are the float model's.\n\n" + card.read_text())
    return dst


def _median_s(sess, x: np.ndarray, repeat: int) -> float:
    """Median forward time (s) of one input, after a warm-up (:func:`onnx_speed._median_seconds`)."""
    feed = {sess.get_inputs()[0].name: x}
    return _median_seconds(lambda: sess.run(None, feed), repeat)


def main() -> None:
    from pipeline.learned import ONNX_WEIGHTS, resolve

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["hairnet-v2", "hairnet-light-v2"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--calib", type=int, default=16, help="held-out phantom crops to calibrate on")
    ap.add_argument("--check", type=int, default=8, help="other held-out crops to compare the maps on")
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    tile = np.random.default_rng(0).random((1, 3, 576, 720), dtype=np.float32) - 0.5
    for m in a.models:
        src = resolve(m)
        config = json.loads((src / "config.json").read_text())
        crops = _held_out(config, a.calib + a.check, 384)
        dst = quantize(src, a.out / f"{src.name}-int8", crops[:a.calib])
        f32, i8 = _sessions(src / ONNX_WEIGHTS), _sessions(dst / ONNX_WEIGHTS)
        times = {"float": [], "int8": []}
        for _ in range(3):  # alternated, so a busy minute hits both
            times["float"].append(_median_s(f32, tile, a.repeat))
            times["int8"].append(_median_s(i8, tile, a.repeat))
        diffs = []
        for x in crops[a.calib:]:
            name = f32.get_inputs()[0].name
            p, q = (1.0 / (1.0 + np.exp(-s.run(None, {name: x})[0][:, 0])) for s in (f32, i8))
            diffs.append(np.abs(p - q))
        d = np.concatenate([x.ravel() for x in diffs])
        tf, ti = statistics.median(times["float"]), statistics.median(times["int8"])
        print(f"{src.name}: tile 576x720, 1 thread: float {tf:.3f} s, int8 {ti:.3f} s ({tf / ti:.2f}x); "
              f"hair probability on {a.check} held-out crops: max |diff| {d.max():.3f}, mean {d.mean():.4f}, "
              f"share over 0.1 {np.mean(d > 0.1):.4f} -> {dst}")


if __name__ == "__main__":
    main()
