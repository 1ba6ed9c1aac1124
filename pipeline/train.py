"""Training of the learned segmenter on the project's own phantoms only.

Frames come from :mod:`pipeline.synth` with seeds in a namespace of their own
(``[TRAIN_SEED, i]`` for training, ``[HOLDOUT_SEED, i]`` for the thresholds),
never the seeds of reported phantom suites, and never from ``../shared/data``.
Labels are exact: the painted shaft coverage, the truth centre lines and the
cut tips.  Crops are randomised with albumentations (colour, gamma, CLAHE,
blur, down-sampling, noise, JPEG, elastic and grid distortion, grey, random burned-in text,
and with ``TrainConfig.skin_lines`` fine dark skin furrows).
"""
from __future__ import annotations

import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from dataclasses import replace as dataclasses_replace  # noqa: F401  (used by the CLI)
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pipeline import synth
from pipeline.learned import HEADS, HairNet, add_int8, save_model, to_input

TRAIN_SEED = 7_000_000
HOLDOUT_SEED = 7_100_000


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (written to ``config.json``).

    Attributes
    ----------
    model_um_per_px : float
        Pixel size the network works at (µm/px).
    widths : tuple of int
        U-Net channels per level.
    n_frames : int
        Phantom frames rendered for training.
    steps, batch, crop : int
        Optimiser steps, crops per step, crop side (pixels at model scale).
    lr : float
        Peak AdamW learning rate (one-cycle schedule).
    seed : int
        Seeds crops, augmentations and initial weights.
    n_holdout : int
        Held-out phantom frames the thresholds are tuned on.
    blur : str
        The defocus augmentation (:func:`augmenter`).  ``"narrow"``
        (hairnet-v2): 30% of the crops get a Gaussian kernel of 3–5 px
        (sigma about 0.8–1.1), a defocus disc of radius 1–2 px or a
        nearest-neighbour down-and-up sampling to 25–60%.  ``"wide"``: half
        the crops, Gaussian sigma 0.5–3 px, discs of radius 1–3 px, linear
        down-and-up sampling (a low-resolution frame enlarged).  Tried on
        2026-12-01 because recall fell with the optics' blur (README, Known
        limits) and not kept: trained as hairnet-v2 otherwise, the grey-hair
        phantoms' recall at blur 0.8 / 1.6 / 2.4 / 3.2 px rose from 0.58 /
        0.56 / 0.44 / 0.44 to 0.61 / 0.58 / 0.54 / 0.50 and the scalp_tiles
        Dice from 0.816 to 0.830 (classical 0.855), but as the learned
        segmenter fdu_val's count MAPE went 18.9 -> 25.1% (bias +1.2 hairs)
        and phantom suite 1001's 23.6 -> 29.4%.
    scenes : str
        Which phantoms (:func:`scene_overrides`): ``"all"`` the generator's
        own mix (hairnet-v2); ``"light"`` the frames a light-hair model
        (``Settings.light_hair_model``) is given: blond, grey and white hair,
        dark hair with grey among it, dark hair on the darkest skin.
    thin_weight : float
        Extra weight of the pixels of thin shafts (true width up to
        ``thin_below_um``) in the hair and centre-line losses: their loss
        counts ``1 + thin_weight`` times.  0 (the models trained before
        2026-12-03) weighs every pixel alike, and a vellus shaft, a few
        pixels among the thick ones, then barely enters the loss:
        ``hairnet-light-v1`` gives held-out light-scene shafts up to 30 µm
        a median probability of 0.00 along the shaft, 18% of them reaching
        0.6 (``benchmarks/model_by_width.py``; v1 is in the git history at
        commit ``5e51baf``).
    thin_below_um : float
        Widest shaft (µm) ``thin_weight`` applies to.
    skin_lines : float
        Share of the crops given a network of fine dark skin furrows
        (:func:`skin_lines`), which the phantoms' skin draws softer than real
        scalp shows it; the labels stay as they are, so the network learns
        that such lines are not hair.  0 (every model trained before
        2026-12-06) leaves the crops' skin as rendered.  Tried on the
        ``hairnet-v3`` recipe (``--thin-weight 8 --steps 3600``, session
        50) and not shipped: fdu_val count MAPE as the learned segmenter
        38.9 / 38.5% (halves A / B) with the mesh and creases at 0.5, 42.6 /
        43.1% with the meandering pieces too at 0.7, against 36.7 / 35.9%
        without (session 36); scalp_tiles Dice 0.817 / 0.812 (0.821).
    unit_parallel_share : float
        The phantoms' ``SceneParams.unit_parallel_share``: share of the
        units of two or more hairs whose hairs lie together instead of
        opening as a V.  0 (every model trained before 2026-12-07, when the
        generator drew every unit as a V) reproduces the shipped models;
        the generator's own default is 0.8.
    centre_label : str
        What the centre-line head learns. ``"line"`` (every model trained
        before 2026-12-07): each hair's 1-px centre line, with a positive
        weight of 4; the head then reads about the same level across a
        whole shaft. ``"ridge"``: each hair's own profile ``1 - (d / r)**2``
        (``d`` the distance from its centre line, ``r`` its radius;
        :func:`centre_ridges`), the maximum over hairs, learned without a
        positive weight. The training crops binarise it at 0.5 as they do
        every label but the cut tips (:func:`_crops`), so the head learns
        each hair's core, ``d < r / sqrt(2)``: two touching shafts give two
        cores with a gap at their seam, which ``Settings.model_seam_level``
        counts.
    """

    model_um_per_px: float = 5.0
    widths: tuple[int, ...] = (16, 32, 48, 64)
    n_frames: int = 400
    steps: int = 1800
    batch: int = 8
    crop: int = 192
    lr: float = 3e-3
    seed: int = 0
    n_holdout: int = 24
    blur: str = "narrow"
    scenes: str = "all"
    thin_weight: float = 0.0
    thin_below_um: float = 40.0
    skin_lines: float = 0.0
    unit_parallel_share: float = 0.0
    centre_label: str = "line"


SCENES = ("all", "light")
CENTRE_LABELS = ("line", "ridge")


def scene_overrides(scenes: str, seed: tuple[int, ...], unit_parallel_share: float = 0.0) -> dict:
    """Scene parameters fixed for one training or held-out phantom (``TrainConfig.scenes``).

    ``"all"``: none.  ``"light"``: 60% blond, grey or white hair (any skin),
    20% dark hair with 15-50% grey hairs among it, 20% black, dark brown or
    brown hair on skin tones 5-6 (shafts barely darker than skin).  Drawn
    from their own stream (``[*seed, 1]``), so the scene's other values are
    the generator's own draws.  ``unit_parallel_share`` is passed on
    (``TrainConfig.unit_parallel_share``).
    """
    if scenes not in SCENES:
        raise ValueError(f"unknown scenes {scenes!r}: use one of {', '.join(SCENES)}")
    return {"unit_parallel_share": float(unit_parallel_share), **(_light_scene(seed) if scenes == "light" else {})}


def _light_scene(seed: tuple[int, ...]) -> dict:
    """The hair colour, grey share or skin tone of one ``"light"`` phantom (:func:`scene_overrides`)."""
    rng = np.random.default_rng([*seed, 1])
    u = rng.random()
    if u < 0.6:
        return {"hair_color": str(rng.choice(["blond", "grey", "white"]))}
    dark = str(rng.choice(["black", "dark_brown", "brown"]))
    if u < 0.8:
        return {"hair_color": dark, "grey_fraction": float(rng.uniform(0.15, 0.5))}
    return {"hair_color": dark, "skin_tone": int(rng.choice([5, 6]))}


def render_example(seed: tuple[int, int], model_um_per_px: float, scenes: str = "all",
                   thin_below_um: float = 40.0, unit_parallel_share: float = 0.0,
                   centre_label: str = "line") -> tuple[np.ndarray, np.ndarray]:
    """One phantom at the model's pixel size: image (H, W, 3) and labels (4, H, W), both uint8 (labels x255).

    Labels: hair mask, centre lines, cut tips, and the mask of thin shafts
    (true width up to ``thin_below_um``, drawn over their width) that
    ``TrainConfig.thin_weight`` weighs.
    """
    if centre_label not in CENTRE_LABELS:
        raise ValueError(f"centre_label must be one of {', '.join(CENTRE_LABELS)}, not {centre_label!r}")
    rng = np.random.default_rng(list(seed))
    params = synth.sample_scene(rng, **scene_overrides(scenes, seed, unit_parallel_share))
    layers: dict = {}
    img, truth = synth.render_frame(params, rng, layers)
    f = params.um_per_px / model_um_per_px
    size = (max(8, round(img.shape[1] * f)), max(8, round(img.shape[0] * f)))
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    small = cv2.resize(img, size, interpolation=interp)
    hair = (cv2.resize(layers["hair_cover"], size, interpolation=interp) > 0.5).astype(np.float32)
    centre = np.zeros(hair.shape, np.uint8)
    thin = np.zeros(hair.shape, np.uint8)
    tips = np.zeros(hair.shape, np.float32)
    for h in truth["hairs"]:
        line = np.round(np.asarray(h["centerline_rc"], float)[:, ::-1] * f * 4).astype(np.int32)  # (x, y), 2 bits
        cv2.polylines(centre, [line], False, 1, 1, cv2.LINE_8, 2)
        if h["width_um"] <= thin_below_um:
            cv2.polylines(thin, [line], False, 1, max(1, round(h["width_um"] / model_um_per_px) + 2), cv2.LINE_8, 2)
        if h.get("kind", "clipped") == "clipped":
            r, c = np.asarray(h["tip_rc"], float) * f
            if 0 <= r < tips.shape[0] and 0 <= c < tips.shape[1]:
                tips[int(r), int(c)] = 1.0
    if centre_label == "ridge":
        centre = centre_ridges(truth["hairs"], f, model_um_per_px, hair.shape) * hair
    else:
        centre = (centre > 0).astype(np.float32) * hair  # only where the shaft is drawn
    tips = cv2.GaussianBlur(tips, (0, 0), 1.5)
    if tips.max() > 0:
        tips /= tips.max()
    labels = np.stack([hair, centre, np.clip(tips, 0, 1), thin.astype(np.float32)])
    return small, np.round(labels * 255).astype(np.uint8)  # uint8 keeps the pool small


def centre_ridges(hairs: list[dict], f: float, model_um_per_px: float, shape: tuple[int, int]) -> np.ndarray:
    """Each hair's own ridge ``1 - (d / r)**2`` around its centre line, the maximum over hairs (float32).

    ``hairs``: truth hairs (``centerline_rc`` in frame pixels, ``width_um``);
    ``f``: model pixels per frame pixel; ``r`` is the hair's radius in model
    pixels, at least 1 (a thin hair's ridge is its centre line's pixels).
    Approximate, as the weights were trained with it: ``d`` is OpenCV's 3x3
    chamfer distance from the centre line drawn through whole pixels, and the
    box it is read in is clipped to the frame, so a shaft whose centre line
    runs just outside the frame gets no ridge on its visible edge.
    """
    out = np.zeros(shape, np.float32)
    for h in hairs:
        line = np.asarray(h["centerline_rc"], float) * f
        r = max(1.0, 0.5 * h["width_um"] / model_um_per_px)
        lo = np.maximum(np.floor(line.min(axis=0) - r - 1).astype(int), 0)
        hi = np.minimum(np.ceil(line.max(axis=0) + r + 2).astype(int), shape)
        if (hi <= lo).any():
            continue
        canvas = np.full(tuple(hi - lo), 255, np.uint8)
        pts = np.round((line - lo)[:, ::-1]).astype(np.int32)
        cv2.polylines(canvas, [pts], False, 0, 1, cv2.LINE_8)
        d = np.minimum(cv2.distanceTransform(canvas, cv2.DIST_L2, 3), r)  # no line pixel in the box: all far
        ridge = 1.0 - (d / r) ** 2
        view = out[lo[0]:hi[0], lo[1]:hi[1]]
        np.maximum(view, ridge, out=view)
    return out


def render_pool(seeds: list[tuple[int, int]], model_um_per_px: float, workers: int = 2,
                scenes: str = "all", thin_below_um: float = 40.0, unit_parallel_share: float = 0.0,
                centre_label: str = "line") -> list:
    """Render many examples in parallel processes (order kept)."""
    n = len(seeds)
    with ProcessPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(render_example, seeds, [model_um_per_px] * n, [scenes] * n, [thin_below_um] * n,
                           [unit_parallel_share] * n, [centre_label] * n, chunksize=4))


def _random_text(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Burned-in text and lines like a device overlay, at a random place."""
    out = image.copy()
    colour = tuple(int(v) for v in rng.choice([[255, 255, 255], [40, 60, 230], [230, 40, 40], [20, 20, 20]]))
    h, w = out.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        text = "".join(rng.choice(list("0123456789 .:/-xmmABCDEFGHJKLMNPRSTUVW"), int(rng.integers(3, 14))))
        org = (int(rng.integers(0, w)), int(rng.integers(10, h)))
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.4, 1.2)), colour,
                    int(rng.integers(1, 3)), cv2.LINE_AA)
    if rng.random() < 0.3:
        p = rng.integers(0, [w, h, w, h])
        cv2.line(out, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), colour, int(rng.integers(1, 4)))
    return out


def _blur(kind: str):
    """The defocus step of :func:`augmenter` (see ``TrainConfig.blur``)."""
    import albumentations as A

    if kind == "narrow":
        return A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.Defocus(radius=(1, 2)),
                        A.Downscale(scale_range=(0.25, 0.6))], p=0.3)
    if kind == "wide":
        linear = {"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR}
        return A.OneOf([A.GaussianBlur(sigma_limit=(0.5, 3.0)), A.Defocus(radius=(1, 3)),
                        A.Downscale(scale_range=(0.25, 0.6), interpolation_pair=linear)], p=0.5)
    raise ValueError(f"unknown blur augmentation {kind!r}: use 'wide' or 'narrow'")


def colour_shifts() -> list:
    """The colour, contrast and gamma steps of :func:`augmenter` (albumentations transforms, in order)."""
    import albumentations as A

    return [
        A.HueSaturationValue(hue_shift_limit=15, sat_shift_limit=30, val_shift_limit=20, p=0.7),
        A.RGBShift(r_shift_limit=20, g_shift_limit=20, b_shift_limit=20, p=0.3),
        A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.3, p=0.7),
        A.RandomGamma(gamma_limit=(70, 150), p=0.4),
        A.CLAHE(clip_limit=(1, 3), p=0.15),
        A.ToGray(p=0.2),
    ]


def skin_lines(image: np.ndarray, rng: np.random.Generator, um_per_px: float) -> np.ndarray:
    """``image`` (RGB uint8) with a network of fine dark skin furrows drawn over it.

    Real scalp skin shows a mesh of fine furrows (the skin's surface
    pattern: polygons 120-400 µm across, drawn out up to 2.5 times along
    one way, lines 5-15 µm wide, a little darker than the skin and often
    lit on one shoulder) and a few longer creases;
    the phantoms' skin (:func:`pipeline.synth._render_skin`) draws them soft.
    Over it lie short meandering furrow pieces (:func:`_wiggles`), the
    lines a network trained without them reads as thin hairs on real frames.
    The mesh is patchy, as on real frames, where parts of it fade.
    """
    shape = image.shape[:2]
    stretch = rng.uniform(1.0, 2.5)  # the mesh is drawn out along the skin's tension lines
    wide = (shape[0], int(round(shape[1] * stretch)))
    edges = synth._cell_edges(rng, wide, rng.uniform(120, 400) / um_per_px, rng.uniform(4, 16) / um_per_px)
    edges = np.minimum(cv2.resize(edges, shape[::-1], interpolation=cv2.INTER_AREA) * stretch, 1.0)
    if rng.random() < 0.5:
        edges = np.maximum(edges, np.clip(3 * synth._creases(rng, shape, um_per_px), 0, 1))
    edges = np.maximum(edges, _wiggles(rng, shape, um_per_px))
    edges *= np.clip(rng.uniform(0.2, 0.8) + synth._smooth_noise(rng, shape, 200 / um_per_px), 0, 1)
    line = cv2.GaussianBlur(edges, (0, 0), rng.uniform(5, 15) / 2.355 / um_per_px + 0.3)
    line /= max(float(line.max()), 1e-6)
    out = image.astype(np.float32) * (1 - rng.uniform(0.08, 0.35) * line)[..., None]
    if rng.random() < 0.5:  # a lit shoulder beside the furrow
        shift = np.roll(line, int(rng.choice([-2, -1, 1, 2])), axis=int(rng.integers(2)))
        out += (rng.uniform(10, 40) * np.clip(shift - line, 0, None))[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _wiggles(rng: np.random.Generator, shape: tuple[int, int], um_per_px: float) -> np.ndarray:
    """Short meandering furrow pieces (1-px lines in [0, 1]): 100-600 µm long, bending a little every 8-15 µm,
    10-60 of them a square millimetre, as the broken furrows of real scalp skin that a network takes for thin
    hairs."""
    h, w = shape
    layer = np.zeros(shape, np.float32)
    n = int(rng.uniform(10, 60) * h * w * (um_per_px / 1000) ** 2)
    for _ in range(n):
        step_um, length_um, turn = rng.uniform(8, 15), rng.uniform(100, 600), rng.uniform(0.08, 0.3)
        ang = rng.uniform(0, 2 * math.pi)
        pts = [rng.uniform((0, 0), (h, w))]
        for _ in range(int(length_um / step_um)):
            ang += rng.normal(0, turn)
            pts.append(pts[-1] + step_um / um_per_px * np.array([math.sin(ang), math.cos(ang)]))
        arr = (np.array(pts)[:, ::-1] * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(layer, [arr], False, float(rng.uniform(0.4, 1.0)), 1, cv2.LINE_AA, 4)
    return layer


def _image_step(draw: Callable[[np.ndarray, np.random.Generator], np.ndarray], p: float, name: str):
    """``draw(image, rng)`` as an albumentations transform of the image alone, drawing from the
    pipeline's own seeded generator (an ``A.Lambda`` has none, and a generator of its own makes the
    training differ from run to run)."""
    import albumentations as A

    step = type(name, (A.ImageOnlyTransform,), {"apply": lambda self, img, **_: draw(img, self.random_generator)})
    return step(p=p)


def _albumentations_skin_lines(um_per_px: float, p: float):
    """:func:`skin_lines` as a seeded albumentations transform (image only)."""
    return _image_step(lambda img, rng: skin_lines(img, rng, um_per_px), p, "SkinLines")


def augmenter(seed: int, blur: str = "narrow", skin_lines_p: float = 0.0,
              um_per_px: float = TrainConfig.model_um_per_px):
    """The domain-randomisation pipeline (albumentations, seeded); ``blur`` as ``TrainConfig.blur``,
    ``skin_lines_p`` as ``TrainConfig.skin_lines`` (crops at ``um_per_px``)."""
    import albumentations as A

    lines = [_albumentations_skin_lines(um_per_px, skin_lines_p)] if skin_lines_p > 0 else []
    return A.Compose([
        A.D4(p=1.0),
        A.Affine(scale=(0.8, 1.25), rotate=(-30, 30), p=0.5),
        A.OneOf([A.ElasticTransform(alpha=20, sigma=6), A.GridDistortion(distort_limit=0.2)], p=0.25),
        *lines,
        *colour_shifts(),
        _blur(blur),
        A.GaussNoise(std_range=(0.01, 0.06), p=0.4),
        _image_step(_random_text, 0.15, "RandomText"),
        A.ImageCompression(quality_range=(35, 95), p=0.5),
    ], seed=seed)


def _crops(pool, rng: np.random.Generator, n: int, size: int, aug, *, soft: tuple[int, ...] = (2,),
           label_border: int = cv2.BORDER_REFLECT_101) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of ``n`` random ``size``-pixel crops of ``pool``'s (image, labels), augmented by ``aug``.

    Label maps are binarised at 0.5 except the heat maps listed in ``soft``
    (here the cut tips); a frame smaller than a crop is padded, its labels
    with ``label_border``.
    """
    xs, ys = [], []
    for _ in range(n):
        img, lab = pool[int(rng.integers(len(pool)))]
        h, w = img.shape[:2]
        pad_h, pad_w = max(0, size - h), max(0, size - w)
        if pad_h or pad_w:
            img = cv2.copyMakeBorder(img, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT_101)
            lab = np.stack([cv2.copyMakeBorder(m, 0, pad_h, 0, pad_w, label_border) for m in lab])
            h, w = img.shape[:2]
        r, c = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        masks = [m[r:r + size, c:c + size].astype(np.float32) / 255 for m in lab]
        o = aug(image=img[r:r + size, c:c + size], masks=masks)
        xs.append(to_input(o["image"])[0])
        m = np.stack(o["masks"]).astype(np.float32)
        binary = [i for i in range(len(m)) if i not in soft]
        m[binary] = m[binary] > 0.5
        ys.append(torch.from_numpy(m))
    return torch.stack(xs), torch.stack(ys)


def loss_fn(logits: torch.Tensor, target: torch.Tensor, thin_weight: float = 0.0,
            centre_pos_weight: float = 4.0) -> torch.Tensor:
    """BCE + soft Dice on the hair map; weighted BCE on centre lines and tips.

    With ``thin_weight`` > 0 the hair and centre-line BCE of the pixels of
    thin shafts (``target[:, 3]``, see :func:`render_example`) count
    ``1 + thin_weight`` times (``TrainConfig.thin_weight``). The centre-line
    BCE weighs its positives ``centre_pos_weight`` times (4 for 1-px lines,
    1 for ridges: ``TrainConfig.centre_label``).
    """
    weight = None if thin_weight <= 0 else 1.0 + thin_weight * target[:, 3]
    hair = F.binary_cross_entropy_with_logits(logits[:, 0], target[:, 0], weight=weight)
    p = torch.sigmoid(logits[:, 0])
    dice = 1 - (2 * (p * target[:, 0]).sum() + 1) / (p.sum() + target[:, 0].sum() + 1)
    centre = F.binary_cross_entropy_with_logits(logits[:, 1], target[:, 1], weight=weight,
                                                pos_weight=torch.tensor(float(centre_pos_weight)))
    tip = F.binary_cross_entropy_with_logits(logits[:, 2], target[:, 2], pos_weight=torch.tensor(20.0))
    return hair + dice + 0.5 * centre + 0.25 * tip


def fit(pool, cfg: TrainConfig, log: Callable[[int, float], None] | None = None) -> tuple[HairNet, list]:
    """Train a HairNet on ``pool`` (list of (image, labels)); returns it and the loss curve."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = HairNet(cfg.widths)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 2), pct_start=0.1)
    aug = augmenter(cfg.seed, cfg.blur, cfg.skin_lines, cfg.model_um_per_px)
    curve = []
    net.train()
    for step in range(cfg.steps):
        x, y = _crops(pool, rng, cfg.batch, cfg.crop, aug)
        loss = loss_fn(net(x), y, cfg.thin_weight, 1.0 if cfg.centre_label == "ridge" else 4.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        curve.append(loss.item())
        if log is not None:
            log(step, curve[-1])
    net.eval()
    return net, curve


def tune_thresholds(net: HairNet, cfg: TrainConfig, n: int | None = None) -> dict:
    """Hysteresis thresholds that minimise count MAPE on held-out phantoms.

    Frames ``[HOLDOUT_SEED, i]`` are never trained on; the count is compared
    with the truth's ``count_in_field``.
    """
    from pipeline.frame import measure_frame, prepared_image, tip_points
    from pipeline.learned import LearnedModel
    from pipeline.settings import Settings

    frames = []
    for i in range(n if n is not None else cfg.n_holdout):
        rng = np.random.default_rng([HOLDOUT_SEED, i])
        params = synth.sample_scene(rng, **scene_overrides(cfg.scenes, (HOLDOUT_SEED, i), cfg.unit_parallel_share))
        img, truth = synth.render_frame(params, rng)
        frames.append((img, params.um_per_px, truth["count_in_field"]))
    model = LearnedModel("candidate", Path("."), net, {"model_um_per_px": cfg.model_um_per_px}, {}, "")
    # the model reads the frame as the core hands it to a model (scale bar and drawn lines painted out)
    defaults = Settings()
    maps = [model.predict(prepared_image(img, um, defaults), um_per_px=um) for img, um, _ in frames]
    best = None
    for high in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        for gap in (0.1, 0.25):
            for tip in (None, 0.4, 0.55, 0.7):
                s = Settings(darkness_threshold=high, darkness_low=max(0.05, high - gap))
                errs = []
                for (img, um, true_n), m in zip(frames, maps):
                    tips = None if tip is None else tip_points(
                        m["tip"], threshold=tip, min_distance_px=max(2, round(2 * cfg.model_um_per_px / um)))
                    found = measure_frame(img, um_per_px=um, settings=s, probability=m["hair"], tips=tips)
                    errs.append(abs(len(found.hairs) - true_n) / max(true_n, 1))
                mape = 100 * float(np.mean(errs))
                if best is None or mape < best["holdout_count_mape_pct"]:
                    best = {"high": high, "low": round(max(0.05, high - gap), 3), "tip": tip,
                            "holdout_count_mape_pct": round(mape, 2), "holdout_frames": len(frames),
                            "holdout_seed": HOLDOUT_SEED}
    return best


UNTUNED = "weights.untuned.pt"
STATE = "train_state.json"


def _write_loss(folder: Path, curve: list[float], win: int = 50) -> None:
    smooth = [float(np.mean(curve[max(0, i - win + 1):i + 1])) for i in range(len(curve))]
    (folder / "loss.csv").write_text("step,loss,loss_smooth50\n" + "".join(
        f"{i + 1},{v:.5f},{s:.5f}\n" for i, (v, s) in enumerate(zip(curve, smooth))))


def train(out: str | Path, cfg: TrainConfig = TrainConfig(), *, workers: int = 2,
          log: Callable[[str], None] = print, resume: bool = False) -> Path:
    """Render phantoms, train, tune thresholds, write the model folder ``out`` (with its int8 copy).

    The trained weights, the loss curve and the run's config and timings
    are written to ``out`` before the thresholds are tuned, so a failure
    there loses no training: ``resume=True`` (``tricho train --out OUT
    --resume``) reads them back (``cfg`` is then taken from ``out``) and
    only tunes and writes the folder.

    Returns
    -------
    Path
        The model folder; ``loss.csv`` holds the loss curve.
    """
    out = Path(out)
    t0 = time.time()
    torch.set_num_threads(max(1, workers))
    if resume:
        net, cfg, timings = _trained_state(out)
        log(f"resuming {out}: trained weights read, tuning the thresholds")
    else:
        net, timings = _fit_and_keep(out, cfg, workers, log)
    t2 = time.time()
    thresholds = tune_thresholds(net, cfg)
    log(f"thresholds {thresholds}")
    config = {**asdict(cfg), "model_um_per_px": cfg.model_um_per_px, "train_seed": TRAIN_SEED, **timings,
              "tune_seconds": round(time.time() - t2, 1), "torch": torch.__version__, "auto_prefer": False}
    path = save_model(out, net, config, thresholds)
    add_int8(path)
    for name in (UNTUNED, STATE):
        (path / name).unlink(missing_ok=True)
    log(f"wrote {path} in {time.time() - t0:.0f} s")
    return path


def _fit_and_keep(out: Path, cfg: TrainConfig, workers: int, log: Callable[[str], None]) -> tuple[HairNet, dict]:
    """Render the phantoms and train; keep the weights, loss curve and config in ``out`` (for ``resume``)."""
    t0 = time.time()
    pool = render_pool([(TRAIN_SEED, i) for i in range(cfg.n_frames)], cfg.model_um_per_px, workers, cfg.scenes,
                       cfg.thin_below_um, cfg.unit_parallel_share, cfg.centre_label)
    log(f"rendered {len(pool)} phantom frames in {time.time() - t0:.0f} s")
    t1 = time.time()

    def every(step: int, loss: float) -> None:
        if step % 100 == 0 or step == cfg.steps - 1:
            log(f"step {step + 1}/{cfg.steps}  loss {loss:.4f}  {time.time() - t1:.0f} s")

    net, curve = fit(pool, cfg, every)
    timings = {"train_seconds": round(time.time() - t1, 1), "render_seconds": round(t1 - t0, 1)}
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out / UNTUNED)  # hours of CPU: kept even if tuning fails
    _write_loss(out, curve)
    (out / STATE).write_text(json.dumps({"config": asdict(cfg), **timings}, indent=2) + "\n")
    return net, timings


def _trained_state(out: Path) -> tuple[HairNet, TrainConfig, dict]:
    """The network, config and timings a training run left in ``out`` before tuning."""
    missing = [name for name in (UNTUNED, STATE, "loss.csv") if not (out / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{out}: no finished training to resume (missing {', '.join(missing)}); "
                                f"run `tricho train --out {out}` without --resume")
    state = json.loads((out / STATE).read_text())
    fields = state["config"] | {"widths": tuple(state["config"]["widths"])}
    cfg = TrainConfig(**fields)
    net = HairNet(cfg.widths)
    net.load_state_dict(torch.load(out / UNTUNED, map_location="cpu"))
    net.eval()
    return net, cfg, {k: state[k] for k in ("train_seconds", "render_seconds")}
