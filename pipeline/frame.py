"""Orchestration of the per-frame core (see :func:`pipeline.core.analyze_frame`).

segmentation -> shafts -> per-hair measures -> root ends and counting rule
-> follicular units -> per-frame metrics.  Pure: arrays in, tables out.
"""
from __future__ import annotations

import dataclasses
import functools
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage

from pipeline import measure, quality, segment, shafts
from pipeline.core import HAIR_COLUMNS, METRIC_COLUMNS, FrameResult
from pipeline.settings import Settings


@dataclass
class Candidate:
    """A traced hair with what the counting rule needs."""

    hair: shafts.Hair
    thickness_px: float
    radius_px: float
    contrast: float
    cut: tuple[bool, bool]
    scores: np.ndarray
    length_px: float = 0.0
    root: int = 0
    confident: bool = False
    partner: "Candidate | None" = None
    #: What chose ``root`` (:func:`_orient`): ``fork``, ``follow``, ``direction``, ``cut`` or ``own``.
    root_evidence: str = ""
    emergence: np.ndarray | None = None
    lobes: int = 1
    stripe_px: float = float("nan")
    #: Where each of ``lobes`` touching shafts lies: its centre's (row, col) offset from the traced line
    #: (pixels; :func:`measure.ridge_count`); ``()``: not known.
    lobe_shift: tuple[tuple[float, float], ...] = ()
    #: This hair's offset (row, col; pixels) from the traced line it was split from (``lobe_shift``).
    shift: tuple[float, float] = (0.0, 0.0)
    hidden_root: bool = False
    occluded: bool = False
    shares: tuple[float, ...] = ()
    #: The plain median half-maximum width (:class:`measure.ShaftWidths`), which the rule for fused
    #: stripes compares; NaN: ``thickness_px``.
    plain_px: float = float("nan")

    @property
    def rule_width_px(self) -> float:
        return self.thickness_px if np.isnan(self.plain_px) else self.plain_px

    def shared(self, width_px: float, k: int) -> list["Candidate"]:
        """This stripe as ``k`` hairs sharing ``width_px`` equally, each at its own place across the stripe
        when its centre-line map told the ``k`` shafts apart (``lobe_shift``), else all on the traced line."""
        where = self.lobe_shift if len(self.lobe_shift) == k else [(0.0, 0.0)] * k
        return [dataclasses.replace(self, thickness_px=width_px / k, shift=d) for d in where]


@dataclass
class Stages:
    """Intermediate results of the per-frame core, up to the counting rule (before fused stripes are split).

    For diagnostics (``benchmarks/phantom_stages.py``): where a hair is lost
    — segmentation, tracing, the fragment filters or the counting rule.
    """

    image: np.ndarray  # the frame as the hair map reads it (:func:`prepared_image`)
    valid: np.ndarray  # skin pixels
    field_rows: np.ndarray  # rows of the counting field
    contrast: segment.Contrast
    prob: np.ndarray
    mask: np.ndarray
    traced: list  # every traced hair (the light-shaft search's too), before the fragment filters
    cands: list[Candidate]  # measured and oriented shafts
    inside: list[Candidate]  # the ones whose root end counts
    tips: np.ndarray | None  # cut tips of a learned model, when it gave them
    used: str  # the segmenter that ran
    settings: Settings  # with a learned model's thresholds when one ran
    direction: np.ndarray | None = None  # the frame's pooled root-to-tip direction that oriented its hairs, if decisive


@dataclass
class HairMap:
    """A frame's hair probability as the per-frame core computes it, with what chose it."""

    image: np.ndarray  # the frame as the hair map reads it (:func:`prepared_image`)
    valid: np.ndarray  # skin pixels
    field_rows: np.ndarray  # rows of the counting field
    contrast: segment.Contrast
    prob: np.ndarray  # hair probability, 0 outside ``valid``
    tips: np.ndarray | None  # cut tips of a learned model, when it gave them
    used: str  # the segmenter that ran (the ``segmenter`` column of images.csv)
    settings: Settings  # with a learned model's thresholds when one ran
    width: np.ndarray | None = None  # the map shaft widths are read on when not ``prob`` (:func:`yellow_shafts`)
    centre: np.ndarray | None = None  # a light-hair model's centre-line map, with ``Settings.model_seam_level``


def hair_map(image: np.ndarray, *, um_per_px: float | None, settings: Settings,
             probability: np.ndarray | None = None, tips: np.ndarray | None = None,
             with_centre: bool = False) -> HairMap:
    """Route a frame to its segmenter and compute its hair probability.

    The route: the learned model when ``settings.segmenter`` asks for it;
    else ``light_hair_model`` for frames without dark shafts or with shafts
    barely darker than skin (``weak_shafts_below``; on dark skin
    ``weak_shafts_dark_skin_below``), except light hair on dark skin, which
    the classical path reads on a brightness map kept near what
    ``bright_veto_model`` sees (``bright_hair_skin_below``,
    :func:`_seen_by_model`);
    else the classical darkness map, all read on :func:`prepared_image` (a burned-in scale bar and
    thin drawn lines painted out).  On a light-hair route, a frame whose
    shafts are yellower than skin gets its yellow shafts added
    (:func:`with_yellow_shafts`, ``settings.yellow_shaft_b``).  A fixed ``settings.route`` (e.g.
    ``"colour+model"``, :func:`route_of`) replaces that choice.  Every consumer of a frame's probability (the core, the
    re-examination of gained and lost hairs across visits) goes through
    here, so they read the same map. ``with_centre`` (the core, with
    ``settings.model_seam_level`` > 0) also keeps a light-hair model's
    centre-line map.
    """
    scale = um_per_px or settings.scale_um_per_px
    image = prepared_image(image, scale, settings)
    valid, field_rows = segment.frame_regions(image)
    kind, _, with_model = settings.route.partition("+")
    con = segment.darkness_map(image, um_per_px=scale, settings=settings, valid=valid, kind=kind)
    used = "classical"
    centre = None
    if probability is not None:
        prob = np.where(valid, probability, 0.0).astype(np.float32, copy=False)
    elif settings.segmenter != "classical" and _learned().uses_learned(settings):
        prob, tips, settings, _ = _learned_maps(image, valid, scale, settings, settings.model)
        used = "learned"
    elif _wants_light_model(kind, with_model, con, settings, image, valid) \
            and _learned().available(settings.light_hair_model, settings.learned_backend):
        seams = with_centre and settings.model_seam_level > 0
        own = seams and settings.seam_model in ("", settings.light_hair_model)
        prob, tips, settings, centre = _learned_maps(image, valid, scale, settings, settings.light_hair_model,
                                                     with_centre=own)
        if seams and not own and _learned().available(settings.seam_model, settings.learned_backend):
            centre = _learned_maps(image, valid, scale, settings, settings.seam_model, with_tips=False,
                                   with_centre=True).centre
        used = "learned_light_hair" if con.light else "learned_low_contrast"
    else:
        prob = segment.probability_from_contrast(con, um_per_px=scale, settings=settings, valid=valid)
        if con.bright:
            prob, used = _seen_by_model(prob, image, valid, scale, settings), "classical_light_hair"
    width = None
    if used in LIGHT_ROUTES and settings.yellow_shaft_b > 0:
        prob, width = yellow_maps(prob, image, valid, scale, settings)
    return HairMap(image, valid, field_rows, con, prob, tips, used, settings, width, centre)


#: At low magnification the shortest leg searched for is this share of the leg a ``Settings.scale_bar_um``
#: bar has at the frame's pixel size ...
BAR_SHARE = 0.8
#: ... and at least this long (pixels).
BAR_FLOOR_PX = 40


def prepared_image(image: np.ndarray, scale: float, settings: Settings) -> np.ndarray:
    """The frame as the hair map reads it (uint8 RGB): a burned-in scale bar painted out
    (:func:`segment.remove_scale_bar`) and, with ``settings.paint_drawn_lines``, thin drawn red
    lines and circles too (:func:`segment.paint_out_lines`). ``scale``: pixel size (µm/px)."""
    image = segment.remove_scale_bar(image, min_length_px=bar_search_px(scale, settings))
    return segment.paint_out_lines(image) if settings.paint_drawn_lines else image


def bar_search_px(scale: float, settings: Settings) -> int:
    """Shortest scale-bar leg to search a frame of pixel size ``scale`` (µm/px) for (pixels).

    ``segment.BAR_MIN_PX``, or ``BAR_SHARE`` of a ``settings.scale_bar_um`` bar's leg
    when that is shorter (at least ``BAR_FLOOR_PX``): a 1 mm bar is 78 px
    long at 12.9 µm/px, and left in the frame its legs are counted as hairs.
    On the tuning phantoms (seeds 95-98) the 18 frames coarser than 7.9
    µm/px (where the search length changes) had 7 bars, 70-108 px: 0 found
    before, 4 with their exact length after, and no bar found in the 11
    frames without one.
    """
    expected = settings.scale_bar_um / scale
    return int(max(BAR_FLOOR_PX, min(segment.BAR_MIN_PX, round(BAR_SHARE * expected))))


#: The routes of frames whose shafts are not plainly darker than skin (:func:`hair_map`).
LIGHT_ROUTES = ("learned_light_hair", "learned_low_contrast", "classical_light_hair")
#: Least hair pixels (probability above 0.5) for a frame's shaft hue to be read.
YELLOW_MIN_PIXELS = 50
#: The yellowness that stands for a probability of 1 is the frame's 99.5th percentile on skin, at least
#: this (CIELAB b* units).
YELLOW_FULL_MIN = 4.0


def with_yellow_shafts(prob: np.ndarray, image: np.ndarray, valid: np.ndarray, scale: float,
                       settings: Settings) -> np.ndarray:
    """A light-hair frame's probability with its yellow shafts added, when its shafts are yellow
    (:func:`yellow_shafts`; the larger of the two, the yellowness clipped at 1); ``prob`` itself when not."""
    return yellow_maps(prob, image, valid, scale, settings)[0]


def yellow_maps(prob: np.ndarray, image: np.ndarray, valid: np.ndarray, scale: float,
                settings: Settings) -> tuple[np.ndarray, np.ndarray | None]:
    """The hair probability with a blond frame's yellow shafts added (:func:`with_yellow_shafts`) and the
    map its widths are read on, the same without the clip at 1 (:class:`HairMap` ``width``); ``(prob, None)``
    when the frame's shafts are not yellow (:func:`yellow_shafts`)."""
    yellow = yellow_shafts(prob, image, valid, scale, settings)
    if yellow is None:
        return prob, None
    return _joined(prob, yellow, valid, clip=True), _joined(prob, yellow, valid, clip=False)


def _joined(prob: np.ndarray, yellow: np.ndarray, valid: np.ndarray, *, clip: bool) -> np.ndarray:
    """The larger of ``prob`` and the relative yellowness on skin (clipped at 1 when ``clip``), 0 elsewhere."""
    y = np.clip(yellow, 0.0, 1.0 if clip else None)
    return np.where(valid, np.maximum(prob, y), 0.0).astype(np.float32, copy=False)


def yellow_shafts(prob: np.ndarray, image: np.ndarray, valid: np.ndarray, scale: float,
                  settings: Settings) -> np.ndarray | None:
    """A light-hair frame's yellowness relative to its 99.5th percentile on skin, or None when its hair is not
    yellow.

    When the median CIELAB b* excess over the skin (:func:`segment.yellowness_map`)
    of the pixels ``prob`` calls hair (above 0.5) is at least
    ``settings.yellow_shaft_b``, the frame's hair is blond, and its
    yellowness relative to the frame's 99.5th percentile joins the
    probability (the larger of the two, :func:`with_yellow_shafts`).
    Grey and white shafts are no yellower than skin, so their frames keep
    their map.  Unclipped, the relative yellowness is also what the shafts'
    widths are read on (:class:`HairMap` ``width``): a shaft yellower than
    the percentile has a flat top once clipped at 1, and half of that
    clipped peak lies further out than half its own (on tuning suites 95-98
    (2026-12-05, session 45) the thickness MAE of matched hairs 5.05 / 5.46
    / 5.94 / 6.33 -> 5.01 / 5.39 / 5.92 / 6.18 µm, counts unchanged there;
    a stripe's plain width also decides whether it is split into
    unit-mates, so a count can move).

    Parameters
    ----------
    prob : ndarray of float32, shape (M, N)
        The frame's hair probability, 0 outside ``valid``.
    image : ndarray of uint8, shape (M, N, 3)
    valid : ndarray of bool, shape (M, N)
        Skin pixels.
    scale : float
        Pixel size (µm/px).
    settings : Settings

    Returns
    -------
    ndarray of float32, shape (M, N), or None
        Yellowness over the frame's 99.5th percentile on skin (at least ``YELLOW_FULL_MIN``); negative
        where bluer than the skin around.
    """
    hair = (prob > 0.5) & valid
    if int(hair.sum()) < YELLOW_MIN_PIXELS:
        return None
    yellow = segment.yellowness_map(image, max_width_px=settings.max_width_um / scale, valid=valid)
    if float(np.median(yellow[hair])) < settings.yellow_shaft_b:
        return None
    full = max(float(np.percentile(yellow[valid], 99.5)), YELLOW_FULL_MIN)
    return (yellow / full).astype(np.float32)


def light_shaft_map(hm: HairMap, *, um_per_px: float | None) -> np.ndarray | None:
    """The map a frame's light shafts among dark ones were found on, or None.

    A frame read on the darkness map has its grey and white shafts found on
    ``settings.dark_frame_model``'s probability (:func:`_light_among_dark`),
    where the darkness map shows nothing. Whoever re-reads such a shaft (the
    re-examination of gained and lost hairs across visits) must read it on
    that map. None for frames of another route, or when the search is off.
    """
    s = hm.settings
    if hm.used != "classical" or s.light_among_dark <= 0 or not _model_helps_dark(s):
        return None
    return _learned_maps(hm.image, hm.valid, um_per_px or s.scale_um_per_px, s, s.dark_frame_model,
                         with_tips=False).prob


def frame_stages(image: np.ndarray, *, um_per_px: float | None, settings: Settings,
                 probability: np.ndarray | None = None, tips: np.ndarray | None = None) -> Stages:
    """The per-frame core up to the counting rule (see :func:`measure_frame` for the arguments)."""
    scale = um_per_px or settings.scale_um_per_px
    hm = hair_map(image, um_per_px=um_per_px, settings=settings, probability=probability, tips=tips,
                  with_centre=True)
    image, valid, field_rows, con, prob, tips, used, settings = (
        hm.image, hm.valid, hm.field_rows, hm.contrast, hm.prob, hm.tips, hm.used, hm.settings)
    mask = segment.hair_mask(prob, um_per_px=scale, settings=settings)
    halo = measure.halo_map(image, sigma_px=20.0 / scale)
    on_model = used.startswith("learned") and settings.thickness_map == "model"
    translucent = con.bright and not on_model  # widths read across the brightness map
    width_map, width_full = ((prob if hm.width is None else hm.width), 1.0) if on_model else (con.darkness, con.full)
    model = None  # dark_frame_model's maps, on frames of the darkness map
    if used == "classical" and probability is None and _model_helps_dark(settings):
        model = _learned_maps(image, valid, scale, settings, settings.dark_frame_model, with_tips=False,
                              with_centre=settings.dark_seam_level > 0)
    centre, seam_level = ((model.centre, settings.dark_seam_level) if model is not None and model.centre is not None
                          else (hm.centre, settings.model_seam_level))
    traced, cands = _trace_and_measure(mask, con, halo, valid, prob, scale, settings,
                                       width_map=width_map, width_full=width_full,
                                       shaft_percentile=None if on_model else settings.thickness_percentile,
                                       edge_level=settings.translucent_edge_level if translucent else 0.5,
                                       centre=centre, seam_level=seam_level)
    if settings.comb_split > 0 and used == "classical" and not (con.light or con.bright or on_model):
        mask, traced, cands = _split_combs(mask, prob, traced, cands, con, halo, valid, scale, settings,
                                           width_map=width_map, width_full=width_full)
    if model is not None:
        found = _model_mask(model, scale)  # read by both the light-shaft search and the veto
        dense = _dense_crossing(cands, settings)
        light, light_traced, light_cands = _light_among_dark(
            image, valid, mask, cands, con, halo, scale, settings, model,
            per_shaft=not (dense or _long_scene(cands, scale, settings)), dense=dense, found=found)
        if settings.model_veto_share > 0 and _skin_grain_reaches(image, valid, MODEL_READS_GRAIN):
            cands = _seen_shafts(cands, _model_band(model, scale, found), settings.model_veto_share)
        mask, traced, cands = mask | light, traced + light_traced, cands + light_cands
    if settings.faint_line_level > 0 and used == "classical" and probability is None and not con.light \
            and not (_long_scene(cands, scale, settings) or _dense_crossing(cands, settings)):
        faint, faint_traced, faint_cands = _faint_shafts(mask, valid, cands, con, halo, prob, scale, settings,
                                                         width_map=width_map, width_full=width_full)
        mask, traced, cands = mask | faint, traced + faint_traced, cands + faint_cands
    if settings.split_shaft_deg > 0:
        cands = merge_split_shafts(cands, max_angle_deg=settings.split_shaft_deg,
                                   level=width_map / width_full,
                                   max_width_px=settings.fused_min_um / scale)
    if settings.broken_gap_um > 0:
        cands = join_broken_shafts(cands, max_gap_px=settings.broken_gap_um / scale, level=prob)
    direction = _orient(cands, fork_angle_deg=settings.fork_angle_deg, consensus=settings.direction_consensus,
                        fork_vote=settings.fork_vote, direction_over_forks=settings.direction_over_forks)
    if _long_scene(cands, scale, settings):
        _mark_occluded(cands, scale, dense=_dense_crossing(cands, settings))
    inside = [c for c in cands if _emerges_inside(c, field_rows, image.shape,
                                                  count_hidden=settings.count_hidden_roots)]
    if settings.tip_step > 0 and not con.light:
        _add_tip_shares(inside, mask, settings.tip_step)
    return Stages(image, valid, field_rows, con, prob, mask, traced, cands, inside, tips, used, settings, direction)


def measure_frame(image: np.ndarray, *, um_per_px: float | None, settings: Settings,
                  probability: np.ndarray | None = None, tips: np.ndarray | None = None) -> FrameResult:
    """Run the whole per-frame core on an RGB uint8 frame (see ``analyze_frame``).

    ``probability`` (float, frame shape), when given, replaces the hair
    probability step, and ``tips`` (K x 2 row, col) the cut tips that split
    touching shafts (both used to tune a learned model's thresholds).
    """
    st = frame_stages(image, um_per_px=um_per_px, settings=settings, probability=probability, tips=tips)
    return measure_stages(st, um_per_px=um_per_px)


def measure_stages(st: Stages, *, um_per_px: float | None) -> FrameResult:
    """The rest of :func:`measure_frame` from its stages: fused stripes split, hairs tabulated, metrics."""
    settings = st.settings
    scale = um_per_px or settings.scale_um_per_px
    counted = counted_hairs(st, scale)
    hairs, paths = _hair_table(counted, um_per_px, settings, mask=st.mask)
    area_cm2 = None if um_per_px is None else skin_area_cm2(st.valid, um_per_px)
    metrics = frame_metrics(hairs, area_cm2=area_cm2, um_per_px=um_per_px, settings=settings)
    metrics.update(quality.assess(st.image, st.valid, st.field_rows, um_per_px=scale, settings=settings))
    if st.used != "learned":
        missing = unloaded_helpers(tuple(settings.classical_models()), settings.learned_backend)
        metrics["note"] = "; ".join(filter(None, [metrics["note"], *missing]))
    metrics["segmenter"] = st.used
    metrics["route"] = route_of(st.contrast, st.used)
    metrics["route_source"] = "" if st.used == "learned" else "frame" if settings.route == "auto" else "fixed"
    metrics["long_shaft_pct"] = round(100.0 * long_shaft_share(st.cands, scale), 2)
    return FrameResult(hairs, metrics, paths, st.valid, st.prob, st.mask)


def skin_area_cm2(valid: np.ndarray, um_per_px: float) -> float:
    """Area (cm²) of the skin a frame's hairs are counted on: the counting field without burned-in
    overlays, text boxes and glare (``valid``, :func:`pipeline.segment.frame_regions`).

    A hair whose emergence point lies under an overlay cannot be seen, so
    dividing the count by the whole field would read a frame with a text box
    over 5% of it 5% thin; hidden emergence points are as many as the hidden
    area holds (tuning phantoms: 4.3% of the true hairs of frames with over
    1% of their field masked emerge there, which is 4.1% of it).

    Examples
    --------
    >>> valid = np.ones((100, 200), bool); valid[:10] = False
    >>> round(skin_area_cm2(valid, 5.0), 6)   # 18,000 px of 25 µm²
    0.0045
    """
    return float(np.count_nonzero(valid)) * (um_per_px * 1e-4) ** 2


def counted_hairs(st: Stages, scale: float) -> list[Candidate]:
    """The counted hairs of a frame's stages, one per row of its hair table: touching shafts of one
    stripe split by their width and lobes (:func:`split_fused`), or by a learned model's cut tips
    (:func:`split_by_tips`) when the stages hold tips. ``scale``: µm per pixel."""
    s = st.settings
    if st.tips is None:
        return split_fused(st.inside, ratio=s.fused_ratio, quantile=s.fused_quantile, min_px=s.fused_min_um / scale)
    return split_by_tips(st.inside, st.tips)


#: Half-width (µm) of the band around ``bright_veto_model``'s mask where a
#: classical light-hair map may find shafts (:func:`_seen_by_model`).
SEEN_BY_MODEL_UM = 25.0
#: Share of a component of that map that must lie in the band to be kept.
SEEN_SHARE = 0.5
#: Share of a frame's traced centre lines the model must see for its veto of
#: dark shafts to apply (:func:`_seen_shafts`).
MODEL_READS_FRAME = 0.5
#: Least grain of a frame's skin (grey levels, :func:`_skin_grain_reaches`) for that veto:
#: the model was trained on textured, noisy skin and does not read a frame
#: drawn on flat colour (it sees one of two black bars there, and which one
#: changes with a 90-degree turn).  Real fdu_val frames have 0.72 at the
#: least, phantoms (tuning and report suites) 0.63.
MODEL_READS_GRAIN = 0.25


def route_of(con: segment.Contrast, used: str) -> str:
    """The ``Settings.route`` that reproduces a frame's reading: its contrast map, ``+model`` when the
    light-hair model drew the hair map; ``""`` for the learned segmenter (no route)."""
    if used == "learned":
        return ""
    kind = "colour" if con.light else "bright" if con.bright else "dark"
    return kind + ("+model" if used.startswith("learned") else "")


def _seen_by_model(prob: np.ndarray, image: np.ndarray, valid: np.ndarray, scale: float,
                   settings: Settings) -> np.ndarray:
    """``prob`` of a brightness map without the shafts ``bright_veto_model`` does not see.

    On dark skin, white scales and glare are as bright as light hair; the
    model, trained to tell them apart, vetoes them, and the brightness map
    keeps what the model does poorly (a unit's touching shafts apart, the
    faint ones).  A component of the map's mask is kept whole when at
    least ``SEEN_SHARE`` of it lies within ``SEEN_BY_MODEL_UM`` of the
    model's mask, else dropped whole (cropping pixel by pixel left pieces of
    flakes shaped like shafts).  Tuning phantoms (seed 97): an empty frame
    with scales read as 9 hairs without the veto, 0 with it.  Unchanged when
    the model is not available.
    """
    if not settings.bright_veto_model or not _learned().available(settings.bright_veto_model,
                                                                   settings.learned_backend):
        return prob
    seen = _model_band(_learned_maps(image, valid, scale, settings, settings.bright_veto_model, with_tips=False),
                       scale)
    n, labels = cv2.connectedComponents(segment.hair_mask(prob, um_per_px=scale, settings=settings).astype(np.uint8))
    if n <= 1:
        return prob
    inside = np.bincount(labels[seen], minlength=n) / np.maximum(np.bincount(labels.ravel(), minlength=n), 1)
    vetoed = inside < SEEN_SHARE
    vetoed[0] = False
    return np.where(np.take(vetoed, labels), 0.0, prob).astype(np.float32, copy=False)


def _model_mask(model: ModelMaps, scale: float) -> np.ndarray:
    """A learned model's hair mask (bool) at its own thresholds.

    ``model`` is what :func:`_learned_maps` returns.
    """
    prob, model_settings = model.prob, model.settings
    return segment.hair_mask(prob, um_per_px=scale, settings=model_settings)


def _model_band(model: ModelMaps, scale: float, found: np.ndarray | None = None) -> np.ndarray:
    """Pixels within ``SEEN_BY_MODEL_UM`` of a learned model's hair mask (bool).

    ``model`` is what :func:`_learned_maps` returns; ``found``, its mask
    (:func:`_model_mask`) when the caller has it already.
    """
    seen = (_model_mask(model, scale) if found is None else found).astype(np.uint8)
    r = max(1, int(round(SEEN_BY_MODEL_UM / scale)))
    return cv2.dilate(seen, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0


#: Float32 reads the skin's grain within this of float64 (grey levels; its rounding errs by about 1e-5):
#: pixels further than this from the level are counted in float32, a tie within it is settled in float64.
GRAIN_SCREEN = 0.01


def _skin_grain_reaches(image: np.ndarray, valid: np.ndarray, level: float) -> bool:
    """Whether the skin's grain reaches ``level`` (grey levels): the median over skin pixels of the
    absolute fine detail, the mean of the colour channels minus its Gaussian blur (sigma 2 px), in float64.
    Sensor noise, JPEG and skin texture give every photograph some; a frame drawn on flat colour has none.

    Decided by counting the pixels at or above ``level`` (the median needs a sort only when exactly half
    of them are), which gives the median's answer faster, first on a float32 copy of the detail (about
    twice as fast) and in float64 only when pixels within ``GRAIN_SCREEN`` of ``level`` could tip the
    count; no skin at all has a grain of 0.
    """
    n = int(np.count_nonzero(valid))
    if n == 0:
        return 0.0 >= level

    def decided(above: int) -> bool | None:  # the median's side of level from the count at or above it
        if n % 2 == 1:
            return above >= n - n // 2
        return None if above == n // 2 else above > n // 2

    total = segment.channel_sum(image) if image.dtype == np.uint8 else None
    if total is not None:
        grey = total.astype(np.float32)
        grey /= np.float32(3)
        detail = cv2.absdiff(grey, cv2.GaussianBlur(grey, (0, 0), 2.0))
        surely = decided(int(np.count_nonzero((detail >= level + GRAIN_SCREEN) & valid)))
        if surely is not None and surely == decided(int(np.count_nonzero((detail >= level - GRAIN_SCREEN) & valid))):
            return surely
    grey = segment.channel_mean(image) if total is None else segment.channel_mean_of_sum(total)
    detail = np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 2.0))
    side = decided(int(np.count_nonzero((detail >= level) & valid)))
    return bool(np.median(detail[valid]) >= level) if side is None else side


def _seen_shafts(cands: list[Candidate], band: np.ndarray, share: float) -> list[Candidate]:
    """The traced shafts with at least ``share`` of their centre line inside ``band`` (``model_veto_share``).

    The darkness map also finds dark lines that are no hair: the furrows of
    a pigment network on dark skin, creases, the rims of a shaft read as two.
    ``Settings.dark_frame_model``, trained on phantoms that have them, mostly leaves
    them out; a shaft the model does not see at all is dropped, one it half
    sees is kept (it reads a unit's touching shafts as one, and misses some
    faint real ones).  No shaft is dropped when the model sees less than
    ``MODEL_READS_FRAME`` of all the traced centre lines together: it does
    not read that frame (a black bar on noise-free flat skin gives it
    nothing; real and phantom frames give it 0.43 and 0.72 at the least, a
    median of 0.97).
    """
    seen = [band[q[:, 0], q[:, 1]] for q in (shafts.pixels_of(c.hair.path, band.shape) for c in cands)]
    if not seen or np.concatenate(seen).mean() < MODEL_READS_FRAME:
        return cands
    return [c for c, s in zip(cands, seen) if s.mean() >= share]


@functools.lru_cache(maxsize=16)
def unloaded_helpers(models: tuple[tuple[str, str], ...], backend: str) -> tuple[str, ...]:
    """The classical path's learned helpers (``Settings.classical_models()``) that are named but do not
    load, each as a note for images.csv; warns once per set of names.

    Such a helper is left out and the frames it would read fall back to the
    classical maps (light hair to the colour map, no veto, no light-shaft
    search among dark hair), which measure differently from the documented
    defaults: the note says so on every frame read that way.
    """
    out = []
    for name, role in models:
        why = _learned().load_problem(name, backend) if name else ""
        if why:
            out.append(f"read without {role}_model {name!r}, which did not load: {why}; "
                       f"or set {role}_model='' to run without it on purpose")
    if out:
        warnings.warn("; ".join(out), UserWarning, stacklevel=2)
    return tuple(out)


def _wants_light_model(kind: str, with_model: str, con: segment.Contrast, settings: Settings, image: np.ndarray,
                       valid: np.ndarray) -> bool:
    """Whether :func:`hair_map` reads the frame with ``light_hair_model``: a fixed route's ``+model``
    (``settings.route``, ``kind`` and ``with_model`` its two parts), else :func:`_weak_shafts`. Asked only
    when no given probability or learned segmenter decides, so the skin level is read only where it counts."""
    return bool(with_model) if kind != "auto" else _weak_shafts(con, settings, image, valid)


def _weak_shafts(con: segment.Contrast, settings: Settings, image: np.ndarray, valid: np.ndarray) -> bool:
    """Whether the frame goes to ``light_hair_model``: no dark shafts, shafts barely darker than skin, or
    dark skin (``bright_hair_skin_below``) with shafts under ``weak_shafts_dark_skin_below`` darker."""
    if not settings.light_hair_model or con.bright:
        return False
    if con.light or con.shaft_darkness < settings.weak_shafts_below:
        return True
    return con.shaft_darkness < settings.weak_shafts_dark_skin_below and _dark_skin(image, valid, settings)


def _dark_skin(image: np.ndarray, valid: np.ndarray, settings: Settings) -> bool:
    """Whether the skin's median level (the mean of the colour channels over ``valid``) is under
    ``settings.bright_hair_skin_below``, as :func:`pipeline.segment.darkness_map` reads it."""
    level = segment.channel_mean(image)
    return segment.skin_level(level, valid) < settings.bright_hair_skin_below


def _model_helps_dark(settings: Settings) -> bool:
    """Whether ``dark_frame_model`` runs on frames of the darkness map: to find light shafts among the
    dark ones (``light_among_dark``) or to drop dark lines it does not see (``model_veto_share``)."""
    return ((settings.light_among_dark > 0 or settings.model_veto_share > 0) and bool(settings.dark_frame_model)
            and _learned().available(settings.dark_frame_model, settings.learned_backend))


def _light_among_dark(image, valid, mask, cands, con, halo, scale, settings, model, *, per_shaft: bool = True,
                      dense: bool = False, found: np.ndarray | None = None):
    """Grey or white shafts in a frame of dark hair, which the darkness map cannot see.

    ``Settings.dark_frame_model`` segments the frame (``model``: its maps, as
    :func:`_learned_maps` returns them); of what it finds away from the dark
    shafts (beyond one of their typical radii, ``LIGHT_CLEAR_RADII``; two where
    hairs cross densely), the components that are not
    dark (median darkness below ``light_among_dark`` x the frame's shaft
    darkness) are kept when they are long and thin like a shaft: the long
    side of their minimum-area rectangle at least ``light_among_dark_min_um``
    and ``LIGHT_MIN_ASPECT`` times the short side (:func:`_shaft_like`).
    Texture, scales and halos the model half-sees are mostly short or round.
    Where the dark hairs cross densely (``dense``: uncut hair, see
    ``Settings.dense_crossing_share``) the model half-sees the skin between
    the shafts, and the test is stricter (``DENSE_LIGHT_MIN_UM``,
    ``DENSE_LIGHT_MIN_ASPECT``).
    Two light shafts leaving one opening in a V are one component that is
    not thin as a whole; with ``per_shaft`` the components that fail the
    test are traced, and a traced shaft of them is kept when it is itself
    that long and thin.  Not in a scene of uncut long hair or where hairs
    cross densely (``per_shaft=False``): there the model floods the skin
    between the crossing shafts, and the floods trace into long branches
    (uncut ``phantom_97_0012``, 25 hairs emerge: read 107, 74 without).
    Nothing when ``light_among_dark`` is 0.  ``found``: the model's mask
    (:func:`_model_mask`) when the caller has it already.

    Returns
    -------
    light : ndarray of bool
        The kept light shafts' mask (the components that hold them).
    list of shafts.Hair
        The traced hairs.
    list of Candidate
        Those kept and measured (:func:`_candidates`), the thickness across the model's map.
    """
    if settings.light_among_dark <= 0:
        return np.zeros_like(mask), [], []
    prob, model_settings = model.prob, model.settings
    if found is None:
        found = _model_mask(model, scale)
    min_um, min_aspect, clear = settings.light_among_dark_min_um, LIGHT_MIN_ASPECT, LIGHT_CLEAR_RADII
    if dense:
        min_um, min_aspect = max(min_um, DENSE_LIGHT_MIN_UM), max(min_aspect, DENSE_LIGHT_MIN_ASPECT)
        clear = DENSE_LIGHT_CLEAR_RADII
    labels, long_pale, thin = _pale_components(found & ~_near_shafts(mask, cands, clear), con.darkness,
                                               max_dark=settings.light_among_dark * con.full,
                                               min_len_px=min_um / scale, min_aspect=min_aspect)
    whole = np.take(long_pale & thin, labels)
    traced, kept = _trace_and_measure(whole, con, halo, valid, prob, scale, model_settings,
                                      width_map=prob, width_full=1.0) if whole.any() else ([], [])
    if not per_shaft:
        return whole, traced, kept
    failed = long_pale & ~thin
    rest = np.take(failed, labels)
    if not rest.any():
        return whole, traced, kept
    # each shaft on its own rules only: the lenient ones for stripes, whole stubs and border stubs stay off
    shaft_settings = model_settings.replace(min_hair_length_um=min_um, min_aspect=min_aspect, stripe_aspect=0.0,
                                            stub_aspect=0.0, border_stub_min_um=0.0)
    rest_traced, rest_kept = _trace_and_measure(rest, con, halo, valid, prob, scale, shaft_settings,
                                                width_map=prob, width_full=1.0)
    return whole | _components_with(labels, failed, rest_kept), traced + rest_traced, kept + rest_kept


#: A light shaft found among dark ones is at least this many times as long as it is wide (a clipped
#: terminal shaft of 80 µm cut at 250 µm is 3 times).
LIGHT_MIN_ASPECT = 2.5
#: Where hairs cross densely, a light shaft is at least this long (µm) ...
DENSE_LIGHT_MIN_UM = 250.0
#: ... and this many times as long as it is wide.
DENSE_LIGHT_MIN_ASPECT = 4.0
#: What the model finds within this many typical shaft radii of the dark shafts' mask is left to them (the
#: model's view of a dark shaft is a little wider than the darkness map's). A grey shaft of a unit touches
#: its dark unit-mates at the opening, so a wider margin cuts it short: at 2 radii the 190 µm white shaft
#: beside a dark one in ``phantom_98_0025`` kept 55 of its 62 px.
LIGHT_CLEAR_RADII = 1.0
#: ... and where hairs cross densely, where the model's view of the crossings is wider still.
DENSE_LIGHT_CLEAR_RADII = 2.0


def _faint_shafts(mask, valid, cands, con, halo, prob, scale, settings, *, width_map, width_full):
    """Thin straight shafts too faint for the hysteresis levels (``Settings.faint_line_level``).

    The frame's probability is read at ``FAINT_WORK_UM`` µm/px (or its own
    pixel size when coarser) by :func:`pipeline.segment.line_contrast`: a
    line of ``FAINT_LINE_UM`` (at least ``FAINT_MIN_PX`` of the frame's
    pixels) against its flanks half a vellus width plus two pixels to either
    side.  Where that stands ``faint_line_level`` above (hysteresis, low at
    two thirds of it), away from the shafts found so far by one typical
    shaft radius and from the edge of the skin by the flank distance plus
    2 px, a component is kept
    when it is long (``FAINT_MIN_UM``, at least ``FAINT_MIN_PX``), thin
    (``FAINT_ASPECT``) and straight: its spread across its long axis at most
    ``FAINT_BEND_PX`` more than a straight bar of its mean width has.  The
    pigment network's pieces are shorter or bend.  Its shafts are traced and
    measured like the others, their contrast read on the line map.

    Returns
    -------
    ndarray of bool
        The kept components.
    list of shafts.Hair
        Their traced hairs.
    list of Candidate
        Those measured and kept.
    """
    work = max(scale, FAINT_WORK_UM)
    f = scale / work
    small = cv2.resize(prob, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else prob
    offset_um = 0.5 * settings.vellus_max_um + 2.0 * scale
    length_um = max(FAINT_LINE_UM, FAINT_MIN_PX * scale)
    line = segment.line_contrast(small, length_px=length_um / work, offset_px=offset_um / work)
    if f < 1:
        line = cv2.resize(line, (prob.shape[1], prob.shape[0]), interpolation=cv2.INTER_LINEAR)
    e = int(np.ceil(offset_um / scale)) + 2
    inner = cv2.erode(valid.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * e + 1, 2 * e + 1))) > 0
    # (OpenCV's erosion takes the outside of the frame as skin: only the edges of masked regions move in)
    level = settings.faint_line_level
    found = segment.hysteresis(line, 2.0 * level / 3.0, level) & inner & ~_near_shafts(mask, cands, 1.0)
    labels, long_pale, thin = _pale_components(found, con.darkness, max_dark=None,
                                               min_len_px=max(FAINT_MIN_UM / scale, FAINT_MIN_PX),
                                               min_aspect=FAINT_ASPECT)
    keep = long_pale & thin
    boxes = ndimage.find_objects(labels)
    for k in np.flatnonzero(keep):
        keep[k] = _straight(labels[boxes[k - 1]] == k, FAINT_BEND_PX)
    kept = np.take(keep, labels)
    if not kept.any():
        return kept, [], []
    faint_settings = settings.replace(darkness_threshold=level, darkness_low=2.0 * level / 3.0)
    traced, measured = _trace_and_measure(kept, con, halo, valid, line, scale, faint_settings, width_map=width_map,
                                          width_full=width_full, shaft_percentile=settings.thickness_percentile)
    return kept, traced, measured


def _straight(component: np.ndarray, bend_px: float) -> bool:
    """Whether a component's spread across its long axis (standard deviation, pixels) is at most ``bend_px``
    more than a straight bar of its mean width (area / length) has; a component of one or two pixels is."""
    pts = np.argwhere(component).astype(float)
    if len(pts) < 3:
        return True
    pts -= pts.mean(axis=0)
    minor, major = np.linalg.eigvalsh(np.cov(pts.T))
    width = len(pts) / max(np.sqrt(12.0 * max(major, 1e-9)), 1.0)
    return bool(np.sqrt(max(minor, 0.0)) <= bend_px + width / np.sqrt(12.0))


#: Faint shafts (:func:`_faint_shafts`) are sought on the probability read at this pixel size (µm) or coarser ...
FAINT_WORK_UM = 5.0
#: ... along lines this long (µm) ...
FAINT_LINE_UM = 150.0
#: ... and at least this many of the frame's pixels (so is a kept component);
FAINT_MIN_PX = 30
#: a kept component is at least this long (µm) ...
FAINT_MIN_UM = 180.0
#: ... and this many times as long as wide ...
FAINT_ASPECT = 4.0
#: ... and bends by at most this much (pixels of spread across its axis beyond a straight bar's; pixels, not µm,
#: as measured in session 55).
FAINT_BEND_PX = 1.0


def _near_shafts(mask: np.ndarray, cands: list[Candidate], radii: float) -> np.ndarray:
    """The hair mask grown by ``radii`` times the frame's typical shaft radius (the median of ``cands``'; 4 px
    without any, at least 2 px): where a shaft found on another map would be the found shafts' own edge."""
    r = max(2, int(round(radii * np.median([c.radius_px for c in cands])))) if cands else 4
    return cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0


def _components_with(labels: np.ndarray, among: np.ndarray, cands: list[Candidate]) -> np.ndarray:
    """The components of ``labels`` (label 0 the background) selected by ``among`` (bool per label) that
    hold a point of a candidate's centre line, as a mask."""
    if not cands:
        return np.zeros(labels.shape, bool)
    pts = np.concatenate([shafts.pixels_of(c.hair.path, labels.shape) for c in cands])
    hit = np.zeros(len(among), bool)
    hit[labels[pts[:, 0], pts[:, 1]]] = True
    return np.take(hit & among, labels)


def _shaft_like(mask: np.ndarray, darkness: np.ndarray, *, max_dark: float, min_len_px: float,
                min_aspect: float) -> np.ndarray:
    """The components of ``mask`` that are not dark (median ``darkness`` below ``max_dark``) and
    elongated: the long side of their minimum-area rectangle at least ``min_len_px`` and
    ``min_aspect`` times the short side."""
    labels, long_pale, thin = _pale_components(mask, darkness, max_dark=max_dark, min_len_px=min_len_px,
                                               min_aspect=min_aspect)
    return np.take(long_pale & thin, labels)


def _pale_components(mask: np.ndarray, darkness: np.ndarray, *, max_dark: float | None, min_len_px: float,
                     min_aspect: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label the components of ``mask``; per label (bool arrays, label 0 the background): not dark
    (median ``darkness`` below ``max_dark``; any darkness when None) with the long side of its minimum-area
    rectangle at least ``min_len_px``; and that long side at least ``min_aspect`` times the short one."""
    n, labels, stats = segment.components8(mask.astype(np.uint8))
    long_pale, thin = np.zeros(n, bool), np.zeros(n, bool)
    for k in range(1, n):
        x, y, w, h = stats[k, :4]
        if max(w, h) < min_len_px / np.sqrt(2):  # even the diagonal of its box is too short
            continue
        rows, cols = np.nonzero(labels[y:y + h, x:x + w] == k)
        if max_dark is not None and np.median(darkness[rows + y, cols + x]) >= max_dark:
            continue
        (_, _), (a, b), _ = cv2.minAreaRect(np.column_stack([cols, rows]).astype(np.float32))
        long_pale[k] = max(a, b) >= min_len_px
        thin[k] = max(a, b) >= min_aspect * max(1.0, min(a, b))
    return labels, long_pale, thin


class ModelMaps(NamedTuple):
    """A learned model's maps of one frame (:func:`_learned_maps`)."""

    prob: np.ndarray  # hair probability, 0 off skin
    tips: np.ndarray | None  # cut tips (row, col), when asked for and the model has a tip threshold
    settings: Settings  # the caller's, with the model's hysteresis thresholds
    centre: np.ndarray | None = None  # centre-line map, 0 off skin, when asked for


def _learned_maps(image: np.ndarray, valid: np.ndarray, scale: float, settings: Settings, name: str, *,
                  with_tips: bool = True, with_centre: bool = False) -> ModelMaps:
    """Hair probability, cut tips, thresholds and (``with_centre``) the centre-line map from the learned model ``name``.

    ``with_tips=False`` (a caller that reads only the hair map: the dark-frame
    model, the veto) skips the tip search; tips are then None."""
    model = _learned().load_model(name, settings.learned_backend)
    with_tips = with_tips and model.thresholds.get("tip") is not None
    heads = ("hair",) + (("tip",) if with_tips else ()) + (("centre",) if with_centre else ())
    maps = model.predict(image, um_per_px=scale, heads=heads)
    prob = np.where(valid, maps["hair"], 0.0).astype(np.float32, copy=False)
    settings = settings.replace(darkness_low=model.thresholds["low"], darkness_threshold=model.thresholds["high"])
    tips = None
    if with_tips:
        tips = tip_points(np.where(valid, maps["tip"], 0.0), threshold=model.thresholds["tip"],
                          min_distance_px=max(2, round(2 * model.um_per_px / scale)))
    centre = np.where(valid, maps["centre"], 0.0).astype(np.float32, copy=False) if with_centre else None
    return ModelMaps(prob, tips, settings, centre)


def _learned():
    """The learned segmenter module, imported only when asked for (it loads torch)."""
    from pipeline import learned
    return learned


def _trace_and_measure(mask, con, halo, valid, prob, scale, settings, *, width_map, width_full,
                       edge_level: float = 0.5, shaft_percentile: float | None = None,
                       centre: np.ndarray | None = None, seam_level: float = 0.0):
    """The hairs traced in ``mask`` (:func:`shafts.trace_hairs`) and those of them measured and kept
    (:func:`_candidates`; ``centre`` and ``seam_level``: a model's centre-line map whose ridges count
    touching shafts)."""
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    traced = shafts.trace_hairs(mask, dist=dist, settings=settings)
    return traced, _candidates(traced, con, dist, halo, valid, prob, scale, settings,
                               width_map=width_map, width_full=width_full, edge_level=edge_level,
                               shaft_percentile=shaft_percentile, mask=mask, centre=centre,
                               seam_level=seam_level)


COMB_LEVELS = (0.6, 0.7, 0.8, 0.9)
COMB_CORE_WIDTH = 0.25
COMB_CORE_ASPECT = 1.5
COMB_MAX_TURN_DEG = 30.0


def _split_combs(mask, prob, traced, cands, con, halo, valid, scale, settings, *, width_map, width_full):
    """Mask components that the traced shafts leave unexplained, cut again along their lighter seams.

    Short hairs of one unit lying side by side often merge into one mask
    component (a square blob, a comb) whose skeleton runs across them or
    zigzags, so the hairs are dropped or read as one.  In a component where
    at least ``settings.comb_split`` of the pixels lie beyond every kept
    candidate's radius + 1.5 px, the shafts are sought again as cores at
    higher levels of the hair probability (:func:`_comb_cores`); when there
    are more of them than candidates kept there, the component is cut by a
    watershed from the cores (Beucher & Meyer 1993; flooding the inverted
    probability, so the cuts follow the seams) and each part is traced
    again.  A part's width is its own region's median width across its
    centre line (:func:`_width_of_part`), not the darkness profile's, which
    runs on into the touching neighbour.  Returns the new mask, traced
    hairs and candidates.
    """
    n, labels, stats = segment.components8(mask.astype(np.uint8))
    comp_of = [int(labels[tuple(_middle_px(c.hair.path, mask.shape))]) for c in cands]
    widths = np.array([c.rule_width_px for c in cands], float)
    typical = max(float(np.nanmedian(widths)) if np.isfinite(widths).any() else 0.0,
                  settings.min_width_um / scale)
    min_len = settings.min_hair_length_um / scale
    ask = _unexplained_components(labels, stats, mask, cands, settings.comb_split, min_area=min_len * typical)
    parts = np.zeros(mask.shape, np.int32)
    redo, boxes, used = [], [], 0
    for k in ask:
        x, y, w, h = stats[k, :4]
        box = (slice(y, y + h), slice(x, x + w))
        cut = _cut_component(labels[box] == k, prob[box], min_len=min_len, min_width=COMB_CORE_WIDTH * typical,
                             kept_here=comp_of.count(k))
        if cut is not None:
            parts[box] = np.where(cut > 0, cut + used, parts[box])
            used += int(cut.max())
            redo.append(k)
            boxes.append((box, k))
    if not redo:
        return mask, traced, cands
    gone = np.isin(labels, redo)
    apart = _parts_mask(parts)
    t2, dist = _trace_boxes(apart, labels, boxes, settings)
    c2 = _candidates(t2, con, dist, halo, valid, prob, scale, settings, width_map=width_map, width_full=width_full,
                     shaft_percentile=settings.thickness_percentile, mask=apart)
    for c in c2:
        _width_of_part(c, parts)
    keep_t = [h for h in traced if not gone[tuple(_middle_px(h.path, mask.shape))]]
    keep_c = [c for c, j in zip(cands, comp_of) if j not in redo]
    return (mask & ~gone) | apart, keep_t + t2, keep_c + c2


def _trace_boxes(mask: np.ndarray, labels: np.ndarray, boxes: list, settings: Settings) -> tuple[list, np.ndarray]:
    """The hairs of ``mask`` traced component by component (``boxes``: each component's bounding box and
    its label in ``labels``), each on a crop of its own pixels, in frame coordinates with frame-unique
    junction names; and the mask's distance transform (zero elsewhere): a few small crops traced
    instead of the whole frame."""
    dist = np.zeros(mask.shape, np.float32)
    hairs = []
    for (rows, cols), k in boxes:
        r0, c0 = max(rows.start - 2, 0), max(cols.start - 2, 0)
        r1, c1 = rows.stop + 2, cols.stop + 2
        crop = mask[r0:r1, c0:c1] & (labels[r0:r1, c0:c1] == k)
        d = cv2.distanceTransform(crop.astype(np.uint8), cv2.DIST_L2, 5)
        here = dist[r0:r1, c0:c1]
        here[crop] = d[crop]
        found = shafts.trace_hairs(crop, dist=d, settings=settings)
        for h in found:
            h.path = h.path + (r0, c0)
        hairs += shafts.frame_unique_junctions(found, mask.shape[1])
    return hairs, dist


def _middle_px(path: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The pixel (row, col) of a path's middle point, inside the frame."""
    return np.clip(np.round(path[len(path) // 2]).astype(int), 0, np.array(shape[:2]) - 1)


def _unexplained_components(labels, stats, mask, cands, share, *, min_area: float) -> list[int]:
    """Labels of the mask components (:func:`segment.components8`) of at least ``min_area``
    pixels with at least ``share`` of them beyond every kept candidate's radius + 1.5 px."""
    area = stats[:, cv2.CC_STAT_AREA]
    big = [k for k in range(1, len(stats)) if area[k] >= min_area]
    if not big:
        return []
    covered = np.zeros(mask.shape, np.uint8)
    for c in cands:
        pts = np.round(c.hair.path).astype(np.int32)[:, ::-1].reshape(-1, 1, 2)
        cv2.polylines(covered, [pts], False, 1, max(1, int(round(2 * (c.radius_px + 1.5)))))
    beyond = np.bincount(labels[mask & (covered == 0)], minlength=len(stats))
    return [k for k in big if beyond[k] >= share * area[k]]


def _cut_component(comp: np.ndarray, prob: np.ndarray, *, min_len: float, min_width: float,
                   kept_here: int) -> np.ndarray | None:
    """One component cut into its shafts (labels 1..k over ``comp``, 0 outside), or None when its cores
    (:func:`_comb_cores`) are no more than the ``kept_here`` candidates already kept in it."""
    from skimage.segmentation import watershed

    markers = _comb_cores(comp, prob, min_len=min_len, min_width=min_width)
    if markers is None or markers.max() <= kept_here:
        return None
    return watershed(-prob, markers, mask=comp, connectivity=2)  # 8-connected, as the component


def _parts_mask(parts: np.ndarray) -> np.ndarray:
    """The mask of labelled parts with their shared borders taken out, so that each traces alone (the
    2-px cut is taken from the part below or to the right of each border)."""
    border = np.zeros(parts.shape, bool)
    border[:, 1:] |= (parts[:, 1:] != parts[:, :-1]) & (parts[:, 1:] > 0) & (parts[:, :-1] > 0)
    border[1:, :] |= (parts[1:, :] != parts[:-1, :]) & (parts[1:, :] > 0) & (parts[:-1, :] > 0)
    border = cv2.dilate(border.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
    return (parts > 0) & ~border


def _width_of_part(c: Candidate, parts: np.ndarray) -> None:
    """Set a re-traced candidate's width (``thickness_px`` and ``plain_px``) to its own part's median width
    across its centre line, read on a crop around it; its radius and the rest stay as traced."""
    own = parts[tuple(_middle_px(c.hair.path, parts.shape))]
    if own == 0:
        return
    path = measure.resample_path(c.hair.path)
    reach = int(np.ceil(3.0 * max(c.radius_px, 1.0) + 6))
    r0, c0 = np.maximum(np.floor(path.min(axis=0)).astype(int) - reach, 0)
    r1, c1 = np.minimum(np.ceil(path.max(axis=0)).astype(int) + reach + 1, parts.shape[:2])
    w = measure.cross_widths(parts[r0:r1, c0:c1] == own, path - (r0, c0), radius_px=c.radius_px)
    w = w[w > 0]
    if w.size:
        c.thickness_px = c.plain_px = float(np.median(w))


def _comb_cores(comp: np.ndarray, prob: np.ndarray, *, min_len: float, min_width: float) -> np.ndarray | None:
    """Marker image (0 background, 1..k) of the shafts lying side by side in one mask component, or None.

    At each of ``COMB_LEVELS`` the component's pixels at least that
    probable form cores; a core at least ``min_len`` long, ``min_width``
    wide and ``COMB_CORE_ASPECT`` times longer than wide is part of a
    shaft.  Cores one behind the other are pieces of one shaft and share a
    marker (:func:`_in_line_groups`).  The level that leaves the most
    shafts (at least two) wins, unless its cores turn more than
    ``COMB_MAX_TURN_DEG`` from each other (crossing hairs, not a unit lying
    together).
    """
    from skimage.measure import regionprops

    best = None
    for level in COMB_LEVELS:
        _, core = cv2.connectedComponents((comp & (prob >= level)).astype(np.uint8), connectivity=8)
        good = [rp for rp in regionprops(core)  # area first: the moments of the many specks cost most
                if rp.area >= 0.5 * min_len * max(min_width, 1.0)
                and rp.axis_major_length >= min_len and rp.axis_minor_length >= min_width
                and rp.axis_major_length >= COMB_CORE_ASPECT * max(rp.axis_minor_length, 1.0)]
        group = _in_line_groups(good)
        if max(group, default=0) >= 2 and (best is None or max(group) > best.max()) and _parallel(good):
            best = np.zeros(core.shape, np.int32)
            for rp, g in zip(good, group):
                best[core == rp.label] = g
    return best


def _parallel(cores: list) -> bool:
    """Whether every core's axis lies within ``COMB_MAX_TURN_DEG`` of the longest one's."""
    ref = max(cores, key=lambda rp: rp.axis_major_length).orientation
    turn = [abs((rp.orientation - ref + np.pi / 2) % np.pi - np.pi / 2) for rp in cores]
    return max(turn) <= np.radians(COMB_MAX_TURN_DEG)


def _in_line_groups(cores: list) -> list[int]:
    """Group labels (1..g) of ``skimage`` region properties: two cores one behind the other (their extents
    along the axis of the earlier of the two overlapping by less than 30% of the shorter) and in line
    (centres less than 0.6 of the wider one's width apart across that axis) are pieces of one shaft and share a
    label; cores side by side are different shafts."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = [(i, j) for i in range(len(cores)) for j in range(i + 1, len(cores)) if _in_line(cores[i], cores[j])]
    rows, cols = zip(*pairs) if pairs else ((), ())
    adj = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(cores), len(cores)))
    _, labels = connected_components(adj, directed=False)
    ids = {r: n for n, r in enumerate(dict.fromkeys(labels.tolist()), 1)}  # numbered by first appearance
    return [ids[r] for r in labels.tolist()]


def _in_line(a, b) -> bool:
    """Whether core ``b`` lies behind core ``a`` along ``a``'s axis and in line with it (:func:`_in_line_groups`)."""
    axis = np.array([np.cos(a.orientation), np.sin(a.orientation)])  # (row, col)
    across = np.array([-axis[1], axis[0]])
    ea, eb = a.coords @ axis, b.coords @ axis
    overlap = min(ea.max(), eb.max()) - max(ea.min(), eb.min())
    offset = abs(float(np.subtract(a.centroid, b.centroid) @ across))
    return overlap < 0.3 * min(np.ptp(ea), np.ptp(eb)) and offset < 0.6 * max(a.axis_minor_length, b.axis_minor_length)


def _candidates(traced, con, dist, halo, valid, prob, scale, settings, *, width_map, width_full,
                mask: np.ndarray, edge_level: float = 0.5,
                shaft_percentile: float | None = None, centre: np.ndarray | None = None,
                seam_level: float = 0.0) -> list[Candidate]:
    """Measure each traced hair; drop fragments too short or too faint.

    The thickness is measured across ``width_map``, whose opaque-shaft level is ``width_full``, at
    ``edge_level`` of each profile's peak (:func:`measure.hair_widths_px`): with ``shaft_percentile``
    (contrast maps) within the hair's mask run and at that percentile of its stations' widths, without
    it (a model's map, whose shafts have no lighter middle band) the plain median width. ``mask`` is the
    hair mask ``dist`` was computed from. With ``centre`` (a model's centre-line map: the light-hair
    route's ``Settings.seam_model``, or ``dark_frame_model`` on the darkness map's frames), the
    touching shafts of a stripe with no junction end are counted on it as ridges at least ``seam_level``
    high (:func:`measure.ridge_count`; ``Settings.model_seam_level``, ``dark_seam_level``): at a junction, shafts that lay together part and are traced on as
    hairs of their own."""
    min_len = settings.min_hair_length_um / scale
    paths = [measure.resample_path(h.path) for h in traced]
    pts = [shafts.pixels_of(p, dist.shape) for p in paths]
    radius = np.array([np.median(dist[q[:, 0], q[:, 1]]) for q in pts], float)
    free = np.array([[k == "free" for k in h.end_kinds] for h in traced], bool).reshape(-1, 2)
    length = np.array([h.length_px for h in traced], float) + radius * free.sum(axis=1)  # skeletons stop ~r short of a free end
    isolated = free.all(axis=1)
    keep = _elongated(radius, length, isolated, min_len, settings)
    if settings.stub_aspect > 0:
        ask = np.flatnonzero(~keep & isolated)
        keep[ask] = _whole_stubs([paths[i] for i in ask], radius[ask], length[ask], valid, mask, min_len,
                                 settings.stub_aspect)
    if settings.border_stub_min_um > 0:
        ask = np.flatnonzero(~keep & isolated)
        keep[ask] = _border_stubs([paths[i] for i in ask], radius[ask], length[ask], valid,
                                  settings.border_stub_min_um / scale)
    bounded = shaft_percentile is not None
    out = []
    for i in np.flatnonzero(keep):
        h, path, pix, r = traced[i], paths[i], pts[i], float(radius[i])
        contrast = float(np.median(prob[pix[:, 0], pix[:, 1]]))
        if contrast < settings.darkness_threshold:
            continue
        w = measure.hair_widths_px(path, radius_px=r, darkness=width_map, full=width_full,
                                   method=settings.thickness_method, edge_level=edge_level,
                                   mask=mask if bounded else None,
                                   percentile=shaft_percentile if bounded else 50.0)
        cut = tuple(_is_cut(p, valid, r) for p in (path[0], path[-1]))
        scores = measure.root_scores(h, con.darkness, halo, max(r, 1.0))
        lobes, stripe, where = 1, float("nan"), ()
        if centre is not None and seam_level > 0 and "junction" not in h.end_kinds:
            lobes, stripe, where = measure.ridge_count(centre, mask, path, radius_px=r, level=seam_level)
        elif settings.seam_dip > 0 and not con.light:
            lobes, stripe = measure.lobe_count(con.darkness, path, radius_px=r, min_dip=settings.seam_dip)
        out.append(Candidate(h, w.shaft, r, contrast, cut, scores, length_px=float(length[i]), lobes=lobes,
                             stripe_px=stripe, lobe_shift=where, plain_px=w.plain))
    return out


def _elongated(radius: np.ndarray, length: np.ndarray, isolated: np.ndarray, min_len: float,
               settings: Settings) -> np.ndarray:
    """Which traced shafts are long enough to be hairs (bool per shaft).

    A shaft must be ``min_len`` long and ``min_aspect`` times its own mask
    width; a wider stripe (touching hairs of one unit, short clipped) also
    passes when it is ``isolated`` (both ends free: not a piece between
    crossings), ``min_aspect`` times the frame's typical shaft width
    (median over the shafts that pass on their own) and ``stripe_aspect``
    times its own width (a round blob does not).
    """
    own = settings.min_aspect * 2 * np.maximum(radius, 1.0)
    keep = (length >= min_len) & (length >= own)
    if settings.stripe_aspect <= 0 or keep.sum() < 3:
        return keep
    typical = settings.min_aspect * 2 * max(float(np.median(radius[keep])), 1.0)
    stripe = (isolated & (length >= min_len) & (length >= typical)
              & (length >= settings.stripe_aspect * 2 * np.maximum(radius, 1.0)))
    return keep | stripe


#: A whole short shaft (:func:`_whole_stubs`) has straight parallel edges: the interquartile range of its
#: mask widths along the middle two thirds of its centre line is at most this share of their median ...
STUB_FLATNESS = 0.15
#: ... and that median lies within these multiples of twice its distance-transform radius (a rectangle
#: reads 1; a stripe whose centre line runs off its middle, or a blob with a bulge, does not).
STUB_WIDTH_RANGE = (0.8, 1.3)


def _whole_stubs(paths: list[np.ndarray], radius: np.ndarray, length: np.ndarray, valid: np.ndarray,
                 mask: np.ndarray, min_len: float, aspect: float) -> np.ndarray:
    """Which shafts too short for ``Settings.min_aspect`` are whole short clipped hairs (bool per shaft).

    A terminal hair clipped to about two of its widths fails ``min_aspect``
    (2.5 widths), a rule meant for blobs, and the stripe rule of
    :func:`_elongated` when the frame's shafts are as wide.  Such a stub is
    kept when it is ``min_len`` long and ``aspect`` times its width, both
    ends lie in view (not cut by the frame's border or a masked region,
    :func:`_is_cut`: the whole stub is seen) and its edges are straight and
    parallel (``STUB_FLATNESS``, ``STUB_WIDTH_RANGE``): a wedge, a disc or a
    ragged blob is not kept; an ellipse of a stub's size is.

    Parameters
    ----------
    paths : list of ndarray, shape (K, 2)
        Centre lines at 1-px steps (row, col; pixels), both ends free.
    radius, length : ndarray of float
        Each shaft's median distance-transform radius and its length with
        a radius added at each free end (pixels).
    valid : ndarray of bool
        Skin pixels of the frame.
    mask : ndarray of bool
        The hair mask the shafts were traced from.
    min_len : float
        Shortest hair (pixels; ``Settings.min_hair_length_um`` at the frame's pixel size).
    aspect : float
        Shortest stub, in its own widths (``Settings.stub_aspect``).
    """
    keep = np.zeros(len(paths), bool)
    lo, hi = STUB_WIDTH_RANGE
    for i, (path, r, n) in enumerate(zip(paths, radius, length)):
        r = max(float(r), 1.0)
        if (len(path) < 2 or not np.isfinite(n) or n < min_len or n < aspect * 2 * r
                or _is_cut(path[0], valid, r) or _is_cut(path[-1], valid, r)):
            continue
        widths = measure.cross_widths(mask, path, radius_px=r)
        k = len(widths) // 6
        core = widths[k:len(widths) - k] if len(widths) - 2 * k >= 3 else widths
        q1, med, q3 = np.percentile(core, [25, 50, 75])
        keep[i] = q3 - q1 <= STUB_FLATNESS * med and lo * 2 * r <= med <= hi * 2 * r
    return keep


def _border_stubs(paths: list[np.ndarray], radius: np.ndarray, length: np.ndarray, valid: np.ndarray,
                  min_len: float) -> np.ndarray:
    """Which shafts are a hair's first part before the frame border cuts it (bool per shaft).

    Exactly one end lies at the frame's edge (:func:`_at_frame_edge`), and
    the shaft is ``min_len`` px long and at least its own width.
    """
    strips, sides = ~valid.any(axis=1), ~valid.any(axis=0)
    at_edge = np.array([[_at_frame_edge(q[k], strips, valid.shape, max(float(r), 1.0), sides) for k in (0, -1)]
                        for q, r in zip(paths, radius)], bool).reshape(-1, 2)
    return (at_edge.sum(axis=1) == 1) & (length >= min_len) & (length >= 2 * np.maximum(radius, 1.0))


def _at_frame_edge(point: np.ndarray, strips: np.ndarray, shape: tuple[int, int], r: float,
                   sides: np.ndarray | None = None) -> bool:
    """An end within a shaft radius (+3 px) of the image border, of a row of ``strips`` (rows with no
    skin: a header or footer band) or of a column of ``sides`` (columns with no skin: a pillarboxed
    frame's side bars); unlike :func:`_is_cut`, not of a mark drawn on the skin."""
    reach = r + 3
    if _near_border(point, shape, reach):
        return True
    near = [(strips, point[0], shape[0])] + ([] if sides is None else [(sides, point[1], shape[1])])
    return any(bool(lines[int(max(0, x - reach)):int(min(size, x + reach + 1))].any()) for lines, x, size in near)


def _add_tip_shares(cands: list[Candidate], mask: np.ndarray, min_drop: float) -> None:
    """Set ``shares`` of every oriented candidate whose tip end is free and uncut (cut-tip steps)."""
    for c in cands:
        tip = 1 - c.root
        if c.hair.end_kinds[tip] == "free" and not c.cut[tip]:
            path = measure.resample_path(c.hair.path)
            widths = measure.cross_widths(mask, path, radius_px=c.radius_px)
            c.shares = _step_shares(widths if c.root == 0 else widths[::-1], min_drop, path)


def _step_shares(widths: np.ndarray, min_drop: float, path: np.ndarray) -> tuple[float, ...]:
    """Each shaft's share of a stripe's median width, from its cut-tip steps
    (``widths`` root end first; empty for one shaft).  Only a straight
    stripe (chord at least 95% of its length) is split: clipped shafts of
    one unit run straight, a centre line that bends runs into a halo or a
    crossing."""
    length = float(np.sum(np.hypot(*np.diff(path, axis=0).T))) if len(path) > 1 else 0.0
    if length <= 0 or np.hypot(*(path[-1] - path[0])) < 0.95 * length:
        return ()
    steps = measure.tip_steps(widths, min_drop=min_drop)
    if not steps:
        return ()
    widths = measure.trim_tapers(widths)
    typical = max(float(np.median(widths)), 1e-9)
    return tuple(w / typical for w in (measure.tip_width(widths), *steps))


def split_fused(cands: list[Candidate], *, ratio: float, quantile: float = 50.0,
                min_px: float = 0.0) -> list[Candidate]:
    """Count a stripe of k touching shafts as k hairs of one unit.

    Hairs of one unit often run side by side and merge into one mask
    stripe with one centre line.  A stripe counts as k hairs when its
    profile shows k lobes separated by seams (``Candidate.lobes``, from
    :func:`pipeline.measure.lobe_count`, or :func:`pipeline.measure.ridge_count`,
    whose hairs lie each on its own ridge; each gets the stripe's outer width / k), or when it is at least ``ratio`` times the frame's typical
    shaft width (its ``quantile`` percentile): ``round(width / typical)``
    hairs (at most 4) of equal share of the width.  A stripe whose width
    steps down towards its tip at the cut tips of shorter hairs
    (``Candidate.shares``, from :func:`pipeline.measure.tip_steps`, with
    ``Settings.tip_step`` > 0) counts as one hair per level, each with its
    own width, when that gives at least as many hairs.  A stripe narrower
    than ``min_px`` is never split by its width alone.  The widths compared
    are the plain median half-maximum widths the rule was tuned on
    (``Candidate.rule_width_px``); the split hairs share the reported one.
    """
    typical = (float(np.percentile([c.rule_width_px for c in cands], quantile))
               if len(cands) >= 3 and ratio > 0 else np.inf)
    out = []
    for c in cands:
        wide = c.rule_width_px >= max(ratio * typical, min_px)
        k_width = int(min(4, round(c.rule_width_px / typical))) if wide else 1
        k = max(k_width, c.lobes)
        if c.shares and len(c.shares) >= k:
            # shares are fractions of the stripe's median width (a stepped stripe has no single percentile)
            out.extend(dataclasses.replace(c, thickness_px=share * c.rule_width_px) for share in c.shares)
            continue
        if k == 1:
            out.append(c)
            continue
        width = c.stripe_px if c.lobes == k and np.isfinite(c.stripe_px) else c.thickness_px
        out.extend(c.shared(width, k))
    return out


def tip_points(tip_map: np.ndarray, *, threshold: float, min_distance_px: int) -> np.ndarray:
    """Cut-tip positions (row, col), float array (K, 2): local maxima of a tip heat map above ``threshold``.

    A map that nowhere exceeds ``threshold`` has no peak; it is answered
    without the maximum filter (``hairnet-v2``'s tip head stays below its
    threshold on every frame).
    """
    from skimage.feature import peak_local_max

    if tip_map.size == 0 or not float(tip_map.max()) > threshold:
        return np.zeros((0, 2), float)
    return peak_local_max(tip_map, min_distance=int(min_distance_px), threshold_abs=float(threshold)).astype(float)


def split_by_tips(cands: list[Candidate], tips: np.ndarray, *, reach: float = 1.5, max_hairs: int = 4) -> list[Candidate]:
    """Count a traced shaft as as many hairs as it has cut tips.

    Clipped hairs of one unit that touch along their length merge into one
    stripe, but each keeps its own cut tip.  A shaft whose end lies within
    ``reach`` x its radius (+3 px) of k > 1 tips is counted as k hairs (at
    most ``max_hairs``), sharing its width equally (:func:`as_hairs`); so is a shaft whose
    profile holds k > 1 shafts side by side (``Candidate.lobes``: ``seam_dip``,
    ``model_seam_level``), when that is more; otherwise it is one hair.
    """
    out = []
    for c in cands:
        r = reach * max(c.radius_px, 1.0) + 3.0
        k = max(c.lobes, *(int((np.hypot(*(tips - end).T) <= r).sum()) if len(tips) else 0
                           for end in (c.hair.path[0], c.hair.path[-1])))
        out.extend(as_hairs(c, min(max(k, 1), max_hairs)))
    return out


def as_hairs(c: Candidate, k: int) -> list[Candidate]:
    """One traced stripe counted as ``k`` hairs that share its width equally (itself when ``k`` is 1; see
    :meth:`Candidate.shared`)."""
    return [c] if k == 1 else c.shared(c.thickness_px, k)


def _near_border(point: np.ndarray, shape: tuple[int, int], reach: float) -> bool:
    """A point (row, col) closer than ``reach`` px to the image border."""
    m, n = shape
    row, col = point
    return bool(row < reach or col < reach or row > m - 1 - reach or col > n - 1 - reach)


def _is_cut(point: np.ndarray, valid: np.ndarray, r: float) -> bool:
    """An end within a shaft radius (+3 px) of the border or of a non-skin region."""
    m, n = valid.shape
    reach = r + 3
    row, col = point
    if _near_border(point, valid.shape, reach):
        return True
    r0, r1 = int(max(0, row - reach)), int(min(m, row + reach + 1))
    c0, c1 = int(max(0, col - reach)), int(min(n, col + reach + 1))
    return not valid[r0:r1, c0:c1].all()


#: A hair takes the frame's root-to-tip direction when its axis lies within 40° of it (cosine).
DIRECTION_CONE = float(np.cos(np.deg2rad(40)))


def _orient(cands: list[Candidate], *, fork_angle_deg: float = 0.0, consensus: float = 0.3,
            direction_over_forks: bool = False, fork_vote: float = 1.0) -> np.ndarray | None:
    """Choose the root end of every hair; return the frame's direction that did it (None: not decisive).

    Order of evidence: an end where the hair forks from others of its
    unit is the root (and a shaft running through that fork shares its
    direction); then the frame's vote — scalp hair in one small field
    points one way, so the root-end evidence of all hairs (halo, fading)
    is pooled along the frame's main axis and, when it is decisive, every
    hair near that axis takes the frame's direction; otherwise a hair's
    own ends decide (a hair cut by the border: its visible end against
    the frame's median score).

    With ``fork_angle_deg`` > 0 only a junction where this hair and another
    leave in directions within that angle (the V of one unit's opening) is
    taken as a root; a junction where a hair meets a crossing or touching
    shaft says nothing about its root, and a hair whose root end is such
    a junction shows no emergence (``hidden_root``: a piece of a longer
    hair between crossings; not counted with
    ``Settings.count_hidden_roots=False``).

    ``fork_vote`` is a fork-rooted hair's weight in the frame's vote
    (:func:`_frame_direction`).

    With ``direction_over_forks`` the frame's direction, when decisive, also
    overrules a fork (or a root carried through one) that points against it
    for a hair within its cone (:func:`_overrule_forks`).
    """
    forks = _fork_ends(cands, fork_angle_deg) if fork_angle_deg > 0 else None
    for c in cands:
        kinds = c.hair.end_kinds
        if kinds[0] != kinds[1]:
            end = 0 if kinds[0] == "junction" else 1
            if forks is None or (id(c), end) in forks:
                c.root, c.confident, c.root_evidence = end, True, "fork"
    _follow_forks(cands)
    direction = _frame_direction(cands, consensus, fork_vote)
    if direction_over_forks and direction is not None:
        _overrule_forks(cands, direction)
    visible_scores = [s for c in cands for s, cut in zip(c.scores, c.cut) if not cut]
    median_score = float(np.median(visible_scores)) if visible_scores else 0.0
    for c in cands:
        if c.confident:
            continue
        end = _direction_root(c, direction)
        if end is not None:
            c.root, c.root_evidence = end, "direction"
        elif c.cut[0] != c.cut[1]:
            inner = 1 if c.cut[0] else 0
            c.root, c.root_evidence = (inner if c.scores[inner] >= median_score else 1 - inner), "cut"
        else:
            c.root, c.root_evidence = int(np.argmax(c.scores)), "own"
    if forks is not None:
        for c in cands:
            c.hidden_root = c.hair.end_kinds[c.root] == "junction" and (id(c), c.root) not in forks
    return direction


#: Shafts longer than this (µm) are long hair: clipped hair is shorter
#: (at most 0.5 mm in the phantoms; 3 of the 329 fdu_val frames have such
#: shafts, 12-23% of their traced length).
LONG_SHAFT_UM = 1500.0
#: In a long-hair scene, a shaft at least this long (µm) hides the root end
#: of a hair that touches it ...
OCCLUDER_MIN_UM = 400.0
#: ... where it runs on at least this far (µm) on both sides of the contact
#: (a crossing shaft, not a partner of one opening that starts there) ...
OCCLUDER_SIDE_UM = 100.0
#: ... and its own root end is at least this far (µm) back along it: two
#: hairs of one opening run fused for a few widths before they part, and
#: the second one's root end lies on the first one's shaft there.
OCCLUDER_ROOT_UM = 200.0


def long_shaft_share(cands: list[Candidate], scale: float) -> float:
    """Share of the traced centre-line length that lies in shafts longer than ``LONG_SHAFT_UM``.

    ``scale`` is the pixel size (µm/px).  0 without shafts.
    """
    length = np.array([c.length_px for c in cands], float) * scale
    total = float(length.sum())
    return float(length[length > LONG_SHAFT_UM].sum() / total) if total > 0 else 0.0


def _long_scene(cands: list[Candidate], scale: float, settings: Settings) -> bool:
    """A scene of uncut long hair: at least ``Settings.long_scene_share`` of the traced length in long
    shafts (:func:`long_shaft_share`; never with a share of 0)."""
    return 0 < settings.long_scene_share <= long_shaft_share(cands, scale)


def junction_share(cands: list[Candidate]) -> float:
    """Share of the traced hairs' ends that are junctions (0 without hairs).

    High where hairs cross densely: a scene of uncut long hair (the tuning
    suites' five: 0.43-0.62, one sparse one 0.17), low where a few long
    strays lie over clipped hair (fifteen such frames: at most 0.24).
    """
    kinds = [k for c in cands for k in c.hair.end_kinds]
    return kinds.count("junction") / len(kinds) if kinds else 0.0


def _dense_crossing(cands: list[Candidate], settings: Settings) -> bool:
    """Whether the traced hairs cross densely (uncut hair): at least ``Settings.dense_crossing_share``
    of their ends are junctions (:func:`junction_share`)."""
    return junction_share(cands) >= settings.dense_crossing_share


def _mark_occluded(cands: list[Candidate], scale: float, *, dense: bool = True) -> None:
    """Mark hairs whose root end comes out from under a crossing shaft (``Candidate.occluded``).

    In a long-hair scene a long hair is traced in pieces, one between each
    pair of shafts it passes under; every piece's end at such a shaft looks
    like an emergence.  A root end (not cut by the border) is occluded when
    it lies within both radii (+3 px) of a shaft at least
    ``OCCLUDER_MIN_UM`` long whose centre line runs on from the nearest
    point at least ``OCCLUDER_SIDE_UM`` towards its tip and at least
    ``OCCLUDER_ROOT_UM`` towards its own root, and, unless the scene's
    hairs cross densely (``dense``), the hair visibly runs on beyond that
    shaft (:func:`_continues_across`): a clipped hair whose opening lies
    beside a long stray ends there.
    """
    min_len, side, root_side = OCCLUDER_MIN_UM / scale, OCCLUDER_SIDE_UM / scale, OCCLUDER_ROOT_UM / scale
    occluders = [o for o in cands if o.length_px >= min_len]
    arcs = [np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(o.hair.path, axis=0).T))]) for o in occluders]
    for c in cands:
        if c.cut[c.root]:
            continue
        point = c.hair.path[0 if c.root == 0 else -1]
        for o, arc in zip(occluders, arcs):
            if o is c:
                continue
            d = np.hypot(*(o.hair.path - point).T)
            i = int(np.argmin(d))
            if d[i] > c.radius_px + o.radius_px + 3:
                continue
            before, after = float(arc[i]), float(arc[-1] - arc[i])
            towards_root, towards_tip = (before, after) if o.root == 0 else (after, before)
            if towards_tip >= side and towards_root >= root_side and (dense or _continues_across(c, o, cands)):
                c.occluded = True
                break


#: A hair runs on beyond a crossing shaft when another traced shaft has a centre-line point past it, in
#: reach of the hair's root end (two radii of the crossing shaft, four of the hair, two of the other
#: shaft, + 8 px), at most this many degrees off the hair's line ...
CONTINUATION_OFF_LINE_DEG = 35.0
#: ... where that shaft runs within this many degrees of the hair's direction.
CONTINUATION_TURN_DEG = 30.0


def _continues_across(c: Candidate, o: Candidate, cands: list[Candidate]) -> bool:
    """Whether hair ``c``, whose root end touches the crossing shaft ``o``, visibly runs on beyond it
    (see ``CONTINUATION_OFF_LINE_DEG``): the shaft it passes under, not its opening."""
    point = c.hair.path[0 if c.root == 0 else -1]
    back = -_outgoing(c, c.root)
    cos_off, cos_turn = np.cos(np.deg2rad([CONTINUATION_OFF_LINE_DEG, CONTINUATION_TURN_DEG]))
    for d in cands:
        if d is c or d is o:
            continue
        path = d.hair.path
        v = path - point
        dist = np.hypot(*v.T)
        reach = 2 * o.radius_px + 4 * c.radius_px + 2 * d.radius_px + 8
        near = np.nonzero((dist <= reach) & (dist > c.radius_px))[0]
        near = near[(v[near] @ back) >= cos_off * dist[near]]
        if not len(near):
            continue
        tangent = path[np.minimum(near + 3, len(path) - 1)] - path[np.maximum(near - 3, 0)]
        norm = np.hypot(*tangent.T)
        if np.any((norm > 0) & (np.abs(tangent @ back) >= cos_turn * norm)):
            return True
    return False


def root_vote(c: Candidate, fork_vote: float = 1.0) -> float | None:
    """A hair's vote in the frame's direction (:func:`_frame_direction`) for its end 0 being its root.

    ``fork_vote`` (+ or -) for a hair rooted at a fork or through one, the difference of its two ends' root
    scores for an uncut hair, None for a hair cut by the border (no say).
    """
    if c.confident:
        return fork_vote if c.root == 0 else -fork_vote
    if not any(c.cut):
        return float(c.scores[0] - c.scores[1])
    return None


def _frame_direction(cands: list[Candidate], consensus: float = 0.3,
                     fork_vote: float = 1.0) -> np.ndarray | None:
    """The frame's root-to-tip direction when its hairs agree, else None.

    Hair axes are averaged as doubled angles (axial data); the sign along
    the mean axis is a vote of each hair's end evidence (a hair rooted at a
    fork weighs ``fork_vote``, an uncut hair the difference of its two ends'
    root scores).
    """
    axes, votes = [], []
    for c in cands:
        vote = root_vote(c, fork_vote)
        if vote is not None:
            axes.append(_root_to_tip(c.hair.path, 0))
            votes.append(vote)
    if len(axes) < 3:
        return None
    axes = np.asarray(axes)
    ang = np.arctan2(axes[:, 0], axes[:, 1])
    z = np.exp(2j * ang).mean()
    if abs(z) < 0.5:
        return None
    mean_ang = np.angle(z) / 2
    ref = np.array([np.sin(mean_ang), np.cos(mean_ang)])
    sign = np.sign(axes @ ref)
    votes = np.asarray(votes) * sign
    if not np.abs(votes).any() or abs(votes.sum()) < consensus * np.abs(votes).sum():
        return None  # no evidence (e.g. only forks at fork_vote 0), or not enough of it agrees
    return ref if votes.sum() > 0 else -ref


def _outgoing(c: Candidate, end: int) -> np.ndarray:
    """Unit direction in which the hair leaves its ``end`` (0 or 1), over about three radii."""
    path = c.hair.path
    k = int(min(len(path) - 1, max(3, 3 * c.radius_px)))
    v = path[k] - path[0] if end == 0 else path[-1 - k] - path[-1]
    return v / max(float(np.hypot(*v)), 1e-9)


def _fork_ends(cands: list[Candidate], max_angle_deg: float = 60.0) -> set[tuple[int, int]]:
    """(id(candidate), end) of junction ends that are a V-shaped fork of one unit.

    A hair ending at a junction forks there when another hair, ending at
    or running through the same point, lies within ``max_angle_deg`` of the
    direction in which this hair leaves it; at a T-contact or a steep
    crossing no other shaft does.
    """
    cos_max = np.cos(np.deg2rad(max_angle_deg))
    out = set()
    for c in cands:
        for end in (0, 1):
            if c.hair.end_kinds[end] != "junction":
                continue
            point = c.hair.path[0 if end == 0 else -1]
            away = _outgoing(c, end)
            for o in cands:
                if o is c:
                    continue
                d = np.hypot(*(o.hair.path - point).T)
                i = int(np.argmin(d))
                if d[i] > 2 * max(c.radius_px, o.radius_px) + 2:
                    continue
                k = int(max(3, 3 * o.radius_px))
                t = o.hair.path[min(i + k, len(d) - 1)] - o.hair.path[max(i - k, 0)]
                if abs(float(away @ t)) >= cos_max * max(float(np.hypot(*t)), 1e-9):
                    out.add((id(c), end))
                    break
    return out


def _follow_forks(cands: list[Candidate]) -> None:
    """A hair passing through the opening another hair forks from shares its direction.

    In a unit whose shafts are fused near the opening, one shaft runs
    through the junction and the others fork from it; the through-going
    shaft's root lies on the same side as theirs.
    """
    forks = [c for c in cands if c.confident and c.hair.end_kinds[c.root] == "junction"]
    for c in cands:
        if c.confident:
            continue
        for f in forks:
            root = f.hair.path[0 if f.root == 0 else -1]
            reach = 2 * max(f.radius_px, c.radius_px) + 2
            if np.hypot(*(c.hair.path - root).T).min() <= reach:
                v = _root_to_tip(f.hair.path, f.root)
                c.root = 0 if float(_root_to_tip(c.hair.path, 0) @ v) > 0 else 1
                c.confident = True
                c.root_evidence = "follow"
                c.partner = f
                f.emergence = c.hair.path[0 if c.root == 0 else -1]
                break


def _overrule_forks(cands: list[Candidate], direction: np.ndarray) -> None:
    """Drop the fork and follow roots that point against the frame's direction.

    A hair within the frame's cone (``DIRECTION_CONE``) whose fork (or the
    fork it follows) puts its root on the side the frame's hairs grow
    towards is rooted again like any other hair; the partner link and the
    opening point that fork gave go with it. On tuning phantoms the frame's
    direction is right for about 99% of the hairs it orients, a fork for
    about 80% (a cut tip that touches another shaft reads as a fork).
    """
    wrong = {id(c) for c in cands if c.confident and _direction_root(c, direction) not in (None, c.root)}
    for c in cands:
        if id(c) in wrong or (c.partner is not None and id(c.partner) in wrong):
            c.confident, c.root_evidence, c.partner = False, "", None
    given = {id(c.partner) for c in cands if c.partner is not None}
    for c in cands:
        if id(c) not in given:
            c.emergence = None


def _direction_root(c: Candidate, direction: np.ndarray | None) -> int | None:
    """The end (0 or 1) the frame's root-to-tip ``direction`` makes the root, or None when there is no
    direction or the hair's axis lies outside its cone (``DIRECTION_CONE``)."""
    if direction is None:
        return None
    along = float(_root_to_tip(c.hair.path, 0) @ direction)
    return (0 if along > 0 else 1) if abs(along) >= DIRECTION_CONE else None


def _root_to_tip(path: np.ndarray, root: int) -> np.ndarray:
    v = path[-1] - path[0] if root == 0 else path[0] - path[-1]
    return v / max(np.hypot(*v), 1e-9)


#: Two lines of one split shaft keep their distance: the 10th to 90th
#: percentile of it spans at most this share of the narrower line's width.
SPLIT_SPREAD = 0.5
#: ... and the band between them is not skin: its median level on the width
#: map is at least this share of the shaft contrast.
SPLIT_BAND_LEVEL = 0.25
#: ... and the narrower one runs alongside the wider for at least this share
#: of its centre line.
SPLIT_OVERLAP = 0.6


def merge_split_shafts(cands: list[Candidate], *, max_angle_deg: float, level: np.ndarray,
                       max_width_px: float) -> list[Candidate]:
    """One hair for each pair of traced lines that are the two sides of one thick shaft.

    A thick shaft with a lighter band along its middle (a sheen, a medulla)
    can fall apart in the mask into two strips, each traced as a hair.  Two
    lines are one shaft when they run within ``max_angle_deg`` of each
    other, the narrower alongside the wider for ``SPLIT_OVERLAP`` of its
    length at a constant distance (``SPLIT_SPREAD``), together no wider
    than ``max_width_px`` (one shaft's largest width), and the band between
    them is not skin (``SPLIT_BAND_LEVEL`` of ``level``, the width map
    relative to the shaft contrast).  Two hairs of one unit part at an
    angle or show skin between them.  The narrower line is dropped; the
    wider takes the pair's outer width (distance + both half widths).

    Parameters
    ----------
    cands : list of Candidate
        Measured shafts (``thickness_px`` in pixels).
    max_angle_deg : float
        Largest angle between the two lines (degrees).
    level : ndarray of float, shape (M, N)
        Width map over its shaft contrast: about 1 on an opaque shaft, 0 on skin.
    max_width_px : float
        Widest single shaft (pixels).
    """
    from scipy.spatial import cKDTree

    cos_limit = np.cos(np.deg2rad(max_angle_deg))
    order = sorted(range(len(cands)), key=lambda i: -cands[i].thickness_px)
    boxes = [(c.hair.path.min(0), c.hair.path.max(0)) for c in cands]
    directions = [_root_to_tip(c.hair.path, 0) for c in cands]
    drop: set[int] = set()
    widen: dict[int, float] = {}
    for x, iw in enumerate(order):
        if iw in drop:
            continue
        wide, tree = cands[iw], None
        for it in order[x + 1:]:
            thin = cands[it]
            half = (wide.thickness_px + thin.thickness_px) / 2
            reach = max_width_px - half
            if it in drop or reach <= 0 or _apart(boxes[iw], boxes[it], reach):
                continue
            if abs(float(directions[iw] @ directions[it])) < cos_limit:
                continue
            tree = tree or cKDTree(wide.hair.path)
            gap = _side_by_side(thin, wide, tree, level, reach)
            if gap is not None:
                drop.add(it)
                widen[iw] = max(widen.get(iw, wide.thickness_px), gap + half)
    return [dataclasses.replace(c, thickness_px=widen[i]) if i in widen else c
            for i, c in enumerate(cands) if i not in drop]


#: Largest angle (degrees) between two pieces of one broken shaft (:func:`join_broken_shafts`).
BROKEN_ANGLE_DEG = 25.0
#: Largest sideways offset (pixels) of one piece's end from the other's line.
BROKEN_OFFSET_PX = 2.0
#: Least hair probability anywhere along the gap: a faint shaft, not skin.
BROKEN_LEVEL = 0.1


def join_broken_shafts(cands: list[Candidate], *, max_gap_px: float, level: np.ndarray,
                       max_angle_deg: float = BROKEN_ANGLE_DEG, max_offset_px: float = BROKEN_OFFSET_PX,
                       min_level: float = BROKEN_LEVEL) -> list[Candidate]:
    """One hair for each pair of traced lines that are pieces of one shaft broken by a gap in its mask.

    A faint thin shaft falls apart in the mask where its contrast dips (focus,
    a lighter stretch of skin), and each piece would be counted with an
    emergence point of its own.  Two free, uncut ends facing each other are
    one shaft when they lie within ``max_gap_px``, the pieces run within
    ``max_angle_deg`` of each other, each end lies ahead of the other (within
    ``max_angle_deg`` of its direction) and within ``max_offset_px`` of the
    line the other piece continues on, and ``level`` is at least
    ``min_level`` everywhere along the gap: a shaft too faint for the mask,
    not skin.  Two distinct hairs in line (a combed field) show skin between
    a clipped tip and the next opening.  The closest pair is joined first,
    again until none is left; the joined hair's root is chosen afterwards
    like any other's (:func:`_orient`).

    Parameters
    ----------
    cands : list of Candidate
        Measured shafts, before their roots are chosen.
    max_gap_px : float
        Longest gap between the two centre lines' ends (pixels).
    level : ndarray of float, shape (M, N)
        Hair probability (0 on skin, 1 on an opaque shaft).
    max_angle_deg, max_offset_px, min_level : float
        See above (degrees, pixels, probability).

    Returns
    -------
    list of Candidate
        The shafts, joined pieces as one (width and contrast averaged over the
        pieces' lengths, the gap bridged by a straight line).
    """
    cands = list(cands)
    while True:
        best = _closest_break(cands, max_gap_px, level, max_angle_deg, max_offset_px, min_level)
        if best is None:
            return cands
        i, ei, j, ej = best
        joined = _bridged(cands[i], ei, cands[j], ej)
        cands = [c for k, c in enumerate(cands) if k not in (i, j)] + [joined]


def _closest_break(cands: list[Candidate], max_gap_px: float, level: np.ndarray, max_angle_deg: float,
                   max_offset_px: float, min_level: float) -> tuple[int, int, int, int] | None:
    """The two free ends ``(i, ei, j, ej)`` (candidate, end 0 or 1) facing each other across the shortest gap
    that :func:`join_broken_shafts` bridges (pixels, degrees, probability as there), or None."""
    from scipy.spatial import cKDTree

    cos_limit = np.cos(np.deg2rad(max_angle_deg))
    ends = [(i, e, c.hair.path[0 if e == 0 else -1], -_outgoing(c, e)) for i, c in enumerate(cands)
            for e in (0, 1) if c.hair.end_kinds[e] == "free" and not c.cut[e]]
    if len(ends) < 2:
        return None
    best, best_gap = None, np.inf
    for a, b in cKDTree(np.array([q for _, _, q, _ in ends])).query_pairs(max_gap_px):
        (i, ei, pi, di), (j, ej, pj, dj) = ends[a], ends[b]
        u = pj - pi
        gap = float(np.hypot(*u))
        if i == j or not 0 < gap < best_gap or float(di @ -dj) < cos_limit:
            continue
        if not (_ahead(di, u, gap, cos_limit, max_offset_px) and _ahead(dj, -u, gap, cos_limit, max_offset_px)):
            continue
        line = shafts.pixels_of(_gap_points(pi, pj), level.shape)
        if float(level[line[:, 0], line[:, 1]].min()) >= min_level:
            best, best_gap = (i, ei, j, ej), gap
    return best


def _ahead(direction: np.ndarray, u: np.ndarray, gap: float, cos_limit: float, max_offset_px: float) -> bool:
    """The point ``u`` (pixels from an end, ``gap`` away) lies within the cone of ``cos_limit`` around the line
    ``direction`` (unit) continues on from that end, and within ``max_offset_px`` of that line."""
    offset = abs(float(direction[0] * u[1] - direction[1] * u[0]))
    return float(direction @ u) >= gap * cos_limit and offset <= max_offset_px


def _gap_points(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Points (row, col) from ``p`` to ``q``, both included, at most 1 px apart along the straight line."""
    u = q - p
    return p + u * np.linspace(0.0, 1.0, int(np.ceil(float(np.hypot(*u)))) + 1)[:, None]


def _bridged(a: Candidate, ea: int, b: Candidate, eb: int) -> Candidate:
    """One candidate from ``a`` (its end ``ea`` at the gap) and ``b`` (its end ``eb``), the gap bridged by a
    straight line; its ends are ``a``'s far end and ``b``'s far end."""
    pa = a.hair.path if ea == 1 else a.hair.path[::-1]
    pb = b.hair.path if eb == 0 else b.hair.path[::-1]
    gap = float(np.hypot(*(pb[0] - pa[-1])))
    bridge = _gap_points(pa[-1], pb[0])[1:-1]
    oa, ob = 1 - ea, 1 - eb
    hair = shafts.Hair(np.vstack([pa, bridge, pb]), [a.hair.end_kinds[oa], b.hair.end_kinds[ob]],
                       [a.hair.junctions[oa], b.hair.junctions[ob]])
    wa, wb = max(a.length_px, 1.0), max(b.length_px, 1.0)

    def mean(x: float, y: float) -> float:  # over the pieces' lengths; NaN when either is
        return (x * wa + y * wb) / (wa + wb)

    # each piece's length holds a radius past its end at the gap (a skeleton stops about that short)
    length = a.length_px + b.length_px + gap - a.radius_px - b.radius_px
    return Candidate(hair, mean(a.thickness_px, b.thickness_px), mean(a.radius_px, b.radius_px),
                     mean(a.contrast, b.contrast), (a.cut[oa], b.cut[ob]), np.array([a.scores[oa], b.scores[ob]]),
                     length_px=max(length, a.length_px, b.length_px), lobes=max(a.lobes, b.lobes),
                     lobe_shift=(a if a.lobes >= b.lobes else b).lobe_shift, plain_px=mean(a.plain_px, b.plain_px))


def _apart(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], reach: float) -> bool:
    """Two bounding boxes (min, max corners) farther apart than ``reach`` along a row or a column."""
    return bool((b[1] < a[0] - reach).any() or (b[0] > a[1] + reach).any())


def _side_by_side(thin: Candidate, wide: Candidate, tree, level: np.ndarray, reach: float) -> float | None:
    """The median distance (pixels) of ``thin``'s centre line from ``wide``'s when ``thin`` runs alongside it
    as the other side of one shaft (see :func:`merge_split_shafts`), else None."""
    d, idx = tree.query(thin.hair.path)
    alongside = (idx > 0) & (idx < len(wide.hair.path) - 1)
    if alongside.mean() < SPLIT_OVERLAP:
        return None
    d = d[alongside]
    p10, gap, p90 = np.percentile(d, [10, 50, 90])
    if gap > reach or p90 - p10 > SPLIT_SPREAD * max(thin.thickness_px, 2.0):
        return None
    band = shafts.pixels_of((thin.hair.path[alongside] + wide.hair.path[idx[alongside]]) / 2, level.shape)
    if float(np.median(level[band[:, 0], band[:, 1]])) < SPLIT_BAND_LEVEL:
        return None
    return float(gap)


def _emerges_inside(c: Candidate, field_rows: np.ndarray, shape, *, count_hidden: bool = True) -> bool:
    """The counting rule: the root end is visible (not cut by the border, not under a crossing shaft) and lies in
    the field."""
    if c.cut[c.root] or c.occluded or (c.hidden_root and not count_hidden):
        return False
    row, col = c.hair.path[0 if c.root == 0 else -1]
    return 0 <= row < shape[0] and 0 <= col < shape[1] and bool(field_rows[int(row)])


def mask_end(path: np.ndarray, mask: np.ndarray, radius_px: float, *, reach: float = 3.0) -> np.ndarray:
    """Where a shaft's mask ends beyond the first point of its centre line (row, col).

    A centre line stops about one radius short of its stripe's end; the
    emergence point is where the stripe itself ends. Walks outward from
    ``path[0]`` along the direction of the path's first two radii, in
    half-pixel steps, while ``mask`` holds, at most ``reach`` radii (at
    least one pixel per radius).

    Parameters
    ----------
    path : ndarray, shape (K, 2)
        Centre line, root end first (row, col; pixels).
    mask : ndarray of bool
        The hair mask the centre line was traced from.
    radius_px : float
        The shaft's half width (pixels).
    reach : float
        Farthest step, in radii.

    Returns
    -------
    ndarray, shape (2,)
        The last mask point on that walk; ``path[0]`` when the first step
        leaves the mask or the path has no direction.
    """
    path = np.asarray(path, float)
    k = int(min(len(path) - 1, max(2, round(2 * radius_px))))
    u = path[0] - path[k] if k > 0 else np.zeros(2)
    norm = float(np.hypot(*u))
    if norm < 1e-9 or reach <= 0:
        return path[0]
    u = u / norm
    last = path[0]
    for t in np.arange(0.5, reach * max(radius_px, 1.0) + 1e-9, 0.5):
        p = path[0] + t * u
        r, c = int(round(p[0])), int(round(p[1]))
        if not (0 <= r < mask.shape[0] and 0 <= c < mask.shape[1]) or not mask[r, c]:
            break
        last = p
    return np.asarray(last, float)


def _hair_table(cands: list[Candidate], um_per_px: float | None, settings: Settings,
                mask: np.ndarray | None = None):
    """The per-hair table (HAIR_COLUMNS) and centre lines, root end first.

    ``row, col`` is where the hair's ``mask`` ends beyond a free, uncut root
    end (:func:`mask_end`, ``Settings.emergence_reach``), else the root end
    of its centre line (a junction: beyond it the stripe runs on into
    another shaft); a hair that forks from a shaft running through its
    opening takes that shaft's point (``Candidate.emergence``).
    """
    # a hair split from a stripe lies at its own place across it (Candidate.shift)
    paths = [(c.hair.path if c.root == 0 else c.hair.path[::-1]) + np.asarray(c.shift) for c in cands]
    roots = []
    for c, path in zip(cands, paths):
        root = path[0]
        if mask is not None and c.hair.end_kinds[c.root] == "free" and not c.cut[c.root]:
            root = mask_end(path, mask, c.radius_px, reach=settings.emergence_reach)
        roots.append(root)
    # keyed by the traced shaft, which the copies of a stripe split into several hairs share (split_fused)
    through = {id(c.partner.hair): root - np.asarray(c.shift) for c, root in zip(cands, roots) if c.partner is not None}
    rows = []
    for c, path, root in zip(cands, paths, roots):
        if c.emergence is not None:
            root = through.get(id(c.hair), c.emergence)  # the opening the copies of a split stripe share
        mid = path[len(path) // 2]
        rows.append(dict(row=float(root[0]), col=float(root[1]), mid_row=float(mid[0]), mid_col=float(mid[1]),
                         length_px=c.length_px,
                         thickness_px=c.thickness_px, touches_border=bool(any(c.cut)),
                         root_known=bool(c.confident)))
    df = pd.DataFrame(rows, columns=["row", "col", "mid_row", "mid_col", "length_px", "thickness_px",
                                     "touches_border", "root_known"])
    scale = np.nan if um_per_px is None else um_per_px
    df["length_um"] = df["length_px"] * scale
    df["thickness_um"] = df["thickness_px"] * scale
    df["class"] = measure.classify(df["thickness_um"].to_numpy(), settings) if len(df) else []
    unit_radius = settings.unit_radius_um / (um_per_px or settings.scale_um_per_px)
    pts = df[["row", "col"]].to_numpy(float)
    df["unit_id"] = measure.group_units(pts, radius_px=unit_radius, forced=_fork_groups(cands))
    df["hair_id"] = np.arange(len(df))
    return df[HAIR_COLUMNS].reset_index(drop=True), paths


def _fork_groups(cands: list[Candidate]) -> list[set[int]]:
    """Hairs whose root end is the same junction share an opening."""
    groups: dict[int, set[int]] = {}
    index = {id(c): i for i, c in enumerate(cands)}
    for i, c in enumerate(cands):
        j = c.hair.junctions[c.root]
        if j is not None:
            groups.setdefault(j, set()).add(i)
    out = [g for g in groups.values() if len(g) > 1]
    out += [{i, index[id(c.partner)]} for i, c in enumerate(cands)
            if c.partner is not None and id(c.partner) in index]
    return out


def frame_metrics(hairs: pd.DataFrame, *, area_cm2: float | None, um_per_px: float | None,
                  settings: Settings) -> dict:
    """Per-frame metrics (METRIC_COLUMNS) from a per-hair table.

    ``area_cm2`` is the skin area the hairs were counted on
    (:func:`skin_area_cm2`); densities and cumulative thickness are per that
    area, the latter in mm/cm². No skin (area 0): counts only, and ``note``
    says why.
    """
    n = len(hairs)
    units = int(hairs["unit_id"].nunique()) if n else 0
    per_unit = hairs.groupby("unit_id").size() if n else pd.Series(dtype=int)
    m: dict = {k: np.nan for k in METRIC_COLUMNS}
    m.update(um_per_px=um_per_px if um_per_px else np.nan, hair_count=n, follicular_units=units,
             hairs_per_unit=(n / units) if units else np.nan,
             single_hair_unit_share_pct=(100.0 * (per_unit == 1).mean()) if units else np.nan, note="")
    if um_per_px is None:
        m["note"] = "no pixel size: give --um-per-px or a manifest um_per_px column for µm and density"
        return m
    t = hairs["thickness_um"].to_numpy(float)
    counts = {k: int((hairs["class"] == k).sum()) for k in measure.CLASSES}
    if not area_cm2:
        m["note"] = ("no skin visible in the counting field (all of it under overlays, text or glare): "
                     "counts only; image the scalp without the overlay for a density")
        area_cm2 = np.nan
    m.update(area_cm2=area_cm2, density_per_cm2=n / area_cm2,
             mean_thickness_um=float(t.mean()) if n else np.nan,
             median_thickness_um=float(np.median(t)) if n else np.nan,
             cumulative_thickness_mm_per_cm2=float(t.sum() / 1000.0 / area_cm2),
             units_per_cm2=units / area_cm2)
    for k in measure.CLASSES:
        m[f"{k}_count"] = counts[k]
        m[f"{k}_share_pct"] = 100.0 * counts[k] / n if n else np.nan
    return m
