"""Where a phantom suite's count falls short, read off the hair mask's connected components.

Usage::

    python benchmarks/phantom_components.py S95 S96 S97 S98 [--workers 2] [--out table.csv]

Each S a folder of ``tricho synth`` frames with their truth. For every frame the
classical darkness map reads (``segmenter`` ``classical``; scenes of uncut long hair
left out, their count is a matter of crossings), the per-frame core runs to its counted
hairs (:func:`pipeline.frame.frame_stages`, :func:`pipeline.frame.counted_hairs`) and
every counted truth hair (emergence in the field, in the frame) and every counted hair
is put in the connected component (8-connected) of the hair mask it lies on: a truth
hair by its root half past the first sixth of its centre line (past the fade at its
emergence), a counted hair by its whole centre line.
The shortfall then splits without matching hairs one to one:

* ``unsegmented``: truth hairs on no component (too faint for the hysteresis);
* ``merged``: components holding two or more truth hairs, counted short or over
  (touching shafts of a unit, crossings);
* ``single``: components holding one truth hair, counted short (why: not traced;
  traced but not kept as a candidate, by the fragment rules, the contrast threshold
  or the dark-frame model's veto; the root end cut by the border or a masked region;
  occluded; the root outside the field; read off the first candidate on it) or over
  (a hair counted twice);
* ``false``: hairs counted on components that hold no truth hair.

A counted hair on no component (none in the runs so far: counted hairs are traced
from the mask) is left out of the ``counted`` column.

Matching hairs one to one (``benchmarks/phantom_misses.py``) calls a hair missed
whenever the counted hair of its unit took another hair's emergence point, which
this reading does not. Writes one row per component (``--out``).
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phantom_misses import counted_targets, frame_image  # noqa: E402

#: Pixel-size bands (µm/px) the summary is split by.
BANDS = (0.0, 4.0, 8.0, np.inf)


def component_of(labels: np.ndarray, path_rc: np.ndarray) -> int:
    """The most frequent non-zero label of ``labels`` under a centre line (row, col; pixels), 0 when none.

    >>> lab = np.zeros((5, 5), int); lab[1:4, 2] = 7
    >>> component_of(lab, np.array([[0.0, 2.0], [1.0, 2.0], [2.0, 2.1], [4.0, 0.0]]))
    7
    >>> component_of(lab, np.array([[0.0, 0.0]]))
    0
    """
    pts = np.asarray(path_rc, float).round().astype(int).reshape(-1, 2)
    pts[:, 0] = pts[:, 0].clip(0, labels.shape[0] - 1)
    pts[:, 1] = pts[:, 1].clip(0, labels.shape[1] - 1)
    found = labels[pts[:, 0], pts[:, 1]]
    found = found[found > 0]
    return int(np.bincount(found).argmax()) if found.size else 0


def root_side(centerline_rc: np.ndarray) -> np.ndarray:
    """A truth centre line's root half (emergence first) past its first sixth: past the fade at the
    emergence, before the tip half."""
    c = np.asarray(centerline_rc, float)
    n = len(c)
    return c[n // 6: max(n // 6 + 1, n // 2)]


def tally(truth: list[int], counted: list[int]) -> pd.DataFrame:
    """Truth and counted hairs per component from the component of each (0: on none).

    Returns one row per component holding either (``label``, ``truth``, ``counted``);
    label 0 holds the truth hairs on no component.

    >>> tally([0, 3, 3, 5], [3, 5, 5, 9]).to_dict("list")
    {'label': [0, 3, 5, 9], 'truth': [1, 2, 1, 0], 'counted': [0, 1, 2, 1]}
    """
    t = pd.Series(truth, dtype=int).value_counts()
    c = pd.Series([k for k in counted if k > 0], dtype=int).value_counts()
    out = pd.concat([t.rename("truth"), c.rename("counted")], axis=1).fillna(0).astype(int)
    out = out.rename_axis("label").reset_index().sort_values("label", ignore_index=True)
    return out[["label", "truth", "counted"]]


def why_short(cands: list) -> str:
    """Why a component with one truth hair counts none, read off the first candidate traced on it (none
    counts there: a counted hair lies on the component its candidate's centre line lies on)."""
    if not cands:
        return "traced, not a candidate"
    x = cands[0]
    return "root cut" if x.cut[x.root] else "occluded" if x.occluded else "root outside field"


def frame_components(truth_path: str) -> pd.DataFrame:
    """:func:`tally` of one phantom frame, with its pixel size and, for single components
    counted short, the reason (empty frame table for frames the darkness map does not read)."""
    import cv2

    from pipeline import frame as F
    from pipeline.imageio import read_image
    from pipeline.settings import Settings

    path = Path(truth_path)
    truth = json.loads(path.read_text())
    if truth["params"].get("uncut_fraction", 0.0) > 0.3:
        return pd.DataFrame()
    img = read_image(frame_image(path))
    um = float(truth["um_per_px"])
    st = F.frame_stages(img, um_per_px=um, settings=Settings())
    if st.used != "classical":
        return pd.DataFrame()
    _, labels = cv2.connectedComponents(st.mask.astype(np.uint8), connectivity=8)
    targets, _ = counted_targets(truth)
    table = tally([component_of(labels, root_side(h["centerline_rc"])) for h in targets],
                  [component_of(labels, x.hair.path) for x in F.counted_hairs(st, um)])
    traced = [component_of(labels, h.path) for h in st.traced]
    cands = [component_of(labels, x.hair.path) for x in st.cands]
    reasons = []
    for r in table.itertuples():
        if r.label > 0 and r.truth == 1 and r.counted == 0:
            on = [x for x, k in zip(st.cands, cands) if k == r.label]
            reasons.append(why_short(on) if r.label in traced else "not traced")
        else:
            reasons.append("")
    return table.assign(frame=path.stem, um_per_px=um, why=reasons)


def summary(d: pd.DataFrame) -> pd.DataFrame:
    """Per pixel-size band: truth and counted hairs and where the difference sits."""
    d = d.assign(band=pd.cut(d["um_per_px"], BANDS, right=False), short=(d["truth"] - d["counted"]).clip(lower=0),
                 over=(d["counted"] - d["truth"]).clip(lower=0))
    comp = d[d["label"] > 0]
    rows = {}
    for band, g in d.groupby("band", observed=True):
        c = comp[comp["band"] == band]
        merged, single = c[c["truth"] >= 2], c[c["truth"] == 1]
        rows[str(band)] = {
            "frames": g["frame"].nunique(), "truth": int(g["truth"].sum()), "counted": int(g["counted"].sum()),
            "unsegmented": int(g.loc[g["label"] == 0, "truth"].sum()),
            "merged_short": int(merged["short"].sum()), "merged_over": int(merged["over"].sum()),
            "single_short": int(single["short"].sum()), "single_over": int(single["over"].sum()),
            "false": int(c.loc[c["truth"] == 0, "counted"].sum())}
    out = pd.DataFrame(rows).T
    out.loc["all"] = out.sum()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suites", nargs="+", help="folders of tricho synth frames with their truth JSON")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", help="CSV of every component (optional)")
    args = ap.parse_args()
    paths = [str(p) for s in args.suites for p in sorted(Path(s).glob("*.json")) if p.name != "manifest.json"]
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        parts = [t for t in pool.map(frame_components, paths, chunksize=4) if len(t)]
    if not parts:
        sys.exit("no frame read by the classical darkness map (or every one an uncut scene): nothing to tally")
    d = pd.concat(parts, ignore_index=True)
    if args.out:
        d.to_csv(args.out, index=False)
    print(summary(d).to_string())
    short = d[(d["label"] > 0) & (d["why"] != "")]
    print("\nsingle components counted short, why:")
    print(short["why"].value_counts().to_string())


if __name__ == "__main__":
    main()
