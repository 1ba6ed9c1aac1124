"""Batch throughput: frames/s with 1 and 2 local workers and on a Dask LocalCluster, and peak memory.

Usage::

    python benchmarks/bench_batch.py --n 500 --out /tmp/bench_batch [--height 1024 --width 1280]

Renders ``--n`` phantom frames (seed 3003) once, then times a fresh
``tricho analyze FRAMES --no-overlays --quiet`` (a new output folder each
time, so no stored result is reused) with ``--workers 1``, ``--workers 2``
and ``--scheduler`` on a 2-worker Dask LocalCluster. Peak memory: the
largest resident set of any process of the run (main or worker,
``getrusage(RUSAGE_CHILDREN)``), and for Dask each worker's own peak.
Writes OUT/bench_batch.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


_WRAP = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _analyze(frames: Path, out: Path, *extra: str) -> tuple[float, float]:
    """Seconds of one fresh run, and the peak RSS (MB) of its largest process (main or worker)."""
    cmd = [sys.executable, "-m", "pipeline.cli", "analyze", str(frames), "--out", str(out), "--no-overlays",
           "--quiet", *extra]
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAP, *cmd], check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, int(done.stdout.split()[-1]) / 1024.0


def _worker_peak_mb() -> float:
    import resource as r

    return r.getrusage(r.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_batch"))
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--seed", type=int, default=3003)
    a = ap.parse_args()
    from pipeline.synth import generate

    frames = a.out / f"frames_{a.n}_{a.height}x{a.width}"
    if not (frames / "manifest.csv").is_file():
        t0 = time.perf_counter()
        generate(frames, a.n, a.seed, height=a.height, width=a.width)
        print(f"rendered {a.n} frames in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    report = {"n_frames": a.n, "frame_px": [a.height, a.width], "seed": a.seed, "runs": {}}
    for workers in (1, 2):
        seconds, peak = _analyze(frames, a.out / f"run_w{workers}", "--workers", str(workers))
        report["runs"][f"local_{workers}"] = {"seconds": round(seconds, 1), "frames_per_s": round(a.n / seconds, 3),
                                              "peak_rss_mb_any_process": round(peak, 0)}
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        seconds, _ = _analyze(frames, a.out / "run_dask", "--scheduler", cluster.scheduler_address)
        peaks = client.run(_worker_peak_mb)
    report["runs"]["dask_2"] = {"seconds": round(seconds, 1), "frames_per_s": round(a.n / seconds, 3),
                                "peak_rss_mb_per_worker": sorted(round(v, 0) for v in peaks.values())}
    one = report["runs"]["local_1"]["frames_per_s"]
    for run in report["runs"].values():
        run["speedup_vs_1"] = round(run["frames_per_s"] / one, 2)
    (a.out / "bench_batch.json").write_text(json.dumps(report, indent=2))
    print("| run | seconds | frames/s | speed-up vs 1 worker | peak memory (MB) |\n|---|---|---|---|---|")
    for name, run in report["runs"].items():
        mem = run.get("peak_rss_mb_any_process", run.get("peak_rss_mb_per_worker"))
        print(f"| {name} | {run['seconds']} | {run['frames_per_s']} | {run['speedup_vs_1']} | {mem} |")


if __name__ == "__main__":
    main()
