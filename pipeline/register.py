"""Same spot, two visits: register the frames and match hairs one to one.

Pure: two RGB frames (and their hair tables) in, a transform and a match
table out.

Registration uses the skin, not the hairs (hairs are clipped again, grow and
move between visits): ORB key points (Rublee et al. 2011,
doi:10.1109/ICCV.2011.6126544) on the contrast-equalised grey frame, Lowe's
ratio test, and a RANSAC similarity transform (rotation, shift, scale;
``cv2.estimateAffinePartial2D``), refined on its inliers. Hairs are then
matched by their emergence points (Hungarian method) inside the region both
frames show.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

__all__ = ["Registration", "register_frames", "register_points", "match_visits", "recheck_unmatched", "apply_rc",
           "common_region", "invert"]


@dataclass(frozen=True)
class Registration:
    """A similarity transform from the moving frame to the fixed frame.

    Attributes
    ----------
    matrix : ndarray, shape (2, 3)
        Maps moving (row, col) to fixed (row, col): ``fixed = A @ moving + t``.
    n_inliers : int
        Key-point pairs that agree with it.
    inlier_ratio : float
        Inliers over ratio-test matches.
    """

    matrix: np.ndarray
    n_inliers: int
    inlier_ratio: float

    @property
    def rotation_deg(self) -> float:
        return float(np.degrees(np.arctan2(self.matrix[0, 1], self.matrix[0, 0])))

    @property
    def scale(self) -> float:
        return float(np.hypot(self.matrix[0, 0], self.matrix[0, 1]))


def swap_axes(matrix: np.ndarray) -> np.ndarray:
    """A (2, 3) affine on (row, col) as the same affine on OpenCV's (x, y), and back (its own inverse)."""
    swap = np.array([[0, 1], [1, 0]], float)
    return np.hstack([swap @ matrix[:, :2] @ swap, (swap @ matrix[:, 2])[:, None]])


def apply_rc(matrix: np.ndarray, rc: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) (row, col) transform to points of shape (N, 2)."""
    rc = np.asarray(rc, float).reshape(-1, 2)
    return rc @ matrix[:, :2].T + matrix[:, 2]


#: Gaussian blur (px, at the registration's scale) of the equalised grey frame before its key
#: points: sensor noise and JPEG blocks otherwise make corners that do not repeat between visits.
#: On tuning courses (seeds 0-3, 180 field pairs, 2026-12-02) it raised the median RANSAC inliers
#: 762 -> 935 and cut the largest point error 3.0 -> 2.4 px; a noisy 640 x 512 test frame went 16 -> 25.
KEYPOINT_BLUR_PX = 1.0


def _grey(image: np.ndarray, scale: float) -> np.ndarray:
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if scale != 1.0:
        g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    g = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(g)
    return cv2.GaussianBlur(g, (0, 0), KEYPOINT_BLUR_PX)


def register_frames(fixed: np.ndarray, moving: np.ndarray, *, max_side_px: int = 1024, n_features: int = 6000,
                    min_inliers: int = 20, max_scale_change: float = 0.1) -> Registration | None:
    """Similarity transform taking ``moving`` onto ``fixed``, or None when they do not show the same skin.

    Parameters
    ----------
    fixed, moving : ndarray of uint8, shape (M, N, 3)
        RGB frames of the same site (any sizes).
    max_side_px : int
        Frames are registered at most this large (speed); the transform is
        returned in full-resolution pixels.
    min_inliers : int
        Fewer agreeing key-point pairs than this: not the same spot.
    max_scale_change : float
        A transform that scales by more than this fraction is refused
        (the magnification is the same between visits).
    """
    s = min(1.0, max_side_px / max(fixed.shape[:2]), max_side_px / max(moving.shape[:2]))
    orb = cv2.ORB_create(nfeatures=n_features, fastThreshold=5)
    kf, df = orb.detectAndCompute(_grey(fixed, s), None)
    km, dm = orb.detectAndCompute(_grey(moving, s), None)
    if df is None or dm is None or len(kf) < min_inliers or len(km) < min_inliers:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(dm, df, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < min_inliers:
        return None
    src = np.float32([km[g.queryIdx].pt for g in good]) / s  # (x, y) in full-resolution moving pixels
    dst = np.float32([kf[g.trainIdx].pt for g in good]) / s
    m, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=4.0 / s,
                                             maxIters=5000, confidence=0.999, refineIters=20)
    if m is None or inliers is None or int(inliers.sum()) < min_inliers:
        return None
    if abs(np.hypot(m[0, 0], m[0, 1]) - 1.0) > max_scale_change:
        return None
    return Registration(swap_axes(m), int(inliers.sum()), float(inliers.sum()) / len(good))


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991, doi:10.1109/34.88573) taking src (N, 2) onto dst, as (2, 3)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / max((a ** 2).sum() / len(src), 1e-12))
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def register_points(fixed_rc: np.ndarray, moving_rc: np.ndarray, *, radius_px: float, min_pairs: int = 6,
                    max_scale_change: float = 0.1) -> Registration | None:
    """Similarity transform from matching point sets (follicle openings), or None.

    The fallback when the skin shows too little texture: every pairing of a
    moving point with a fixed point proposes a shift; each proposal is
    refined by alternating nearest-neighbour pairing within ``radius_px``
    and a least-squares similarity (a small ICP); the one pairing the most
    points wins. Meant for small rotations (repositioned device).
    """
    from scipy.spatial import cKDTree

    f = np.asarray(fixed_rc, float).reshape(-1, 2)
    m = np.asarray(moving_rc, float).reshape(-1, 2)
    if len(f) < min_pairs or len(m) < min_pairs:
        return None
    tree = cKDTree(f)
    best: tuple[int, float, np.ndarray] | None = None
    for shift in {tuple(np.round(fi - mi, 0)) for fi in f for mi in m}:
        mat = np.hstack([np.eye(2), np.array(shift, float)[:, None]])
        if len(tree.query_ball_point(apply_rc(mat, m), r=3 * radius_px, return_length=True).nonzero()[0]) < min_pairs:
            continue
        for _ in range(6):
            dist, idx = tree.query(apply_rc(mat, m), distance_upper_bound=3 * radius_px)
            ok = np.isfinite(dist)
            if ok.sum() < min_pairs:
                break
            mat = _similarity(m[ok], f[idx[ok]])
        dist, idx = tree.query(apply_rc(mat, m), distance_upper_bound=radius_px)
        ok = np.isfinite(dist)
        score = (int(ok.sum()), -float(dist[ok].mean()) if ok.any() else 0.0)
        if best is None or score > best[:2]:
            best = (*score, mat)
    if best is None or best[0] < min_pairs:
        return None
    mat = best[2]
    if abs(np.hypot(mat[0, 0], mat[0, 1]) - 1.0) > max_scale_change:
        return None
    return Registration(mat, best[0], best[0] / min(len(f), len(m)))


def common_region(fixed_shape: tuple[int, int], moving_shape: tuple[int, int], matrix: np.ndarray,
                  fixed_field: np.ndarray | None = None, moving_field: np.ndarray | None = None,
                  *, margin_px: float = 0.0) -> np.ndarray:
    """Pixels of the fixed frame that the moving frame also shows (bool, fixed shape).

    ``fixed_field`` / ``moving_field`` (bool masks) restrict each frame to its
    counting field; by default the whole frame. ``margin_px`` keeps only
    pixels at least that far from the border of either frame: near a border
    one visit sees a hair whole and the other only cut, which would read
    as a change.
    """
    fixed_mask = np.ones(fixed_shape, np.uint8) if fixed_field is None else fixed_field.astype(np.uint8)
    moving_mask = np.ones(moving_shape, np.uint8) if moving_field is None else moving_field.astype(np.uint8)
    if margin_px > 0:
        fixed_mask, moving_mask = (_erode(m, margin_px) for m in (fixed_mask, moving_mask))
    warped = cv2.warpAffine(moving_mask, swap_axes(matrix), (fixed_shape[1], fixed_shape[0]), flags=cv2.INTER_NEAREST,
                            borderValue=0) > 0
    return warped & (fixed_mask > 0)


def _erode(mask: np.ndarray, margin_px: float) -> np.ndarray:
    """``mask`` (uint8) without the pixels closer than ``margin_px`` to its border or the frame's."""
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    return (dist > margin_px).astype(np.uint8)


def _inside(mask: np.ndarray, rc: np.ndarray) -> np.ndarray:
    rc = np.asarray(rc, float).reshape(-1, 2)
    r, c = np.round(rc[:, 0]).astype(int), np.round(rc[:, 1]).astype(int)
    ok = (r >= 0) & (r < mask.shape[0]) & (c >= 0) & (c < mask.shape[1])
    out = np.zeros(len(rc), bool)
    out[ok] = mask[r[ok], c[ok]]
    return out


def _far_end(hairs: pd.DataFrame, start: np.ndarray, matrix: np.ndarray | None) -> np.ndarray:
    """The other end of each hair's centre line, from its middle (``mid_row``, ``mid_col``): 2 x middle - start."""
    if len(hairs) == 0 or not {"mid_row", "mid_col"} <= set(hairs.columns):
        return start.copy()
    mid = hairs[["mid_row", "mid_col"]].to_numpy(float)
    if matrix is not None:
        mid = apply_rc(matrix, mid)
    far = 2 * mid - start
    return np.where(np.isfinite(far), far, start)


def _segment_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance (px) from 5 points along the shorter of two segments (2 x 2 each) to the longer one.

    The same shaft clipped to another length, or read from its other end,
    lies along the same line from the same opening: the distance stays small.
    """
    la, lb = np.linalg.norm(a[1] - a[0]), np.linalg.norm(b[1] - b[0])
    short, long_ = (a, b) if la <= lb else (b, a)
    pts = short[0] + np.linspace(0, 1, 5)[:, None] * (short[1] - short[0])
    return points_to_segment(pts, long_[0], long_[1])


def points_to_segment(pts: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance (px) of points (n, 2) to the segment from ``a`` to ``b``."""
    d = b - a
    n2 = float(d @ d)
    t = np.clip(((pts - a) @ d) / n2, 0, 1) if n2 > 0 else np.zeros(len(pts))
    return float(np.linalg.norm(pts - (a + t[:, None] * d), axis=1).mean())


def match_visits(fixed_hairs: pd.DataFrame, moving_hairs: pd.DataFrame, matrix: np.ndarray, region: np.ndarray,
                 *, gate_px: float) -> pd.DataFrame:
    """Match hairs of two visits inside their common region, one to one.

    Parameters
    ----------
    fixed_hairs, moving_hairs : DataFrame
        Per-hair tables (``row``, ``col`` emergence points in each frame's
        pixels, ``thickness_um``).
    matrix : ndarray, shape (2, 3)
        Moving -> fixed transform (:func:`register_frames`).
    region : ndarray of bool
        Common region in fixed pixels (:func:`common_region`).
    gate_px : float
        Largest mean distance between two matched centre lines (fixed
        pixels; each hair is the segment from its emergence point through its
        middle, so a hair clipped again or read from its other end still matches).

    Returns
    -------
    DataFrame
        One row per hair of either visit inside the region: ``status``
        (``persisting``, ``gained``, ``lost``), ``fixed_index``,
        ``moving_index``, ``row``, ``col`` (fixed pixels), ``distance_px``,
        ``thickness_before_um``, ``thickness_after_um``.
    """
    f_rc = fixed_hairs[["row", "col"]].to_numpy(float)
    m_rc = apply_rc(matrix, moving_hairs[["row", "col"]].to_numpy(float)) if len(moving_hairs) else np.zeros((0, 2))
    f_seg = np.stack([f_rc, _far_end(fixed_hairs, f_rc, None)], axis=1)
    m_seg = np.stack([m_rc, _far_end(moving_hairs, m_rc, matrix)], axis=1)
    fi = np.flatnonzero(_inside(region, f_rc))
    mi = np.flatnonzero(_inside(region, m_rc))
    pairs: list[tuple[int, int, float]] = []
    if len(fi) and len(mi):
        cost = np.array([[_segment_distance(f_seg[a], m_seg[b]) for b in mi] for a in fi])
        big = cost.max() + gate_px + 1.0
        rows, cols = linear_sum_assignment(np.where(cost <= gate_px, cost, big * 10))
        pairs = [(int(fi[r]), int(mi[c]), float(cost[r, c])) for r, c in zip(rows, cols) if cost[r, c] <= gate_px]
    used_f, used_m = {p[0] for p in pairs}, {p[1] for p in pairs}
    tf = fixed_hairs["thickness_um"].to_numpy(float) if "thickness_um" in fixed_hairs else np.full(len(f_rc), np.nan)
    tm = moving_hairs["thickness_um"].to_numpy(float) if "thickness_um" in moving_hairs else np.full(len(m_rc), np.nan)
    rows = [dict(status="persisting", fixed_index=a, moving_index=b, row=f_rc[a, 0], col=f_rc[a, 1], distance_px=d,
                 thickness_before_um=tf[a], thickness_after_um=tm[b]) for a, b, d in pairs]
    rows += [dict(status="lost", fixed_index=a, moving_index=-1, row=f_rc[a, 0], col=f_rc[a, 1], distance_px=np.nan,
                  thickness_before_um=tf[a], thickness_after_um=np.nan) for a in fi if a not in used_f]
    rows += [dict(status="gained", fixed_index=-1, moving_index=b, row=m_rc[b, 0], col=m_rc[b, 1], distance_px=np.nan,
                  thickness_before_um=np.nan, thickness_after_um=tm[b]) for b in mi if b not in used_m]
    return pd.DataFrame(rows, columns=["status", "fixed_index", "moving_index", "row", "col", "distance_px",
                                       "thickness_before_um", "thickness_after_um"])


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) (row, col) affine transform."""
    a_inv = np.linalg.inv(matrix[:, :2])
    return np.column_stack([a_inv, -a_inv @ matrix[:, 2]])


def _root_half(hairs: pd.DataFrame, n: int = 9) -> np.ndarray:
    """Points along each hair's root half (emergence -> middle, 30%..100%), shape (H, n, 2), own pixels."""
    root = hairs[["row", "col"]].to_numpy(float)
    mid = hairs[["mid_row", "mid_col"]].to_numpy(float) if {"mid_row", "mid_col"} <= set(hairs.columns) else root
    mid = np.where(np.isfinite(mid), mid, root)
    t = np.linspace(0.3, 1.0, n)[None, :, None]
    return root[:, None, :] + t * (mid - root)[:, None, :]


def _sample(prob: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Median of ``prob`` at points (..., n, 2) (row, col); 0 outside the frame."""
    r, c = np.round(pts[..., 0]).astype(int), np.round(pts[..., 1]).astype(int)
    ok = (r >= 0) & (r < prob.shape[0]) & (c >= 0) & (c < prob.shape[1])
    vals = np.zeros(r.shape, np.float32)
    vals[ok] = prob[r[ok], c[ok]]
    return np.median(vals, axis=-1)


def _evidence(prob: np.ndarray, hairs: pd.DataFrame, *, um_per_px: float, tolerance_px: int) -> np.ndarray:
    """Shaft evidence a frame holds outside its own counted hairs.

    The probability map, max-filtered over ``tolerance_px`` (registration
    error), with every counted hair's root-to-far-end stripe (its width plus
    the tolerance) set to 0: a hair the frame did count cannot also explain
    a neighbour the other visit found (a new hair beside an old one of its unit).
    """
    k = 2 * tolerance_px + 1
    ev = cv2.dilate(prob.astype(np.float32), np.ones((k, k), np.uint8))
    if len(hairs):
        own = np.zeros(prob.shape, np.uint8)
        root = hairs[["row", "col"]].to_numpy(float)
        far = _far_end(hairs, root, None)
        width = hairs["thickness_um"].to_numpy(float) / um_per_px if "thickness_um" in hairs else np.full(len(hairs), 4.0)
        for a, b, w in zip(root, far, np.where(np.isfinite(width), width, 4.0)):
            if np.isfinite(a).all() and np.isfinite(b).all():
                cv2.line(own, (int(round(a[1])), int(round(a[0]))), (int(round(b[1])), int(round(b[0]))), 1,
                         max(1, int(round(w + 2 * tolerance_px))))
        ev[own > 0] = 0.0
    return ev


class _Lazy:
    """An array, or a function of no argument returning one, evaluated once on first use."""

    def __init__(self, value):
        self._value, self._done = value, not callable(value)

    def get(self):
        if not self._done:
            self._value, self._done = self._value(), True
        return self._value


def recheck_unmatched(matches: pd.DataFrame, fixed_hairs: pd.DataFrame, moving_hairs: pd.DataFrame,
                      matrix: np.ndarray, fixed_prob: np.ndarray, moving_prob: np.ndarray, *, um_per_px: float,
                      ratio: float = 0.3, floor: float = 0.15, tolerance_px: int = 2,
                      fixed_light=None, moving_light=None, through_counted: float = 0.0) -> pd.DataFrame:
    """Re-examine gained and lost hairs in the other visit's frame.

    A hair counted in one visit and not the other is either a real change
    or a detection that flipped (a faint shaft under the threshold in one
    light, a texture read as a shaft in one and not the other). The other
    frame settles it: where its hair probability along the hair's root half
    (mapped through the registration, outside its own counted hairs) reaches
    ``ratio`` of the probability the hair has in its own frame, and at least
    ``floor``, the same shaft is there in both visits and the call becomes
    ``persisting`` (``rechecked`` is True; its thickness and class come
    from the visit that measured it). This is the idea of reading a
    follow-up visit against the baseline one instead of counting each alone.

    Parameters
    ----------
    matches : DataFrame
        :func:`match_visits` output.
    fixed_hairs, moving_hairs : DataFrame
        The per-hair tables the matches index into.
    matrix : ndarray, shape (2, 3)
        Moving -> fixed transform.
    fixed_prob, moving_prob : ndarray of float
        Hair probability maps of the two frames, each the map its hairs
        were counted on (:func:`pipeline.frame.hair_map`: the darkness map,
        or a learned model's map for a routed frame).
    um_per_px : float
        Pixel size (µm/px) of both frames.
    fixed_light, moving_light : ndarray, callable or None
        The maps each frame's light shafts among dark ones were found on
        (:func:`pipeline.frame.light_shaft_map`), or functions of no
        argument returning them (called only when a hair needs them); None
        for a frame without such a search. A hair its own map does not show
        (under ``floor`` along its root half: a grey or white shaft the
        darkness map cannot see) is re-examined on these maps instead, on
        both sides, when both frames have one.
    through_counted : float
        When > 0, a hair is also persisting where the other frame's map
        itself (not widened, its counted hairs left in) reaches this level
        and ``ratio`` of the hair's own along the root half: the shaft is
        there but the other visit counted it inside another hair's stripe
        (touching hairs traced as one, one hair's root on another's shaft).
        A hair that truly left or joined a unit lies beside its unit-mates'
        stripes, not on them (on tuning courses with such hairs none of 722
        true changes reached 0.3 there, against 159 of 421 flips;
        ``benchmarks/course_flip_evidence.py``).  0: off.

    Returns
    -------
    DataFrame
        ``matches`` with statuses updated and a boolean ``rechecked`` column.
    """
    out = matches.copy()
    out["rechecked"] = False
    if out.empty or ratio <= 0:
        return out
    inv = invert(matrix)
    light = _Lazy(fixed_light), _Lazy(moving_light)
    for status, own_hairs, own_prob, other_hairs, other_prob, to_other, index, own_light, other_light in (
            ("gained", moving_hairs, moving_prob, fixed_hairs, fixed_prob, matrix, "moving_index", light[1], light[0]),
            ("lost", fixed_hairs, fixed_prob, moving_hairs, moving_prob, inv, "fixed_index", light[0], light[1])):
        rows = np.flatnonzero(out["status"].to_numpy() == status)
        if not rows.size:
            continue
        hairs = own_hairs.iloc[out[index].to_numpy(int)[rows]]
        pts = _root_half(hairs)
        there = apply_rc(to_other, pts.reshape(-1, 2)).reshape(pts.shape)
        own = _sample(own_prob, pts)
        ev = _evidence(other_prob, other_hairs, um_per_px=um_per_px, tolerance_px=tolerance_px)
        other = _sample(ev, there)
        raw = _sample(other_prob, there) if through_counted > 0 else np.zeros(len(rows), np.float32)
        pale = own < floor
        if pale.any() and own_light.get() is not None and other_light.get() is not None:
            own[pale] = _sample(own_light.get(), pts[pale])
            light_ev = _evidence(other_light.get(), other_hairs, um_per_px=um_per_px, tolerance_px=tolerance_px)
            other[pale] = _sample(light_ev, there[pale])
            if through_counted > 0:
                raw[pale] = _sample(other_light.get(), there[pale])
        seen = ((other >= floor) & (other >= ratio * own)) | (
            (through_counted > 0) & (raw >= through_counted) & (raw >= ratio * own))
        out.loc[out.index[rows[seen]], ["status", "rechecked"]] = ["persisting", True]
        thick = "thickness_after_um" if status == "lost" else "thickness_before_um"
        mine = "thickness_before_um" if status == "lost" else "thickness_after_um"
        out.loc[out.index[rows[seen]], thick] = out.loc[out.index[rows[seen]], mine].to_numpy()
    return out
