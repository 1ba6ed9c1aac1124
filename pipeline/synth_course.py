"""Phantom treatment courses: the same spot of scalp photographed at every session.

The follicles of a field persist from session to session; some units are
lost, new ones appear, units gain or lose a hair (``CourseSpec.within_unit_share``),
shafts thicken, and every hair is clipped again.
The first session's frame gets the course's density change exactly (to the
nearest hair): a course labelled +15% has +15% hairs in the photographed
field by its last session, with the turnover lost and gained on top. The
device is put back on the tattoo dot a little off: each session's field is
shifted (up to ``max_shift_um``) and rotated (up to ``max_rotation_deg``)
against the first, and lighting, focus and exposure change. The skin itself
(texture, pigment network, vessels) moves with the field, so registration
can use it. Truth: every hair carries a ``track_id`` that is the same in
every session it appears in, and ``transform`` maps first-session pixels to
this session's pixels (2 x 3, on (row, col)).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from pipeline import synth

__all__ = ["CourseSpec", "render_course", "generate_course", "patient_traits", "PATIENT_TRAITS"]


@dataclasses.dataclass(frozen=True)
class CourseSpec:
    """What happens over a course (all changes relative to the first session).

    Attributes
    ----------
    n_sessions : int
    density_change_pct : float
        Change of hair density at the last session (%, linear in session index).
    thickening_um : float
        Mean shaft thickening of persisting hairs at the last session (µm).
    turnover_pct : float
        Share of hairs lost *and* of hairs gained per session on top of the
        net change (hair cycling; %).
    max_shift_um, max_rotation_deg : float
        Largest repositioning of the field against the first session.
    within_unit_share : float
        Share of the hairs lost and of those gained (in the first frame's
        units) that leave or join a unit that stays: a unit of 3 hairs goes
        to 2, or one of 1 to 2, instead of a whole unit going or coming.
        Pattern hair loss thins units before it empties them (fewer hairs
        per unit is one of its trichoscopic signs, Rakowska et al. 2009), and
        regrowth fills them again; a matched comparison must see a hair
        that leaves or joins a unit beside hairs that stay.  Limited by the
        units of two or more hairs the first frame has; 0 gives whole units
        only, as courses were made before 2026-12-03.
    """

    n_sessions: int = 6
    density_change_pct: float = 15.0
    thickening_um: float = 4.0
    turnover_pct: float = 2.0
    max_shift_um: float = 150.0
    max_rotation_deg: float = 4.0
    within_unit_share: float = 0.5


def _rotation(phi: float) -> np.ndarray:
    """Rotation acting on (row, col) vectors, turning a direction angle by +phi (see synth's direction)."""
    return np.array([[math.cos(phi), math.sin(phi)], [-math.sin(phi), math.cos(phi)]])


def _transform(rng: np.random.Generator, p: synth.SceneParams, spec: CourseSpec, first: bool) -> np.ndarray:
    """2 x 3 matrix (row, col) -> (row, col) from session-0 pixels to this session's pixels."""
    if first:
        return np.hstack([np.eye(2), np.zeros((2, 1))])
    phi = math.radians(float(rng.uniform(-spec.max_rotation_deg, spec.max_rotation_deg)))
    shift = rng.uniform(-1, 1, 2) * spec.max_shift_um / p.um_per_px
    centre = np.array([p.height / 2, p.width / 2])
    rot = _rotation(phi)
    return np.hstack([rot, (centre - rot @ centre + shift)[:, None]])


def _apply(m: np.ndarray, rc: np.ndarray) -> np.ndarray:
    return (np.asarray(rc, float) @ m[:, :2].T) + m[:, 2]


def _warp(img: np.ndarray, m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Warp a (row, col) image by ``m`` (session-0 -> session pixels)."""
    from pipeline.register import swap_axes

    return cv2.warpAffine(img, swap_axes(m), (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def _session_optics(rng: np.random.Generator, p: synth.SceneParams) -> synth.SceneParams:
    """Lighting, focus and exposure of one visit."""
    return dataclasses.replace(
        p, light_angle_deg=float(rng.uniform(0, 360)),
        blur_sigma_px=float(np.clip(p.blur_sigma_px * rng.uniform(0.7, 1.4), 0.4, 3.5)),
        vignetting=float(rng.uniform(0.0, 0.3)),
        white_balance=tuple(float(v * rng.normal(1.0, 0.03)) for v in p.white_balance),
        glare=0.0 if rng.random() < 0.6 else float(rng.uniform(0.05, 0.25)))


def render_course(params: synth.SceneParams, spec: CourseSpec, seed: int) -> list[tuple[np.ndarray, dict]]:
    """Render ``spec.n_sessions`` frames of one spot and their truth (see the module doc).

    Parameters
    ----------
    params : SceneParams
        The first session's scene (its density is the baseline density).
    spec : CourseSpec
    seed : int
        Seeds the follicles, the skin, every session's changes and optics.

    Returns
    -------
    list of (image, truth)
        One per session; ``truth`` follows ``tricho-phantom-truth/1`` plus
        ``session`` (index), ``transform`` and a ``track_id`` per hair.
    """
    p0 = dataclasses.replace(params, n_long_hairs=0, uncut_fraction=0.0)
    plan = plan_course(p0, spec, seed)
    base, extra, lost_at, gained_at, rng_plan = plan.base, plan.extra, plan.lost_at, plan.gained_at, plan.rng
    extra_group = np.where(plan.extra_group >= 0, plan.extra_group, len(base.openings) + np.arange(len(extra.openings)))
    units = _unit_table(base, 0, plan.base_group) + _unit_table(extra, len(base.openings), extra_group)
    last = max(1, spec.n_sessions - 1)
    thick_gain = {i: float(rng_plan.normal(1.0, 0.5)) for i in range(len(units))}
    out = []
    for s in range(spec.n_sessions):
        rng = np.random.default_rng([seed, 10 + s])
        m = _transform(rng, p0, spec, first=s == 0)
        ps = p0 if s == 0 else _session_optics(rng, p0)
        present = [u for u in units if (u["source"] == 0 and lost_at[u["index"]] > s)
                   or (u["source"] == 1 and gained_at[u["index"]] <= s)]
        lay = _session_layout(present, m, ps, rng, spec, s / last, thick_gain, base, extra)
        img, truth = _render(ps, lay, m, seed, rng)
        truth.update(session=s, transform=m.round(6).tolist())
        out.append((img, truth))
    return out


@dataclasses.dataclass
class CoursePlan:
    """The follicles of a course and when each unit is lost or gained (:func:`plan_course`).

    Attributes
    ----------
    base, extra : synth._Layout
        The first session's units and the candidate new ones.  A hair that
        leaves or joins a unit that stays is a unit of its own here (one
        hair, the same opening), lost or gained like any unit.
    lost_at, gained_at : ndarray of int
        Per unit of ``base`` / ``extra``, the session index from which it is
        gone / present (``n_sessions`` or more: never).
    base_group, extra_group : ndarray of int
        Per unit, the unit of ``base`` (index) whose opening it shares: its
        own index, or the unit a split-off hair belongs to (the truth's
        ``unit_id`` is shared).  ``extra_group`` holds ``base`` indices for
        hairs joining a base unit and ``-1 - i`` for extra unit ``i``.
    rng : numpy.random.Generator
        The plan's generator, to draw the rest of the course from.
    """

    base: Any
    extra: Any
    lost_at: np.ndarray
    gained_at: np.ndarray
    base_group: np.ndarray
    extra_group: np.ndarray
    rng: np.random.Generator

    def first_frame_count(self, shape: tuple[int, int], session: int) -> int:
        """Hairs of the units whose opening lies in the first session's frame, present at ``session``."""
        b = _in_frame(self.base.openings, shape) & (self.lost_at > session)
        e = _in_frame(self.extra.openings, shape) & (self.gained_at <= session)
        return int(self.base.unit_sizes[b].sum() + self.extra.unit_sizes[e].sum())


def plan_course(p0: synth.SceneParams, spec: CourseSpec, seed: int) -> CoursePlan:
    """The follicles of a course and when each unit (or hair of a unit) is lost or gained (see the module doc)."""
    base = synth._layout(p0, np.random.default_rng([seed, 0]))
    last = max(1, spec.n_sessions - 1)
    gain_total = max(0.0, spec.density_change_pct) / 100 + spec.turnover_pct / 100 * last
    loss_total = max(0.0, -spec.density_change_pct) / 100 + spec.turnover_pct / 100 * last
    surplus = 4.0  # candidate new units per gain needed, so that the first field can be given its exact share
    extra_p = dataclasses.replace(p0, density_per_cm2=p0.density_per_cm2 * max(surplus * gain_total, 1e-6))
    extra = synth._layout(extra_p, np.random.default_rng([seed, 1]))
    rng_plan = np.random.default_rng([seed, 2])
    shape = (p0.height, p0.width)
    base_group, extra_group = np.arange(len(base.openings)), -1 - np.arange(len(extra.openings))
    joining, leaving = np.zeros(0, int), np.zeros(0, int)
    if spec.within_unit_share > 0:
        rng_unit = np.random.default_rng([seed, 4])
        base, extra, base_group, extra_group, joining, leaving = _split_unit_changes(
            rng_unit, base, extra, spec, last, shape)
    lost_at = _schedule(rng_plan, len(base.openings), loss_total, last)  # session index from which a unit is gone
    gained_at = _schedule(rng_plan, len(extra.openings), 1.0 / surplus, last)
    lost_at[base_group != np.arange(len(base_group))] = last + 1  # split-off hairs change only as planned below
    gained_at[extra_group >= 0] = last + 1
    parents = np.union1d(base_group[leaving], extra_group[joining]).astype(int)  # these units stay
    _exact_in_field(rng_plan, base, extra, lost_at, gained_at, spec, last, shape,
                    must_lose=leaving, must_gain=joining, keep=parents)
    return CoursePlan(base, extra, lost_at, gained_at, base_group, extra_group, rng_plan)


def _split_unit_changes(rng: np.random.Generator, base, extra, spec: CourseSpec, last: int,
                        shape: tuple[int, int]):
    """Split one hair off some first-frame units of two or more hairs: hairs that will join a unit
    (moved to ``extra``, absent at first) and hairs that will leave one (a unit of their own in ``base``).

    Returns the new layouts, their group arrays (:class:`CoursePlan`) and the indices of the joining
    (in ``extra``) and leaving (in ``base``) one-hair units.
    """
    base_in = np.flatnonzero(_in_frame(base.openings, shape))
    multi = base_in[base.unit_sizes[base_in] >= 2]
    full = int(base.unit_sizes[base_in].sum())
    net = spec.density_change_pct / 100 * full
    turn = spec.turnover_pct / 100 * last * full
    n_join = min(len(multi) // 2, int(round(spec.within_unit_share * (turn + max(0.0, net)))))
    n_leave = min(len(multi) - n_join, int(round(spec.within_unit_share * (turn + max(0.0, -net)))))
    chosen = rng.permutation(multi)
    hairs = [copy.copy(h) for h in base.hairs]
    extra_hairs = list(extra.hairs)
    sizes = base.unit_sizes.copy()
    added = {"join": ([], [], []), "leave": ([], [], [])}  # openings, directions, groups of the new units
    first_id = {"join": len(extra.openings), "leave": len(sizes)}
    for kind, units in (("join", chosen[:n_join]), ("leave", chosen[n_join:n_join + n_leave])):
        for u in units:
            members = [h for h in hairs if h.unit_id == u]
            hair = members[int(rng.integers(len(members)))]
            sizes[u] -= 1
            openings, thetas, groups = added[kind]
            hair.unit_id = first_id[kind] + len(groups)
            hair.together = False  # a unit of its own
            openings.append(base.openings[u])
            thetas.append(float(base.unit_theta[u]))
            groups.append(int(u))
            if kind == "join":
                hairs = [h for h in hairs if h is not hair]
                extra_hairs.append(hair)

    def grown(lay, lay_hairs, unit_sizes, kind):  # the layout with the split-off hairs' one-hair units
        openings, thetas, _ = added[kind]
        return synth._Layout(lay_hairs, np.concatenate([lay.openings, np.reshape(openings, (-1, 2))]),
                             np.concatenate([lay.unit_theta, np.asarray(thetas, float)]),
                             np.concatenate([unit_sizes, np.ones(len(thetas), int)]), lay.empties)

    new_base, new_extra = grown(base, hairs, sizes, "leave"), grown(extra, extra_hairs, extra.unit_sizes, "join")
    base_group = np.concatenate([np.arange(len(sizes)), np.asarray(added["leave"][2], int)])
    extra_group = np.concatenate([-1 - np.arange(len(extra.openings)), np.asarray(added["join"][2], int)])
    joining = first_id["join"] + np.arange(len(added["join"][2]))
    leaving = first_id["leave"] + np.arange(len(added["leave"][2]))
    return new_base, new_extra, base_group, extra_group, joining, leaving


def _in_frame(rc: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rc = np.asarray(rc, float).reshape(-1, 2)
    return (rc[:, 0] >= 0) & (rc[:, 0] < shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < shape[1])


def _exact_in_field(rng: np.random.Generator, base, extra, lost_at: np.ndarray, gained_at: np.ndarray,
                    spec: CourseSpec, last: int, shape: tuple[int, int], *,
                    must_lose: np.ndarray = np.zeros(0, int), must_gain: np.ndarray = np.zeros(0, int),
                    keep: np.ndarray = np.zeros(0, int)) -> None:
    """Reschedule the units that open inside the first session's frame so that its hair count
    changes by exactly ``density_change_pct`` (to the nearest hair, when unit sizes allow) by the
    last session, with ``turnover_pct`` per session lost and gained on top, spread evenly over the
    course.  Elsewhere the random schedule stays: a course labelled +15% then has +15% in the
    field that is photographed, not a random draw around it.  ``must_lose`` (base) and
    ``must_gain`` (extra) units are lost and gained in any case (the hairs that leave or join a
    unit); the rest of the change comes from whole units other than ``keep`` (base units a hair
    leaves or joins)."""
    base_in = np.flatnonzero(_in_frame(base.openings, shape))
    extra_in = np.flatnonzero(_in_frame(extra.openings, shape))
    base_free = np.setdiff1d(base_in, np.union1d(must_lose, keep))
    extra_free = np.setdiff1d(extra_in, must_gain)
    hairs0 = int(base.unit_sizes[base_in].sum())
    net = int(round(spec.density_change_pct / 100 * hairs0))
    turn = int(round(spec.turnover_pct / 100 * last * hairs0))
    k_lose, k_gain = int(base.unit_sizes[must_lose].sum()), int(extra.unit_sizes[must_gain].sum())
    lost = _pick(rng, base_free, base.unit_sizes, turn + max(0, -net) - k_lose)
    gained = _pick(rng, extra_free, extra.unit_sizes, k_lose + int(base.unit_sizes[lost].sum()) + net - k_gain)
    lost_hairs = k_lose + int(base.unit_sizes[lost].sum())
    gained_hairs = k_gain + int(extra.unit_sizes[gained].sum())
    if gained_hairs - lost_hairs != net:  # too few new hairs in the frame, or more joining ones than the
        # change needs: lose as many whole units as the gains allow, so the net change holds
        lost = _pick(rng, base_free, base.unit_sizes, max(0, gained_hairs - net - k_lose))
    lost = np.concatenate([np.asarray(must_lose, int), lost]).astype(int)
    gained = np.concatenate([np.asarray(must_gain, int), gained]).astype(int)
    lost_at[base_in] = last + 1
    gained_at[extra_in] = last + 1
    lost_at[lost] = _spread(rng, len(lost), last)
    gained_at[gained] = _spread(rng, len(gained), last)


def _pick(rng: np.random.Generator, idx: np.ndarray, sizes: np.ndarray, hairs: int, tries: int = 64) -> np.ndarray:
    """Units from ``idx`` whose sizes add up to ``hairs`` (or as close under it as ``tries`` random
    orders find: one greedy order often stops short when only a few units of 2-4 hairs are left)."""
    best: list[int] = []
    best_total = -1
    for _ in range(tries):
        chosen, total = [], 0
        for i in rng.permutation(idx):
            if total + int(sizes[i]) <= hairs:
                chosen.append(int(i))
                total += int(sizes[i])
        if total > best_total:
            best, best_total = chosen, total
        if total == hairs:
            break
    return np.asarray(best, dtype=int)


def _spread(rng: np.random.Generator, k: int, last: int) -> np.ndarray:
    """Sessions 1..last for ``k`` changes, as evenly as whole sessions allow, in random order."""
    return rng.permutation(1 + (np.arange(k) * last) // max(k, 1)) if k else np.zeros(0, int)


def _unit_table(lay, offset: int, group: np.ndarray) -> list[dict]:
    """One dict per unit of a layout; ``group``: the unit whose opening (and truth ``unit_id``) it shares."""
    table = []
    for uid in range(len(lay.openings)):
        hairs = [h for h in lay.hairs if h.unit_id == uid]
        table.append({"uid": offset + uid, "index": uid, "source": 0 if offset == 0 else 1, "hairs": hairs,
                      "opening": lay.openings[uid], "theta": float(lay.unit_theta[uid]), "group": int(group[uid])})
    return table


def _schedule(rng: np.random.Generator, n: int, total_share: float, last: int) -> np.ndarray:
    """Session index from which each of ``n`` units changes (never = last + 1), spread over the course."""
    at = np.full(n, last + 1)
    k = min(n, int(round(total_share * n)))
    if k > 0:
        chosen = rng.choice(n, k, replace=False)
        at[chosen] = rng.integers(1, last + 1, k)
    return at


def _session_layout(present, m, ps, rng, spec, progress, thick_gain, base, extra):
    hairs, openings, thetas, sizes = [], [], [], []
    ids: dict[int, int] = {}  # a unit's group -> its unit_id in this session
    turn = math.atan2(-m[1, 0], m[0, 0])
    for u in present:
        new_uid = ids.get(u["group"])
        if new_uid is None:
            new_uid = ids[u["group"]] = len(openings)
            openings.append(_apply(m, u["opening"][None])[0])
            thetas.append(u["theta"] + turn)
            sizes.append(0)
        sizes[new_uid] += len(u["hairs"])
        for k, h in enumerate(u["hairs"]):
            hh = copy.copy(h)
            hh.unit_id = new_uid
            hh.emergence = np.round(_apply(m, h.emergence[None])[0], 3)
            hh.theta = h.theta + turn
            hh.width_um = round(max(8.0, h.width_um + spec.thickening_um * progress * thick_gain[u["uid"]]), 1)
            lo, hi = ps.clip_length_um
            hh.length_um = round(max(float(rng.uniform(lo, hi)), 2.5 * hh.width_um), 1)  # clipped again
            hh.curve, hh.s = None, None
            hh.track_id = u["uid"] * 8 + k
            hairs.append(hh)
    synth._build_curves(ps, hairs)
    empties = _apply(m, base.empties) if len(base.empties) else base.empties
    return synth._Layout(hairs, np.array(openings).reshape(-1, 2), np.array(thetas), np.array(sizes, int), empties)


def _render(p: synth.SceneParams, lay, m: np.ndarray, seed: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """synth.render_frame's steps with a given layout and a skin that moves with the field."""
    skin_rng = np.random.default_rng([seed, 3])
    img, frost = synth._render_skin(p, skin_rng)
    if p.pigment_network:
        synth._pigment_network(img, p, skin_rng)
    if p.vessels:
        synth._vessels(img, p, skin_rng)
    shape = (p.height, p.width)
    img, frost = _warp(img, m, shape), _warp(frost, m, shape)
    synth._apply_halos(img, p, rng, lay, frost)
    synth._empty_openings(img, p, rng, lay)
    flakes = synth._flakes(p, rng, lay)
    for centre, radius, over in flakes:
        if not over:
            synth._draw_flake(img, centre, radius, rng, frost)
    drawn = [hh for hh in lay.hairs if hh.curve is not None]
    synth._shadows(img, p, drawn)
    for hair in drawn:
        synth._paint_shaft(img, hair, p.um_per_px, p.light_angle_deg, rng)
    for centre, radius, over in flakes:
        if over:
            synth._draw_flake(img, centre, radius, rng, frost)
    if p.glare > 0:
        synth._glare(img, p, rng, frost)
    img8 = synth._camera(synth._defocus(img, p), p, rng)
    synth._overlays(img8, p, rng)
    truth = synth._truth(p, lay)
    kept = [hh for hh in lay.hairs if hh.curve is not None and synth._curve_in_frame(hh, shape, p.um_per_px)]
    for h, hh in zip(truth["hairs"], kept):
        h["track_id"] = int(hh.track_id)
    return img8, truth


#: What one patient's fields share: the device and magnification (frame and
#: pixel size), the hair (colour, greying, widths, vellus and intermediate
#: shares, unit sizes, clipping) and the skin tone.  Spots, skin texture,
#: overlays and optics are drawn per field.
PATIENT_TRAITS = ("height", "width", "um_per_px", "hair_color", "grey_fraction", "skin_tone", "frac_vellus",
                  "frac_intermediate", "terminal_width_um", "unit_size_probs", "clip_length_um")
#: A field's density is the patient's times a factor drawn uniformly from
#: this range (spots of one site differ; an assumed spread, SD about 9%).
FIELD_DENSITY_SPREAD = (0.85, 1.15)
#: A course's protocol: the device's full frame at every visit, on a site of
#: 100-250 hairs/cm² (the range treatment trials report effects on), so that a
#: +15% change is several hairs per field.  ``overrides`` can change both.
COURSE_FRAME = {"height": 1024, "width": 1280}
COURSE_DENSITY_PER_CM2 = (100.0, 250.0)


def patient_traits(rng: np.random.Generator, **overrides: Any) -> dict[str, Any]:
    """The scene values one patient keeps in every field (:data:`PATIENT_TRAITS`, plus the site's density)."""
    scene = synth.sample_scene(rng, **overrides)
    return {k: getattr(scene, k) for k in (*PATIENT_TRAITS, "density_per_cm2")}


def generate_course(out_dir: str | Path, *, patient_id: str, site: str, seed: int, spec: CourseSpec = CourseSpec(),
                    n_fields: int = 3, start: str = "2026-01-05", days_between: int = 14,
                    **overrides: Any) -> pd.DataFrame:
    """Write a course of ``n_fields`` spots x ``spec.n_sessions`` sessions with a manifest.

    The fields are spots of one patient's site: they share the patient's
    hair, skin and device (:data:`PATIENT_TRAITS`), every frame is the
    device's full frame (:data:`COURSE_FRAME`), the site's density is drawn
    from :data:`COURSE_DENSITY_PER_CM2` and each field's is the site's within
    :data:`FIELD_DENSITY_SPREAD`; ``overrides`` fix any scene value for every field.
    Field ``f`` is the same spot (``field_id``) at every session. Frames go to
    ``OUT/PATIENT/DATE/SITE_F.png`` with truth JSON beside them; the rows are
    appended to ``OUT/manifest.csv`` (``image, um_per_px, patient_id, site,
    session_date, field_id``), so several courses can share one folder.
    """
    out = Path(out_dir)
    rows = []
    dates = [(pd.Timestamp(start) + pd.Timedelta(days=days_between * s)).date().isoformat()
             for s in range(spec.n_sessions)]
    site_density = float(np.random.default_rng([seed, 98]).uniform(*COURSE_DENSITY_PER_CM2))
    fixed = {"header_strip": False, "padding_strip": False, "scale_bar": False, "red_circle": False,
             "n_long_hairs": 0, "uncut_fraction": 0.0, **COURSE_FRAME, **overrides}
    patient = patient_traits(np.random.default_rng([seed, 99]), **{"density_per_cm2": site_density, **fixed})
    for f in range(n_fields):
        rng = np.random.default_rng([seed, 100 + f])
        params = synth.sample_scene(rng, **{**patient, **fixed})
        spread = float(np.random.default_rng([seed, 200 + f]).uniform(*FIELD_DENSITY_SPREAD))
        if "density_per_cm2" not in overrides:
            params = dataclasses.replace(params, density_per_cm2=patient["density_per_cm2"] * spread)
        for s, (img, truth) in enumerate(render_course(params, spec, seed * 1000 + f)):
            rel = f"{patient_id}/{dates[s]}/{site}_{f + 1}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / rel), img[..., ::-1])
            truth.update(image=rel, seed=[int(seed), f, s])
            (out / rel).with_suffix(".json").write_text(json.dumps(truth))
            rows.append(dict(image=rel, um_per_px=params.um_per_px, patient_id=patient_id, site=site,
                             session_date=dates[s], field_id=f + 1))
    manifest = pd.DataFrame(rows)
    path = out / "manifest.csv"
    if path.is_file():
        manifest = pd.concat([pd.read_csv(path, dtype=str), manifest.astype(str)], ignore_index=True)
    manifest.to_csv(path, index=False)
    return manifest
