"""Accuracy on a freshly generated phantom suite, the three thickness methods side by side.

Usage::

    python benchmarks/phantom_suite.py --seed 7001 --n 48 --out /tmp/suite

Seeds below 1000 are the tuning seeds; report only seeds >= 1000 (never
looked at while tuning). Prints count/density/thickness agreement for the
``edges`` (default), ``profile`` and ``distance`` thickness methods and writes each
``evaluation.json`` under OUT.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.batch import run_batch
from pipeline.evaluate import evaluate_run, write_report
from pipeline.settings import Settings
from pipeline.synth import generate

ROWS = [
    ("count MAPE (%)", "count", "mape_pct"),
    ("count bias (hairs)", "count", "bias_hairs"),
    ("count Lin's CCC", "count", "ccc"),
    ("density MAPE (%)", "density", "mape_pct"),
    ("thickness MAE (um)", "thickness", "mae_um"),
    ("thickness bias (um)", "thickness", "bias_um"),
    ("detection recall", "thickness", "recall"),
    ("detection precision", "thickness", "precision"),
    ("vellus share error (pp)", "vellus_share", "mae_pp"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7001)
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--out", type=Path, default=Path("/tmp/phantom_suite"))
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if a.seed < 1000:
        print(f"note: seed {a.seed} is a tuning seed; report seeds >= 1000")
    frames = a.out / "frames"
    generate(frames, a.n, a.seed)
    results = {}
    for method in ("edges", "profile", "distance"):
        run = a.out / f"run_{method}"
        run_batch([frames], run, workers=a.workers, settings=Settings(thickness_method=method),
                  overlays=method == "edges", progress=False)
        results[method] = evaluate_run(run, frames)
        write_report(results[method], run / "evaluation.json")  # per_frame as rows, as tricho evaluate writes it
    print(f"phantom suite: seed {a.seed}, {a.n} frames")
    print("| metric | edges | profile | distance |\n|---|---|---|---|")
    for label, block, key in ROWS:
        vals = [results[m]["metrics"][block].get(key) for m in ("edges", "profile", "distance")]
        print(f"| {label} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in vals) + " |")


if __name__ == "__main__":
    main()
