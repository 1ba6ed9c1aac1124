"""Real frames whose pooled root direction runs against their own hairs' root evidence (no truth needed).

Usage::

    python benchmarks/direction_agreement.py ../shared/data/fdu_val/images [--every 3] [--um-per-px 2.78] [--set KEY=VALUE]

The per-frame core roots every hair in a frame by the frame's pooled
root-to-tip direction when that vote is decisive (``frame._frame_direction``:
scalp hair in one small field points one way). Its voters are hairs rooted
at a fork, each weighing ``Settings.fork_vote``, and every uncut hair, with
the difference of its two ends' root scores (the halo around an opening,
the shaft fading into the skin). Real frames carry no truth for which end
emerges, but a decisive direction that the uncut hairs' summed own evidence
opposes is suspect: the forks turned the frame. In the frames of that kind
looked at (session 53), every root lay at the cut tips.

For every ``--every``-th frame of the folder (sorted by name), the direction
the core oriented the frame by (``Stages.direction``) and, against it, the
own evidence of the uncut hairs that no fork rooted (the core's roots: a
fork the direction overruled counts with its scores): how many agree and
disagree, and their sum. Counted: the frames whose sum is against the
direction, and of those the ones whose own evidence alone would be decisive
the other way (its agreement at least ``Settings.direction_consensus``). A
frame that cannot be read gets a row with its error, and the run goes on.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import frame
from pipeline.imageio import read_image
from pipeline.settings import Settings

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


def frame_votes(cands: list, direction: np.ndarray | None) -> dict:
    """Whether a frame's direction is decisive, the signed sum of its fork-rooted hairs' votes along it
    (+1 each: for it), and its uncut hairs' own evidence along it (score difference, + for it; ``own_size``
    the sum of the votes' sizes)."""
    if direction is None:
        return {"decided": False, "forks_for": 0.0, "own_agree": 0, "own_against": 0, "own_net": 0.0,
                "own_size": 0.0}
    forks, own = 0.0, []
    for c in cands:
        vote = frame.root_vote(c)  # a fork-rooted hair counted as 1 here, whatever its weight in the core
        if vote is None:
            continue
        vote *= float(np.sign(frame._root_to_tip(c.hair.path, 0) @ direction))
        if c.confident:
            forks += vote
        else:
            own.append(vote)
    own = np.asarray(own)
    return {"decided": True, "forks_for": forks, "own_agree": int((own > 0).sum()),
            "own_against": int((own < 0).sum()), "own_net": float(own.sum()), "own_size": float(np.abs(own).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path, help="a folder of real frames")
    ap.add_argument("--every", type=int, default=1, help="take every N-th frame (sorted by name)")
    ap.add_argument("--um-per-px", type=float, default=2.78, help="pixel size of the frames (µm/px)")
    ap.add_argument("--set", dest="set_", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting changed, as for tricho analyze (e.g. fork_vote=1 for the code before session 53)")
    ap.add_argument("--out", type=Path, help="write one row per frame here (CSV)")
    a = ap.parse_args()
    files = sorted(p for p in a.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[::max(1, a.every)]
    if not files:
        sys.exit(f"{a.images} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    settings = Settings.from_overrides(a.set_)
    rows = []
    for path in files:
        try:
            st = frame.frame_stages(read_image(path), um_per_px=a.um_per_px, settings=settings)
        except ValueError as e:  # an unreadable file (ImageReadError) or a frame too small to measure
            rows.append({"image": path.name, "decided": False, "error": str(e)})
            continue
        rows.append({"image": path.name, **frame_votes(st.cands, st.direction), "error": ""})
    t = pd.DataFrame(rows)
    decided = t[t["decided"]]
    against = decided[decided["own_net"] < 0]
    firmly = against[-against["own_net"] >= settings.direction_consensus * against["own_size"]]
    failed = int((t["error"] != "").sum())
    print(f"{len(t)} frames ({failed} unreadable), {len(decided)} with a decisive direction; against their uncut "
          f"hairs' summed own evidence: {len(against)}, of which that evidence alone is decisive the other way: "
          f"{len(firmly)}")
    if len(against):
        print(against.drop(columns="error").to_string(index=False))
    if a.out:
        t.to_csv(a.out, index=False)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
