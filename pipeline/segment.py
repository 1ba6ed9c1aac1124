"""Classical hair segmentation: what is skin, how dark against it, how ridge-like.

Hair shafts are the darkest thing on the scalp in *every* colour channel,
whereas the bluish perifollicular halo, vessels, pigment network and blue ink
are dark in some channels only.  So the core feature is the darkness of the
per-pixel maximum over R, G, B (the HSV value) against a local estimate of
the skin without hair.  A multi-scale Hessian ridge term rescues thin,
blurred vellus hairs whose contrast never reaches half the frame's contrast.

Functions take arrays and return arrays; a learned segmenter plugs in behind
the same signature as :func:`hair_probability`.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.settings import Settings


@dataclass(frozen=True)
class Contrast:
    """Per-frame darkness map and its reference level.

    Attributes
    ----------
    darkness : ndarray of float32, shape (M, N)
        ``(skin - value) / skin``: 0 on skin, about 0.6–0.9 on a black shaft.
    full : float
        Darkness of the frame's thick shafts (plateau level), the reference
        that turns darkness into a probability and an integrated profile
        into a width.
    light : bool
        True when the map is the colour distance of a frame without dark
        shafts (blond, grey, white hair) rather than darkness.
    shaft_darkness : float
        The measured darkness of the frame's thick shafts (the reference
        of the darkness map before any floor), whichever map is kept.
    bright : bool
        True when the map is the brightness of a frame without dark shafts
        on dark skin (:func:`brightness_map`): light hair there stands out
        from skin as dark hair does from light skin, and is read the same way.
    """

    darkness: np.ndarray
    full: float
    light: bool = False
    shaft_darkness: float = float("nan")
    bright: bool = False


def _odd(n: float) -> int:
    k = int(round(n))
    return k + 1 - k % 2 if k >= 1 else 1


def skin_background(value: np.ndarray, *, max_width_px: float,
                    valid: np.ndarray | None = None) -> np.ndarray:
    """Local skin level with the hair removed (float32, same shape).

    A median over a window about twice the widest shaft: shafts cover a
    minority of any such window, so the median stays on skin. Done at
    reduced resolution on 8-bit values, then smoothed back to full size.
    Bright pixels that are not skin first take the level of the skin
    around them (:func:`fill_invalid`).

    Parameters
    ----------
    value : ndarray, shape (M, N)
        Per-pixel max over colour channels (or one channel), float in [0, 255].
    max_width_px : float
        Widest shaft to remove (pixels).
    valid : ndarray of bool, shape (M, N), optional
        Skin pixels (see :func:`skin_mask`).
    """
    value = fill_invalid(value, valid, sigma_px=max_width_px)
    factor = max(1, int(max_width_px // 8))
    small = cv2.resize(value, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
    k = _odd(2.5 * max_width_px / factor)
    k = min(k, _odd(min(small.shape) // 2 * 2 - 1))
    med = cv2.medianBlur(np.clip(small, 0, 255).astype(np.uint8), max(3, k)).astype(np.float32)
    smooth = cv2.GaussianBlur(med, (0, 0), sigmaX=max(1.0, k / 4))
    back = cv2.resize(smooth, (value.shape[1], value.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.maximum(back, 8.0).astype(np.float32, copy=False)


def _median(x: np.ndarray) -> float:
    """``np.median`` of ``x``, by a histogram when every value is an integer in 0..255 (8-bit channels).

    Same result as ``np.median`` (the mean of the two middle values for an
    even count), without sorting a million values.
    """
    x = np.ravel(x)
    if x.size == 0:
        return math.nan
    if x.min() < 0 or x.max() > 255:
        return float(np.median(x))
    k = x.astype(np.uint8)
    if not np.array_equal(k, x):
        return float(np.median(x))
    if k.size < 2 ** 24:  # OpenCV's histogram (faster than numpy's count) counts exactly in float32 up to here
        cum = np.cumsum(cv2.calcHist([k.reshape(1, -1)], [0], None, [256], [0, 256]).ravel().astype(np.int64))
    else:
        cum = np.cumsum(np.bincount(k, minlength=256))
    n = int(cum[-1])
    lo = int(np.searchsorted(cum, (n - 1) // 2, side="right"))  # value at 0-based rank (n-1)//2
    hi = int(np.searchsorted(cum, n // 2, side="right"))  # value at rank n//2
    return (lo + hi) / 2.0


def fill_invalid(value: np.ndarray, valid: np.ndarray | None, *, sigma_px: float) -> np.ndarray:
    """``value`` with bright pixels that are not skin replaced by the nearby skin level (float32).

    A light padding strip, white text or glare pulls the local skin level
    (:func:`skin_background`) up beside it, and the skin along its edge then
    reads as a dark shaft. Such pixels (not skin and brighter than the
    frame's median skin) take a Gaussian mean of the skin pixels around them
    (normalised convolution, ``sigma_px``; the median skin where no skin is
    near). Dark non-skin (a header's grey text boxes) is left as it is: it
    can only lower the skin level, and a box the mask found only in part
    must not be left darker than a cleaned neighbourhood.

    Parameters
    ----------
    value : ndarray of float, shape (M, N)
    valid : ndarray of bool, shape (M, N), or None
        Skin pixels; None or all-skin returns ``value`` unchanged.
    sigma_px : float
        Gaussian sigma (pixels) of the neighbourhood read.
    """
    if valid is None or valid.all() or not valid.any():
        return value
    skin = _median(value[valid])
    bright = ~valid & (value > skin)
    if not bright.any():
        return value
    w = valid.astype(np.float32)
    v = np.where(valid, value, 0.0).astype(np.float32, copy=False)
    factor = max(1, int(sigma_px // 4))  # the mean is smooth: read it at reduced resolution
    small = [cv2.resize(a, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA) for a in (v, w)]
    num, den = (cv2.GaussianBlur(a, (0, 0), max(1.0, sigma_px / factor)) for a in small)
    level = np.where(den > 1e-3, num / np.maximum(den, 1e-3), skin).astype(np.float32, copy=False)
    near = cv2.resize(level, (value.shape[1], value.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.where(bright, near, value).astype(np.float32, copy=False)


def darkness_map(image: np.ndarray, *, um_per_px: float, settings: Settings,
                 valid: np.ndarray | None = None, kind: str = "auto") -> Contrast:
    """Relative darkness of every pixel against the local skin.

    A frame without dark shafts (reference darkness below
    ``settings.light_hair_below``) gets another map instead: the brightness
    (:func:`brightness_map`) when its skin is darker than
    ``settings.bright_hair_skin_below`` and ``settings.bright_route_share``
    percent of its skin lies ``light_hair_below`` of the way to white or
    further (``Contrast.bright``), else the colour distance from skin
    (:func:`colour_contrast`, ``Contrast.light``).

    Parameters
    ----------
    image : ndarray of uint8, shape (M, N, 3)
        RGB frame.
    um_per_px : float
        Pixel size used for filter scales (µm/px).
    settings : Settings
    valid : ndarray of bool, shape (M, N), optional
        Skin pixels; others do not set the reference contrast.
    kind : str
        ``"auto"`` chooses as above; ``"dark"``, ``"bright"`` or
        ``"colour"`` returns that map whatever the frame looks like (a
        fixed route, ``Settings.route``).
    """
    if kind not in ("auto", "dark", "bright", "colour"):
        raise ValueError(f"kind must be 'auto', 'dark', 'bright' or 'colour', not {kind!r}")
    width = settings.max_width_um / um_per_px
    value = channel_max(image).astype(np.float32)
    bg = skin_background(value, max_width_px=width, valid=valid)
    dark = np.clip((bg - value) / bg, 0.0, 1.0)
    full = _reference_contrast(dark, valid)
    if kind == "dark" or (kind == "auto" and full >= settings.light_hair_below):
        return Contrast(dark, max(full, 0.35), shaft_darkness=full)
    level = channel_mean(image)
    if kind == "bright" or (kind == "auto" and skin_level(level, valid) < settings.bright_hair_skin_below):
        bright = brightness_map(level, max_width_px=width, valid=valid)
        lift, route = _skin_percentiles(bright, valid, (REFERENCE_PERCENTILE, 100.0 - settings.bright_route_share))
        if kind == "bright" or route >= settings.light_hair_below:
            return Contrast(bright, max(lift, 0.35), shaft_darkness=full, bright=True)
    colour = colour_contrast(image, max_width_px=width, valid=valid)
    return Contrast(colour, max(0.12, _reference_contrast(colour, valid)), light=True, shaft_darkness=full)


def skin_level(level: np.ndarray, valid: np.ndarray | None) -> float:
    """Median of ``level`` (grey levels, e.g. :func:`channel_mean`) over the skin pixels ``valid`` (all pixels
    when None): how light the frame's skin is (``Settings.bright_hair_skin_below``)."""
    return _median(level[valid] if valid is not None else level)


def brightness_map(level: np.ndarray, *, max_width_px: float, valid: np.ndarray | None = None) -> np.ndarray:
    """How far every pixel is from the local skin towards white: ``(value - skin) / (255 - skin)``.

    The mirror of the darkness map for grey, white and blond hair on dark
    skin: 0 on skin, about 0.4-0.8 on a white shaft. ``level`` is the mean
    of the three channels (0-255; a white or grey shaft is bright in all
    of them, skin's reddish texture is not); ``valid`` keeps strips, text
    and glare out of the skin level (:func:`skin_background`).
    """
    value = level.astype(np.float32)
    bg = skin_background(value, max_width_px=max_width_px, valid=valid)
    return np.clip((value - bg) / np.maximum(255.0 - bg, 1.0), 0.0, 1.0).astype(np.float32, copy=False)


def colour_contrast(image: np.ndarray, *, max_width_px: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Colour distance of every pixel from the local skin, relative to skin brightness.

    Used for frames without dark shafts (blond, grey, white hair): such
    shafts differ from skin in lightness and hue rather than in darkness.
    ``valid`` (skin pixels) keeps strips, text and glare out of the skin level
    (:func:`skin_background`).
    """
    rgb = image.astype(np.float32)
    bgs = [skin_background(rgb[..., k], max_width_px=max_width_px, valid=valid) for k in range(3)]
    level = np.maximum(sum(bgs) / 3, 8.0)
    diff = sum(((rgb[..., k] - bgs[k]) / level) ** 2 for k in range(3))
    return np.clip(np.sqrt(diff / 3), 0.0, 1.0).astype(np.float32)


def yellowness_map(image: np.ndarray, *, max_width_px: float, valid: np.ndarray | None = None) -> np.ndarray:
    """How much yellower than the local skin every pixel is: CIELAB b* minus the skin's (float32, b* units).

    Blond shafts differ from skin mostly in hue: they are yellower, where
    white scales, glare and grey or white shafts are not. Negative where a
    pixel is bluer than the skin around it. ``valid`` (skin pixels) keeps
    strips, text and glare out of the skin level (:func:`skin_background`).

    Parameters
    ----------
    image : ndarray of uint8, shape (M, N, 3)
        RGB frame.
    max_width_px : float
        Widest shaft (pixels); sets the window of the skin level.
    valid : ndarray of bool, shape (M, N), optional
    """
    b = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2LAB)[..., 2].astype(np.float32)
    return b - skin_background(b, max_width_px=max_width_px, valid=valid)


#: The percentile of a contrast map over the skin that stands for its thick shafts' plateau.
REFERENCE_PERCENTILE = 99.5


def _reference_contrast(dark: np.ndarray, valid: np.ndarray | None) -> float:
    """Plateau contrast of the frame's thick shafts (``REFERENCE_PERCENTILE`` of the map over skin pixels)."""
    return _skin_percentiles(dark, valid, (REFERENCE_PERCENTILE,))[0]


def _skin_percentiles(values: np.ndarray, valid: np.ndarray | None,
                      percentiles: tuple[float, ...]) -> tuple[float, ...]:
    """The ``percentiles`` of a map over the skin pixels ``valid`` (all pixels when None), the skin taken out
    once; 0.5 each for a frame without skin. One scalar ``np.percentile`` per value: a list of them reads
    float32 maps a last bit differently."""
    d = values[valid] if valid is not None else values.ravel()
    if d.size == 0:
        return tuple(0.5 for _ in percentiles)
    return tuple(float(np.percentile(d, q)) for q in percentiles)


def ridge_map(dark: np.ndarray, *, um_per_px: float, settings: Settings) -> np.ndarray:
    """Multi-scale bright-ridge strength of the darkness map (float32).

    Largest negative Hessian eigenvalue, scale-normalised (sigma**2), over
    sigmas matched to shaft widths from ``min_width_um`` to ``vellus_max_um``, with the
    response of a ridge of height h and width w at its matched scale close
    to h.  Thick shafts are already caught by darkness alone.
    """
    out = np.zeros_like(dark)
    w_lo = settings.min_width_um / um_per_px
    w_hi = max(w_lo * 1.5, settings.vellus_max_um / um_per_px)
    for w in np.geomspace(max(w_lo, 1.5), w_hi, 4):
        s = max(0.7, w / (2 * np.sqrt(3)))
        g = cv2.GaussianBlur(dark, (0, 0), sigmaX=s)
        # a 3x3 Sobel derivative carries a [1, 2, 1] smoothing of weight 4 across it: divided out of all three
        # entries alike, so the response does not depend on the shaft's direction
        drr = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3) / 4.0
        dcc = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3) / 4.0
        drc = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3) / 4.0
        tmp = np.sqrt(((drr - dcc) * 0.5) ** 2 + drc ** 2)
        lam = -((drr + dcc) * 0.5 - tmp)  # minus the most negative eigenvalue
        out = np.maximum(out, lam * (s * s) * 2.0)
    return out


def hair_probability(image: np.ndarray, *, um_per_px: float | None,
                     settings: Settings = Settings(),
                     valid: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel hair probability of a scalp frame.

    Parameters
    ----------
    image : ndarray of uint8, shape (M, N, 3)
        RGB frame.
    um_per_px : float or None
        Pixel size (µm/px); ``settings.scale_um_per_px`` is assumed for the
        filter scales when None.
    settings : Settings
    valid : ndarray of bool, shape (M, N), optional
        Skin pixels (see :func:`skin_mask`); probability is 0 elsewhere.

    Returns
    -------
    ndarray of float32, shape (M, N)
        Values in [0, 1]; 0.5 is half the frame's shaft contrast, so the
        0.5 contour of a thick blurred shaft lies on its true edge.
    """
    scale = um_per_px or settings.scale_um_per_px
    con = darkness_map(image, um_per_px=scale, settings=settings, valid=valid)
    return probability_from_contrast(con, um_per_px=scale, settings=settings, valid=valid)


def probability_from_contrast(con: Contrast, *, um_per_px: float, settings: Settings,
                              valid: np.ndarray | None = None) -> np.ndarray:
    """Turn a darkness map into a probability (see :func:`hair_probability`).

    The probability is the larger of the darkness relative to the frame's
    shaft contrast and the ridge strength averaged along its best line
    direction (:func:`line_support`), which keeps long thin hairs and
    drops short random skin texture.
    """
    p = np.clip(con.darkness / con.full, 0.0, 1.0)
    if settings.ridge_gain > 0:
        ridge = ridge_map(con.darkness, um_per_px=um_per_px, settings=settings)
        line = line_support(ridge, length_px=settings.line_length_um / um_per_px)
        thin = np.sqrt(np.maximum(line, 0) * np.maximum(ridge, 0))  # coherent *and* local
        p = np.clip(np.maximum(p, settings.ridge_gain * thin / con.full), 0.0, 1.0)
    if valid is not None:
        p = np.where(valid, p, 0.0)
    return p.astype(np.float32)


def line_support(ridge: np.ndarray, *, length_px: float, n_angles: int = 12) -> np.ndarray:
    """Mean of ``ridge`` along the best of ``n_angles`` line directions (float32).

    A hair is a long coherent ridge; skin texture is short and random. The
    average over a centred segment of ``length_px`` keeps the first and
    dilutes the second. Done at half resolution for speed.
    """
    small = cv2.resize(ridge, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    k = _odd(max(5.0, length_px / 2))
    best = np.zeros_like(small)
    c = k // 2
    for a in np.linspace(0, np.pi, n_angles, endpoint=False):
        kern = np.zeros((k, k), np.float32)
        dr, dc = np.sin(a) * c, np.cos(a) * c
        cv2.line(kern, (int(round(c - dc)), int(round(c - dr))), (int(round(c + dc)), int(round(c + dr))), 1.0, 1)
        kern /= kern.sum()
        best = np.maximum(best, cv2.filter2D(small, -1, kern, borderType=cv2.BORDER_REFLECT))
    return cv2.resize(best, (ridge.shape[1], ridge.shape[0]), interpolation=cv2.INTER_LINEAR)


def line_contrast(values: np.ndarray, *, length_px: float, offset_px: float, n_angles: int = 12) -> np.ndarray:
    """How much higher ``values`` run along a thin straight line through each pixel than beside it (float32).

    For each of ``n_angles`` directions: the mean of ``values`` along a
    centred digital segment about ``length_px`` pixels long (``2 * half + 1``
    samples' span, ``half = round(length_px / 2)``; every pixel of the
    segment once), less the larger of the same means along the two parallel
    segments ``offset_px`` to either side; the largest over the directions.
    A thin shaft too faint for the hysteresis levels stands out along its
    length, while skin texture and pigment network, short and random,
    average away, and beside the edge of a wide dark region one flank is as
    dark as the line (about 0).  The means are sums of shifted views of the
    reflected-padded map, not convolutions (about 80 ms for a 712 x 570 map
    and 12 directions on one core).

    Parameters
    ----------
    values : ndarray of float, shape (M, N)
        A darkness or probability map (higher where a shaft is).
    length_px : float
        Length of the segments (pixels; at least 3 samples).
    offset_px : float
        Distance of the flanking segments from the centre line (pixels); more
        than the half-width of the shafts sought.
    n_angles : int
        Directions over 180 degrees.

    Returns
    -------
    ndarray of float32, shape (M, N)
        The line's mean less its larger flank's, in the units of ``values``;
        for a 1-px line of height h on 0 along one of the directions, h on
        the line.
    """
    values = np.asarray(values, np.float32)
    h, w = values.shape
    half = max(1, int(round(length_px / 2)))
    t = np.linspace(-half, half, 4 * half + 1)  # quarter-pixel steps: a connected segment at any angle
    shift = int(np.ceil(offset_px))
    pad = half + shift + 1
    padded = cv2.copyMakeBorder(values, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    big = (h + 2 * (shift + 1), w + 2 * (shift + 1))  # the line means, with room for the flank shifts
    best = np.full((h, w), -np.inf, np.float32)
    for a in np.linspace(0, np.pi, n_angles, endpoint=False):
        sin_cos = np.round([np.sin(a), np.cos(a)], 12)  # sin 30° and sin 150° alike: mirrored lines, mirrored pixels
        steps = np.unique(np.round(np.outer(t, sin_cos)).astype(int), axis=0)
        mean = np.zeros(big, np.float32)
        for dr, dc in steps:
            mean += padded[half + dr:half + dr + big[0], half + dc:half + dc + big[1]]
        mean /= len(steps)
        nr, nc = int(round(offset_px * sin_cos[1])), int(round(-offset_px * sin_cos[0]))  # along the normal
        m = shift + 1
        flank = np.maximum(mean[m + nr:m + nr + h, m + nc:m + nc + w], mean[m - nr:m - nr + h, m - nc:m - nc + w])
        np.maximum(best, mean[m:m + h, m:m + w] - flank, out=best)
    return best


def hair_mask(prob: np.ndarray, *, um_per_px: float | None,
              settings: Settings = Settings()) -> np.ndarray:
    """Binary hair mask from a probability map (hysteresis, hole filling).

    Parameters
    ----------
    prob : ndarray of float, shape (M, N)
    um_per_px : float or None
        Pixel size (µm/px); sets the smallest kept object and largest filled
        hole.
    """
    scale = um_per_px or settings.scale_um_per_px
    mask = hysteresis(prob, settings.darkness_low, settings.darkness_threshold)
    w = settings.max_width_um / scale
    mask = ~drop_small(~mask, int(0.5 * w * w))
    min_area = (settings.min_hair_length_um / scale) * max(2.0, settings.min_width_um / scale)
    return drop_small(mask, int(min_area * 0.5))


def hysteresis(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Pixels above ``low`` in a 4-connected region that has a pixel above ``high``.

    What :func:`skimage.filters.apply_hysteresis_threshold` returns (Canny
    1986) for thresholds that are numbers, labelled by OpenCV, which is
    faster (``tests/test_core.py`` checks the two agree). The comparison is
    in the map's own precision: on a float32 map, a pixel equal to a
    threshold's float32 rounding may fall the other way than in skimage,
    which compares in float64.
    """
    above = image > min(low, high)
    n, labels = _labels(above, 4)
    if _sparse(above):
        idx = np.flatnonzero(above)
        lab = labels.ravel()[idx]
        keep = np.zeros(n, bool)
        keep[lab[np.ravel(image)[idx] > high]] = True  # a pixel above ``high`` is above the lower one too
        return _set_at(above.shape, idx[keep[lab]])
    keep = np.zeros(n, bool)
    keep[labels[image > high]] = True
    keep[0] = False
    return np.take(keep, labels)  # as keep[labels], about twice as fast


def components8(binary: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected components of a uint8 0/1 image: their count (with the background), int32 labels and
    stats, as :func:`cv2.connectedComponentsWithStats` gives them.

    By Grana's block-based labelling (Grana, Borghesani & Cucchiara 2010, doi:10.1109/TIP.2010.2044963),
    which numbers the components as OpenCV's default does and, on one thread, is about three times
    faster on sparse hair masks (``tests/test_core.py`` checks they agree).
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(binary, 8, cv2.CV_32S, cv2.CCL_GRANA)
    return n, labels, stats


def drop_small(mask: np.ndarray, max_size: int, connectivity: int = 4) -> np.ndarray:
    """``mask`` without its regions (``connectivity`` 4 or 8) of at most ``max_size`` pixels.

    What :func:`skimage.morphology.remove_small_objects` (``max_size``,
    its ``connectivity`` 1 or 2) returns, labelled by OpenCV (faster);
    ``~drop_small(~mask, n)`` fills holes as
    :func:`skimage.morphology.remove_small_holes`. A sparse mask's regions
    are sized and kept by the indices of its pixels; a mostly set one's by
    those of the regions that may be small (a third of the time of a full
    histogram and lookup on a hair mask's background).
    """
    mask = np.ascontiguousarray(mask, bool)
    if max_size <= 0:
        return mask.copy()
    n, labels = _labels(mask, connectivity)
    if _sparse(mask):  # sizes and output from the set pixels alone
        idx = np.flatnonzero(mask)
        lab = labels.ravel()[idx]
        keep = np.bincount(lab, minlength=n) > max_size
        return _set_at(mask.shape, idx[keep[lab]])
    # mostly set (as the background, when holes are filled): a region seen at more than ``max_size`` of every
    # 4th pixel each way is larger; the others' pixels are gathered and counted exactly
    large = np.bincount(labels[::4, ::4].ravel(), minlength=n) > max_size
    large[0] = True
    ids = np.flatnonzero(large)
    if len(ids) <= 8:  # a few large regions: compared one by one, faster than a lookup
        maybe = labels != ids[0]
        for k in ids[1:]:
            maybe &= labels != k
    else:
        maybe = np.take(~large, labels)
    idx = np.flatnonzero(maybe)
    lab = labels.ravel()[idx]
    out = mask.copy()
    out.ravel()[idx[np.bincount(lab, minlength=n)[lab] <= max_size]] = False
    return out


def _labels(binary: np.ndarray, connectivity: int) -> tuple[int, np.ndarray]:
    """Connected components of a bool image (``connectivity`` 4 or 8): their count (with the background)
    and labels, 16-bit where they fit (faster to make and to read), else 32-bit (a noise mask)."""
    try:
        return cv2.connectedComponents(binary.view(np.uint8), connectivity=connectivity, ltype=cv2.CV_16U)
    except cv2.error:
        return cv2.connectedComponents(binary.view(np.uint8), connectivity=connectivity)


def _sparse(binary: np.ndarray) -> bool:
    """At most a quarter of ``binary`` is set: its pixels are faster read by their indices."""
    return np.count_nonzero(binary) * 4 <= binary.size


def _set_at(shape: tuple[int, ...], flat: np.ndarray) -> np.ndarray:
    """A bool image of ``shape``, True at the flat indices ``flat``."""
    out = np.zeros(shape, bool)
    out.ravel()[flat] = True
    return out


def skin_mask(image: np.ndarray, *, settings: Settings = Settings()) -> np.ndarray:
    """Pixels that are skin: not burned-in text, overlays, padding or glare.

    Detected: (1) full-width bands at the top or bottom made of overlay
    pixels (a device's text header, a padding strip); (2) pure saturated
    colours no skin has (filled red marks, blue or cyan text) and
    near-white achromatic pixels (text, glare), grown by a few pixels;
    (3) thin straight lines of uniform grey (scale bars) are caught by the
    achromatic rule where light and by the band rule where at the border.
    Thin drawn red lines and circles are skin when
    ``settings.paint_drawn_lines`` (the core paints them over,
    :func:`paint_out_lines`), else masked with the other overlays.

    Parameters
    ----------
    image : ndarray of uint8, shape (M, N, 3)
    settings : Settings
        Read for ``paint_drawn_lines``.

    Returns
    -------
    ndarray of bool, shape (M, N)
    """
    return frame_regions(paint_out_lines(image) if settings.paint_drawn_lines else image)[0]


#: Overlay pixels in a connected patch smaller than this (px, after growing
#: each by 2 px) are specks, not drawn marks (see :func:`frame_regions`):
#: a glint on a shaft, a few bluish pixels of a halo under a blue colour
#: cast.  Masked, such a speck beside a hair's root made the root look cut
#: by the border of the skin, and the hair was not counted.  Dropping them
#: (2026-12-01): fdu_val count MAPE half A 18.07 -> 18.03%, B 19.38 ->
#: 19.34%, interior 17.54 -> 17.42% and 19.26 -> 18.94% (27 of 329 frames
#: changed, 32 hairs added, 6 removed); tuning phantoms seed 97 40.6 ->
#: 40.4%, seed 98 26.3 -> 25.9%, a blue-cast frame of 19 white hairs read 0
#: -> 5.  Drawn text, circles and lines are connected strokes far larger.
SPECK_PX = 100


def frame_regions(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skin pixels (bool, (M, N)) and counting-field rows (bool, (M,)) of a frame.

    The field is the frame minus full-width header and padding strips; the
    skin pixels are the field minus drawn overlays, text and glare, where
    isolated specks of overlay colour are not overlays (``SPECK_PX``), and
    minus uniform bars down the frame's sides (:func:`_side_bars`).
    """
    blue_cyan, red = _drawn_colours(image)
    overlay = drop_small(overlay_pixels(image, drawn=blue_cyan | red), SPECK_PX - 1, connectivity=8)
    bars = _side_bars(image)
    view = slice(None)
    if bars.any():  # strips are read on the view beside the bars, 3 columns clear of them (a JPEG's ringing)
        beside = cv2.dilate(bars.astype(np.uint8)[None], np.ones((1, 7), np.uint8))[0] == 0
        view = beside if beside.any() else view
    band_rows = _band_rows(image[:, view], overlay[:, view])
    valid = ~(overlay | text_boxes(blue_cyan))
    valid[band_rows] = False
    valid[:, bars] = False
    return valid, ~band_rows


#: Shortest scale-bar leg searched for (pixels) when nothing says a bar is shorter: a device's "1.0 mm" bar at
#: 70x (2.78 µm/px) is about 360 px, and shorter thin L shapes are rarely bars.
BAR_MIN_PX = 101


def scale_bar(image: np.ndarray, *, min_length_px: int = BAR_MIN_PX, corner_px: int = 8) -> np.ndarray:
    """An L-shaped scale bar burned into the frame (bool, grown 4 px), or nothing.

    See :func:`find_scale_bar`; this is its mask (all False without a bar).
    """
    found = find_scale_bar(image, min_length_px=min_length_px, corner_px=corner_px)
    return found[0] if found is not None else np.zeros(image.shape[:2], bool)


_BAR_CACHE: list = []  # one entry: ((shape, crc32, options), result)


def find_scale_bar(image: np.ndarray, *, min_length_px: int = BAR_MIN_PX,
                   corner_px: int = 8) -> tuple[np.ndarray, float, float] | None:
    """Cached :func:`_find_scale_bar`: a frame is searched once though calibration and the core both ask.

    The cache holds the last frame only, keyed by its shape and a CRC of its
    bytes (about 1 ms against the search's tens); the mask it returns is read-only.
    """
    img = np.ascontiguousarray(image)
    key = (img.shape, zlib.crc32(img), min_length_px, corner_px)
    if _BAR_CACHE and _BAR_CACHE[0][0] == key:
        return _BAR_CACHE[0][1]
    found = _find_scale_bar(img, min_length_px=min_length_px, corner_px=corner_px)
    if found is not None:
        found[0].setflags(write=False)
    _BAR_CACHE[:] = [(key, found)]
    return found


def _find_scale_bar(image: np.ndarray, *, min_length_px: int = BAR_MIN_PX,
                    corner_px: int = 8) -> tuple[np.ndarray, float, float] | None:
    """An L-shaped scale bar burned into the frame: its mask and leg lengths.

    Thin (< 6 px) straight pieces of at least a quarter of ``min_length_px``
    along rows and along columns are found by an opening of a thin-line map
    (a pixel that differs, with the same sign, by more than a step of grey
    levels from those 3 px to either side); pieces on one row (one column)
    make a leg, a vertical one followed past faint stretches and crossing
    shafts (:func:`_leg_span`; a horizontal one ends in the label box, which
    a weak test would run into). A horizontal and a vertical leg, each
    spanning at least ``min_length_px`` and at least half covered by pieces,
    whose lines meet within ``corner_px`` of an end of each — or, when shafts
    hide the corner, within a quarter of the shorter leg — make the L: a
    device's "1.0 mm" bar is such an L, whereas a straight shaft's specular
    line is one run with no partner. Shafts crossing the bar break it into
    pieces, so no single unbroken run is needed (tuning phantoms: 9 of 21
    bars were missed when it was). The step is 25 levels; when that finds no
    L, the horizontal legs are followed to the corner too (a halo over it),
    and when that finds none, the search runs again at 12 levels (a dark bar
    on dark skin): an L found either way is taken only when its legs' lengths
    agree within ``WEAK_BAR_AGREEMENT`` (:func:`_bars`).

    Returns
    -------
    (mask, horizontal_px, vertical_px) or None
        ``mask`` (bool, (M, N), grown 2 px) covers both legs; the lengths
        are each leg's extent from the corner (pixels), also past a shaft
        that breaks it.
    """
    total = channel_sum(image).astype(np.int16) if image.dtype == np.uint8 else None
    g = channel_mean(image) if total is None else channel_mean_of_sum(total)
    thin = [_thin_lines_at(g, axis, total=total, steps=BAR_STEPS) for axis in (0, 1)]
    found = []
    for i in range(len(BAR_STEPS)):
        legs = [_legs(g, thin[axis][i], axis, min_length_px=min_length_px) for axis in (0, 1)]
        found = _bars(_l_shapes(g, legs, corner_px), first=i == 0)
        if found:
            break
    if not found:
        return None
    _, horizontal, vertical = max(found, key=lambda f: f[1] + f[2])  # the lengths of the most complete L
    out = np.zeros(g.shape, bool)
    for m, _, _ in found:
        out |= m
    return grow_marks(out), horizontal, vertical


#: Grey-level steps of the thin-line test a scale bar's legs are searched with, in turn: a dark bar on
#: dark or busy skin (tuning phantoms: 13 of 61 bars, all dark) differs by less than 25 levels from its
#: surroundings; the second, weaker search runs only when the first finds no L.
BAR_STEPS = (25.0, 12.0)
#: ... and an L found by the weaker search, or only with its horizontal leg followed to the corner, is
#: taken when its legs' lengths differ by at most this share (:func:`_bars`; a tuning phantom's
#: 166 px leg read 350 px, its pieces running on past the label box, and painting it out split two hairs).
WEAK_BAR_AGREEMENT = 0.25


def _legs(g: np.ndarray, thin: np.ndarray, axis: int, *, min_length_px: int) -> list:
    """Scale-bar legs along ``axis`` (0: horizontal, runs along a row; 1: vertical) in a thin-line map
    (:func:`_thin_lines` along ``axis``; :func:`_group_legs`)."""
    piece = max(15, min_length_px // 4)
    kernel = np.ones((1, piece) if axis == 0 else (piece, 1), np.uint8)
    runs = cv2.morphologyEx(thin, cv2.MORPH_OPEN, kernel)
    labels, stats = _components_in_box(runs)
    pieces = [(k, stats[k]) for k in range(1, len(stats)) if min(stats[k][2:4]) < 6]
    return _group_legs(g, labels, pieces, axis=axis, min_length_px=min_length_px)


def _l_shapes(g: np.ndarray, legs: list, corner_px: int) -> list[tuple[np.ndarray, float, float, bool, bool]]:
    """Every horizontal and vertical leg of ``legs`` whose lines meet at a corner, as
    ``(mask, horizontal_px, vertical_px, as_found, agree)``.

    The lines meet within ``corner_px``, or a quarter of the shorter leg, of
    an end of each leg: with the legs as found (``as_found``), or only with
    the horizontal leg followed to the corner past faint stretches (a halo or
    a shaft over it, :func:`_leg_span`; its length is not followed, since it
    would run into the label box). ``agree``: the legs' lengths differ by at
    most ``WEAK_BAR_AGREEMENT``.
    """
    found = []
    for h_line, h_lo, h_hi, h_mask, _ in legs[0]:
        followed = None  # the followed extent, read only for an L that does not meet as found
        for v_line, v_lo, v_hi, v_mask, _ in legs[1]:
            tol = max(corner_px, min(h_hi - h_lo, v_hi - v_lo) / 4)
            dv = min(abs(v_lo - h_line), abs(v_hi - h_line))
            if dv > tol or not v_lo - tol <= h_line <= v_hi + tol:
                continue
            as_found = _meets((h_lo, h_hi), v_line, tol)
            if not as_found:
                followed = followed or _leg_span(g, h_mask, axis=1)
                if not _meets(followed, v_line, tol):
                    continue
            h_far = h_hi if abs(h_hi - v_line) > abs(h_lo - v_line) else h_lo
            v_far = v_hi if abs(v_hi - h_line) > abs(v_lo - h_line) else v_lo
            horizontal, vertical = abs(h_far - v_line) + 1.0, abs(v_far - h_line) + 1.0
            mask = h_mask | v_mask
            _paint_leg(mask, axis=0, ends=(v_line, h_far), width=h_mask)
            _paint_leg(mask, axis=1, ends=(h_line, v_far), width=v_mask)
            agree = abs(horizontal - vertical) <= WEAK_BAR_AGREEMENT * max(horizontal, vertical)
            found.append((mask, horizontal, vertical, as_found, agree))
    return found


def _bars(shapes: list, *, first: bool) -> list[tuple[np.ndarray, float, float]]:
    """The L's of :func:`_l_shapes` taken as the bar: in the first search those whose legs meet as found
    (the rule before 2026-12-06), or when there is none, the ones that meet only with the horizontal leg
    followed and whose legs agree; in the weaker search every L whose legs agree."""
    plain = [s[:3] for s in shapes if s[3]] if first else []
    return plain or [s[:3] for s in shapes if s[4]]


def _meets(span: tuple[int, int], line: float, tol: float) -> bool:
    """A leg's extent ``span`` reaches the other leg's ``line`` within ``tol`` of one of its ends."""
    lo, hi = span
    return min(abs(lo - line), abs(hi - line)) <= tol and lo - tol <= line <= hi + tol


def _thin_lines(g: np.ndarray, axis: int, *, total: np.ndarray | None = None, step: float = 25.0,
                shift: int = 3) -> np.ndarray:
    """Pixels (uint8 0/1) whose grey level ``g`` (the channel mean) differs by more than ``step``, with the
    same sign, from the pixels ``shift`` px to either side along ``axis`` (wrapping round, as ``np.roll``).

    With ``total``, an 8-bit image's channel sums (three times ``g``, :func:`channel_sum`), decided in 16-bit
    integers, which is faster: at a difference of exactly ``3 * step`` the float means' rounding decides, as
    it does on ``g``, so the answer is the same.
    """
    return _thin_lines_at(g, axis, total=total, steps=(step,), shift=shift)[0]


def _thin_lines_at(g: np.ndarray, axis: int, *, total: np.ndarray | None, steps: tuple[float, ...],
                   shift: int = 3) -> list[np.ndarray]:
    """:func:`_thin_lines` for each of ``steps``, the differences to either side computed once."""
    if total is None or min(steps) <= 0:
        a, b = g - np.roll(g, shift, axis), g - np.roll(g, -shift, axis)
        same = np.sign(a) == np.sign(b)
        return [((np.abs(a) > step) & (np.abs(b) > step) & same).astype(np.uint8) for step in steps]
    # a pixel passes when both differences exceed the edge with one sign: the smaller of them above
    # ``3 * step``, or the larger below ``-3 * step``; where one of them is exactly at the edge (the
    # smaller at ``3 * step``, the larger at ``-3 * step``), the float means decide for it
    d = [_minus_rolled(total, k, axis) for k in (shift, -shift)]
    lo, hi = np.minimum(d[0], d[1]), np.maximum(d[0], d[1])
    maps = []
    for step in steps:
        edge = 3 * step
        whole = math.floor(edge)  # the integers compared with an integer: no float copy of the map
        out = (lo > whole) | (hi < -whole)
        at = np.flatnonzero((lo == whole) | (hi == -whole)) if whole == edge else np.zeros(0, np.intp)
        if len(at):
            rows, cols = np.divmod(at, g.shape[1])
            ok = np.ones(len(at), bool)
            for k, dk in zip((shift, -shift), d):
                size = np.abs(dk.ravel()[at])
                near = ((rows - k) % g.shape[0], cols) if axis == 0 else (rows, (cols - k) % g.shape[1])
                ok &= np.where(size == edge, np.abs(g[rows, cols] - g[near]) > step, size > edge)
            same = (d[0].ravel()[at] > 0) == (d[1].ravel()[at] > 0)
            out[rows, cols] = ok & same
        maps.append(out.view(np.uint8))
    return maps


def _minus_rolled(a: np.ndarray, k: int, axis: int) -> np.ndarray:
    """``a - np.roll(a, k, axis)``, without the rolled copy."""
    out = np.empty_like(a)
    n = a.shape[axis]
    if n == 0:
        return out
    k %= n
    src, dst = np.moveaxis(a, axis, 0), np.moveaxis(out, axis, 0)
    np.subtract(src[k:], src[:n - k], out=dst[k:])
    np.subtract(src[:k], src[n - k:], out=dst[:k])
    return out


def _components_in_box(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components (labels over the whole frame, stats in frame
    coordinates, row 0 the background) labelled only inside the box that holds
    any set pixel: a frame's thin runs are few and labelling all of it costs
    more than the rest of the bar search."""
    labels = np.zeros(binary.shape, np.int32)
    x, y, w, h = cv2.boundingRect(binary)
    if not (w and h):
        return labels, np.zeros((1, 5), np.int32)
    _, labels[y:y + h, x:x + w], stats = components8(np.ascontiguousarray(binary[y:y + h, x:x + w]))
    stats[1:, 0] += x
    stats[1:, 1] += y
    return labels, stats


def _group_legs(g: np.ndarray, labels: np.ndarray, pieces, *, axis: int, min_length_px: int):
    """Collinear thin pieces grouped into legs: ``(line, lo, hi, mask, covered_px)``.

    ``pieces`` are ``(label, stats)`` of the components in ``labels``.
    ``line`` is the leg's row (``axis=0``) or column; ``lo, hi`` its extent
    along that line, the vertical legs followed past faint stretches (the
    horizontal one ends in the label box, which a weak test would run into).
    Kept when it spans at least ``min_length_px`` and pieces cover at least
    half of that (checked on the component boxes first: a frame has many
    short thin pieces and few legs).
    """
    legs, used = [], np.zeros(len(pieces), bool)
    centres = [(r0 + (h - 1) / 2) if axis == 0 else (c0 + (w - 1) / 2) for _, (c0, r0, w, h, _) in pieces]
    for i in np.argsort([-(st[2] if axis == 0 else st[3]) for _, st in pieces]):
        if used[i]:
            continue
        group = [j for j in range(len(pieces)) if not used[j] and abs(centres[j] - centres[i]) <= 3]
        used[group] = True
        covered = sum(int(pieces[j][1][2] if axis == 0 else pieces[j][1][3]) for j in group)
        if covered < min_length_px / 2:
            continue
        mask = np.zeros(g.shape, bool)
        for j in group:
            k, (c0, r0, w, h, _) = pieces[j]
            mask[r0:r0 + h, c0:c0 + w] |= labels[r0:r0 + h, c0:c0 + w] == k
        lo, hi = _leg_span(g, mask, axis=1 - axis, follow=axis == 1)
        if hi - lo + 1 >= min_length_px:
            legs.append((float(np.median([centres[j] for j in group])), lo, hi, mask, covered))
    return legs


def _paint_leg(mask: np.ndarray, *, axis: int, ends: tuple[float, float], width: np.ndarray) -> None:
    """Fill a leg's line between ``ends`` (also where shafts broke it), as thick as its pieces
    (``width``: the leg's own pixels; ``axis`` 0 horizontal, 1 vertical)."""
    rows_or_cols = np.flatnonzero(width.any(axis=1) if axis == 0 else width.any(axis=0))
    a0, a1 = int(rows_or_cols.min()), int(rows_or_cols.max()) + 1
    lo, hi = int(round(min(ends))), int(round(max(ends))) + 1
    if axis == 0:
        mask[a0:a1, max(lo, 0):hi] = True
    else:
        mask[max(lo, 0):hi, a0:a1] = True


def _leg_span(g: np.ndarray, leg: np.ndarray, *, axis: int, follow: bool = True,
              max_gap_px: int = 30) -> tuple[int, int]:
    """First and last index (pixels, along array ``axis``) of a scale-bar leg.

    With ``follow``, along the leg's own line a weaker thin-line test (a
    step of 8 grey levels to both sides, same sign, and the bar's own grey
    level within 25) extends the detected pieces while gaps stay under
    ``max_gap_px`` (a crossing shaft, a light patch of skin).
    """
    idx = np.flatnonzero(leg.any(axis=1 - axis))
    lo, hi = int(idx[0]), int(idx[-1])
    if not follow:
        return lo, hi
    across = np.flatnonzero(leg.any(axis=axis))
    line = int(round(np.median(across)))
    profile = g[line, :] if axis == 1 else g[:, line]
    others = [g[max(0, line - 3), :], g[min(g.shape[0] - 1, line + 3), :]] if axis == 1 else \
        [g[:, max(0, line - 3)], g[:, min(g.shape[1] - 1, line + 3)]]
    a, b = profile - others[0], profile - others[1]
    sign = np.sign(np.median(a[idx]))
    level = float(np.median(profile[idx]))
    weak = (sign * a > 8) & (sign * b > 8) & (np.abs(profile - level) < 25)
    for step in (-1, 1):
        pos, gap = (lo, hi)[step > 0], 0
        while 0 <= pos + step < weak.size and gap < max_gap_px:
            pos += step
            if weak[pos]:
                gap = 0
                lo, hi = min(lo, pos), max(hi, pos)
            else:
                gap += 1
    return lo, hi


def remove_scale_bar(image: np.ndarray, *, min_length_px: int = BAR_MIN_PX) -> np.ndarray:
    """The frame with a detected L scale bar painted over from its surroundings.

    Inpainting (Telea 2004, doi:10.1080/10867651.2004.10487596) rather than
    masking: a shaft crossing the thin bar stays one shaft. ``min_length_px``:
    the shortest leg searched for (:func:`find_scale_bar`).
    """
    return paint_over(image, scale_bar(image, min_length_px=min_length_px))


def paint_over(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with the pixels of ``mask`` painted over from their surroundings (Telea 2004
    inpainting, radius 3 px); ``image`` itself when ``mask`` is empty."""
    if not mask.any():
        return image
    return cv2.inpaint(image, mask.astype(np.uint8), 3, cv2.INPAINT_TELEA)


def grow_marks(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by 2 px (a 5 x 5 square), as every drawn mark is, to take in its antialiased edge."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


#: Fewer red pixels than this in the whole frame are specks, not a drawn line (:func:`drawn_lines` stops
#: there: most frames). A red stroke shorter than that (1 px by 40) stays masked as before.
LINE_MIN_PX = 50
#: Drawn red strokes narrower than this (px) are lines and circles drawn over the photo
#: (:func:`drawn_lines`); what an opening with a disc of this diameter keeps is a filled mark. A 2 px
#: circle of large radius reads 3-4 px tall where it steps from row to row.
LINE_MAX_PX = 7


def drawn_lines(image: np.ndarray) -> np.ndarray:
    """Thin drawn strokes of a frame: pure red lines and circles (bool, (M, N)), grown by 2 px.

    The pixels of :func:`_drawn_colours`' red in a connected patch larger than
    a speck (``SPECK_PX``, after growing by 2 px, as :func:`frame_regions`
    reads it) and narrower than ``LINE_MAX_PX`` (an opening with a disc of
    that diameter removes them); grown by 2 px (:func:`grow_marks`), as every drawn
    mark is, to take in the stroke's antialiased edge.
    """
    red = pure_red(image)
    if np.count_nonzero(red) < LINE_MIN_PX:
        return np.zeros(red.shape, bool)
    grown = drop_small(grow_marks(red), SPECK_PX - 1, connectivity=8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (LINE_MAX_PX, LINE_MAX_PX))
    filled = grow_marks(cv2.morphologyEx(red.astype(np.uint8), cv2.MORPH_OPEN, disc))
    return grow_marks(red & grown & ~filled)


def paint_out_lines(image: np.ndarray) -> np.ndarray:
    """The frame with its thin drawn lines (:func:`drawn_lines`) painted over from their surroundings.

    Inpainting (Telea 2004) as for the scale bar (:func:`remove_scale_bar`):
    a measurement circle drawn across a shaft, masked as not skin, cut the
    shaft in two, and a shaft whose root lay on the line looked cut by the
    border of the skin and was not counted. Filled red marks, blue text,
    glare and the 15-30 px knot where two lines cross stay masked
    (:func:`frame_regions`); red text is painted in part.
    """
    return paint_over(image, drawn_lines(image))


def text_boxes(marks: np.ndarray, *, min_marks: int = 80) -> np.ndarray:
    """Boxes around clusters of drawn marks (text labels and their backgrounds).

    ``marks`` (bool, (M, N)): pure blue or cyan pixels. Marks closer than ~10 px are clustered; a compact cluster (box
    under 5% of the frame, at least 10% filled, at least ``min_marks`` marked
    pixels: a few glints of bluish skin under a blue colour cast are no text
    label) is masked as its box plus 8 px. Long thin drawings (circles,
    lines) are left to the pixel mask.
    """
    m, n = marks.shape
    grown = cv2.dilate(marks.astype(np.uint8), np.ones((11, 11), np.uint8))
    count, labels, stats = components8(grown)
    n_marks = np.bincount(labels[marks], minlength=count)
    out = np.zeros((m, n), bool)
    for k in range(1, count):
        c0, r0, w, h, area = stats[k]
        if w * h < 0.05 * m * n and area >= 0.10 * w * h and w * h >= 200 and n_marks[k] >= min_marks:
            out[max(0, r0 - 8):r0 + h + 8, max(0, c0 - 8):c0 + w + 8] = True
    return out


def channel_max(image: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over the colour channels (same as ``image.max(axis=2)``,
    about 20 times faster: numpy reduces a short last axis slowly)."""
    return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])


def channel_min(image: np.ndarray) -> np.ndarray:
    """Per-pixel minimum over the colour channels (same as ``image.min(axis=2)``)."""
    return np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2])


def channel_mean(image: np.ndarray) -> np.ndarray:
    """Per-pixel mean over the colour channels (same values as ``image.mean(axis=2)``;
    float64 for integer images, the image's own float type otherwise)."""
    if image.dtype == np.uint8:  # the sum of three 8-bit values is exact in 16 bits: one float pass, not four
        return channel_mean_of_sum(channel_sum(image))
    if not np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float64)
    return (image[..., 0] + image[..., 1] + image[..., 2]) / image.dtype.type(3)


def channel_sum(image: np.ndarray) -> np.ndarray:
    """Per-pixel sum of the colour channels of an 8-bit image (uint16, exact)."""
    total = image[..., 0].astype(np.uint16)
    total += image[..., 1]
    total += image[..., 2]
    return total


def channel_mean_of_sum(total: np.ndarray) -> np.ndarray:
    """A third of integer channel sums (:func:`channel_sum`) in float64: :func:`channel_mean` of the
    image they were summed from, for a caller that already has the sums."""
    mean = total.astype(np.float64)
    mean /= 3.0
    return mean


def overlay_pixels(image: np.ndarray, *, drawn: np.ndarray | None = None) -> np.ndarray:
    """Pixels that look drawn rather than photographed (bool, grown 2 px)."""
    mn = channel_min(image)
    white = (mn > 245) & (channel_max(image) - mn < 12)  # 8-bit: the max is never below the min
    if drawn is None:
        drawn = np.logical_or(*_drawn_colours(image))
    return grow_marks(drawn | white)


def _drawn_colours(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pure blue-or-cyan and pure red pixels: colours of drawn marks (two bool masks).

    Red also catches vessels: harmless in a skin mask, but red clusters must
    not be taken for text labels, so the two are kept apart.
    """
    r, g, b = cv2.split(image)
    # saturated blue: at least 90 grey levels and 45% of blue above red and green.  The bright sheen
    # of skin and of grey shafts under a blue colour cast passes the first test but not the second
    # (red and green 0.6-0.64 of blue: 7 fdu_val frames lost 8-38% of their skin to it), while
    # drawn text (0.03-0.11) and surgical ink (0.3-0.5) keep passing.
    # (``100 * excess > 45 * b`` is ``excess > 0.45 * b`` in exact integers, read in 16 bits on the few
    # pixels that pass the first test; the saturating 8-bit difference passes it exactly when the signed
    # one does)
    top = cv2.max(r, g)
    at = np.flatnonzero((b > 140) & (cv2.subtract(b, top) > 90))
    blue_cyan = (b > 150) & (g > 150) & (r < 90)
    if len(at):
        blue = b.ravel()[at].astype(np.int16)
        blue_cyan.ravel()[at] |= 100 * (blue - top.ravel()[at]) > 45 * blue
    return blue_cyan, _pure_red(r, g, b)


def pure_red(image: np.ndarray) -> np.ndarray:
    """Pure red pixels (bool, (M, N)): red above 150 and at least 90 above green and blue (8-bit).

    The red of drawn circles and lines (:func:`_drawn_colours`, :func:`drawn_lines`). In uint8 with a
    saturating difference, which equals the signed difference's test for every value above 90.
    """
    return _pure_red(*cv2.split(image))


def _pure_red(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`pure_red` of an image's colour planes."""
    return (r > 150) & (cv2.subtract(r, cv2.max(g, b)) > 90)


#: Side bars (:func:`_side_bars`) cover at most this share of the frame's width on each side: a 4:3 view
#: shown in a 16:9 frame leaves 12.5% a side, a square one 22%.
SIDE_BAR_SHARE = 0.25


def _side_bars(image: np.ndarray) -> np.ndarray:
    """Columns of uniform bars down the left and right sides (bool, (N,)): a 4:3 view saved in a wider
    frame (pillarbox), which is no skin and must not enter the counted area.

    Read on every 4th row of the middle 76% (a full-width header or padding strip, up to 12% of the rows
    at either end, :func:`_band_rows`, is not the bar's). A column is bar-like when nine tenths of its
    pixels lie within 8 grey levels of its median with chroma under 12 (a line of device text in the bar
    is allowed), that median is more than 20 levels from the frame's middle columns, and the column is
    dark (median under 35) or flat (median absolute deviation at most 2.5 levels). A bar starts at the
    frame's edge and runs on over columns at least half at the bar's level (a logo in it), with gaps of
    at most 4 columns, to its last bar-like column, within ``SIDE_BAR_SHARE`` of the width, and the view
    beside it steps more than 15 levels away from the bar within 3 columns. Skin does not qualify: a
    smooth, vignetted edge of skin (fdu_val ``230219_A100_4``, about 108 against 150) is neither that dark
    nor that flat, and shading has no step.
    """
    m, n = image.shape[:2]
    cols = np.zeros(n, bool)
    limit = int(SIDE_BAR_SHARE * n)
    if limit < 1:
        return cols
    rows = slice(int(0.12 * m), max(int(0.12 * m) + 1, int(np.ceil(0.88 * m))), 4)
    centre = float(np.median(channel_sum(image[rows, n // 4: 3 * n // 4: 4]))) / 3.0
    for side, strip in enumerate((image[rows, :limit], image[rows, n - limit:][:, ::-1])):
        if not _bar_like(strip[:, :5], centre)[3].any():  # a bar starts at the edge (each column read alone)
            continue
        g, ch, med, bar = _bar_like(strip, centre)
        level = float(np.median(med[:5][bar[:5]]))
        near = ((np.abs(g - level) <= 8) & (ch < 12)).mean(axis=0) >= 0.5
        end, gap = -1, 0
        for i in range(limit):
            if bar[i]:
                end, gap = i, 0
            elif near[i] or gap < 4:
                gap += 0 if near[i] else 1
            else:
                break
        after = med[end + 1:end + 4]
        if end < 0 or (len(after) and np.abs(after - level).max() <= 15):
            continue  # no step from the bar into the view: shading, not a bar
        if side == 0:
            cols[:end + 1] = True
        else:
            cols[n - 1 - end:] = True
    return cols


def _bar_like(strip: np.ndarray, centre: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column of an 8-bit ``strip`` (:func:`_side_bars`): its grey levels and chroma (float32), the median
    grey level and whether the column is bar-like (``centre``: the frame's middle grey level)."""
    g = channel_sum(strip).astype(np.float32) / np.float32(3)
    ch = (channel_max(strip) - channel_min(strip)).astype(np.float32)
    med = np.median(g, axis=0)
    off = np.abs(g - med)
    even = ((off <= 8) & (ch < 12)).mean(axis=0) >= 0.9
    flat = np.median(off, axis=0) <= 2.5
    return g, ch, med, even & ((med < 35) | flat) & (np.abs(med - centre) > 20)


def view_columns(image: np.ndarray) -> slice | None:
    """The columns between a frame's side bars (:func:`_side_bars`), or None when it has none: the view of a
    pillarboxed frame, measured alone (:func:`pipeline.core.analyze_frame`)."""
    inside = np.flatnonzero(~_side_bars(image))  # bars take at most a quarter of the width a side
    if len(inside) == image.shape[1]:
        return None
    return slice(int(inside[0]), int(inside[-1]) + 1)


def _band_rows(image: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """Rows of full-width header or padding strips at the top/bottom (bool, (M,))."""
    m = image.shape[0]
    rows = np.zeros(m, bool)
    sub = image[:, ::4]
    overlay = overlay[:, ::4]
    high = channel_max(sub)
    chroma = (high - channel_min(sub)).astype(np.float32)
    grey_mean = channel_sum(sub).astype(np.float32)
    grey_mean /= np.float32(3)  # the float32 channel mean: the sum is exact
    row_mean = grey_mean.mean(axis=1)
    centre = float(np.median(row_mean[m // 4: 3 * m // 4]))
    distinct = np.abs(row_mean - centre) > 20
    row_std = grey_mean.std(axis=1)
    flat = (row_std < 6) & (chroma.mean(axis=1) < 10) & distinct  # a uniform padding strip
    text = overlay.mean(axis=1) > 0.04
    row_value = np.median(high, axis=1)  # of the 8-bit values: the same medians, sooner
    dark_band = (row_value < 95) & (row_value < _median(high[m // 4: 3 * m // 4]) - 50)
    marks = flat | text | dark_band
    limit = int(0.12 * m)
    for order in (range(limit), range(m - 1, m - 1 - limit, -1)):
        last = None
        for i in order:
            if marks[i]:
                last = i
            elif last is not None and abs(i - last) > 4:
                break
            elif last is None and abs(i - order[0]) > 4:
                break
        if last is not None:
            lo, hi = sorted((order[0], last))
            rows[lo:hi + 1] = True
    return rows


