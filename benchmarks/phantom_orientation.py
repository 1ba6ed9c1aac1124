"""Which end of each traced phantom hair the core takes as its root, against the truth, by the evidence used.

Usage (frames from ``tricho synth``; seeds below 1000 for tuning)::

    tricho synth /tmp/tune97 --n 48 --seed 97
    python benchmarks/phantom_orientation.py /tmp/tune97 [/tmp/tune98 ...] [--out /tmp/orient.csv]

Every frame goes through :func:`pipeline.frame.frame_stages` with default
settings. Each traced candidate that runs along a truth hair (more than 60% of
its centre line within its radius + 3 px of the truth centre line; the
closest such hair) is *right* when its root end lies on the truth emergence
side (the candidate's root-to-tip direction agrees with the truth hair's
emergence-to-tip direction). The evidence that chose the root
(``Candidate.root_evidence``, set by :func:`pipeline.frame._orient`):

* ``fork``: the root end is a junction taken as the V of one unit's opening;
* ``follow``: the hair runs through another's fork and takes its direction;
* ``direction``: the frame's pooled root-to-tip direction;
* ``cut``: one end is cut by the border, its visible end's score decides;
* ``own``: its own two ends' root scores (halo, fading).

Prints the right share per evidence kind and whether a border cuts the hair
(which is where the root decides the count: a root at the cut end is not
counted), then the frames with the most wrong roots. Long-hair scenes are
left out. Only the root's side is judged, not how far the emergence point is
from the truth (``tricho evaluate`` reports that as ``root_end``).
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
from phantom_misses import frame_image  # noqa: E402
from phantom_stages import distances  # noqa: E402


def _along_best(path: np.ndarray, reach: float, lines: list[np.ndarray]) -> int | None:
    """Index of the truth centre line the traced ``path`` runs along (closest in mean distance), or None."""
    best, best_d = None, np.inf
    for k, line in enumerate(lines):
        d = distances(path, line)
        if np.mean(d <= reach) > 0.6 and d.mean() < best_d:
            best, best_d = k, float(d.mean())
    return best


def frame_rows(truth_path: Path) -> list[dict]:
    """One row per traced candidate of one frame that runs along a truth hair."""
    from pipeline.frame import frame_stages
    from pipeline.imageio import read_image
    from pipeline.settings import Settings

    truth = json.loads(truth_path.read_text())
    p = truth["params"]
    if p["n_long_hairs"] > 0 and p["uncut_fraction"] > 0.5:
        return []
    stages = frame_stages(read_image(frame_image(truth_path)), um_per_px=float(truth["um_per_px"]),
                          settings=Settings())
    lines = [np.asarray(h["centerline_rc"], float) for h in truth["hairs"]]
    counted = {id(c) for c in stages.inside}
    rows = []
    for c in stages.cands:
        k = _along_best(c.hair.path, c.radius_px + 3, lines)
        if k is None:
            continue
        truth_axis = lines[k][-1] - np.asarray(truth["hairs"][k]["emergence_rc"], float)
        path = c.hair.path
        root_to_tip = path[-1] - path[0] if c.root == 0 else path[0] - path[-1]
        rows.append({"frame": truth_path.stem, "evidence": c.root_evidence, "cut": any(c.cut),
                     "counted": id(c) in counted, "right": bool(root_to_tip @ truth_axis > 0)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="folders of phantom frames with their truth JSON")
    ap.add_argument("--out", type=Path, help="write one row per judged hair here (CSV)")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    paths = [p for f in a.folders for p in sorted(f.glob("*.json"))]
    with ProcessPoolExecutor(a.workers) as ex:
        table = pd.DataFrame([r for rows in ex.map(frame_rows, paths) for r in rows],
                             columns=["frame", "evidence", "cut", "counted", "right"])
    if a.out:
        table.to_csv(a.out, index=False)
    if table.empty:
        print("no traced hair runs along a truth hair")
        return
    by = table.groupby(["evidence", "cut"]).right.agg(hairs="size", right_share="mean")
    print(f"{len(table)} traced hairs along truth hairs in {table.frame.nunique()} frames; "
          f"root on the emergence side: {table.right.mean():.3f}\n")
    print(by.round(3).to_string(), "\n")
    worst = table.groupby("frame").right.agg(hairs="size", wrong=lambda s: int((~s).sum()))
    print("Frames with the most wrong roots:")
    print(worst.sort_values("wrong", ascending=False).head(10).to_string())


if __name__ == "__main__":
    main()
