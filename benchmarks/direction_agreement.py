"""Real frames whose pooled root direction runs against their own hairs' root evidence (no truth needed).

Usage::

    python benchmarks/direction_agreement.py ../shared/data/fdu_val/images [--every 3] [--um-per-px 2.78] [--set KEY=VALUE]

The per-frame core roots every hair in a frame by the frame's pooled
root-to-tip direction when that vote is decisive (``frame._frame_direction``:
scalp hair in one small field points one way). Its voters are hairs rooted
at a fork, each weighing ``Settings.fork_vote``, and every uncut hair, with
the difference of its two ends' root scores (the halo around an opening,
the shaft fading into the skin). Real frames carry no truth for which end
emerges, but a decisive direction that most of the uncut hairs' own
evidence opposes is suspect: the forks alone turned the frame. In the frames
of that kind looked at (session 53), every root lay at the cut tips.

For every ``--every``-th frame of the folder (sorted by name), this prints
whether the direction is decisive and, if so, how many uncut hairs' own
evidence agrees and disagrees with it. Then it counts the frames where the
summed own evidence is against it, and how many of those the forks carried.
The vote is taken again over the hairs as the core rooted them (a fork that
the direction overruled votes with its scores, like any uncut hair).
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
    (+1 each: for it), and its uncut hairs' own evidence along it (score difference, + for it)."""
    if direction is None:
        return {"decided": False, "forks_for": 0.0, "own_agree": 0, "own_against": 0, "own_net": 0.0}
    forks, own = 0.0, []
    for c in cands:
        along = float(np.sign(frame._root_to_tip(c.hair.path, 0) @ direction))
        if c.confident:
            forks += (1.0 if c.root == 0 else -1.0) * along
        elif not any(c.cut):
            own.append(float(c.scores[0] - c.scores[1]) * along)
    own = np.asarray(own)
    return {"decided": True, "forks_for": forks, "own_agree": int((own > 0).sum()),
            "own_against": int((own < 0).sum()), "own_net": float(own.sum())}


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
        image = read_image(path)
        st = frame.frame_stages(getattr(image, "image", image), um_per_px=a.um_per_px, settings=settings)
        direction = frame._frame_direction(st.cands, settings.direction_consensus, settings.fork_vote)
        rows.append({"image": path.name, **frame_votes(st.cands, direction)})
    t = pd.DataFrame(rows)
    decided = t[t["decided"]]
    against = decided[decided["own_net"] < 0]
    print(f"{len(t)} frames, {len(decided)} with a decisive direction; against their own hairs' summed evidence: "
          f"{len(against)}, of which the forks carried {int((against['forks_for'] > 0).sum())}")
    if len(against):
        print(against.to_string(index=False))
    if a.out:
        t.to_csv(a.out, index=False)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
