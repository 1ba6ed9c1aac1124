"""Per-hair measures: thickness (sub-pixel), length, root end, class, units.

Thickness is measured two ways (``Settings.thickness_method``):

``profile``
    The darkness profile perpendicular to the shaft is integrated and
    divided by the full contrast of a shaft of that pigment.  Blur spreads a
    shaft but keeps its integrated contrast, so the width is not inflated by
    defocus (the DESIGN note; cf. the "equivalent width" of spectroscopy).
``edges``
    Where a shaft is resolved (its profile falls below half its own peak on
    both sides, at least ``min_resolved_px`` apart), the full width at half
    maximum of its own profile: for a shaft wider than about 2.5 blur
    sigmas the half-maximum points are its edges whatever its pigment
    plateau, so the width does not depend on a frame-wide contrast
    reference.  Narrower or unresolved shafts fall back to ``profile``.
    Given the mask, each profile's width runs between its outermost
    half-maximum points inside the shaft's mask run (a lighter band along
    a thick shaft's middle does not halve it), and a chosen percentile of
    the stations' widths is kept.
``distance``
    Twice the Euclidean distance transform of the mask along the centre
    line, minus one pixel — a threshold-dependent reference.
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
from scipy.ndimage import map_coordinates

from pipeline.settings import Settings
from pipeline.shafts import Hair, resample_path  # noqa: F401  (resample_path: part of this module's API)

CLASSES = ("vellus", "intermediate", "terminal")


def _tangents(path: np.ndarray, span: int) -> np.ndarray:
    n = len(path)
    idx = np.arange(n)
    a = path[np.clip(idx + span, 0, n - 1)] - path[np.clip(idx - span, 0, n - 1)]
    norm = np.hypot(a[:, 0], a[:, 1])[:, None]
    return a / np.maximum(norm, 1e-9)


def profile_widths(darkness: np.ndarray, path: np.ndarray, *, radius_px: float,
                   full: float) -> tuple[np.ndarray, np.ndarray]:
    """Integrated-contrast widths across a shaft at points along its centre line.

    Parameters
    ----------
    darkness : ndarray of float, shape (M, N)
        Relative darkness map (0 on skin).
    path : ndarray, shape (K, 2)
        Centre line resampled at 1-px steps (row, col).
    radius_px : float
        Approximate half-width (pixels); sets the sampling window.
    full : float
        Darkness of an opaque shaft of this pigment (plateau level).

    Returns
    -------
    widths : ndarray, shape (J,)
        Width at each sampled station (pixels).
    peaks : ndarray, shape (J,)
        Peak darkness at each station.
    profiles : ndarray, shape (J, T)
        The sampled profiles (0.5-px steps across the shaft, centred on it).
    """
    prof = cross_profiles(darkness, path, radius_px=radius_px)
    widths = np.array([_integrate_lobe(p, 0.5) for p in prof]) / full
    return widths, prof.max(axis=1), prof


def cross_profiles(image: np.ndarray, path: np.ndarray, *, radius_px: float) -> np.ndarray:
    """Profiles of ``image`` across a shaft at stations along its centre line, shape (J, T).

    Stations are ``radius_px`` apart, 1.5 radii from either end; each profile
    spans 1.6 radii + 4 px either side of the centre line in 0.5-px steps
    (bilinear; an integer image, e.g. a 0/1 mask, is sampled as float32).
    """
    return _sample_across(image, path, *_stations(path, radius_px))


def _sample_across(image: np.ndarray, path: np.ndarray, stations: np.ndarray, normal: np.ndarray,
                   t: np.ndarray) -> np.ndarray:
    """``image`` sampled across ``path`` where :func:`_stations` says, shape (J, T)."""
    rows = path[stations, 0][:, None] + normal[:, 0][:, None] * t[None, :]
    cols = path[stations, 1][:, None] + normal[:, 1][:, None] * t[None, :]
    output = np.float32 if image.dtype.kind in "biu" else None
    prof = map_coordinates(image, [rows.ravel(), cols.ravel()], order=1, mode="nearest", output=output)
    return prof.reshape(rows.shape)


def _stations(path: np.ndarray, radius_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where :func:`cross_profiles` reads: station indices into ``path``, the unit normal (row, col) at
    each, and the offsets along it (pixels) of a profile's samples."""
    skip = int(max(2, 1.5 * radius_px))
    if len(path) <= 2 * skip + 1:
        skip = max(0, len(path) // 2 - 1)
    stations = np.arange(skip, len(path) - skip, max(1, int(radius_px)))
    if stations.size == 0:
        stations = np.array([len(path) // 2])
    tang = _tangents(path, max(2, int(radius_px)))[stations]
    half = radius_px * 1.6 + 4
    return stations, np.column_stack([-tang[:, 1], tang[:, 0]]), np.arange(-half, half + 0.25, 0.5)


def half_max_width(p: np.ndarray, dt: float, level: float = 0.5) -> float:
    """Full width at half maximum (or at ``level`` of it) of the central lobe of one profile (pixels).

    The crossings are interpolated linearly; NaN when the profile does not
    fall below ``level`` of its peak on both sides (a neighbour of the same
    unit, or a window too small).

    Parameters
    ----------
    p : ndarray, shape (T,)
        Profile across the shaft, centred on it.
    dt : float
        Sample spacing (pixels).
    level : float
        Fraction of the peak where the width is read (0.5: half maximum).
    """
    c = len(p) // 2
    centre = int(np.argmax(p[max(0, c - 3):c + 4])) + max(0, c - 3)
    peak = float(p[centre])
    if peak <= 0:
        return float("nan")
    half = level * peak
    below = np.flatnonzero(p[:centre] < half)
    above = np.flatnonzero(p[centre:] < half)
    if below.size == 0 or above.size == 0:
        return float("nan")
    return _crossing_width(p, half, int(below[-1]) + 1, centre + int(above[0]) - 1, dt)


def _crossing_width(p: np.ndarray, half: float, first: int, last: int, dt: float) -> float:
    """Width (pixels) between the linear ``half`` crossings just outside samples ``first`` .. ``last``
    (the outermost samples at or above ``half``; their outer neighbours are below it)."""
    left = first - 1 + (half - p[first - 1]) / (p[first] - p[first - 1])
    right = last + (p[last] - half) / (p[last] - p[last + 1])
    return float((right - left) * dt)


def outer_half_width(p: np.ndarray, inside: np.ndarray, dt: float, level: float = 0.5) -> float:
    """Width between the outermost ``level``-of-peak crossings of one profile within its shaft's mask (pixels).

    A thick dark shaft often shows a lighter band along its middle (a
    specular highlight or the cuticle's sheen); its profile then dips below
    half its peak inside the shaft, and :func:`half_max_width` reads only
    one of its two darker halves.  Here the lobe is bounded by the run of
    the segmentation mask that holds the profile's centre (plus 2 px each
    side, for a mask that stops short of the half-maximum point) instead of
    by the first dip.  Falls back to :func:`half_max_width` when the centre
    is not in the mask or the profile is still above the level where the
    widened run ends (the mask and the profile disagree).

    Parameters
    ----------
    p : ndarray, shape (T,)
        Profile across the shaft, centred on it.
    inside : ndarray of bool, shape (T,)
        The segmentation mask sampled along the same profile.
    dt : float
        Sample spacing (pixels).
    level : float
        Fraction of the peak where the width is read.
    """
    c = len(p) // 2
    if not inside[c]:
        return half_max_width(p, dt, level)
    outside = np.flatnonzero(~inside)
    margin = int(round(2.0 / dt))
    lo = max(0, int(outside[outside < c].max(initial=-1)) + 1 - margin)
    hi = min(len(p) - 1, int(outside[outside > c].min(initial=len(p))) - 1 + margin)
    peak = float(p[lo:hi + 1].max())
    if peak <= 0:
        return float("nan")
    half = level * peak
    above = np.flatnonzero(p[lo:hi + 1] >= half) + lo
    i, j = int(above[0]), int(above[-1])
    if i == 0 or j == len(p) - 1 or p[i - 1] >= half or p[j + 1] >= half:
        return half_max_width(p, dt, level)
    return _crossing_width(p, half, i, j, dt)


def _integrate_lobe(p: np.ndarray, dt: float) -> float:
    """Integral of the central lobe of a profile, stopping at valleys.

    From the centre outwards on each side, stop where the profile falls
    below 4% of its peak or starts rising again after falling below half
    the peak (a neighbouring shaft of the same unit).
    """
    c = len(p) // 2
    centre = int(np.argmax(p[max(0, c - 3):c + 4])) + max(0, c - 3)
    peak = p[centre]
    if peak <= 0:
        return 0.0
    total = peak
    for direction in (-1, 1):
        prev = peak
        i = centre + direction
        below_half = False
        while 0 <= i < len(p):
            v = p[i]
            if v < 0.04 * peak:
                break
            below_half |= v < 0.5 * peak
            if below_half and v > prev + 0.02 * peak:
                break
            total += v
            prev = v
            i += direction
    return float(total * dt)


class ShaftWidths(NamedTuple):
    """Two widths of one traced shaft (pixels)."""

    #: The median of the stations' plain half-maximum widths (:func:`half_max_width`), or the
    #: integrated width: what the rule for fused stripes compares with the frame's typical width.
    plain: float
    #: The reported diameter: within the mask and at the chosen percentile when given.
    shaft: float


def hair_widths_px(path: np.ndarray, *, radius_px: float, darkness: np.ndarray, full: float,
                   method: str, min_resolved_px: float = 3.0, edge_level: float = 0.5,
                   mask: np.ndarray | None = None, percentile: float = 50.0) -> ShaftWidths:
    """Shaft diameter of one hair (pixels) by ``method`` (see module doc), and its plain median width.

    Parameters
    ----------
    path : ndarray, shape (K, 2)
        Centre line resampled at 1-px steps (:func:`resample_path`).
    radius_px : float
        Median distance-transform value along the centre line (pixels).
    min_resolved_px : float
        ``edges`` only: a half-maximum width below this (pixels) is taken as
        unresolved from blur and the integrated width is used.
    edge_level : float
        ``edges`` only: the fraction of the profile's peak where its width
        is read; 0.5 (half maximum) for opaque shafts, lower for
        translucent ones, whose profile is rounded (see
        ``Settings.translucent_edge_level``).
    mask : ndarray of bool or 0/1 integers, optional
        ``edges`` only: the segmentation mask; each station's width is then
        read between the outermost crossings inside the shaft's mask run
        (:func:`outer_half_width`), so a lighter band along the shaft's
        middle does not halve it.
    percentile : float
        ``edges`` only: which percentile of the stations' widths is the
        shaft's (50: the median).  Stations where a neighbour, a crossing or
        the shaft's taper into the skin narrows the profile read low, more
        often than anything reads high.
    """
    r = radius_px
    if method == "distance":
        d = max(1.0, 2 * r - 1)
        return ShaftWidths(d, d)
    widths, peaks, prof = profile_widths(darkness, path, radius_px=max(r, 1.0), full=full)
    own = float(np.median(peaks))
    ref = own if own >= 0.8 * full else full
    integrated = float(np.median(widths) * full / ref)
    if method != "edges":
        return ShaftWidths(integrated, integrated)
    plain_fw = _resolved(np.array([half_max_width(p, 0.5, edge_level) for p in prof]), len(prof), min_resolved_px)
    shaft_fw = plain_fw
    if mask is not None:
        inside = cross_profiles(mask, path, radius_px=max(r, 1.0)) > 0.5
        fw = np.array([outer_half_width(p, m, 0.5, edge_level) for p, m in zip(prof, inside)])
        shaft_fw = _resolved(fw, len(prof), min_resolved_px)
    return ShaftWidths(float(np.median(plain_fw)) if plain_fw is not None else integrated,
                       float(np.percentile(shaft_fw, percentile)) if shaft_fw is not None else integrated)


def _resolved(fw: np.ndarray, n_stations: int, min_resolved_px: float) -> np.ndarray | None:
    """The finite station widths when at least half the stations have one and their median is resolved."""
    fw = fw[np.isfinite(fw)]
    return fw if fw.size * 2 >= n_stations and np.median(fw) >= min_resolved_px else None


def lobe_count(darkness: np.ndarray, path: np.ndarray, *, radius_px: float, min_dip: float,
               max_hairs: int = 4, block: int = 3) -> tuple[int, float]:
    """How many shafts run side by side along one traced centre line.

    Hairs of one follicular unit often touch along their length and merge
    into one mask stripe with one centre line, but a thin lighter seam stays
    between them.  Across the stripe the darkness profile then has one lobe
    per shaft.  At stations along the line, lobes are the profile maxima
    above 0.6 of its peak inside the stripe around the centre line (the
    run above 0.4 of the peak: a separate neighbour is not a lobe) whose
    prominence is at least ``min_dip`` of the peak
    (``scipy.signal.find_peaks``); the count is the median over the stations
    (the part of a unit beyond its shorter hairs' cut tips has fewer lobes).

    Parameters
    ----------
    darkness : ndarray of float, shape (M, N)
        Relative darkness map (0 on skin).
    path : ndarray, shape (K, 2)
        Centre line resampled at 1-px steps (row, col).
    radius_px : float
        Half-width of the stripe (pixels).
    min_dip : float
        Smallest seam between two shafts, as a share of the peak darkness.
    max_hairs : int
        Largest count returned.
    block : int
        Neighbouring stations (about one radius apart) averaged before
        counting, so shaft texture and noise do not make lobes.

    Returns
    -------
    k : int
        Number of shafts (1 when no seam is resolved).
    width_px : float
        Outer half-maximum width of the whole stripe (pixels), median over
        the stations with ``k`` lobes: ``width_px / k`` is one shaft's width.
    """
    from scipy.ndimage import gaussian_filter1d

    _, _, prof = profile_widths(darkness, path, radius_px=max(radius_px, 1.0), full=1.0)
    n_blocks = max(1, len(prof) // block)
    counts, widths = [], []
    for chunk in np.array_split(prof, n_blocks):
        p = gaussian_filter1d(chunk.mean(axis=0), 1.0)  # stations averaged along, lightly across
        peak = float(p.max())
        if peak <= 0:
            continue
        lo, hi = _central_run(p >= 0.4 * peak)
        if hi <= lo:
            continue
        run = p[lo:hi]
        counts.append(max(1, len(_peaks_in(run, height=0.6 * peak, prominence=min_dip * peak))))
        widths.append(float((run >= 0.5 * peak).sum()) * 0.5)
    if not counts:
        return 1, float("nan")
    counts = np.asarray(counts)
    k = _typical_count(counts, max_hairs)
    return k, float(np.median(np.asarray(widths)[counts == k]))


def _peaks_in(run: np.ndarray, *, height: float, prominence: float) -> np.ndarray:
    """Indices of the maxima of a cross profile's ``run`` (a peak at either end counts too), at least
    ``height`` high and ``prominence`` prominent and 2 px (4 samples) apart (``scipy.signal.find_peaks``)."""
    from scipy.signal import find_peaks

    idx, _ = find_peaks(np.concatenate([[0.0], run, [0.0]]), height=height, prominence=prominence, distance=4)
    return idx - 1


def _typical_count(counts: np.ndarray, max_hairs: int) -> int:
    """The shafts a stripe holds from the counts at its stations: their median, rounded down, 1 to ``max_hairs``."""
    return int(min(max_hairs, max(1, np.floor(np.median(counts)))))


def ridge_count(centre: np.ndarray, mask: np.ndarray, path: np.ndarray, *, radius_px: float, level: float,
                max_hairs: int = 4, block: int = 3) -> "Ridges":
    """How many centre lines run side by side inside one traced stripe, read on a centre-line map.

    A learned model's centre-line head (:mod:`pipeline.learned`) marks every
    hair's own centre line, also where the hair map merges touching shafts
    into one stripe. At stations along the traced line (``block`` of them
    averaged along it), the centre map's profile across the stripe is read
    inside the stripe's own run of ``mask`` (a separate neighbour is not
    counted); ridges are its maxima at least ``level`` high whose
    prominence is at least half of ``level``, at least 2 px apart
    (``scipy.signal.find_peaks``; a flat-topped ridge, such as a head
    trained on each hair's core, counts once). The count is the median over
    the stations (beyond the shorter hairs' cut tips a stripe holds fewer).

    Parameters
    ----------
    centre : ndarray of float, shape (M, N)
        Centre-line map in [0, 1].
    mask : ndarray of bool, shape (M, N)
        The hair mask the stripe was traced from.
    path : ndarray, shape (K, 2)
        Centre line resampled at 1-px steps (row, col).
    radius_px : float
        Half-width of the stripe (pixels).
    level : float
        Least height of a ridge.
    max_hairs : int
        Largest count returned.
    block : int
        Neighbouring stations (about one radius apart) averaged before
        counting.

    Returns
    -------
    Ridges
        ``k``, the number of shafts (1 when no two ridges are found);
        ``width_px``, the width of the stripe's run of ``mask`` (pixels; not a
        half-maximum width), median over the stations with at least ``k``
        ridges; ``shifts_px``, the (row, col) offset of each ridge from
        ``path``, side by side: the median over the stations with exactly
        ``k`` ridges of its place along the profile (0.5-px samples), along
        the median normal, so one offset for the whole stripe (right for the
        straight stripes of touching clipped hairs, only near the middle of
        a bent one); ``()`` when ``k`` is 1 or no station has ``k``. Each shaft's own width is not read off the
        ridges: on the light-hair frames of tuning suites 95-98 their
        spacing divided the stripe worse than equal shares did
        (matched-hair thickness MAE 10.19 against 9.68 µm).
    """
    r = max(radius_px, 1.0)
    where = _stations(path, r)
    _, normal, t = where
    prof = _sample_across(centre, path, *where)
    inside = _sample_across(mask.astype(np.uint8), path, *where)
    counts, widths, ridges = [], [], []
    for p, m in zip(np.array_split(prof, max(1, len(prof) // block)),
                    np.array_split(inside, max(1, len(prof) // block))):
        lo, hi = _central_run(m.mean(axis=0) > 0.5)
        if hi <= lo:
            continue
        idx = _peaks_in(p.mean(axis=0)[lo:hi], height=level, prominence=0.5 * level)
        counts.append(max(1, len(idx)))
        widths.append((hi - lo) * 0.5)
        ridges.append(t[lo + idx])  # pixels along the normal
    if not counts:
        return Ridges(1, float("nan"))
    counts = np.asarray(counts)
    k = _typical_count(counts, max_hairs)
    width = float(np.median(np.asarray(widths)[counts >= k]))
    own = [x for x in ridges if len(x) == k] if k > 1 else []
    if not own:
        return Ridges(k, width)
    axis = np.median(normal, axis=0)
    axis /= max(float(np.hypot(*axis)), 1e-9)
    return Ridges(k, width, tuple((float(axis[0] * o), float(axis[1] * o)) for o in np.median(own, axis=0)))


class Ridges(NamedTuple):
    """Touching shafts read across one stripe (:func:`ridge_count`)."""

    k: int
    width_px: float
    shifts_px: tuple[tuple[float, float], ...] = ()


def cross_widths(mask: np.ndarray, path: np.ndarray, *, radius_px: float) -> np.ndarray:
    """Full mask width across a stripe at every point of its centre line (pixels).

    At each point the mask is sampled along the normal (0.5-px steps, out
    to three radii) and the width is the length of the run of mask pixels
    through the centre line.  Unlike twice the distance transform it is the
    whole local width even where the centre line runs off-centre, as it
    does past the cut of one of two touching shafts.

    Parameters
    ----------
    mask : ndarray of bool, shape (M, N)
        Hair mask.
    path : ndarray, shape (K, 2)
        Centre line resampled at 1-px steps (row, col).
    radius_px : float
        Half-width of the stripe (pixels); sets the sampling reach.
    """
    if len(path) == 0:
        return np.zeros(0)
    tang = _tangents(path, max(2, int(round(3 * radius_px))))  # the stripe's axis, not the jog at a step
    normal = np.column_stack([-tang[:, 1], tang[:, 0]])
    reach = 3.0 * max(radius_px, 1.0) + 3.0
    t = np.arange(-reach, reach + 0.25, 0.5)
    rr = path[:, 0, None] + normal[:, 0, None] * t[None, :]
    cc = path[:, 1, None] + normal[:, 1, None] * t[None, :]
    inside = map_coordinates(mask.astype(np.float32), [rr.ravel(), cc.ravel()], order=1,
                             mode="constant", cval=0.0).reshape(rr.shape) >= 0.5
    mid = len(t) // 2
    right = np.argmin(np.concatenate([inside[:, mid:], np.zeros((len(path), 1), bool)], axis=1), axis=1)
    left = np.argmin(np.concatenate([inside[:, mid::-1], np.zeros((len(path), 1), bool)], axis=1), axis=1)
    return np.maximum(right + left - 1, 0) * 0.5


def trim_tapers(w: np.ndarray, window: int = 10) -> np.ndarray:
    """The width profile without its tapered ends: end points narrower than
    70% of the median of the next ``window`` points are dropped."""
    lo, hi = 0, len(w)
    while hi - lo > window and w[lo] < 0.7 * np.median(w[lo + 1:lo + 1 + window]):
        lo += 1
    while hi - lo > window and w[hi - 1] < 0.7 * np.median(w[hi - 1 - window:hi - 1]):
        hi -= 1
    return w[lo:hi]


def tip_width(trimmed: np.ndarray) -> float:
    """Width of a stripe's tip end (pixels): the median over its last sixth (at least 3 points)
    of a profile whose tapers are trimmed (:func:`trim_tapers`), root end first."""
    return float(np.median(trimmed[-max(3, len(trimmed) // 6):]))


def tip_steps(widths: np.ndarray, *, min_drop: float = 0.5, min_width_px: float = 3.0,
              flatness: float = 0.25, max_steps: int = 3) -> list[float]:
    """Widths of the shafts that end along a stripe of touching hairs (pixels).

    Clipped hairs of one unit that run fused side by side are cut at
    different lengths: going from the stripe's tip end (the longest
    hair's tip) towards its root, the width rises at every other hair's
    cut tip.  The trimmed profile (:func:`trim_tapers`) is fitted by 1 to
    ``max_steps`` + 1 constant levels (least squares, exact dynamic
    programming); the most levels that pass these tests win: the levels
    fall from root to tip, each by at least ``min_drop`` times the tip
    end's width and by 2.5 times the larger interquartile range of the two
    plateaus it separates, every plateau holds for at least one tip-end
    width and is flat (interquartile range within ``flatness`` times the
    tip end's width), and the tip plateau is the tip end's width.  A slow
    widening (hairs diverging from their opening, a halo at the root) fits
    no clean levels.

    Parameters
    ----------
    widths : ndarray, shape (K,)
        Full width at 1-px steps along the stripe, root end first
        (:func:`cross_widths`).
    min_drop : float
        Smallest step, as a share of the narrow end's width.
    min_width_px : float
        Narrow ends thinner than this are not split, and no step is smaller
        than half of it (pixel noise of the mask's edges).
    flatness : float
        Largest interquartile range of a plateau, as a share of the tip
        end's width (ragged mask edges on textured skin are no plateaus).
    max_steps : int
        At most this many steps (a unit has at most four hairs).

    Returns
    -------
    list of float
        One width per step found (the width of the shaft that ends there),
        tip end first; empty for a single shaft.
    """
    w = trim_tapers(np.asarray(widths, dtype=float))
    n = len(w)
    single = tip_width(w) if n >= 8 else 0.0
    if single < min_width_px:
        return []
    span = max(3, int(round(single)))
    smallest = max(min_drop * single, 0.5 * min_width_px)
    for bounds in reversed(_level_fits(w, max_steps + 1, span)[1:]):
        steps = _clean_steps(w, bounds, single, smallest, flatness * single)
        if steps:
            return steps
    return []


def _level_fits(w: np.ndarray, max_levels: int, min_len: int) -> list[list[int]]:
    """Least-squares fits of ``w`` by 1..``max_levels`` constant levels, each at least
    ``min_len`` long: for every number of levels, the segment boundaries
    ``[0, b1, ..., n]`` (an empty list where the profile is too short)."""
    n = len(w)
    c1 = np.r_[0.0, np.cumsum(w)]
    c2 = np.r_[0.0, np.cumsum(w * w)]
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    length = np.maximum(j - i, 1)
    cost = (c2[j] - c2[i]) - (c1[j] - c1[i]) ** 2 / length
    cost[j - i < min_len] = np.inf
    best, back, fits = cost[0].copy(), [], [[0, n] if np.isfinite(cost[0, n]) else []]
    for _ in range(1, max_levels):
        total = best[:, None] + cost
        back.append(np.argmin(total, axis=0))
        best = total[back[-1], np.arange(n + 1)]
        if not np.isfinite(best[n]):
            fits.append([])
            continue
        bounds = [n]
        for arg in reversed(back):
            bounds.append(int(arg[bounds[-1]]))
        fits.append([0, *bounds[::-1]])
    return fits


def _clean_steps(w: np.ndarray, bounds: list[int], single: float, smallest: float,
                 flat: float) -> list[float]:
    """The drops between the levels of one fit, tip end first, when they are clean cut-tip
    steps (see :func:`tip_steps`); else an empty list."""
    if len(bounds) < 3:
        return []
    parts = [w[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    levels = [float(np.median(x)) for x in parts]
    spread = [float(np.subtract(*np.percentile(x, [75, 25]))) for x in parts]
    if max(spread) > flat or abs(levels[-1] - single) > flat:
        return []
    drops = [hi - lo for hi, lo in zip(levels[:-1], levels[1:])]
    if any(d < max(smallest, 2.5 * max(s0, s1)) for d, s0, s1 in zip(drops, spread[:-1], spread[1:])):
        return []
    return drops[::-1]


def _central_run(flags: np.ndarray) -> tuple[int, int]:
    """Half-open index range of the run of True values nearest the middle of ``flags``."""
    from scipy.ndimage import label

    true = np.flatnonzero(flags)
    if true.size == 0:
        return 0, 0
    runs, _ = label(flags)
    run = np.flatnonzero(runs == runs[true[np.argmin(np.abs(true - len(flags) // 2))]])
    return int(run[0]), int(run[-1]) + 1


def root_scores(hair: Hair, darkness: np.ndarray, halo: np.ndarray, radius_px: float) -> np.ndarray:
    """Root-likeness of the two ends of a hair (higher = more root-like).

    A clipped hair's cut tip is blunt and free: clean skin right past it.
    The emergence end fades into the skin and sits in a darker, often
    bluish halo. The score is the mean darkness plus halo strength in a
    window just beyond each end, along the shaft's direction.
    """
    path = resample_path(hair.path)
    if len(path) < 3:
        return np.zeros(2)
    span = int(min(len(path) - 1, max(3, 2 * radius_px)))
    out = []
    for end, inner in ((path[0], path[span]), (path[-1], path[-1 - span])):
        u = end - inner
        u = u / max(np.hypot(*u), 1e-9)
        t = np.linspace(radius_px + 1, radius_px + 1 + 6 * max(radius_px, 3), 16)
        rr = end[0] + u[0] * t
        cc = end[1] + u[1] * t
        dk = map_coordinates(darkness, [rr, cc], order=1, mode="nearest").mean()
        hl = map_coordinates(halo, [rr, cc], order=1, mode="nearest").mean()
        out.append(dk + hl)
    return np.asarray(out)


def halo_map(image: np.ndarray, *, sigma_px: float) -> np.ndarray:
    """Bluish-grey perifollicular halo strength (float32, >= 0).

    Skin is redder than it is blue; the halo is bluer and darker in red.
    """
    f = max(1, int(sigma_px // 2))
    rgb = cv2.resize(image, None, fx=1 / f, fy=1 / f, interpolation=cv2.INTER_AREA).astype(np.float32)
    chroma = rgb[..., 2] - rgb[..., 0]
    chroma = cv2.GaussianBlur(chroma, (0, 0), sigmaX=max(1.0, sigma_px / f))
    base = cv2.GaussianBlur(chroma, (0, 0), sigmaX=max(8.0, 8 * sigma_px / f))
    halo = np.clip((chroma - base) / 60.0, 0, 1)
    return cv2.resize(halo, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)


def classify(thickness_um: np.ndarray, settings: Settings) -> np.ndarray:
    """Thickness class per hair: vellus, intermediate or terminal (object array)."""
    t = np.asarray(thickness_um, float)
    out = np.full(t.shape, "intermediate", dtype=object)
    out[t <= settings.vellus_max_um] = "vellus"
    out[t > settings.terminal_min_um] = "terminal"
    out[~np.isfinite(t)] = ""
    return out


def group_units(points: np.ndarray, *, radius_px: float, forced: list[set[int]] | None = None) -> np.ndarray:
    """Follicular unit id per hair: single-linkage of emergence points.

    Parameters
    ----------
    points : ndarray, shape (H, 2)
        Emergence points (row, col).
    radius_px : float
        Hairs closer than this share a unit.
    forced : list of sets of int, optional
        Groups of hairs known to share an opening (a fork of one component).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(points)
    if n == 0:
        return np.zeros(0, int)
    rows, cols = [], []
    if n > 1:
        d = np.hypot(points[:, None, 0] - points[None, :, 0], points[:, None, 1] - points[None, :, 1])
        a, b = np.nonzero(np.triu(d <= radius_px, 1))
        rows += a.tolist()
        cols += b.tolist()
    for g in forced or []:
        g = sorted(g)
        rows += g[:-1]
        cols += g[1:]
    adj = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(adj, directed=False)
    # renumber by first appearance for stable ids
    _, first = np.unique(labels, return_index=True)
    order = {lab: k for k, lab in enumerate(labels[np.sort(first)])}
    return np.array([order[l] for l in labels], int)
