"""Do the phantoms fuse a unit's hairs as often as real frames do? Counted-stripe widths, real against generated.

Usage::

    tricho synth /tmp/tune91 --n 30 --seed 91          # tuning seeds (below 1000)
    python benchmarks/stripe_widths.py /tmp/tune91 [/tmp/tune92 ...]

Every counted stripe of a frame (:func:`pipeline.frame.frame_stages`,
``Stages.inside``: before fused stripes are split) is measured with default
settings, and its width is divided by the frame's median stripe width — the
quantity ``Settings.fused_ratio`` splits on. Hairs of one unit that touch
side by side make the wide tail of that ratio. The same code runs on the real
frames of ``../shared/data/fdu_val`` (half A, the tuning half; 70x, 2.78 µm/px)
and on the phantom frames that look like them (black or dark brown hair,
skin tones 1–3, 2.2–3.8 µm/px, full 1280×1024 frames, no long hair), and the
script prints the share of stripes above each ratio for both. Evaluation
data are only read, never copied or trained on.
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phantom_misses import frame_image  # noqa: E402

FDU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fdu_val" / "images"
THRESHOLDS = (1.2, 1.4, 1.6, 2.0)


def stripe_ratios(job: tuple[str, float]) -> list[float]:
    """Width / frame median of every counted stripe of one frame (empty with fewer than 3)."""
    from pipeline.frame import frame_stages
    from pipeline.imageio import read_image
    from pipeline.settings import Settings

    path, um = job
    stages = frame_stages(read_image(path), um_per_px=um, settings=Settings())
    widths = np.array([c.thickness_px for c in stages.inside], float)
    return list(widths / np.median(widths)) if widths.size >= 3 else []


def phantom_jobs(folders: list[Path]) -> list[tuple[str, float]]:
    """Phantom frames like the real 70x set: dark hair, light skin, 2.2–3.8 µm/px, 1280×1024, no long hair."""
    jobs = []
    for folder in folders:
        for p in sorted(folder.rglob("*.json")):
            t = json.loads(p.read_text())
            q = t.get("params", {})
            if (q.get("hair_color") in ("black", "dark_brown") and q.get("skin_tone", 9) <= 3
                    and 2.2 <= t["um_per_px"] <= 3.8 and q.get("height") == 1024
                    and q.get("n_long_hairs", 0) == 0 and q.get("uncut_fraction", 0) == 0):
                jobs.append((str(frame_image(p)), float(t["um_per_px"])))
    return jobs


def main() -> None:
    from pipeline.evaluate import subject_half

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="folders of phantom frames with their truth JSON")
    ap.add_argument("--fdu", type=Path, default=FDU, help="the fdu_val images folder")
    ap.add_argument("--um-per-px", type=float, default=2.78, help="pixel size of the real frames")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if not a.fdu.is_dir():
        raise SystemExit(f"{a.fdu}: no such folder (the real frames live in ../shared/data/fdu_val/images)")
    real = [(str(p), a.um_per_px) for p in sorted(a.fdu.glob("*.jpg")) if subject_half(p.stem) == "A"]
    phantom = phantom_jobs(a.folders)
    if not phantom:
        raise SystemExit("no phantom frame like the real ones (dark hair, skin 1-3, 2.2-3.8 um/px, 1280x1024)")
    rows = []
    with ProcessPoolExecutor(max_workers=a.workers) as pool:
        for name, jobs in (("real (fdu_val half A)", real), ("phantom", phantom)):
            ratios = np.concatenate([np.asarray(r, float) for r in pool.map(stripe_ratios, jobs)] or [np.zeros(0)])
            rows.append({"frames": name, "n_frames": len(jobs), "n_stripes": int(ratios.size),
                         **{f"share > {t}x": round(float(np.mean(ratios > t)), 3) for t in THRESHOLDS}})
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
