"""Phantoms against real frames, read by the same tool: are the phantoms as hard, in the same ways?

Usage::

    python benchmarks/realism.py --real ../shared/data/fdu_val/images --um-per-px 2.78 --every 4 \
        --phantoms S95 S96 S97 S98 --max-um 4.5 --out D

Every frame goes through :func:`pipeline.frame.frame_stages` with the
default settings. Only frames read on the darkness map are kept (dark hair:
the light-hair and brightness routes read another map), and of the phantoms
only dark-haired scenes with under 30% uncut hair and no stray long hair,
within ``--min-um``–``--max-um`` µm per pixel (real frames at 70x are about
2.8 µm/px).

Per frame (``D/frames.csv``): traced shafts; shafts whose root counts
(``rooted_inside``, before fused stripes are split); hairs counted after the
split (``counted``); the share of traced ends that are junctions (places
where two traced hairs touch or cross); how many of the shafts whose root
counts are at least 1.2 and 1.6 times the frame's median width, read as
:func:`pipeline.frame.split_fused` reads them (the plain half-maximum width,
``Candidate.rule_width_px``); the counted hairs' median width (µm), vellus
share (``Settings.vellus_max_um``), median length (µm) and share rooted
within 100 µm of the frame's edge; the share of traced shafts cut by the
border or masked skin; and the frame's shaft darkness.

Per traced shaft with both ends free and in view (``D/ends.csv``): how
sharply the darkness (the frame's darkness map over its shaft level) rises
at each end, read along the shaft's direction at the end (the chord over the
centre line's first 1.5 widths of points), averaged over the middle half of
its width, from 4 widths beyond the end to 2.5 widths in: where it has
first risen 20% and 80% of the way from the background beyond the end (3–4
widths out) to the level inside the shaft (``t20``, ``t80``, in shaft widths
from the traced end, positive inwards; ``width_px`` and ``um_per_px`` turn
them into µm). A clipped hair's cut tip is sharp (its ramp is the blur), its
emergence fades into the skin; the ramp at the root end (the end the tool
roots the hair at) against the one at the tip says how long the fade is
beyond the blur. On phantoms ``truth_root`` says which end lies at a truth
emergence point (-1: neither within 1.5 widths).

With ``--labels`` (the real frames' VOC boxes), how tightly hairs lie
together is also read without the tool: the share of hair boxes whose
intersection over union with another box in the frame is over 0.2 and over
0.4, for the labellers' boxes and for boxes drawn around the part in view of
each phantom hair that emerges in the frame (the labellers box hardly any
hair that runs in from outside: 2% of their boxes touch the frame's edge).
The share grows with the number of hairs in a frame, so compare phantoms
rendered at the real frames' density (fdu_val half A: 13.2 boxes a frame;
``tricho synth D --n 30 --seed S --set density_per_cm2=130`` with the
look-alike settings, README "Phantoms").

Prints the means over frames and the median ramps, real beside phantom.
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

#: Where the end profile is read: shaft widths from the traced end, positive into the shaft.
T_WIDTHS = np.round(np.linspace(-4.0, 2.5, 66), 6)
#: Shaft widths into the shaft from which the profile is the shaft's own level.
PLATEAU_FROM = 1.0
#: Shaft widths beyond the end up to which the profile is the background the ramp rises from
#: (beyond a root end: the skin, the halo and the hair under the skin there).
BACKGROUND_TO = -3.0
#: Least rise from the background to the shaft (darkness over the frame's full level) for an end to be read.
MIN_LEVEL = 0.1
#: A counted hair's root this close to the frame's edge (µm) is "near the edge".
EDGE_UM = 100.0


def end_profile(level: np.ndarray, path: np.ndarray, width_px: float, end: int) -> np.ndarray | None:
    """Mean ``level`` across the middle half of the shaft at each of :data:`T_WIDTHS` from one end.

    ``path``: the centre line (K x 2 row, col); ``end``: 0 for its first
    point, 1 for its last. The direction at the end is that of the chord
    over the first 1.5 widths. None when the line is shorter than that.
    """
    from scipy.ndimage import map_coordinates

    p = np.asarray(path, float)
    p = p if end == 0 else p[::-1]
    n = max(2, int(round(1.5 * width_px)))
    if len(p) <= n + 1:
        return None
    d = p[n] - p[0]
    d = d / (np.linalg.norm(d) + 1e-9)
    normal = np.array([-d[1], d[0]])
    across = np.linspace(-0.25 * width_px, 0.25 * width_px, 5)
    pts = (p[0][None, None, :] + (T_WIDTHS * width_px)[:, None, None] * d[None, None, :]
           + across[None, :, None] * normal[None, None, :])
    v = map_coordinates(level, [pts[..., 0].ravel(), pts[..., 1].ravel()], order=1, mode="nearest")
    return v.reshape(len(T_WIDTHS), len(across)).mean(axis=1)


def ramp(profile: np.ndarray) -> tuple[float, float, float]:
    """Where an end's darkness rises from its background to the shaft's level.

    Parameters
    ----------
    profile : ndarray
        The level at each of :data:`T_WIDTHS` (:func:`end_profile`).

    Returns
    -------
    t20, t80 : float
        The first :data:`T_WIDTHS` (shaft widths from the traced end) at
        which the profile has risen 20% and 80% of the way from the
        background (its median up to :data:`BACKGROUND_TO`) to the plateau
        (its median from :data:`PLATEAU_FROM` in). NaN when the rise is under
        :data:`MIN_LEVEL`, or when the 20% point lies in the background
        itself (the profile is at the shaft's level beyond the end).
    rise : float
        Plateau minus background.

    >>> t = T_WIDTHS
    >>> ramp(0.1 + np.clip(t, 0, 1) * 0.8)
    (0.2, 0.8, 0.8)
    """
    prof = np.asarray(profile, float)
    background = float(np.median(prof[T_WIDTHS <= BACKGROUND_TO]))
    rise = float(np.median(prof[T_WIDTHS >= PLATEAU_FROM])) - background
    if rise <= MIN_LEVEL:
        return np.nan, np.nan, rise
    out = []
    for share in (0.2, 0.8):
        above = np.nonzero(prof >= background + share * rise - 1e-9)[0]
        out.append(float(T_WIDTHS[above[0]]) if len(above) else np.nan)
    if out[0] <= BACKGROUND_TO:
        return np.nan, np.nan, rise
    return out[0], out[1], rise


def truth_root_end(path: np.ndarray, emergences: np.ndarray, reach_px: float) -> int:
    """Which end of ``path`` (0 first, 1 last) lies nearer a truth emergence point, -1 when neither is
    within ``reach_px``."""
    if not len(emergences):
        return -1
    p = np.asarray(path, float)
    d = [float(np.min(np.hypot(*(np.asarray(emergences, float) - p[i]).T))) for i in (0, -1)]
    return int(np.argmin(d)) if min(d) < reach_px else -1


def max_box_iou(boxes) -> np.ndarray:
    """For each box ``(x0, y0, x1, y1)``, its largest intersection over union with another box."""
    b = np.asarray(boxes, float).reshape(-1, 4)
    if len(b) < 2:
        return np.zeros(len(b))
    x0, y0 = np.maximum(b[:, None, 0], b[None, :, 0]), np.maximum(b[:, None, 1], b[None, :, 1])
    x1, y1 = np.minimum(b[:, None, 2], b[None, :, 2]), np.minimum(b[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-9)
    np.fill_diagonal(iou, 0.0)
    return iou.max(axis=1)


def label_boxes(xml_path: Path, min_side_px: float = 2.0) -> np.ndarray:
    """The hair boxes ``(x0, y0, x1, y1)`` of one Pascal VOC file as :func:`pipeline.evaluate.read_voc` reads
    them (corners sorted, boxes with a side under ``min_side_px`` dropped)."""
    from pipeline.evaluate import read_voc

    return read_voc(xml_path, min_box_side_px=min_side_px).boxes_xyxy


def truth_boxes(truth: dict) -> np.ndarray:
    """A box per phantom hair emerging in the frame, as a labeller would draw it: around the part of its
    centre line in the frame, widened by half its width, clipped to the frame; sides under 2 px dropped."""
    h, w, um = truth["height_px"], truth["width_px"], float(truth["um_per_px"])
    boxes = []
    for hair in truth["hairs"]:
        er, ec = hair["emergence_rc"]
        if not (hair["in_frame"] and 0 <= er < h and 0 <= ec < w):
            continue  # the labellers box hardly any hair that runs in from outside (2% of their boxes touch the edge)
        line = np.asarray(hair["centerline_rc"], float).reshape(-1, 2)
        line = line[(line[:, 0] >= 0) & (line[:, 0] < h) & (line[:, 1] >= 0) & (line[:, 1] < w)]
        r = 0.5 * float(hair["width_um"]) / um
        box = (max(line[:, 1].min() - r, 0.0), max(line[:, 0].min() - r, 0.0),
               min(line[:, 1].max() + r, float(w)), min(line[:, 0].max() + r, float(h)))
        if box[2] - box[0] >= 2.0 and box[3] - box[1] >= 2.0:  # as label_boxes drops them
            boxes.append(box)
    return np.asarray(boxes, float).reshape(-1, 4)


def box_record(boxes: np.ndarray) -> dict:
    """How many boxes a frame has, and how many overlap another by an IoU over 0.2 and over 0.4."""
    iou = max_box_iou(boxes)
    return {"boxes": len(iou), "boxes_iou_over_0_2": int(np.sum(iou > 0.2)), "boxes_iou_over_0_4": int(np.sum(iou > 0.4))}


def frame_record(stages, counted: list, um: float) -> dict:
    """The per-frame statistics of one frame's stages (see the module docstring)."""
    from pipeline.frame import junction_share

    from pipeline.settings import Settings

    h, w = stages.image.shape[:2]
    inside = stages.inside
    stripes = np.array([c.rule_width_px for c in inside], float)  # the width split_fused compares, as it does
    ratio = stripes / np.median(stripes) if len(stripes) >= 3 else np.zeros(0)
    widths = np.array([c.thickness_px * um for c in counted])  # after fused stripes are split
    lengths = np.array([c.length_px * um for c in counted])
    roots = np.array([c.hair.path[0 if c.root == 0 else -1] for c in counted], float).reshape(-1, 2)
    edge = np.minimum.reduce([roots[:, 0], h - 1 - roots[:, 0], roots[:, 1], w - 1 - roots[:, 1]]) * um
    nan = float("nan")
    return {"um_per_px": um, "traced": len(stages.cands), "rooted_inside": len(inside), "counted": len(counted),
            "junction_share": junction_share(stages.cands),
            "stripes_over_1_2x": int(np.sum(ratio >= 1.2)), "stripes_over_1_6x": int(np.sum(ratio >= 1.6)),
            "stripes_read": int(ratio.size),
            "width_median_um": float(np.median(widths)) if len(widths) else nan,
            "vellus_share": float(np.mean(widths <= Settings().vellus_max_um)) if len(widths) else nan,
            "length_median_um": float(np.median(lengths)) if len(lengths) else nan,
            "root_near_edge_share": float(np.mean(edge < EDGE_UM)) if len(edge) else nan,
            "cut_share": float(np.mean([any(c.cut) for c in stages.cands])) if stages.cands else nan,
            "shaft_darkness": float(stages.contrast.full)}


def end_records(stages, emergences: np.ndarray | None, um: float) -> list[dict]:
    """One row per traced shaft with both ends free and in view, at least 4 px wide and 5 widths long."""
    level = stages.contrast.darkness / max(stages.contrast.full, 1e-6)
    rows = []
    for c in stages.cands:
        w = c.thickness_px
        if w < 4 or any(c.cut) or list(c.hair.end_kinds) != ["free", "free"] or c.length_px < 5 * w:
            continue
        rec = {"width_px": w, "um_per_px": um, "root_end": c.root}
        for e in (0, 1):
            prof = end_profile(level, c.hair.path, w, e)
            if prof is None:
                break
            rec[f"t20_{e}"], rec[f"t80_{e}"], rec[f"level_{e}"] = ramp(prof)
        else:
            if emergences is not None:
                rec["truth_root"] = truth_root_end(c.hair.path, emergences, 1.5 * w)
            rows.append(rec)
    return rows


def read_frame(job: tuple) -> tuple[dict | None, list[dict]]:
    """Run one frame (an image, or a phantom's truth JSON) through the core; None when not on the darkness map.

    ``job``: ``(path, um_per_px, labels)``, ``labels`` a folder of VOC files named as the images (real frames)
    or None."""
    from pipeline.frame import counted_hairs, frame_stages
    from pipeline.imageio import read_image
    from pipeline.settings import Settings

    path, um, labels = Path(job[0]), job[1], job[2] if len(job) > 2 else None
    emergences, boxes = None, None
    if path.suffix == ".json":
        truth = json.loads(path.read_text(encoding="utf-8"))
        um = float(truth["um_per_px"])
        emergences = np.array([h["emergence_rc"] for h in truth["hairs"] if h["in_frame"]], float).reshape(-1, 2)
        boxes = truth_boxes(truth)
        path = path.parent / truth["image"]
    elif labels is not None and (Path(labels) / f"{path.stem}.xml").is_file():
        boxes = label_boxes(Path(labels) / f"{path.stem}.xml")
    stages = frame_stages(read_image(path), um_per_px=um, settings=Settings())
    if stages.contrast.light or stages.contrast.bright:
        return None, []
    rec = {"image": path.name} | frame_record(stages, counted_hairs(stages, um), um)
    if boxes is not None:
        rec |= box_record(boxes)
    return rec, [{"image": path.name} | r for r in end_records(stages, emergences, um)]


def phantom_truths(suites: list[Path], min_um: float, max_um: float) -> list[Path]:
    """Truth JSONs of clipped scenes without long hair, of dark hair, within the pixel-size range."""
    keep = []
    for suite in suites:
        for t in sorted(Path(suite).glob("*.json")):
            d = json.loads(t.read_text(encoding="utf-8"))
            p = d.get("params", {})
            if (d.get("schema", "").startswith("tricho-phantom-truth") and min_um <= d["um_per_px"] <= max_um
                    and p.get("uncut_fraction", 0) < 0.3 and not p.get("n_long_hairs", 0)
                    and p.get("hair_color") in ("black", "dark_brown", "brown")):
                keep.append(t)
    return keep


def real_images(folder: Path, every: int, half: str | None = None) -> list[Path]:
    """Every ``every``-th image of a folder, in name order; of one half of fdu_val's subjects
    (:func:`pipeline.evaluate.subject_half`) when ``half`` is given."""
    from pipeline.evaluate import subject_half
    from pipeline.imageio import IMAGE_EXTENSIONS

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    return [p for p in files if half is None or subject_half(p.stem) == half][::every]


def summary(frames: pd.DataFrame, ends: pd.DataFrame) -> pd.DataFrame:
    """The comparison table, one column per source (``real`` / ``phantom``).

    Per-frame values are means over frames (shares too: a mean of the frames' shares); the
    ``share_of_stripes_*`` and ``share_of_boxes_*`` rows are pooled over all stripes or boxes; the
    ramps (``*_ramp`` in shaft widths, ``*_ramp_um`` in µm, ``root_t20`` / ``root_t80`` in widths from
    the traced end) are medians of the frames' medians; ``ramp_unread_share`` is the share of read shafts
    whose root or tip end gave no ramp (:func:`ramp`); on phantoms, the share of read shafts rooted at
    the end that lies at a truth emergence point."""
    cols = [c for c in frames.columns if c not in ("image", "source")]
    table = frames.groupby("source")[cols].mean().T
    pooled = frames.groupby("source")[["stripes_over_1_2x", "stripes_over_1_6x", "stripes_read"]].sum()
    for k in ("1_2x", "1_6x"):  # pooled over the frames' stripes, as benchmarks/stripe_widths.py reads them
        table.loc[f"share_of_stripes_over_{k}"] = pooled[f"stripes_over_{k}"] / pooled["stripes_read"]
    if "boxes" in frames:  # pooled over the frames' boxes
        sums = frames.groupby("source")[["boxes", "boxes_iou_over_0_2", "boxes_iou_over_0_4"]].sum()
        for k in ("0_2", "0_4"):
            table.loc[f"share_of_boxes_iou_over_{k}"] = sums[f"boxes_iou_over_{k}"] / sums["boxes"]
    table.loc["split_hairs_per_frame"] = (frames["counted"] - frames["rooted_inside"]).groupby(frames["source"]).mean()
    if len(ends):
        unread = ends[["t20_0", "t80_0", "t20_1", "t80_1"]].isna().any(axis=1)
        e = ends[~unread].copy()
        root0 = e["root_end"] == 0
        e["root_ramp"] = np.where(root0, e["t80_0"] - e["t20_0"], e["t80_1"] - e["t20_1"])
        e["tip_ramp"] = np.where(root0, e["t80_1"] - e["t20_1"], e["t80_0"] - e["t20_0"])
        e["root_t20"] = np.where(root0, e["t20_0"], e["t20_1"])
        e["root_t80"] = np.where(root0, e["t80_0"], e["t80_1"])
        um = e["width_px"] * e["um_per_px"] if "um_per_px" in e else np.nan
        e["root_ramp_um"], e["tip_ramp_um"] = e["root_ramp"] * um, e["tip_ramp"] * um
        cols = ["root_ramp", "tip_ramp", "root_ramp_um", "tip_ramp_um", "root_t20", "root_t80"]
        per = e.groupby(["source", "image"])[cols].median()
        table = pd.concat([table, per.groupby("source").median().T,
                           e.groupby("source").size().rename("ends_read").to_frame().T])
        table.loc["ramp_unread_share"] = unread.groupby(ends["source"]).mean()
        if "truth_root" in e:
            known = e[e["truth_root"] >= 0]
            right = (known["truth_root"] == known["root_end"]).groupby(known["source"]).mean()
            table.loc["root_at_truth_emergence_share"] = right
    return table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, help="folder of real frames")
    ap.add_argument("--um-per-px", type=float, default=2.78, help="the real frames' pixel size (fdu_val: 2.78)")
    ap.add_argument("--every", type=int, default=1, help="every N-th real frame")
    ap.add_argument("--labels", type=Path, help="the real frames' VOC boxes, one file per image stem "
                    "(../shared/data/fdu_val/annotations): how often a hair's box overlaps another's")
    ap.add_argument("--half", choices=("A", "B"), help="only this half of fdu_val's subjects (A: the tuning half)")
    ap.add_argument("--phantoms", type=Path, nargs="+", required=True, help="phantom suites (tricho synth)")
    ap.add_argument("--min-um", type=float, default=0.0)
    ap.add_argument("--max-um", type=float, default=4.5)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    for folder in ([a.real] if a.real else []) + ([a.labels] if a.labels else []) + list(a.phantoms):
        if not Path(folder).is_dir():
            ap.error(f"{folder}: no such folder")
    if a.half and not a.real:
        ap.error("--half picks real frames: give --real too")
    jobs = [(str(p), a.um_per_px, a.labels, "real") for p in real_images(a.real, a.every, a.half)] if a.real else []
    jobs += [(str(p), None, None, "phantom") for p in phantom_truths(a.phantoms, a.min_um, a.max_um)]
    frames, ends = [], []
    with ProcessPoolExecutor(a.workers) as ex:
        for (*_, source), (rec, rows) in zip(jobs, ex.map(read_frame, [j[:3] for j in jobs])):
            if rec is not None:
                frames.append(rec | {"source": source})
                ends += [r | {"source": source} for r in rows]
    a.out.mkdir(parents=True, exist_ok=True)
    if not frames:
        raise SystemExit(f"none of the {len(jobs)} frames read is on the darkness map: no dark-haired phantom within "
                         f"{a.min_um}-{a.max_um} um/px, or no real frame given")
    frames, ends = pd.DataFrame(frames), pd.DataFrame(ends)
    frames.to_csv(a.out / "frames.csv", index=False)
    ends.to_csv(a.out / "ends.csv", index=False)
    print(f"{len(jobs)} frames read, {len(frames)} on the darkness map")
    with pd.option_context("display.width", 160):
        print(summary(frames, ends).round(3).to_string())


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
