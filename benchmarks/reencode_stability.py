"""How much the count of a frame moves when the same photo is saved again as JPEG.

Usage::

    python benchmarks/reencode_stability.py ../shared/data/fdu_val/images --n 30 --um-per-px 2.78
    python benchmarks/reencode_stability.py FOLDER --n 30 --quality 95 75 --set direction_consensus=0.5
    python benchmarks/reencode_stability.py /tmp/t95 --n 48 --quality --turns --truth /tmp/t95

``--turns`` adds four copies of the same pixels turned by 90 and 180 degrees and
flipped left-right and upside down (PNG; the count of hairs whose emergence lies
in the field does not change with either). With ``--truth`` (a phantom folder
from ``tricho synth``: its JSON truth beside each frame) it also prints each
copy's count MAPE against the truth and that of the median count over all
copies: how much of the error is jitter that averaging would remove. Pixel
sizes come from ``--um-per-px`` or from the folder's ``manifest.csv``.

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

import numpy as np
import pandas as pd
from PIL import Image

from pipeline.batch import read_manifest, run_batch
from pipeline.evaluate import agreement, read_phantom_truth
from pipeline.imageio import IMAGE_EXTENSIONS, read_image
from pipeline.settings import Settings


#: The turned and flipped copies of ``--turns``: name and operation on a (rows, cols, ...) array.
TURNS = {"r90": lambda a: np.rot90(a, 1), "r180": lambda a: np.rot90(a, 2),
         "fh": lambda a: a[:, ::-1], "fv": lambda a: a[::-1]}


def write_copies(files: list[Path], folder: Path, qualities: list[int], *, turns: bool = False,
                 um_per_px: dict[str, float] | None = None) -> None:
    """Each frame as ``<stem>__png.png``, ``<stem>__q<Q>.jpg`` for every quality and, with ``turns``,
    ``<stem>__<turn>.png`` for every :data:`TURNS`; with ``um_per_px`` (file name -> µm/px) a
    ``manifest.csv`` giving every copy its frame's pixel size."""
    rows = []
    for f in files:
        pixels = read_image(f)
        rgb = Image.fromarray(pixels)
        names = [f"{f.stem}__png.png"]
        rgb.save(folder / names[0])
        for q in qualities:
            names.append(f"{f.stem}__q{q}.jpg")
            rgb.save(folder / names[-1], quality=q)
        for name, turn in (TURNS.items() if turns else ()):
            names.append(f"{f.stem}__{name}.png")
            Image.fromarray(np.ascontiguousarray(turn(pixels))).save(folder / names[-1])
        if um_per_px is not None:
            rows += [{"image": n, "um_per_px": um_per_px[f.name]} for n in names]
    if um_per_px is not None:
        pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)


def truth_scores(d: pd.DataFrame, truth: dict[str, int]) -> pd.DataFrame:
    """Count MAPE (%) against ``truth`` (frame stem -> true count) of every copy and of the median count
    over all copies of a frame, as ``tricho evaluate`` scores it (:func:`pipeline.evaluate.agreement`:
    frames with a true count of 0 are left out)."""
    table = d.pivot(index="frame", columns="copy", values="hair_count")
    table = table.assign(median=table.median(axis=1))
    true = pd.Series(truth).reindex(table.index).to_numpy(float)
    scores = {c: agreement(table[c].to_numpy(float), true, unit="hairs") for c in table.columns}
    return pd.DataFrame({"frames": [v["n_mape"] for v in scores.values()],
                         "count_mape_pct": [v["mape_pct"] for v in scores.values()]}, index=list(scores))


def copies(images: pd.DataFrame) -> pd.DataFrame:
    """The ok rows of a run over :func:`write_copies`' folder with ``frame`` and ``copy`` columns."""
    d = images[images["status"] == "ok"].copy()
    parts = d["image"].map(lambda s: Path(s).stem).str.rsplit("__", n=1)
    d["frame"], d["copy"] = parts.str[0], parts.str[1]
    return d


def changes(images: pd.DataFrame) -> pd.DataFrame:
    """One row per frame and copy: the PNG copy's count, the other copy's count and the change
    (column ``quality``: the copy's name, ``q95`` or ``r90`` say)."""
    table = copies(images).pivot(index="frame", columns="copy", values="hair_count")
    rows = [{"frame": k, "quality": c, "png": r["png"], "copy": r[c], "change": r[c] - r["png"]}
            for k, r in table.iterrows() for c in table.columns if c != "png"]
    return pd.DataFrame(rows)


def report(d: pd.DataFrame) -> None:
    d = d.assign(abs_change=d["change"].abs(), pct=100 * d["change"].abs() / d["png"].clip(lower=1))
    s = d.groupby("quality").agg(frames=("frame", "size"), mean_abs_change=("abs_change", "mean"),
                                 mean_abs_change_pct=("pct", "mean"), bias=("change", "mean"),
                                 frames_moved=("abs_change", lambda x: int((x > 0).sum())))
    print("hair count of each copy against the PNG copy:\n" + s.round(2).to_string() + "\n")
    print("largest moves:\n" + d.sort_values("abs_change", ascending=False).head(8)[
        ["frame", "quality", "png", "copy", "change"]].to_string(index=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--n", type=int, default=30, help="frames taken, evenly spaced in name order")
    ap.add_argument("--quality", type=int, nargs="*", default=[95])
    ap.add_argument("--turns", action="store_true", help="add copies turned by 90 / 180 degrees and flipped")
    ap.add_argument("--truth", type=Path, default=None, help="phantom folder with each frame's truth JSON")
    ap.add_argument("--um-per-px", type=float, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", dest="set_", action="append", default=[], help="setting override KEY=VALUE")
    a = ap.parse_args()
    files = sorted(p for p in a.folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        sys.exit(f"no images in {a.folder}")
    files = files[::max(1, len(files) // a.n)][:a.n]
    manifest = a.folder / "manifest.csv"
    sizes = None
    if a.um_per_px is None and manifest.exists():
        sizes = {f.path.name: f.um_per_px for f in read_manifest(manifest)}
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "frames", Path(tmp) / "run"
        src.mkdir()
        write_copies(files, src, a.quality, turns=a.turns, um_per_px=sizes)
        run_batch([src], out, um_per_px=a.um_per_px, workers=a.workers, settings=Settings.from_overrides(a.set_),
                  progress=False, overlays=False)
        images = pd.read_csv(out / "images.csv")
    report(changes(images))
    if a.truth is not None:
        truth = {f.stem: read_phantom_truth(a.truth / f"{f.stem}.json").true_count for f in files}
        print("\ncount MAPE against the truth, per copy and of the median over the copies:\n"
              + truth_scores(copies(images), truth).round(2).to_string())


if __name__ == "__main__":
    main()
