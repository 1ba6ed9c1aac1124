"""What the other visit's map shows under each gained, lost and re-examined hair of one simulated course.

Usage (after ``benchmarks/course_response.py`` has run into OUT)::

    python benchmarks/course_flip_evidence.py OUT SEED COURSE     # e.g. /tmp/course_tune 2 stable

For every gained or lost hair of the course's registered field pairs (and
every re-examined one) it samples, along the hair's root half as
:func:`pipeline.register.recheck_unmatched` does: ``own``, the hair's
probability in its own frame; ``other``, the other frame's evidence (its
map outside the hairs it counted, as the re-examination reads it); and
``other_raw``, the other frame's map with its counted hairs left in. With
the truth verdict of ``benchmarks/course_hairs.py`` (flip, true change,
false hair, right recheck) it prints their quartiles. A flip with a high
``other_raw`` and no ``other`` is a shaft the other visit counted and
paired with another hair. Darkness-map values only (not the light-shaft
maps).

It also finds the other visit's counted hair whose stripe the hair's root
half lies on (``cover``: mean distance of the mapped root half to its
root-to-far-end segment at most its half width + 3 px) and, when that hair
is paired with a hair of this visit (``partner``), the widths: a stripe of
the other visit that holds this hair and its partner fused is wider than
the partner alone by about this hair's width (``excess`` = (cover -
partner) / own width), a stripe whose unit-mate truly left or joined is
not. Several seeds and courses at once: ``--seeds A:B`` with ``--course
all``. Writes OUT/response_classical/flip_evidence_SEED_COURSE.csv.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_hairs import pair_rows  # noqa: E402
from course_response import CMP_TAG_HELP, COURSES  # noqa: E402


def _cover(there: np.ndarray, other_h: pd.DataFrame, um: float) -> tuple[int, float]:
    """Index of the other visit's hair whose stripe holds the points ``there`` (n, 2), -1 if none; its distance."""
    from pipeline.register import _far_end, points_to_segment

    if not len(other_h):
        return -1, np.nan
    root = other_h[["row", "col"]].to_numpy(float)
    far = _far_end(other_h, root, None)
    half = other_h["thickness_um"].to_numpy(float) / um / 2
    dist = np.array([points_to_segment(there, a, b) for a, b in zip(root, far)])
    j = int(np.nanargmin(dist))
    return (j, float(dist[j])) if dist[j] <= half[j] + 3 else (-1, float(dist[j]))


def course_rows(out: Path, seed: int, course: str, cmp_tag: str = "classical") -> pd.DataFrame:
    """One row per gained, lost or re-examined hair of one simulated course (module doc)."""
    from pipeline import register
    from pipeline.course_io import _probability_cache, run_settings
    from pipeline.imageio import read_image
    from pipeline.register import _evidence, _root_half, _sample, apply_rc, invert

    s = out / f"seed_{seed}"
    folder, run, cmp = s / course, s / f"{course}_run_classical", s / f"{course}_cmp_{cmp_tag}"
    verdicts = pair_rows(folder, run, cmp)
    matches = pd.read_csv(cmp / "matches.csv")
    by = {k: g.reset_index(drop=True) for k, g in pd.read_csv(run / "hairs.csv").groupby("image")}
    prob = _probability_cache(run_settings(run))
    rows = []
    for (ref, img), m in matches.groupby(["reference_image", "image"]):
        fixed, moving = read_image(folder / ref), read_image(folder / img)
        um = float(json.loads((folder / ref).with_suffix(".json").read_text())["um_per_px"])
        reg = register.register_frames(fixed, moving)
        pf, pm = prob(ref, fixed, um), prob(img, moving, um)
        v = verdicts[(verdicts.reference_image == ref) & (verdicts.image == img)].reset_index(drop=True)
        m = m.reset_index(drop=True)
        persisting = m[m.status == "persisting"]
        partner_of = {"moving": dict(zip(persisting.fixed_index, persisting.moving_index)),
                      "fixed": dict(zip(persisting.moving_index, persisting.fixed_index))}
        for k, r in m.iterrows():
            if not (r.status in ("gained", "lost") or r.rechecked):
                continue
            if r.moving_index >= 0 and (r.status == "gained" or r.fixed_index < 0):
                h, own_p, other_p, other_h, own_h, to_other = (by[img].iloc[[int(r.moving_index)]], pm, pf, by[ref],
                                                                by[img], reg.matrix)
                partners = partner_of["moving"]
            else:
                h, own_p, other_p, other_h, own_h, to_other = (by[ref].iloc[[int(r.fixed_index)]], pf, pm, by[img],
                                                                by[ref], invert(reg.matrix))
                partners = partner_of["fixed"]
            pts = _root_half(h)
            there = apply_rc(to_other, pts.reshape(-1, 2)).reshape(pts.shape)
            ev = _evidence(other_p, other_h, um_per_px=um, tolerance_px=2)
            j, dist = _cover(there[0], other_h, um)
            partner = int(partners.get(j, -1)) if j >= 0 else -1
            w_own = float(h["thickness_um"].iloc[0])
            w_cover = float(other_h["thickness_um"].iloc[j]) if j >= 0 else np.nan
            w_partner = float(own_h["thickness_um"].iloc[partner]) if partner >= 0 else np.nan
            rows.append(dict(seed=seed, course=course, image=img, status=r.status, verdict=v.verdict[k],
                             own=_sample(own_p, pts)[0], other=_sample(ev, there)[0],
                             other_raw=_sample(other_p, there)[0], cover=j, cover_dist_px=dist,
                             partner=partner, w_own_um=w_own, w_cover_um=w_cover, w_partner_um=w_partner,
                             excess=(w_cover - w_partner) / w_own if w_own > 0 else np.nan))
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("seed", nargs="?", type=int)
    ap.add_argument("course", nargs="?", default="all", help="responder, stable, decliner or all")
    ap.add_argument("--seeds", help="A:B, instead of SEED")
    ap.add_argument("--cmp-tag", default="classical", help=CMP_TAG_HELP)
    args = ap.parse_args()
    if args.seeds:
        a, b = (int(x) for x in args.seeds.split(":"))
        seeds = list(range(a, b))
    else:
        seeds = [args.seed]
    courses = list(COURSES) if args.course == "all" else [args.course]
    d = pd.concat([course_rows(args.out, s, c, args.cmp_tag) for s in seeds for c in courses
                   if (args.out / f"seed_{s}" / f"{c}_cmp_{args.cmp_tag}" / "matches.csv").is_file()],
                  ignore_index=True)
    dest = args.out / "response_classical"
    dest.mkdir(parents=True, exist_ok=True)
    tag = f"{args.seeds or args.seed}_{args.course}".replace(":", "-")
    d.to_csv(dest / f"flip_evidence_{tag}.csv", index=False)
    pd.set_option("display.width", 200)
    d["kind"] = d["status"] + " / " + d["verdict"]
    print(d.groupby("kind")[["own", "other", "other_raw"]].quantile([0.25, 0.5, 0.75]).unstack().round(2).to_string())
    print("\nhairs with other_raw >= 0.3 per kind:")
    print(d.assign(shown=d.other_raw >= 0.3).groupby("kind")["shown"].agg(["size", "sum"]).to_string())
    print("\non a counted hair of the other visit (cover), paired with a hair of this one (partner); "
          "excess = (cover - partner width) / own width:")
    on = d[d.partner >= 0]
    print(d.assign(on_cover=d.cover >= 0, with_partner=d.partner >= 0).groupby("kind")[["on_cover", "with_partner"]]
          .sum().to_string())
    print(on.groupby("kind")["excess"].quantile([0.1, 0.25, 0.5, 0.75, 0.9]).unstack().round(2).to_string())


if __name__ == "__main__":
    main()
