"""How much faster do the shipped models' 8-bit copies run a tile, and how far are their maps from the float ones?

Usage::

    python benchmarks/onnx_int8.py [--models hairnet-v2 hairnet-light-v2] [--real ../shared/data/fdu_val/images]

Each shipped folder carries ``weights.int8.onnx`` (``tricho quantize MODEL``:
ONNX Runtime static quantization, QDQ, 7-bit weights per channel, uint8
activations, calibrated on the first ``CALIBRATION_CROPS`` held-out phantom
crops of :func:`pipeline.learned.calibration_crops`).  For each model this
prints the forward time of one 576 x 720 tile (a 1280 x 1024 frame at
2.78 µm/px at the models' 5 µm/px) on one thread, float against int8,
alternated, and the largest and mean difference of the hair probability on
``--check`` further held-out crops (not calibrated on) and, with ``--real``,
on centre crops of every 12th real frame there.  Through the whole core use
``tricho analyze ... --set learned_backend=onnx-int8`` (README, Speed).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_speed import _median_seconds  # noqa: E402


def _real_crops(folder: Path, model_um_per_px: float, um_per_px: float, size: int = 384) -> list[np.ndarray]:
    from pipeline.imageio import read_image
    from pipeline.learned import centre_input

    s = um_per_px / model_um_per_px
    return [centre_input(cv2.resize(read_image(f), None, fx=s, fy=s, interpolation=cv2.INTER_AREA), size)
            for f in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[::12]]


def _diff(a, b, crops: list[np.ndarray]) -> str:
    """Hair probability differences of two forward functions (:func:`pipeline.learned.onnx_forward`)."""
    d = np.concatenate([np.abs(1 / (1 + np.exp(-a(x)[:, 0])) - 1 / (1 + np.exp(-b(x)[:, 0]))).ravel() for x in crops])
    return f"max |diff| {d.max():.3f}, mean {d.mean():.4f}, share over 0.1 {np.mean(d > 0.1):.5f}"


def main() -> None:
    from pipeline.learned import (CALIBRATION_CROPS, INT8_WEIGHTS, ONNX_WEIGHTS, calibration_crops, onnx_forward,
                                  resolve)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["hairnet-v2", "hairnet-light-v2"])
    ap.add_argument("--check", type=int, default=8, help="held-out crops after the calibration ones to compare on")
    ap.add_argument("--real", type=Path, help="a folder of real frames to compare the maps on too")
    ap.add_argument("--real-um-per-px", type=float, default=2.78)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    tile = np.random.default_rng(0).random((1, 3, 576, 720), dtype=np.float32) - 0.5
    for m in a.models:
        src = resolve(m)
        config = json.loads((src / "config.json").read_text())
        f32, i8 = (onnx_forward(src / f, stride=1, threads=1) for f in (ONNX_WEIGHTS, INT8_WEIGHTS))
        times = {"float": [], "int8": []}
        for _ in range(3):  # alternated, so a busy minute hits both
            times["float"].append(_median_seconds(lambda: f32(tile), a.repeat))
            times["int8"].append(_median_seconds(lambda: i8(tile), a.repeat))
        tf, ti = statistics.median(times["float"]), statistics.median(times["int8"])
        print(f"{src.name}: tile 576x720, 1 thread: float {tf:.3f} s, int8 {ti:.3f} s ({tf / ti:.2f}x)")
        held = calibration_crops(config, CALIBRATION_CROPS + a.check)[CALIBRATION_CROPS:]
        print(f"  hair probability, {a.check} held-out phantom crops: {_diff(f32, i8, held)}")
        if a.real:
            real = _real_crops(a.real, config["model_um_per_px"], a.real_um_per_px)
            print(f"  hair probability, {len(real)} real crops of {a.real}: {_diff(f32, i8, real)}")


if __name__ == "__main__":
    main()
