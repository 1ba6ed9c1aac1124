"""At which stage of the per-frame core each missed phantom hair is lost, and why fused stripes stay one hair.

Usage (frames from ``tricho synth`` or ``benchmarks/phantom_suite.py``; seeds below 1000 for tuning)::

    tricho synth /tmp/tune91 --n 30 --seed 91
    python benchmarks/phantom_stages.py /tmp/tune91 [/tmp/tune92 ...] [--out /tmp/stages]

Every frame goes through :func:`pipeline.frame.frame_stages` and
:func:`pipeline.frame.measure_frame` with default settings. Each truth hair
counted by the density rule and inside the frame is matched to the counted
hairs exactly as ``tricho evaluate`` does; a missed one is put at the first
stage that lost it, judged on the part of its centre line inside the field (a
hair that runs out of the frame or under a header strip on what is left; for
``not segmented`` also on its shaft's pixels there):

* ``masked``: less than 80% of its centre line is skin (overlay, text, glare mask);
* ``not segmented``: less than half of its centre line is in the hair mask, and
  less than half of its shaft's pixels in the field are in it (a wide shaft
  running out just beyond the border leaves a segmented sliver whose centre
  line lies outside; :func:`footprint_share`);
* ``not traced``: in the mask, but no traced centre line runs along it
  (touching shafts whose one skeleton runs between them, or a blob);
* ``dropped``: traced, but removed as a fragment (too short, too faint);
* ``not counted``: measured, but its root end is cut by the border or a
  non-skin region, hidden, or outside the field (the counting rule);
* ``counted as a unit-mate``: a counted stripe runs along it, but the count
  went to another hair of the stripe rooted at its unit's opening (fused
  hairs of one unit not split);
* ``joined to another hair``: the same, but no counted stripe along it is
  rooted at its unit's opening: its shaft was traced on into a hair of
  another unit (one's root on the other's tip or shaft, or a shallow
  crossing) and rooted there;
* ``root off the shaft``: a counted hair near it matched nothing (its
  emergence point was placed off the truth shaft).

"Runs along" means at least 60% of the truth centre line within the traced
shaft's radius + 2 px (or half the truth width + 3 px for the tracing test).

A table of the grey and white hairs of dark-hair frames follows: found or
missed, by whether ``Settings.dark_frame_model`` (the map the light shafts
among dark ones are searched on) sees them — its median probability along
the hair at least 0.5 — and by the frame's pixel size.

``--oracle-mask`` hands the core each frame's truth hair mask (every
hair's centre line drawn at its width) in place of its own segmentation:
what is lost then is lost after segmentation (tracing, splitting, the
counting rule). The light-shaft search among dark shafts does not run then
(the mask holds the light shafts already).

Each truth hair also gets ``emergence_covered``: another unit's shaft
touches its emergence point (their centre lines closer than the two half
widths + 1 px), as when a clipped hair's tip lies on the next opening in a
dense frame. A table splits the stages by it.

The counted hairs no truth hair matched (the count's excess) are sorted by
what lies under their centre line (at least 60% of it within a truth hair's
half width + 3 px, or 20-60% for ``partly on a hair``):

* ``piece of a found hair``: a truth hair another counted hair matched, which
  this one runs beside for less than half its length (a shaft broken at a
  junction, both pieces counted);
* ``twin of a found hair``: the same, running beside it (one shaft traced
  twice, or a unit-mate rooted on the other's shaft);
* ``on a missed hair``: a counted truth hair nothing matched (its emergence
  point was placed off: wrong end, or moved along a fused stripe);
* ``on an uncounted hair``: a truth hair the density rule does not count
  (its emergence lies outside the field);
* ``partly on a hair`` and ``on skin``.

They are split by what chose their root end (``Candidate.root_evidence``).

The last table takes every counted stripe before fused stripes are split
(``Stages.inside``) and gives how many truth hairs run along it against its
width relative to the frame's median stripe width — the quantity
``Settings.fused_ratio`` splits on. Long-hair scenes are left out
(``--with-long-hair`` keeps them). Writes ``OUT/stages.csv`` (one row per
truth hair), ``OUT/stripes.csv`` (one row per counted stripe) and
``OUT/extras.csv`` (one row per unmatched counted hair) when ``--out`` is given.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phantom_misses import DARK, counted_targets, frame_image  # noqa: E402
ORDER = ["found", "masked", "not segmented", "not traced", "dropped", "not counted", "counted as a unit-mate",
         "joined to another hair", "root off the shaft"]


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (px) from every second point of line ``a`` to the nearest of every second point of line ``b``."""
    p, q = np.asarray(a, float)[::2], np.asarray(b, float)[::2]
    return np.min(np.linalg.norm(p[:, None, :] - q[None, :, :], axis=2), axis=1)


def _along(truth_line: np.ndarray, path: np.ndarray, reach: float) -> bool:
    """At least 60% of the truth centre line within ``reach`` px of a traced path."""
    return bool(np.mean(distances(truth_line, path) <= reach) >= 0.6)


def _samples(line: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rc = np.clip(np.round(line).astype(int), 0, np.array(shape) - 1)
    return rc[:, 0], rc[:, 1]


#: Width (µm) of the border band the interior statistics of ``tricho evaluate`` leave out.
BORDER_BAND_UM = 300.0


def border_distance(points, field: tuple[float, float, float, float]) -> np.ndarray:
    """Distance (px) of each point (row, col) to the nearest edge of the field ``(row0, row1, col0, col1)``;
    0 or less outside it."""
    p = np.atleast_2d(np.asarray(points, float))
    row0, row1, col0, col1 = field
    return np.minimum.reduce([p[:, 0] - row0, row1 - p[:, 0], p[:, 1] - col0, col1 - p[:, 1]])


def truth_mask(truth: dict) -> np.ndarray:
    """The frame's hair mask drawn from its truth: every hair's centre line at its width (float32, 0 or 1)."""
    um = float(truth["um_per_px"])
    mask = np.zeros((int(truth["height_px"]), int(truth["width_px"])), np.uint8)
    for h in truth["hairs"]:
        draw_shaft(mask, h["centerline_rc"], h["width_um"] / um)
    return mask.astype(np.float32)


def draw_shaft(canvas: np.ndarray, line, width_px: float, origin: tuple[int, int] = (0, 0)) -> None:
    """Draw a centre line (row, col) at its width (px) into a uint8 ``canvas`` with 1, at quarter-pixel
    precision; ``origin`` is the (row, col) of the canvas's first pixel in the line's frame."""
    import cv2

    rc = np.asarray(line, float) - np.asarray(origin, float)
    cv2.polylines(canvas, [np.round(rc[:, ::-1] * 4).astype(np.int32)], False, 1,  # (x, y), 2 bits
                  max(1, round(width_px)), cv2.LINE_8, 2)


def emergence_covered(targets: list[dict], hairs: list[dict], um_per_px: float) -> np.ndarray:
    """Per target: does another unit's shaft touch its emergence point (centre lines closer than the two
    half widths + 1 px)? ``hairs``: every truth hair of the frame."""
    from scipy.spatial import cKDTree

    lines = [np.asarray(h["centerline_rc"], float) for h in hairs]
    if not lines:
        return np.zeros(len(targets), bool)
    points = np.vstack(lines)
    owner = np.concatenate([np.full(len(line), i) for i, line in enumerate(lines)])
    half = np.array([h["width_um"] / um_per_px / 2 for h in hairs])
    tree = cKDTree(points)
    out = np.zeros(len(targets), bool)
    for j, t in enumerate(targets):
        e, own = np.asarray(t["emergence_rc"], float), t["width_um"] / um_per_px / 2
        for k in tree.query_ball_point(e, own + half.max() + 1):
            o = hairs[owner[k]]
            if o["unit_id"] != t["unit_id"] and np.hypot(*(points[k] - e)) <= own + half[owner[k]] + 1:
                out[j] = True
                break
    return out


def extra_kind(path: np.ndarray, truth: dict, targets: list[dict], found: set[int], matched_paths: dict[int, np.ndarray]
               ) -> str:
    """What lies under an unmatched counted hair's centre line (see the module doc)."""
    um = float(truth["um_per_px"])
    best, cover = None, 0.0
    for h in truth["hairs"]:
        share = float(np.mean(distances(path, h["centerline_rc"]) <= 0.5 * h["width_um"] / um + 3))
        if share > cover:
            best, cover = h, share
    if cover < 0.6:
        return "partly on a hair" if cover >= 0.2 else "on skin"
    index = next((j for j, t in enumerate(targets) if t["hair_id"] == best["hair_id"]), None)
    if index is None:
        return "on an uncounted hair"
    if index not in found:
        return "on a missed hair"
    beside = float(np.mean(distances(path, matched_paths[index]) <= 0.5 * best["width_um"] / um + 1))
    return "twin of a found hair" if beside >= 0.5 else "piece of a found hair"


def frame_tables(truth_path: Path, oracle: bool = False
                 ) -> tuple[pd.DataFrame, pd.DataFrame, dict, pd.DataFrame]:
    """Per truth hair: found or the stage that lost it; per counted stripe: truth hairs along it and width
    ratio; the frame's count; per unmatched counted hair: what lies under it and what rooted it.

    ``oracle``: the core reads the truth's own hair mask (:func:`truth_mask`) instead of segmenting the frame."""
    from pipeline.evaluate import EvaluationSettings, match_phantom_frame
    from pipeline.frame import counted_hairs, frame_stages, measure_stages
    from pipeline.imageio import read_image
    from pipeline.settings import Settings

    truth = json.loads(truth_path.read_text())
    um = float(truth["um_per_px"])
    image = read_image(frame_image(truth_path))
    stages = frame_stages(image, um_per_px=um, settings=Settings(), probability=truth_mask(truth) if oracle else None)
    result = measure_stages(stages, um_per_px=um)
    targets, field = counted_targets(truth)
    pairs, kept = match_phantom_frame(targets, result.hairs, um_per_px=um, field_rc=field,
                                      settings=EvaluationSettings())
    found = {j for _, j, _ in pairs}
    matched_pred = {int(kept[i]) for i, _, _ in pairs}
    unmatched = result.hairs[["row", "col"]].to_numpy(float)[
        [k for k in range(len(result.hairs)) if k not in matched_pred]]
    counted = {id(c) for c in stages.inside}
    seen = _model_view(stages, um, targets)
    covered = emergence_covered(targets, truth["hairs"], um)
    openings: dict = {}  # each unit's emergence points
    for t in targets:
        openings.setdefault(t.get("unit_id"), []).append(t["emergence_rc"])
    rows = []
    for j, h in enumerate(targets):
        line, width_px = h["centerline_rc"], h["width_um"] / um
        stage = "found" if j in found else _lost_at(visible_part(line, field), width_px, stages, unmatched, counted,
                                                    footprint_share(line, width_px, stages.mask, field),
                                                    np.array(openings[h.get("unit_id")], float))
        rows.append({"frame": truth_path.stem, "hair_colour": h["color"], "width_um": h["width_um"], "stage": stage,
                     "um_per_px": um, "model_prob": seen[j], "emergence_covered": bool(covered[j]),
                     "border_um": float(border_distance(h["emergence_rc"], field)[0]) * um,
                     "leaves_field": border_distance(line, field).min() <= 0.0})
    read = counted_hairs(stages, um)
    matched_paths = {j: result.paths[int(kept[i])] for i, j, _ in pairs}
    extras = [{"frame": truth_path.stem, "kind": extra_kind(result.paths[k], truth, targets, found, matched_paths),
               "root_evidence": read[k].root_evidence, "thickness_um": float(result.hairs["thickness_um"].iloc[k]),
               "border_um": float(border_distance(result.hairs[["row", "col"]].to_numpy(float)[k], field)[0]) * um}
              for k in range(len(result.hairs)) if k not in matched_pred]
    stripes = []
    if len(stages.inside) >= 3:
        typical = float(np.median([c.thickness_px for c in stages.inside]))
        for c in stages.inside:
            n_true = sum(_along(h["centerline_rc"], c.hair.path, c.radius_px + 2) for h in targets)
            stripes.append({"frame": truth_path.stem, "truth_hairs_along": n_true,
                            "width_ratio": c.thickness_px / typical if typical > 0 else np.nan, "lobes": c.lobes})
    hair = truth["params"]["hair_color"]
    kind = "dark-hair frame" if hair in DARK else "light-hair frame"
    count = {"frame": truth_path.stem, "frame_kind": kind, "truth": int(truth["count_in_field"]),
             "read": len(result.hairs)}
    return (pd.DataFrame(rows).assign(frame_kind=kind),
            pd.DataFrame(stripes, columns=["frame", "truth_hairs_along", "width_ratio", "lobes"]).assign(frame_kind=kind),
            count,
            pd.DataFrame(extras, columns=["frame", "kind", "root_evidence", "thickness_um", "border_um"]).assign(frame_kind=kind))


def _model_view(stages, um: float, targets: list[dict]) -> np.ndarray:
    """Median probability of ``Settings.dark_frame_model`` along each grey or white truth hair of a frame
    read on the darkness map (the map its light shafts among dark ones are searched on); NaN elsewhere."""
    from pipeline.frame import HairMap, light_shaft_map

    out = np.full(len(targets), np.nan)
    light = [j for j, h in enumerate(targets) if h["color"] in ("grey", "white")]
    if not light or stages.used != "classical":
        return out
    hm = HairMap(stages.image, stages.valid, stages.field_rows, stages.contrast, stages.prob, stages.tips,
                 stages.used, stages.settings)  # the frame's map as the core routed it, not computed again
    prob = light_shaft_map(hm, um_per_px=um)
    if prob is None:
        return out
    for j in light:
        out[j] = float(np.median(prob[_samples(targets[j]["centerline_rc"], prob.shape)]))
    return out


def visible_part(line: np.ndarray, field: tuple[float, float, float, float]) -> np.ndarray:
    """The points of a truth centre line inside the field (at least its first point, the emergence)."""
    inside = border_distance(line, field) > 0
    return line[inside] if inside.sum() >= 2 else line[:1]


def footprint_share(line: np.ndarray, width_px: float, mask: np.ndarray,
                    field: tuple[float, float, float, float]) -> float:
    """Share of a truth shaft's pixels inside the field (its whole centre line drawn at its width) that
    ``mask`` holds; NaN when none lie inside.

    A wide shaft that emerges near the border and runs out of the field just beyond it leaves a sliver
    of itself in the frame while its centre line inside is only the stretch past the emergence point:
    the centre line alone would call a sliver the core segmented "not segmented".
    """
    line = np.asarray(line, float)
    pad = round(width_px) + 2
    row0, row1, col0, col1 = (int(round(v)) for v in field)  # the field within the frame, cut to the shaft's box
    r0 = max(row0, 0, int(np.floor(line[:, 0].min())) - pad)
    r1 = min(row1, mask.shape[0], int(np.ceil(line[:, 0].max())) + pad + 1)
    c0 = max(col0, 0, int(np.floor(line[:, 1].min())) - pad)
    c1 = min(col1, mask.shape[1], int(np.ceil(line[:, 1].max())) + pad + 1)
    if r1 <= r0 or c1 <= c0:
        return float("nan")
    canvas = np.zeros((r1 - r0, c1 - c0), np.uint8)
    draw_shaft(canvas, line, width_px, origin=(r0, c0))
    foot = canvas.astype(bool)
    return float(np.asarray(mask, bool)[r0:r1, c0:c1][foot].mean()) if foot.any() else float("nan")


def _lost_at(line: np.ndarray, width_px: float, stages, unmatched: np.ndarray, counted: set[int],
             footprint: float = float("nan"), openings: np.ndarray | None = None) -> str:
    """The first stage of the core that lost a missed truth hair (see the module doc); ``line`` is the
    part of its centre line inside the field (:func:`visible_part`), ``footprint`` the share of its
    shaft's pixels there in the hair mask (:func:`footprint_share`), which counts as segmented too;
    ``openings`` the emergence points (row, col) of its unit's hairs, itself included (None: every
    counted stripe along it is taken for a unit-mate's)."""
    r, c = _samples(line, stages.mask.shape)
    if stages.valid[r, c].mean() < 0.8:
        return "masked"
    if stages.mask[r, c].mean() < 0.5 and not footprint >= 0.5:
        return "not segmented"
    reach = max(6.0, 0.5 * width_px + 3)
    if not any(_along(line, t.path, reach) for t in stages.traced):
        return "not traced"
    along = [c for c in stages.cands if _along(line, c.hair.path, max(reach, c.radius_px + 2))]
    if not along:
        return "dropped"
    if not any(id(c) in counted for c in along):
        return "not counted"
    if len(unmatched) and np.min(np.linalg.norm(line[:, None, :] - unmatched[None], axis=2)) <= 3 * reach:
        return "root off the shaft"
    if openings is not None and not any(_rooted_near(c, openings, 3 * reach) for c in along if id(c) in counted):
        return "joined to another hair"
    return "counted as a unit-mate"


def _rooted_near(cand, points: np.ndarray, reach: float) -> bool:
    """Whether a counted candidate's root (its emergence point, else its root end) lies within ``reach``
    px of any of ``points`` (row, col)."""
    root = cand.emergence if cand.emergence is not None else cand.hair.path[0 if cand.root == 0 else -1]
    d = np.hypot(*(np.asarray(points, float) - np.asarray(root, float)).T)
    return bool(np.min(d) <= reach) if d.size else False


def _print_light_among_dark(hairs: pd.DataFrame) -> None:
    """Grey and white hairs of dark-hair frames: found or not, by whether the dark-frame model sees them
    (median probability along the hair at least 0.5) and the frame's pixel size."""
    g = hairs[(hairs["frame_kind"] == "dark-hair frame") & hairs["model_prob"].notna()]
    if g.empty:
        return
    table = pd.crosstab([np.where(g["model_prob"] >= 0.5, "model sees it", "model does not"),
                         pd.cut(g["um_per_px"], [0, 5, 8, np.inf], labels=["< 5 um/px", "5-8 um/px", ">= 8 um/px"])],
                        g["stage"] == "found", rownames=["dark_frame_model", "pixel size"],
                        colnames=["hair"]).rename(columns={True: "found", False: "missed"})
    print(f"Grey and white hairs among dark ones ({len(g)}; dark_frame_model's median probability along each):")
    print(table.to_string(), "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="folders of phantom frames with their truth JSON")
    ap.add_argument("--out", type=Path, help="write stages.csv and stripes.csv here")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--with-long-hair", action="store_true", help="keep scenes with uncut long hair")
    ap.add_argument("--oracle-mask", action="store_true",
                    help="read each frame's truth hair mask instead of segmenting it (what the later stages lose)")
    a = ap.parse_args()
    paths = []
    for folder in a.folders:
        for p in sorted(folder.rglob("*.json")):
            t = json.loads(p.read_text())
            if "hairs" in t and (a.with_long_hair or (t["params"].get("uncut_fraction", 0) == 0
                                                       and t["params"].get("n_long_hairs", 0) == 0)):
                paths.append(p)
    with ProcessPoolExecutor(max_workers=a.workers) as pool:
        parts = list(pool.map(functools.partial(frame_tables, oracle=a.oracle_mask), paths))
    hairs = pd.concat([p[0] for p in parts], ignore_index=True)
    stripes = pd.concat([p[1] for p in parts], ignore_index=True)
    counts = pd.DataFrame([p[2] for p in parts])
    extras = pd.concat([p[3] for p in parts], ignore_index=True)
    counts["ape"] = 100 * (counts["read"] - counts["truth"]).abs() / counts["truth"].clip(lower=1)
    print(f"{len(paths)} frames, {len(hairs)} truth hairs; count MAPE {counts['ape'].mean():.2f}% (dark-hair frames "
          f"{counts.loc[counts.frame_kind == 'dark-hair frame', 'ape'].mean():.2f}%, light-hair frames "
          f"{counts.loc[counts.frame_kind == 'light-hair frame', 'ape'].mean():.2f}%), bias "
          f"{(counts['read'] - counts['truth']).mean():+.2f} hairs\n")
    share = pd.crosstab(hairs["frame_kind"], hairs["stage"], normalize="index")
    print("Where the truth hairs went (share of each kind's hairs):")
    print(share.reindex(columns=[c for c in ORDER if c in share.columns]).round(3).to_string(), "\n")
    covered = pd.crosstab([hairs["frame_kind"], hairs["emergence_covered"]], hairs["stage"])
    print("By whether another unit's shaft touches the hair's emergence point (hairs):")
    print(covered.reindex(columns=[c for c in ORDER if c in covered.columns]).to_string(), "\n")
    band = np.where(hairs["border_um"] < BORDER_BAND_UM, f"< {BORDER_BAND_UM:.0f} um from the border", "interior")
    by_band = pd.crosstab([hairs["frame_kind"], band, hairs["leaves_field"]], hairs["stage"],
                          rownames=["frame_kind", "emergence", "leaves the field"])
    print("By where the hair emerges and whether its shaft leaves the field (hairs):")
    print(by_band.reindex(columns=[c for c in ORDER if c in by_band.columns]).to_string(), "\n")
    _print_light_among_dark(hairs)
    print(f"Counted hairs no truth hair matched ({len(extras)}; the count's excess): what lies under them (rows)"
          " by what chose their root end (columns):")
    print(pd.crosstab([extras["frame_kind"], extras["kind"]], extras["root_evidence"], margins=True).to_string(), "\n")
    near = np.where(extras["border_um"] < BORDER_BAND_UM, "border band", "interior")
    print("The same by where their emergence point was placed:")
    print(pd.crosstab([extras["frame_kind"], extras["kind"]], near, margins=True).to_string(), "\n")
    dark = stripes[stripes["frame_kind"] == "dark-hair frame"]
    bins = pd.cut(dark["width_ratio"], [0, 0.8, 1.2, 1.6, 2.0, 2.5, np.inf])
    print("Counted stripes of dark-hair frames before the fused split: truth hairs along them (rows)"
          " by width / frame median (columns):")
    print(pd.crosstab(dark["truth_hairs_along"].clip(upper=4), bins).to_string())
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        hairs.to_csv(a.out / "stages.csv", index=False)
        stripes.to_csv(a.out / "stripes.csv", index=False)
        extras.to_csv(a.out / "extras.csv", index=False)
        print(f"\nwrote stages.csv, stripes.csv and extras.csv to {a.out}")


if __name__ == "__main__":
    main()
