"""Experiment: count hairs by their emergence points, found by a compact network's root heat map.

Usage::

    python benchmarks/root_count.py train /tmp/rootnet --frames 400 --steps 2000     # 15 min on 2 cores
    python benchmarks/root_count.py count /tmp/rootnet /tmp/t95 /tmp/t96 --classical /tmp/run95 /tmp/run96

The density rule counts a hair where it emerges, and the core finds the
emergence by tracing shafts: touching, crossing and end-to-end shafts are
where it errs (``phantom_stages.py``). This asks whether the emergence points
can be seen directly. ``train`` renders ``--frames`` phantoms of the
generator's own mix (seeds ``[ROOT_TRAIN_SEED, i]``, a stream no shipped model,
tuning or report suite draws from), labels each with its hair mask and
Gaussian blobs (sigma 1.5 px at 5 µm/px, peak 1) at every hair's emergence
point and cut tip, and trains :class:`pipeline.learned.HairNet` (three
outputs: hair, root, tip) with BCE + Dice on the mask and the focal loss of
CenterNet (Zhou et al. 2019, arXiv:1904.07850) on the two heat maps;
augmentations are photometric plus the eight flips and quarter turns (the
heat maps' peaks stay exact); crops are ``pipeline.train``'s with the heat maps
kept soft. ``count`` counts, in each ``tricho synth`` frame, the local maxima of
the root map above each threshold inside the counting field, matches them to
the truth's emergence points (within 40 µm, Hungarian) and prints count MAPE per suite and threshold, recall and
precision of the peaks, and the MAPE by kind of frame (dark hair, light
hair, scenes of long uncut hair). With ``--classical RUN...`` (the
``tricho analyze`` runs of the same folders, in order) it also prints the
classical count's MAPE and that of the mean of both counts.

``real`` asks the same of real frames with one VOC box per hair (fdu_val): the
peaks above each threshold over the whole frame, and inside the interior
region (at least 0.3 mm from the border, the peaks and the box centres; the
classical hairs by their ``row, col``), against the box count, per half of
``pipeline.evaluate.subject_half``; ``--classical RUN`` adds the ``tricho
analyze`` run of the same images and the mean of both counts::

    python benchmarks/root_count.py real NET ../shared/data/fdu_val --um-per-px 2.78 --classical RUN

Nothing here is used by the pipeline; it is the measurement behind the
"root heat map" lead in docs/HISTORY.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipeline import synth
from pipeline.learned import HairNet, predict_tiled
from pipeline.train import _crops, colour_shifts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phantom_misses import frame_image  # noqa: E402

UM_PER_PX = 5.0
SIGMA_PX = 1.5
ROOT_TRAIN_SEED = 8_000_000
WIDTHS = (16, 32, 48, 64)
THRESHOLDS = (0.06, 0.08, 0.1, 0.12, 0.15, 0.2)
LIGHT = ("blond", "grey", "white")


def blobs(points: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Heat map (float32, ``shape``): a Gaussian of sigma ``SIGMA_PX`` at each (row, col), scaled to 1 at
    its nearest pixel, maxima combined; exactly 1 at each point's nearest pixel (the focal loss's
    positives); points off the map are skipped."""
    out = np.zeros(shape, np.float32)
    r = int(np.ceil(3 * SIGMA_PX))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    for y, x in points:
        iy, ix = int(round(y)), int(round(x))
        if not (0 <= iy < shape[0] and 0 <= ix < shape[1]):
            continue
        g = np.exp(-((yy + iy - y) ** 2 + (xx + ix - x) ** 2) / (2 * SIGMA_PX ** 2)).astype(np.float32)
        g /= g.max()
        y0, x0 = iy - r, ix - r
        sy, sx = max(0, -y0), max(0, -x0)
        y1, x1 = min(shape[0], iy + r + 1), min(shape[1], ix + r + 1)
        sub = g[sy:sy + y1 - max(0, y0), sx:sx + x1 - max(0, x0)]
        out[max(0, y0):y1, max(0, x0):x1] = np.maximum(out[max(0, y0):y1, max(0, x0):x1], sub)
        out[iy, ix] = 1.0
    return out


def render(seed: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One phantom at ``UM_PER_PX``: image (H, W, 3) uint8 and labels (3, H, W) uint8 x255 (hair, roots, tips)."""
    rng = np.random.default_rng(list(seed))
    params = synth.sample_scene(rng)
    layers: dict = {}
    img, truth = synth.render_frame(params, rng, layers)
    f = params.um_per_px / UM_PER_PX
    size = (max(8, round(img.shape[1] * f)), max(8, round(img.shape[0] * f)))
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    hair = (cv2.resize(layers["hair_cover"], size, interpolation=interp) > 0.5).astype(np.float32)
    roots = [np.asarray(h["emergence_rc"], float) * f for h in truth["hairs"]]
    tips = [np.asarray(h["tip_rc"], float) * f for h in truth["hairs"] if h.get("kind", "clipped") == "clipped"]
    labels = np.stack([hair, blobs(roots, hair.shape), blobs(tips, hair.shape)])
    return cv2.resize(img, size, interpolation=interp), np.round(labels * 255).astype(np.uint8)


def augmenter(seed: int):
    """Domain randomisation: ``pipeline.train``'s colour shifts, blur, noise and JPEG; geometry only by
    flips and quarter turns."""
    import albumentations as A

    return A.Compose([
        A.D4(p=1.0),
        *colour_shifts(),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.Defocus(radius=(1, 2))], p=0.3),
        A.GaussNoise(std_range=(0.01, 0.06), p=0.4),
        A.ImageCompression(quality_range=(35, 95), p=0.5),
    ], seed=seed)


def focal_loss(logit: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on a heat map whose peaks are exactly 1, per peak."""
    p = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    pos = (target >= 0.999).float()
    lp = -((1 - p) ** alpha) * torch.log(p) * pos
    ln = -((1 - target) ** beta) * (p ** alpha) * torch.log(1 - p) * (1 - pos)
    return (lp.sum() + ln.sum()) / pos.sum().clamp(min=1.0)


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    t = (target[:, 0] > 0.5).float()
    p = torch.sigmoid(logits[:, 0])
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    hair = F.binary_cross_entropy_with_logits(logits[:, 0], t)
    return hair + dice + focal_loss(logits[:, 1], target[:, 1]) + 0.5 * focal_loss(logits[:, 2], target[:, 2])


def train(out: Path, frames: int, steps: int, *, batch: int = 8, crop: int = 192, lr: float = 3e-3,
          workers: int = 2) -> None:
    """Render, train (AdamW, one-cycle), write ``out/weights.pt`` and ``out/loss.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(workers)
    t0 = time.time()
    with ProcessPoolExecutor(workers) as ex:
        pool = list(ex.map(render, [(ROOT_TRAIN_SEED, i) for i in range(frames)], chunksize=4))
    print(f"rendered {len(pool)} phantoms in {time.time() - t0:.0f} s", flush=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = HairNet(WIDTHS, n_out=3)
    with torch.no_grad():
        net.head.bias[1:] = -4.6  # heat maps start near 0.01, CenterNet's prior
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    aug, curve, t1 = augmenter(0), [], time.time()
    net.train()
    for step in range(steps):
        x, y = _crops(pool, rng, batch, crop, aug, soft=(1, 2), label_border=cv2.BORDER_CONSTANT)
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        curve.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step + 1}/{steps}  loss {np.mean(curve[-100:]):.4f}  {time.time() - t1:.0f} s", flush=True)
    torch.save(net.state_dict(), out / "weights.pt")
    (out / "loss.csv").write_text("step,loss\n" + "".join(f"{i + 1},{v:.5f}\n" for i, v in enumerate(curve)))


_NET: dict[str, HairNet] = {}


def heat_maps(folder: str, image: np.ndarray, um_per_px: float) -> tuple[np.ndarray, float]:
    """The net's three maps (sigmoid, at ``UM_PER_PX``) of an RGB frame, and the frame-to-map scale factor."""
    if folder not in _NET:
        torch.set_num_threads(1)
        net = HairNet(WIDTHS, n_out=3)
        net.load_state_dict(torch.load(Path(folder) / "weights.pt", map_location="cpu"))
        _NET[folder] = net.eval()
    f = um_per_px / UM_PER_PX
    size = (max(8, round(image.shape[1] * f)), max(8, round(image.shape[0] * f)))
    small = cv2.resize(image[..., :3], size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    maps = predict_tiled(_NET[folder], small, tile=max(small.shape[:2]))  # one tile: the whole frame
    return maps, f


def matched(peaks: np.ndarray, points: np.ndarray, gate: float) -> int:
    """Peaks paired one to one (Hungarian) with points within ``gate`` (same units)."""
    if len(peaks) == 0 or len(points) == 0:
        return 0
    from scipy.optimize import linear_sum_assignment

    d = np.hypot(*(peaks[:, None, :] - points[None]).transpose(2, 0, 1))
    r, c = linear_sum_assignment(np.where(d <= gate, d, 1e6))
    return int((d[r, c] <= gate).sum())


def root_peaks(maps: np.ndarray, threshold: float, f: float) -> np.ndarray:
    """Local maxima of the root map above ``threshold``, (row, col) in frame pixels (the map is ``f`` x the frame)."""
    from skimage.feature import peak_local_max

    if maps[1].max() <= threshold:
        return np.zeros((0, 2))
    return peak_local_max(maps[1], min_distance=1, threshold_abs=threshold).astype(float) / f


def count_frame(folder: str, truth_path: Path) -> list[dict]:
    """Root peaks counted in the field of one phantom at each threshold, with the truth's count and matches."""
    from pipeline.imageio import read_image

    truth = json.loads(truth_path.read_text())
    um, fr, p = float(truth["um_per_px"]), truth["field"], truth["params"]
    maps, f = heat_maps(folder, read_image(frame_image(truth_path)), um)
    emergences = np.array([h["emergence_rc"] for h in truth["hairs"] if h["in_field"]], float).reshape(-1, 2)
    kind = ("long-hair scene" if p["n_long_hairs"] > 0 and p["uncut_fraction"] > 0.5
            else "light hair" if p["hair_color"] in LIGHT else "dark hair")
    rows = []
    for th in THRESHOLDS:
        peaks = root_peaks(maps, th, f)
        peaks = peaks[(peaks[:, 0] >= fr["row0"]) & (peaks[:, 0] < fr["row1"])
                      & (peaks[:, 1] >= fr["col0"]) & (peaks[:, 1] < fr["col1"])]
        rows.append({"image": truth_path.stem, "threshold": th, "kind": kind, "truth": int(truth["count_in_field"]),
                     "read": len(peaks), "matched": matched(peaks, emergences, max(3.0, 40.0 / um))})
    return rows


INTERIOR_UM = 300.0
REAL_THRESHOLDS = (0.1, 0.12, 0.15, 0.2, 0.25)


def _interior(points: np.ndarray, shape: tuple[int, int], margin: float) -> int:
    """How many (row, col) points lie at least ``margin`` pixels inside a frame of ``shape``."""
    p = np.asarray(points, float).reshape(-1, 2)
    return int(((p[:, 0] >= margin) & (p[:, 0] < shape[0] - margin)
                & (p[:, 1] >= margin) & (p[:, 1] < shape[1] - margin)).sum())


def count_real(folder: str, xml: Path, image: Path, um_per_px: float) -> list[dict]:
    """Root peaks of one real frame at each threshold, whole frame and interior, with its box counts."""
    from pipeline.evaluate import read_voc, subject_half
    from pipeline.imageio import read_image

    truth = read_voc(xml)
    maps, f = heat_maps(folder, read_image(image), um_per_px)
    shape, margin = (truth.height_px, truth.width_px), INTERIOR_UM / um_per_px
    rows = []
    for th in REAL_THRESHOLDS:
        peaks = root_peaks(maps, th, f)
        rows.append({"image": truth.image, "half": subject_half(truth.image), "threshold": th,
                     "truth": truth.true_count, "read": len(peaks),
                     "truth_interior": _interior(truth.points_rc, shape, margin),
                     "read_interior": _interior(peaks, shape, margin), "margin_px": margin,
                     "height": shape[0], "width": shape[1]})
    return rows


def _classical_real(run: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """The classical count of each frame, whole and interior (its hairs by ``row, col``)."""
    hairs = pd.read_csv(run / "hairs.csv", usecols=["image", "row", "col"])
    hairs["image"] = hairs["image"].map(lambda s: Path(s).stem)
    frames = rows.drop_duplicates("image").set_index("image")
    inside = {k: _interior(h[["row", "col"]].to_numpy(), (frames.at[k, "height"], frames.at[k, "width"]),
                           frames.at[k, "margin_px"]) for k, h in hairs.groupby("image") if k in frames.index}
    out = _classical([run]).drop_duplicates("image")
    out["classical_interior"] = out["image"].map(inside).fillna(0)
    return out


def report_real(rows: pd.DataFrame, classical: pd.DataFrame | None) -> None:
    d = rows if classical is None else rows.merge(classical, on="image", how="inner")
    for zone, suffix in (("whole frame", ""), ("interior (0.3 mm from the border)", "_interior")):
        t = d["truth" + suffix]
        e = d[t > 0].copy()
        t = t[t > 0]
        cols = {"root peaks": e["read" + suffix]}
        if classical is not None:
            cols["classical"] = e["classical" + suffix]
            cols["mean of both"] = (e["read" + suffix] + e["classical" + suffix]) / 2
        table = pd.concat({name: (100 * (v - t).abs() / t).groupby([e["threshold"], e["half"]]).mean().unstack()
                           for name, v in cols.items()}, axis=1)
        print(f"count MAPE (%), {zone}, by half:\n" + table.round(2).to_string() + "\n")
    print("totals (whole frame):\n" + d.groupby("threshold")[["truth", "read"]].sum().to_string())


def _classical(runs: list[Path]) -> pd.DataFrame:
    frames = [pd.read_csv(r / "images.csv", usecols=["image", "hair_count"]) for r in runs]
    out = pd.concat(frames, ignore_index=True)
    return out.assign(image=out["image"].map(lambda s: Path(s).stem)).rename(columns={"hair_count": "classical"})


def report(rows: pd.DataFrame, classical: pd.DataFrame | None) -> None:
    d = rows.assign(suite=rows["image"].str.split("_").str[1])
    d["ape"] = 100 * (d["read"] - d["truth"]).abs() / d["truth"].clip(lower=1)
    table = d.pivot_table(index="threshold", columns="suite", values="ape", aggfunc="mean")
    table["all"] = d.groupby("threshold")["ape"].mean()
    print("count MAPE (%) of the root peaks:\n" + table.round(2).to_string() + "\n")
    s = d.groupby("threshold")[["truth", "read", "matched"]].sum()
    s["recall"], s["precision"] = s["matched"] / s["truth"], s["matched"] / s["read"]
    print("peaks against the truth's emergence points (within 40 µm):\n" + s.round(3).to_string() + "\n")
    by_kind = d.pivot_table(index="threshold", columns="kind", values="ape", aggfunc="mean")
    if classical is not None:
        d = d.merge(classical, on="image", how="inner")
        d["classical_ape"] = 100 * (d["classical"] - d["truth"]).abs() / d["truth"].clip(lower=1)
        d["mean_ape"] = 100 * ((d["read"] + d["classical"]) / 2 - d["truth"]).abs() / d["truth"].clip(lower=1)
        for col, name in (("classical_ape", "classical"), ("mean_ape", "mean of both")):
            k = d.pivot_table(index="threshold", columns="kind", values=col, aggfunc="mean")
            k["all"] = d.groupby("threshold")[col].mean()
            by_kind = by_kind.join(k.add_prefix(name + ": "))
    print("count MAPE (%) by kind of frame:\n" + by_kind.round(1).T.to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["train", "count", "real"])
    ap.add_argument("net", type=Path, help="folder of the net's weights.pt")
    ap.add_argument("folders", nargs="*", type=Path,
                    help="count: tricho synth folders (image + truth JSON); real: one folder of images/ + annotations/")
    ap.add_argument("--um-per-px", type=float, default=2.78, help="real: the frames' pixel size")
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--classical", nargs="*", type=Path, help="tricho analyze runs of the same folders")
    a = ap.parse_args()
    if a.command == "train":
        train(a.net, a.frames, a.steps, workers=a.workers)
        return
    if a.command == "real":
        (folder,) = a.folders
        xmls = sorted((folder / "annotations").glob("*.xml"))
        images = {p.stem: p for p in (folder / "images").iterdir()}
        xmls = [x for x in xmls if x.stem in images]
        with ProcessPoolExecutor(a.workers) as ex:
            rows = pd.DataFrame([r for rs in ex.map(count_real, [str(a.net)] * len(xmls), xmls,
                                                    [images[x.stem] for x in xmls], [a.um_per_px] * len(xmls))
                                 for r in rs])
        report_real(rows, _classical_real(a.classical[0], rows) if a.classical else None)
        return
    files = [p for d in a.folders for p in sorted(d.glob("phantom_*.json"))]
    with ProcessPoolExecutor(a.workers) as ex:
        rows = [r for rs in ex.map(count_frame, [str(a.net)] * len(files), files) for r in rs]
    report(pd.DataFrame(rows), _classical(a.classical) if a.classical else None)


if __name__ == "__main__":
    main()
