"""Seconds per 1280x1024 frame of the per-frame core on one core.

Usage::

    python benchmarks/bench_frame.py [--frames N] [--real DIR] [--um-per-px X] [--segmenter learned --threads 2] [--backend torch|onnx-int8] [--set KEY=VALUE]

Times ``analyze_frame`` (no file I/O) on generated phantoms (and on real
frames when ``--real`` points at a folder of JPEGs), after one warm-up call
that pays numba's compile time. Phantoms are rendered at 2.78 µm/px (a 70x
view, as fdu_val's frames) unless ``--um-per-px`` asks for another pixel
size: a 20x-40x view (6-10 µm/px) is enlarged for the networks, which work
at 5 µm/px, and takes longer. Threads are pinned to one for a fair
one-core figure; ``--threads 2`` lets torch use two (the learned path's
target is stated for 2 cores).
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time

_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
os.environ.setdefault("OMP_NUM_THREADS", _threads)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

from pipeline.core import analyze_frame  # noqa: E402
from pipeline.settings import Settings  # noqa: E402


#: fdu_val's pixel size (a 70x view): the real frames' and, by default, the phantoms'.
UM_PER_PX_70X = 2.78


def frames(n: int, real: str | None, um_per_px: float = UM_PER_PX_70X):
    if real:
        for f in sorted(glob.glob(os.path.join(real, "*.jpg")))[:n]:
            yield cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB), UM_PER_PX_70X
        return
    from pipeline.synth import render_frame, sample_scene

    for i in range(n):
        rng = np.random.default_rng([90210, i])
        params = sample_scene(rng, height=1024, width=1280, um_per_px=um_per_px)
        img, truth = render_frame(params, rng)
        yield img, truth["um_per_px"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--real", default=None, help="folder of real 1280x1024 JPEG frames")
    ap.add_argument("--um-per-px", type=float, default=UM_PER_PX_70X, help="pixel size of the phantoms (not of --real)")
    ap.add_argument("--segmenter", default="classical", choices=["classical", "learned"])
    ap.add_argument("--model", default=Settings().model)
    ap.add_argument("--backend", default=None, choices=["auto", "onnx", "onnx-int8", "torch"],
                    help="what runs the learned network (Settings.learned_backend; default: --set's or auto)")
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads (read before import)")
    ap.add_argument("--set", dest="set_", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting changed, as for tricho analyze (e.g. light_among_dark=0 for an A/B)")
    a = ap.parse_args()
    settings = Settings.from_overrides(a.set_).replace(segmenter=a.segmenter, model=a.model)
    if a.backend is not None:
        settings = settings.replace(learned_backend=a.backend)
    if a.segmenter == "learned":
        import torch

        torch.set_num_threads(a.threads)
    data = list(frames(a.frames, a.real, a.um_per_px))
    analyze_frame(data[0][0], um_per_px=data[0][1], settings=settings)  # warm-up (numba JIT, model load)
    times = []
    for img, um in data:
        t = time.perf_counter()
        analyze_frame(img, um_per_px=um, settings=settings)
        times.append(time.perf_counter() - t)
    print(f"um_per_px={f'{UM_PER_PX_70X} (real)' if a.real else a.um_per_px} segmenter={a.segmenter} backend={settings.learned_backend} threads={a.threads} set={','.join(a.set_) or '-'} frames={len(times)} size={data[0][0].shape[1]}x{data[0][0].shape[0]} "
          f"median_s={statistics.median(times):.3f} mean_s={statistics.mean(times):.3f} max_s={max(times):.3f}")


if __name__ == "__main__":
    main()
