"""How much the count of a frame moves when the same photo is saved again as JPEG.

Usage::

    python benchmarks/reencode_stability.py ../shared/data/fdu_val/images --n 30 --um-per-px 2.78
    python benchmarks/reencode_stability.py FOLDER --n 30 --quality 95 75 --set direction_consensus=0.5

Takes every ``len(files) // n``-th image of ``FOLDER`` (sorted by name, so
the same frames each time), writes each decoded frame once losslessly (PNG)
and once per ``--quality`` as JPEG (Pillow, no other change: same pixels up to
the compression), runs ``tricho analyze`` on all of them in one batch and
prints, per quality, the mean absolute change of the hair count against the
PNG copy (hairs and % of the PNG count), the bias, how many frames moved and
the largest moves.

A re-save at quality 95 is far below the differences between two visits
(light, focus, position); a tool whose count moves with it cannot follow a
patient's course. This is the floor of the test-retest noise the course
comparison (``pipeline.course``) has to live with.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
from PIL import Image

from pipeline.batch import run_batch
from pipeline.imageio import IMAGE_EXTENSIONS, read_image
from pipeline.settings import Settings


def write_copies(files: list[Path], folder: Path, qualities: list[int]) -> None:
    """Each frame as ``<stem>__png.png`` and ``<stem>__q<Q>.jpg`` for every quality."""
    for f in files:
        rgb = Image.fromarray(read_image(f))
        rgb.save(folder / f"{f.stem}__png.png")
        for q in qualities:
            rgb.save(folder / f"{f.stem}__q{q}.jpg", quality=q)


def changes(images: pd.DataFrame) -> pd.DataFrame:
    """One row per frame and quality: the PNG copy's count, the JPEG copy's count and the change."""
    d = images[images["status"] == "ok"].copy()
    parts = d["image"].map(lambda s: Path(s).stem).str.rsplit("__", n=1)
    d["frame"], d["copy"] = parts.str[0], parts.str[1]
    table = d.pivot(index="frame", columns="copy", values="hair_count")
    rows = [{"frame": k, "quality": c, "png": r["png"], "jpeg": r[c], "change": r[c] - r["png"]}
            for k, r in table.iterrows() for c in table.columns if c != "png"]
    return pd.DataFrame(rows)


def report(d: pd.DataFrame) -> None:
    d = d.assign(abs_change=d["change"].abs(), pct=100 * d["change"].abs() / d["png"].clip(lower=1))
    s = d.groupby("quality").agg(frames=("frame", "size"), mean_abs_change=("abs_change", "mean"),
                                 mean_abs_change_pct=("pct", "mean"), bias=("change", "mean"),
                                 frames_moved=("abs_change", lambda x: int((x > 0).sum())))
    print("hair count of the JPEG copy against the PNG copy:\n" + s.round(2).to_string() + "\n")
    print("largest moves:\n" + d.sort_values("abs_change", ascending=False).head(8)[
        ["frame", "quality", "png", "jpeg", "change"]].to_string(index=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--n", type=int, default=30, help="frames taken, evenly spaced in name order")
    ap.add_argument("--quality", type=int, nargs="+", default=[95])
    ap.add_argument("--um-per-px", type=float, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", dest="set_", action="append", default=[], help="setting override KEY=VALUE")
    a = ap.parse_args()
    files = sorted(p for p in a.folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        sys.exit(f"no images in {a.folder}")
    files = files[::max(1, len(files) // a.n)][:a.n]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "frames", Path(tmp) / "run"
        src.mkdir()
        write_copies(files, src, a.quality)
        run_batch([src], out, um_per_px=a.um_per_px, workers=a.workers, settings=Settings.from_overrides(a.set_),
                  progress=False, overlays=False)
        images = pd.read_csv(out / "images.csv")
    report(changes(images))


if __name__ == "__main__":
    main()
