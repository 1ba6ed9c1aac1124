"""Seconds per frame of the per-frame core on a folder of phantoms, default settings against ``--set`` overrides.

Usage::

    python benchmarks/bench_ab_frames.py FOLDER --set model_seam_level=0

Times ``analyze_frame`` (no file I/O) on every frame of FOLDER (phantom
images beside their truth JSON, which gives the pixel size), the default
settings and the overridden ones alternated frame by frame, after one
warm-up call of each; threads pinned to one. Prints both medians and the
median per-frame difference. Use it for a setting that acts on some frames
only (e.g. a folder of the light-hair frames of a suite).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    from pipeline.core import analyze_frame
    from pipeline.imageio import read_image
    from pipeline.settings import Settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--set", dest="set_pairs", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    frames = []
    for j in sorted(a.folder.glob("*.json")):
        truth = json.loads(j.read_text())
        image = next(p for p in a.folder.glob(j.stem + ".*") if p.suffix != ".json")
        frames.append((read_image(image), float(truth["um_per_px"])))
    if not frames:
        raise SystemExit(f"no phantom frames (image + truth JSON) in {a.folder}")
    base, other = Settings(), Settings.from_overrides(a.set_pairs)
    for s in (base, other):
        analyze_frame(frames[0][0], um_per_px=frames[0][1], settings=s)  # warm-up (numba, model loading)
    ta, tb = [], []
    for img, um in frames:
        for s, acc in ((base, ta), (other, tb)):
            t0 = time.perf_counter()
            analyze_frame(img, um_per_px=um, settings=s)
            acc.append(time.perf_counter() - t0)
    print(f"{len(frames)} frames: default median {statistics.median(ta):.2f} s, with {' '.join(a.set_pairs)} "
          f"{statistics.median(tb):.2f} s; per-frame difference (default - other) median "
          f"{statistics.median([x - y for x, y in zip(ta, tb)]):.2f} s")


if __name__ == "__main__":
    main()
