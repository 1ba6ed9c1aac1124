"""Classical and learned segmenters side by side, through the same harness.

Usage::

    python benchmarks/compare_segmenters.py --model hairnet-v2 --out /tmp/segcmp \
        [--tiles ../shared/data/scalp_tiles] [--fdu ../shared/data/fdu_val] [--phantom-seed 1001 --n 48]

* scalp_tiles: Dice and IoU of the hair mask against the hand-drawn masks
  (100 real 128x128 grey tiles).  The tiles carry no scale; their terminal
  shafts are about 5 px wide, so they are read as 15 µm/px (a 75 µm shaft),
  the same for both segmenters (``--tile-um-per-px``).  Both masks go through
  the same hysteresis and clean-up (:func:`pipeline.segment.hair_mask`), each
  with its own thresholds (the settings' for classical, the model's
  ``thresholds.json`` for learned).
* fdu_val: count MAPE and Lin's CCC against the VOC boxes, halves A and B and
  all (``tricho analyze`` + ``tricho evaluate`` internals).
* phantoms: a fresh suite (report seeds >= 1000): count MAPE, CCC, thickness
  MAE, recall, precision.

Writes OUT/segmenters.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from pipeline import segment
from pipeline.batch import run_batch
from pipeline.evaluate import evaluate_run
from pipeline.learned import load_model
from pipeline.settings import Settings
from pipeline.synth import generate


def tile_masks(image: np.ndarray, *, kind: str, um_per_px: float, model=None) -> np.ndarray:
    """Hair mask of one tile by the classical or the learned segmenter."""
    s = Settings()
    if kind == "classical":
        prob = segment.hair_probability(image, um_per_px=um_per_px, settings=s)
    else:
        prob = model.hair_probability(image, um_per_px=um_per_px, settings=s)
        s = s.replace(darkness_low=model.thresholds["low"], darkness_threshold=model.thresholds["high"])
    return segment.hair_mask(prob, um_per_px=um_per_px, settings=s)


def score_tiles(folder: Path, *, um_per_px: float, model) -> dict:
    """Dice / IoU pooled over all tiles and averaged per tile, for both segmenters."""
    out = {}
    images = sorted((folder / "images").glob("*.jpg"))
    for kind in ("classical", "learned"):
        inter = union = found_sum = truth_sum = 0
        dices = []
        for path in images:
            grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            truth = cv2.imread(str(folder / "masks" / path.name), cv2.IMREAD_GRAYSCALE) < 128
            found = tile_masks(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), kind=kind, um_per_px=um_per_px, model=model)
            i, u = int((found & truth).sum()), int((found | truth).sum())
            inter, union = inter + i, union + u
            found_sum, truth_sum = found_sum + int(found.sum()), truth_sum + int(truth.sum())
            dices.append(2 * i / max(found.sum() + truth.sum(), 1))
        out[kind] = {"dice_pooled": 2 * inter / max(found_sum + truth_sum, 1), "iou_pooled": inter / max(union, 1),
                     "dice_mean": float(np.mean(dices)), "tiles": len(images)}
    return out


def score_fdu(folder: Path, out: Path, *, model: str, workers: int) -> dict:
    res = {}
    for kind in ("classical", "learned"):
        run = out / f"fdu_{kind}"
        run_batch([folder / "images"], run, um_per_px=2.78, workers=workers, overlays=False, progress=False,
                  settings=Settings(segmenter=kind, model=model))
        res[kind] = {}
        for half in ("A", "B", None):
            ev = evaluate_run(run, folder / "annotations", subset=half)["metrics"]["count"]
            res[kind][half or "all"] = {"mape_pct": ev["mape_pct"], "ccc": ev["ccc"], "bias_hairs": ev["bias_hairs"]}
    return res


def score_phantoms(seed: int, n: int, out: Path, *, model: str, workers: int) -> dict:
    frames = out / f"phantoms_{seed}"
    generate(frames, n, seed)
    res = {}
    for kind in ("classical", "learned"):
        run = out / f"phantom_{kind}"
        run_batch([frames], run, workers=workers, overlays=False, progress=False,
                  settings=Settings(segmenter=kind, model=model))
        m = evaluate_run(run, frames)["metrics"]
        res[kind] = {"count_mape_pct": m["count"]["mape_pct"], "count_ccc": m["count"]["ccc"],
                     "count_bias_hairs": m["count"]["bias_hairs"], "thickness_mae_um": m["thickness"]["mae_um"],
                     "recall": m["thickness"]["recall"], "precision": m["thickness"]["precision"]}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hairnet-v2")
    ap.add_argument("--out", type=Path, default=Path("/tmp/segcmp"))
    ap.add_argument("--tiles", type=Path, default=Path("../shared/data/scalp_tiles"))
    ap.add_argument("--tile-um-per-px", type=float, default=15.0)
    ap.add_argument("--fdu", type=Path, default=Path("../shared/data/fdu_val"))
    ap.add_argument("--phantom-seed", type=int, default=1001)
    ap.add_argument("--n", type=int, default=48, help="phantom frames (0: skip)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], choices=["tiles", "fdu", "phantoms"])
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    model = load_model(a.model)
    report = {"model": a.model, "model_sha256": model.sha256, "backend": model.backend}
    use = {}
    for name, folder in (("tiles", a.tiles), ("fdu", a.fdu)):
        use[name] = name not in a.skip and folder.is_dir()
        if name not in a.skip and not use[name]:
            print(f"note: {folder} not found (relative paths are taken from {Path.cwd()}): {name} skipped; "
                  f"pass --{name} with the data's folder")
    if use["tiles"]:
        report["scalp_tiles"] = score_tiles(a.tiles, um_per_px=a.tile_um_per_px, model=model)
        report["scalp_tiles"]["tile_um_per_px"] = a.tile_um_per_px
    if use["fdu"]:
        report["fdu_val"] = score_fdu(a.fdu, a.out, model=a.model, workers=a.workers)
    if "phantoms" not in a.skip and a.n > 0:
        if a.phantom_seed < 1000:
            print(f"note: seed {a.phantom_seed} is a tuning seed; report seeds >= 1000")
        report["phantoms"] = score_phantoms(a.phantom_seed, a.n, a.out, model=a.model, workers=a.workers)
        report["phantoms"]["seed"], report["phantoms"]["n"] = a.phantom_seed, a.n
    (a.out / "segmenters.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
