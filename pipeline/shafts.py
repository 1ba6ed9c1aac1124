"""Shafts: a hair mask becomes individual hairs (centre lines).

The mask is skeletonised and turned into a branch graph with skan
(Nunez-Iglesias et al. 2018, doi:10.7717/peerj.4312).  Spurs (short end
branches born of a shaft's width) are pruned; junction pixels close to each
other are merged into one junction; at every junction the branches are
paired by direction continuity — a hair is a smooth curve, so a branch
continues the one that leaves the junction most nearly straight on.  Chains
of paired branches are hairs: two crossing hairs give two hairs, a fork of
a follicular unit gives one hair per tip.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.sparse.csgraph import connected_components
from scipy.sparse import coo_matrix

from pipeline.settings import Settings
from pipeline.segment import components8


@dataclass
class Hair:
    """One traced hair.

    Attributes
    ----------
    path : ndarray of float, shape (K, 2)
        Centre line (row, col), in walking order.
    end_kinds : list of str
        For the first and last point: ``"free"`` (a tip of the skeleton) or
        ``"junction"`` (ends where it meets other hairs).
    junctions : list of int or None
        Id of the junction cluster at each end (None for free ends); from
        :func:`trace_hairs`, unique within the frame
        (:func:`frame_unique_junctions`).
    """

    path: np.ndarray
    end_kinds: list[str] = field(default_factory=lambda: ["free", "free"])
    junctions: list[int | None] = field(default_factory=lambda: [None, None])

    @property
    def length_px(self) -> float:
        """Length of the centre line (pixels), along its smoothed line (:func:`smoothed`): the raw
        8-connected path reads up to 8% long at a slant (a staircase of steps of 1 and 1.41), and its
        1-px resampling (:func:`resample_path`) stops at the last whole step."""
        return path_length(smoothed(self.path))


def smoothed(path: np.ndarray) -> np.ndarray:
    """Centre line (row, col; float) under a 5-point moving average, its two end points at each end kept;
    paths of under 7 points as they are. Takes the staircase out of an 8-connected path."""
    p = path.astype(float)
    if len(p) >= 7:
        k = np.ones(5) / 5
        sm = np.column_stack([np.convolve(p[:, j], k, mode="same") for j in (0, 1)])
        sm[:2], sm[-2:] = p[:2], p[-2:]
        p = sm
    return p


def resample_path(path: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Centre line resampled at equal arc-length steps (pixels), lightly smoothed."""
    if len(path) < 3:
        return path.astype(float)
    p = smoothed(path)
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    if s[-1] <= 0:
        return p[:1]
    t = np.arange(0, s[-1] + 1e-9, step)
    return np.column_stack([np.interp(t, s, p[:, 0]), np.interp(t, s, p[:, 1])])


def path_length(path: np.ndarray) -> float:
    """Length (pixels) of a polyline (row, col)."""
    return float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum()) if len(path) > 1 else 0.0


def pixels_of(path: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The nearest pixel (row, col; int) of every point of a centre line, kept inside an image of ``shape``."""
    return np.clip(np.round(path).astype(int), 0, np.array(shape[:2]) - 1)


def skeleton_of(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide skeleton of a binary mask (bool).

    Thinning looks only at 8-neighbours, so each 8-connected component is
    thinned alone inside its bounding box (plus one pixel): the same
    skeleton as thinning the whole frame, in a fraction of the time on
    sparse hair masks.
    """
    from skimage.morphology import skeletonize

    n, labels, stats = components8(mask.astype(np.uint8))
    out = np.zeros(mask.shape, bool)
    rows, cols = mask.shape
    for k in range(1, n):
        x, y, w, h = stats[k, :4]
        r0, r1, c0, c1 = max(0, y - 1), min(rows, y + h + 1), max(0, x - 1), min(cols, x + w + 1)
        out[r0:r1, c0:c1] |= skeletonize(labels[r0:r1, c0:c1] == k)
    return out


def _without_isolated(skel: np.ndarray) -> np.ndarray:
    """The skeleton without pixels that have no 8-neighbour (a dot is no path; skan fails on a
    skeleton made only of such dots)."""
    neighbours = cv2.boxFilter(skel.astype(np.uint8), -1, (3, 3), normalize=False,  # itself and its neighbours
                               borderType=cv2.BORDER_CONSTANT)
    return skel & (neighbours > 1)


def _summary(skel: np.ndarray):
    import warnings

    import skan

    sk = skan.Skeleton(skel)
    with warnings.catch_warnings():  # skan 0.13 calls DataFrame.rename(inplace=True), deprecated in pandas 3
        warnings.filterwarnings("ignore", message=".*inplace keyword.*", category=Warning)
        return sk, skan.summarize(sk, separator="_")


def prune_spurs(skel: np.ndarray, dist: np.ndarray, *, settings: Settings,
                rounds: int = 3) -> np.ndarray:
    """Remove end branches shorter than ``spur_factor`` x the local half-width.

    Pixels with no neighbour are dropped too (:func:`_without_isolated`).

    Parameters
    ----------
    skel : ndarray of bool, shape (M, N)
    dist : ndarray of float, shape (M, N)
        Euclidean distance transform of the mask (pixels).
    """
    return _pruned(skel, dist, settings=settings, rounds=rounds)[0]


def _pruned(skel: np.ndarray, dist: np.ndarray, *, settings: Settings, rounds: int):
    """:func:`prune_spurs`, and the skan summary of the skeleton it returns when the last round built it
    (it found nothing to prune), else None: the caller need not build it again."""
    from skimage.morphology import skeletonize

    skel = _without_isolated(skel)
    for _ in range(rounds):
        if skel.sum() < 2:
            break
        summary = _summary(skel)
        sk, df = summary
        plist = sk.paths_list()
        spurs = df.branch_type.to_numpy() == 1
        removed = False
        for i, length in zip(df.index[spurs], df.branch_distance.to_numpy()[spurs]):
            coords = sk.path_coordinates(i).astype(int)
            deg = sk.degrees[plist[i]]
            junction_end = coords[0] if deg[0] > 2 else coords[-1]
            r = dist[junction_end[0], junction_end[1]]
            if length < settings.spur_factor * r + 2:
                body = coords[deg <= 2]
                skel[body[:, 0], body[:, 1]] = False
                removed = True
        if not removed:
            return skel, summary
        skel = _without_isolated(skeletonize(skel))
    return skel, None


def _junction_clusters(sk, df, dist: np.ndarray) -> tuple[dict[int, int], set[int]]:
    """Merge junction nodes linked by short branches.

    Returns a map node id -> cluster id and the set of branch indices that
    are internal bridges of a cluster (not part of any hair).
    """
    junction_nodes = np.flatnonzero(sk.degrees > 2)
    index = {int(n): k for k, n in enumerate(junction_nodes)}
    bridges = set()
    rows, cols = [], []
    links = df.branch_type.to_numpy() == 2
    for i, a, b, length in zip(df.index[links], df.node_id_src.to_numpy()[links], df.node_id_dst.to_numpy()[links],
                               df.branch_distance.to_numpy()[links]):
        a, b = int(a), int(b)
        ra = dist[tuple(sk.coordinates[a].astype(int))]
        rb = dist[tuple(sk.coordinates[b].astype(int))]
        if length <= 1.2 * max(ra, rb) + 2:
            bridges.add(i)
            rows.append(index[a])
            cols.append(index[b])
    n = len(junction_nodes)
    if n == 0:
        return {}, bridges
    adj = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(adj, directed=False)
    return {int(node): int(labels[k]) for node, k in index.items()}, bridges


def _outward_direction(coords: np.ndarray, r: float) -> np.ndarray:
    """Unit direction of a branch leaving a junction at ``coords[0]``."""
    n = len(coords)
    a = min(n - 1, int(round(r)))
    b = min(n - 1, a + max(6, int(round(2 * r))))
    if b == a:
        a, b = 0, n - 1
    v = coords[b] - coords[a]
    norm = np.hypot(*v)
    return v / norm if norm > 0 else np.zeros(2)


def trace_hairs(mask: np.ndarray, *, dist: np.ndarray | None = None,
                settings: Settings = Settings()) -> list[Hair]:
    """Split a hair mask into individual hairs.

    Parameters
    ----------
    mask : ndarray of bool, shape (M, N)
        Hair mask.
    dist : ndarray of float, shape (M, N), optional
        Distance transform of ``mask`` (computed when not given).
    settings : Settings
        Uses ``spur_factor`` and ``crossing_angle_deg``.

    Returns
    -------
    list of Hair
    """
    import cv2

    if dist is None:
        dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    skel, summary = _pruned(skeleton_of(mask), dist, settings=settings, rounds=3)  # without isolated dots
    if skel.sum() < 2:
        return []
    sk, df = summary or _summary(skel)
    clusters, bridges = _junction_clusters(sk, df, dist)
    branches = [i for i in range(len(df)) if i not in bridges]
    ends = _branch_ends(sk, df, branches, clusters)
    pairs = _pair_at_junctions(sk, ends, dist, settings)
    hairs = _chain(sk, branches, ends, pairs)
    next_id = max(clusters.values(), default=-1) + 1
    out = []
    for h in hairs:
        parts, next_id = split_at_corners(h, dist, settings=settings, next_id=next_id)
        out.extend(parts)
    return frame_unique_junctions(out, mask.shape[1])


def frame_unique_junctions(hairs: list[Hair], width: int) -> list[Hair]:
    """Name each junction by the lowest raster index (row x ``width`` + col) of its hairs' ends there.

    The counting rule groups hairs whose roots share a junction into one
    follicular unit (``frame._fork_groups``). A frame's hairs come from
    separate traces (the dark shafts, the light shafts sought among them,
    their pieces), each numbering its junctions from 0: hairs of two traces
    with the same number were grouped however far apart. A hair end lies on
    its own trace's mask and the light shafts are sought away from the dark
    ones, so two junctions share a name only if they end hairs on the same
    pixel.

    Parameters
    ----------
    hairs : list of Hair
        One trace's hairs; their ``junctions`` are renamed in place.
    width : int
        Width of the frame (pixels).

    Returns
    -------
    list of Hair
        The same hairs.
    """
    first: dict[int, int] = {}
    for h in hairs:
        for point, j in zip((h.path[0], h.path[-1]), h.junctions):
            if j is not None:
                k = int(round(float(point[0]))) * int(width) + int(round(float(point[1])))
                first[j] = min(first.get(j, k), k)
    for h in hairs:
        h.junctions = [None if j is None else first[j] for j in h.junctions]
    return hairs


def split_at_corners(hair: Hair, dist: np.ndarray, *, settings: Settings,
                     next_id: int) -> tuple[list[Hair], int]:
    """Split a centre line where it turns sharply (a V of two hairs of one unit).

    A hair is a smooth curve; when spur pruning has removed the apex
    junction of a V-shaped pair, the two shafts come out as one path with a
    corner. Each corner turning by more than ``corner_angle_deg`` over a
    span of about two shaft widths becomes a shared ``junction`` end.

    Returns the parts and the next free junction id.
    """
    path = hair.path.astype(float)
    if len(path) < 9:
        return [hair], next_id
    pts = pixels_of(path, dist.shape)
    r = float(np.median(dist[pts[:, 0], pts[:, 1]]))
    gap = int(max(2, round(1.5 * r)))  # skeletons are distorted within ~r of a joint
    span = gap + int(max(4, 2.5 * r))
    even = resample_path(path)  # spans by arc length: on the raw path a slanted run reaches 1.4 times as far
    n = len(even)
    if n <= 2 * span + 2:
        return [hair], next_id
    i = np.arange(span, n - span)
    d1 = even[i - gap] - even[i - span]
    d2 = even[i + span] - even[i + gap]
    cos = (d1 * d2).sum(1) / np.maximum(np.hypot(*d1.T) * np.hypot(*d2.T), 1e-9)
    turn = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    k = int(np.argmax(turn))
    if turn[k] < settings.corner_angle_deg:
        return [hair], next_id
    cut = int(np.argmin(np.hypot(*(path - even[i[k]]).T)))  # the raw point nearest the corner
    if not 0 < cut < len(path) - 1:
        return [hair], next_id
    a = Hair(path[:cut + 1], [hair.end_kinds[0], "junction"], [hair.junctions[0], next_id])
    b = Hair(path[cut:], ["junction", hair.end_kinds[1]], [next_id, hair.junctions[1]])
    next_id += 1
    out = []
    for part in (a, b):
        sub, next_id = split_at_corners(part, dist, settings=settings, next_id=next_id)
        out.extend(sub)
    return out, next_id


def _branch_ends(sk, df, branches, clusters) -> dict[tuple[int, int], int | None]:
    """(branch, end 0|1) -> junction cluster id, or None for a free end."""
    ends = {}
    plist = sk.paths_list()
    for i in branches:
        ids = plist[i]
        for e, node in ((0, ids[0]), (1, ids[-1])):
            ends[(i, e)] = clusters.get(int(node)) if sk.degrees[node] > 2 else None
    return ends


def _pair_at_junctions(sk, ends, dist, settings) -> dict[tuple[int, int], tuple[int, int]]:
    """Pair branch ends at each junction by direction continuity."""
    by_cluster: dict[int, list[tuple[int, int]]] = {}
    for key, c in ends.items():
        if c is not None:
            by_cluster.setdefault(c, []).append(key)
    limit = np.cos(np.deg2rad(settings.crossing_angle_deg))
    pairs = {}
    for members in by_cluster.values():
        dirs = {}
        for (i, e) in members:
            coords = sk.path_coordinates(i).astype(float)
            coords = coords if e == 0 else coords[::-1]
            r = float(dist[tuple(coords[0].astype(int))])
            dirs[(i, e)] = _outward_direction(coords, r)
        cand = []
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                ka, kb = members[a], members[b]
                if ka[0] == kb[0]:
                    continue  # a loop returning to the same junction
                straight = -float(dirs[ka] @ dirs[kb])
                if straight >= limit:
                    cand.append((straight, ka, kb))
        used = set()
        for _, ka, kb in sorted(cand, key=lambda t: t[0], reverse=True):
            if ka in used or kb in used:
                continue
            used.update((ka, kb))
            pairs[ka], pairs[kb] = kb, ka
    return pairs


def _chain(sk, branches, ends, pairs) -> list[Hair]:
    """Walk paired branches into hairs."""
    seen = set()
    hairs = []
    order = sorted(branches, key=lambda i: (pairs.get((i, 0)) is not None) + (pairs.get((i, 1)) is not None))
    for start in order:
        if start in seen:
            continue
        # walk to one extreme of the chain first
        i, e = start, 0
        guard = 0
        while (i, e) in pairs and guard < len(branches):
            j, f = pairs[(i, e)]
            if j == start:
                break
            i, e = j, 1 - f
            guard += 1
        # now (i, e) is an unpaired end; walk forward from it
        pieces, kinds, juncs = [], [], []
        first = (i, e)
        kinds.append("junction" if ends[first] is not None else "free")
        juncs.append(ends[first])
        cur = first
        while True:
            bi, be = cur
            seen.add(bi)
            coords = sk.path_coordinates(bi).astype(float)
            pieces.append(coords if be == 0 else coords[::-1])
            out = (bi, 1 - be)
            nxt = pairs.get(out)
            if nxt is None or nxt[0] in seen:
                kinds.append("junction" if ends[out] is not None else "free")
                juncs.append(ends[out])
                break
            cur = nxt
        hairs.append(Hair(np.vstack(pieces), kinds, juncs))
    return hairs
