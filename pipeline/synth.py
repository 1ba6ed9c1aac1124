"""Phantom trichoscopy frames with exact truth.

Renders close-up scalp frames (20x–70x) with every hair's emergence point,
centre line, diameter and length known exactly, so the pipeline can be
scored against exact answers.  It varies what real frames vary: density,
hair width mixes (vellus to terminal), hair colour (black to white), skin
tone, pigment network, perifollicular halos, scales, vessels, empty
openings, clipped and long crossing hairs, defocus, noise, vignetting,
glare, JPEG, and burned-in device overlays (text header, padding strip,
scale bar, measurement circle).

Optics of a shaft: a pigmented shaft is close to opaque, so its
transmission across the diameter follows Beer–Lambert over the chord
through a cylinder, ``alpha(x) = 1 - exp(-k * 2 * sqrt(r**2 - x**2))``,
with a large ``k`` for dark hair (a box profile of width = diameter) and a
small one for blond, grey and white hair.  Edges are antialiased from the
analytic distance of each pixel centre to the centre line.

Truth schema ``tricho-phantom-truth/1`` (one JSON per frame):
``image, seed, um_per_px, height_px, width_px, field{row0,row1,col0,col1},
field_area_cm2, count_in_field, density_per_cm2, hairs[...], units[...],
empty_openings_rc, params``.  A hair counts when its emergence point lies
inside ``field`` (the frame minus full-width header/padding strips).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

SCHEMA = "tricho-phantom-truth/1"

#: Hair colour (linear-ish RGB in [0, 1]) and absorption k (1/µm).
HAIR_COLOURS = {
    "black": ((0.07, 0.06, 0.06), 0.20),
    "dark_brown": ((0.16, 0.10, 0.07), 0.12),
    "brown": ((0.32, 0.20, 0.12), 0.06),
    "blond": ((0.72, 0.58, 0.38), 0.020),
    "grey": ((0.55, 0.55, 0.56), 0.020),
    "white": ((0.88, 0.88, 0.88), 0.012),
}
#: Skin tone endpoints, very light to dark (RGB in [0, 1]).
SKIN_LIGHT = np.array([0.90, 0.80, 0.76])
SKIN_DARK = np.array([0.42, 0.28, 0.20])


@dataclass(frozen=True)
class SceneParams:
    """Every randomised choice of one phantom frame (lengths in µm unless noted)."""

    height: int = 1024
    width: int = 1280
    um_per_px: float = 2.78
    density_per_cm2: float = 150.0
    hairs_per_unit_mean: float = 1.8
    hair_color: str = "black"
    skin_tone: float = 0.15
    vellus_share: float = 0.05
    intermediate_share: float = 0.15
    clipped_length_um: tuple[float, float] = (250.0, 1200.0)
    n_long_hairs: int = 0
    flow_angle_deg: float = 30.0
    blur_sigma_px: float = 1.0
    blur_gradient: float = 0.0
    noise: float = 0.02
    vignetting: float = 0.2
    glare: float = 0.3
    color_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    jpeg_quality: int | None = 90
    header_strip: bool = False
    padding_strip: bool = False
    scale_bar: bool = False
    red_circle: bool = False
    scales: float = 0.2
    vessels: float = 0.2
    pigment_network: float = 0.0
    halos: float = 0.6
    empty_openings: float = 0.1
    ink: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def sample_scene(rng: np.random.Generator, **overrides) -> SceneParams:
    """Draw varied scene parameters; ``overrides`` fix any field.

    About 70% of frames are 70x-like (2.2–3.6 µm/px, 1280x1024), the rest
    coarser (20x–40x-like, 5–9 µm/px) or of other sensor sizes.
    """
    kind = rng.random()
    if kind < 0.7:
        h, w, um = 1024, 1280, rng.uniform(2.2, 3.6)
    elif kind < 0.85:
        h, w, um = 768, 1024, rng.uniform(4.0, 7.0)
    else:
        h, w, um = 480, 640, rng.uniform(5.0, 9.0)
    colour = rng.choice(list(HAIR_COLOURS), p=[0.45, 0.2, 0.12, 0.08, 0.1, 0.05])
    miniaturised = rng.random() < 0.35
    vel = rng.uniform(0.15, 0.45) if miniaturised else rng.uniform(0.0, 0.1)
    inter = rng.uniform(0.2, 0.4) if miniaturised else rng.uniform(0.05, 0.25)
    tone = float(rng.beta(1.6, 3.0))
    if colour in ("grey", "white", "blond"):
        tone = max(tone, rng.uniform(0.3, 0.8))  # light hair is assessed on darker skin more often
    lo = rng.uniform(150, 400)
    p = dict(
        height=h, width=w, um_per_px=float(um),
        density_per_cm2=float(rng.uniform(40, 300)),
        hairs_per_unit_mean=float(rng.uniform(1.2, 2.4)),
        hair_color=str(colour), skin_tone=tone,
        vellus_share=float(vel), intermediate_share=float(inter),
        clipped_length_um=(float(lo), float(lo + rng.uniform(300, 1300))),
        n_long_hairs=int(rng.choice([0, 0, 0, 1, 2, 4])),
        flow_angle_deg=float(rng.uniform(0, 360)),
        blur_sigma_px=float(rng.choice([rng.uniform(0.3, 1.2), rng.uniform(1.2, 2.8)], p=[0.7, 0.3])),
        blur_gradient=float(rng.choice([0.0, rng.uniform(0.5, 2.0)], p=[0.7, 0.3])),
        noise=float(rng.uniform(0.005, 0.035)),
        vignetting=float(rng.uniform(0.0, 0.45)),
        glare=float(rng.uniform(0.0, 0.8)),
        color_cast=tuple(float(x) for x in rng.uniform(0.9, 1.1, 3)),
        jpeg_quality=None if rng.random() < 0.4 else int(rng.integers(60, 96)),
        header_strip=bool(rng.random() < 0.25), padding_strip=bool(rng.random() < 0.12),
        scale_bar=bool(rng.random() < 0.2), red_circle=bool(rng.random() < 0.15),
        scales=float(rng.uniform(0, 0.8)), vessels=float(rng.uniform(0, 0.6)),
        pigment_network=float(rng.uniform(0.2, 0.8)) if tone > 0.35 else 0.0,
        halos=float(rng.uniform(0.2, 1.0)), empty_openings=float(rng.uniform(0, 0.3)),
        ink=bool(rng.random() < 0.05),
    )
    p.update(overrides)
    return SceneParams(**p)


# --------------------------------------------------------------------------- skin

def _smooth_noise(rng, shape, scale_px: float) -> np.ndarray:
    """Zero-mean unit-ish smooth noise with features of about ``scale_px``."""
    h, w = shape
    f = max(1.0, scale_px / 2)
    small = rng.standard_normal((max(2, int(h / f) + 2), max(2, int(w / f) + 2))).astype(np.float32)
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return big / max(1e-6, float(big.std()))


def _skin(rng, p: SceneParams) -> np.ndarray:
    """Skin with tone, low-frequency variation, creases and pigment network."""
    h, w = p.height, p.width
    base = SKIN_LIGHT * (1 - p.skin_tone) + SKIN_DARK * p.skin_tone
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    low = _smooth_noise(rng, (h, w), 250 / p.um_per_px * 4)
    img *= (1 + 0.05 * low)[..., None]
    grain = _smooth_noise(rng, (h, w), 1.5)
    img *= (1 + 0.025 * grain)[..., None]
    # whitish crease lines (the skin's micro-relief)
    creases = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(15, 60))):
        pts = [rng.uniform((0, 0), (h, w))]
        ang = rng.uniform(0, np.pi)
        for _ in range(int(rng.integers(2, 6))):
            ang += rng.normal(0, 0.3)
            step = rng.uniform(40, 250) / p.um_per_px * 2.78
            pts.append(pts[-1] + step * np.array([np.sin(ang), np.cos(ang)]))
        arr = np.round(np.array(pts)[:, ::-1]).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(creases, [arr], False, float(rng.uniform(0.3, 1.0)), 1, cv2.LINE_AA)
    creases = cv2.GaussianBlur(creases, (0, 0), 0.8)
    img += (0.10 * creases)[..., None]
    if p.pigment_network > 0:
        cells = _smooth_noise(rng, (h, w), 60 / p.um_per_px)
        net = np.clip(1 - np.abs(cells) / 0.35, 0, 1)
        img *= (1 - 0.18 * p.pigment_network * net)[..., None] * np.array([1.0, 0.95, 0.9], np.float32)
    return img


def _vessels(rng, img, p: SceneParams) -> None:
    layer = np.zeros(img.shape[:2], np.float32)
    for _ in range(int(p.vessels * 8)):
        pts = [rng.uniform((0, 0), (p.height, p.width))]
        ang = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(6, 20))):
            ang += rng.normal(0, 0.6)
            pts.append(pts[-1] + 12 * np.array([np.sin(ang), np.cos(ang)]))
        arr = np.round(np.array(pts)[:, ::-1]).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(layer, [arr], False, 1.0, int(rng.integers(1, 3)), cv2.LINE_AA)
    layer = cv2.GaussianBlur(layer, (0, 0), 1.0)[..., None]
    img *= 1 - 0.25 * layer * np.array([0.1, 0.8, 0.7], np.float32)


# --------------------------------------------------------------------------- follicles

def _openings(rng, p: SceneParams, margin_px: float) -> np.ndarray:
    """Follicle openings over the frame extended by ``margin_px`` (row, col)."""
    h, w = p.height + 2 * margin_px, p.width + 2 * margin_px
    area_cm2 = h * w * (p.um_per_px * 1e-4) ** 2
    n_units = rng.poisson(p.density_per_cm2 * area_cm2 / p.hairs_per_unit_mean)
    min_d = 0.35 * np.sqrt(h * w / max(n_units, 1))
    pts: list[np.ndarray] = []
    tries = 0
    while len(pts) < n_units and tries < 30 * n_units + 100:
        tries += 1
        q = rng.uniform((0, 0), (h, w))
        if all(np.hypot(*(q - o)) >= min_d for o in pts[-400:]):
            pts.append(q)
    return np.array(pts).reshape(-1, 2) - margin_px


def _hairs_in_unit(rng, mean: float) -> int:
    """1–4 hairs, mean about ``mean``."""
    lam = max(0.05, mean - 1)
    return int(min(4, 1 + rng.poisson(lam)))


def _width_um(rng, p: SceneParams) -> float:
    u = rng.random()
    if u < p.vellus_share:
        return float(rng.uniform(10, 30))
    if u < p.vellus_share + p.intermediate_share:
        return float(rng.uniform(30, 60))
    return float(rng.uniform(60, 120))


def _flow(p: SceneParams, rng):
    """A smooth direction field (radians) over the frame."""
    a0 = np.deg2rad(p.flow_angle_deg)
    kr, kc, ph = rng.uniform(-1, 1, 3)

    def angle(r, c):
        return a0 + 0.3 * np.sin(kr * r / p.height * 3 + kc * c / p.width * 3 + ph)
    return angle


def _clipped_path(start, angle, length_px, rng) -> np.ndarray:
    """A nearly straight clipped shaft from emergence to cut tip (row, col)."""
    bend = rng.normal(0, 0.04)
    n = max(3, int(length_px / 2))
    s = np.linspace(0, length_px, n)
    a = angle + bend * s / max(length_px, 1)
    steps = np.column_stack([np.sin(a), np.cos(a)]) * (length_px / (n - 1))
    return start + np.vstack([[0, 0], np.cumsum(steps[1:], axis=0)])


def _long_path(rng, p: SceneParams, angle) -> np.ndarray:
    """A long uncut hair: a cubic Bézier several mm long."""
    h, w = p.height, p.width
    start = rng.uniform((-0.1 * h, -0.1 * w), (1.1 * h, 1.1 * w))
    a = angle(*start)
    length = rng.uniform(3000, 8000) / p.um_per_px
    d = np.array([np.sin(a), np.cos(a)])
    nrm = np.array([-d[1], d[0]])
    c1 = start + d * length / 3 + nrm * rng.normal(0, length / 6)
    c2 = start + d * 2 * length / 3 + nrm * rng.normal(0, length / 6)
    end = start + d * length + nrm * rng.normal(0, length / 8)
    t = np.linspace(0, 1, max(20, int(length / 3)))[:, None]
    return ((1 - t) ** 3) * start + 3 * ((1 - t) ** 2) * t * c1 + 3 * (1 - t) * t ** 2 * c2 + t ** 3 * end


def _layout(rng, p: SceneParams):
    """All hairs: list of dicts with path (emergence first), width_um, unit."""
    angle = _flow(p, rng)
    lo, hi = p.clipped_length_um
    margin = hi / p.um_per_px + 10
    hairs, units, empties = [], [], []
    for opening in _openings(rng, p, margin):
        if rng.random() < p.empty_openings * 0.3:
            empties.append(opening)
            continue
        uid = len(units)
        n = _hairs_in_unit(rng, p.hairs_per_unit_mean)
        a = angle(*opening)
        units.append(dict(unit_id=uid, opening_rc=opening, n_hairs=n))
        for k in range(n):
            w_um = _width_um(rng, p)
            spread = np.deg2rad(rng.uniform(6, 16)) * (k - (n - 1) / 2)
            nrm = np.array([-np.cos(a), np.sin(a)])
            base = opening + nrm * (k - (n - 1) / 2) * rng.uniform(0.5, 0.9) * w_um / p.um_per_px
            length = rng.uniform(lo, hi) / p.um_per_px
            path = _clipped_path(base, a + spread + rng.normal(0, 0.03), length, rng)
            hairs.append(dict(path=path, width_um=w_um, unit_id=uid, kind="clipped", opening=opening))
    for _ in range(p.n_long_hairs):
        uid = len(units)
        path = _long_path(rng, p, angle)
        units.append(dict(unit_id=uid, opening_rc=path[0], n_hairs=1))
        hairs.append(dict(path=path, width_um=float(rng.uniform(50, 100)), unit_id=uid, kind="long", opening=path[0]))
    return hairs, units, empties


# --------------------------------------------------------------------------- rendering

def _segment_distance(px: np.ndarray, path: np.ndarray):
    """Distance of points to a polyline and the arc position of the nearest point."""
    a, b = path[:-1], path[1:]
    ab = b - a
    L2 = np.maximum((ab ** 2).sum(1), 1e-12)
    seg_len = np.sqrt(L2)
    cum = np.concatenate([[0], np.cumsum(seg_len)])[:-1]
    best_d = np.full(len(px), np.inf, np.float32)
    best_s = np.zeros(len(px), np.float32)
    for lo in range(0, len(a), 64):
        sl = slice(lo, lo + 64)
        ap = px[:, None, :] - a[None, sl, :]
        t = np.clip((ap * ab[None, sl, :]).sum(2) / L2[None, sl], 0, 1)
        proj = a[None, sl, :] + t[..., None] * ab[None, sl, :]
        d = np.hypot(px[:, None, 0] - proj[..., 0], px[:, None, 1] - proj[..., 1])
        k = d.argmin(1)
        dk = d[np.arange(len(px)), k]
        better = dk < best_d
        best_d[better] = dk[better]
        best_s[better] = (cum[sl][k] + t[np.arange(len(px)), k] * seg_len[sl][k])[better]
    return best_d, best_s


def _draw_hair(img, hair, p: SceneParams, colour, k_abs, rng) -> None:
    """Composite one shaft onto ``img`` (float RGB) in place."""
    path = hair["path"]
    r = hair["width_um"] / p.um_per_px / 2
    h, w = img.shape[:2]
    band = np.zeros((h, w), np.uint8)
    pts = np.round(path[:, ::-1]).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(band, [pts], False, 1, int(2 * r + 5))
    rr, cc = np.nonzero(band)
    if rr.size == 0:
        return
    px = np.column_stack([rr, cc]).astype(np.float32)
    d, s = _segment_distance(px, path.astype(np.float32))
    length = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())
    # blunt cut tip: half-plane at the tip, perpendicular to the last direction
    u = path[-1] - path[-2]
    u = u / max(np.hypot(*u), 1e-9)
    beyond = (px - path[-1]) @ u
    u0 = path[1] - path[0]
    u0 = u0 / max(np.hypot(*u0), 1e-9)
    before = -((px - path[0]) @ u0)
    dd = np.where(beyond > 0, np.abs((px - path[-1]) @ np.array([-u[1], u[0]])), d)
    dd = np.where(before > 0, np.abs((px - path[0]) @ np.array([-u0[1], u0[0]])), dd)
    chord = 2 * np.sqrt(np.clip(r * r - np.minimum(dd, r) ** 2, 0, None)) * p.um_per_px
    alpha = (1 - np.exp(-k_abs * np.maximum(chord, 2 * p.um_per_px * np.clip(r, 0, 1)))) * np.clip(r - dd + 0.5, 0, 1)
    alpha *= np.clip(0.5 - beyond, 0, 1)
    fade = max(1.0, 1.2 * r) if hair["kind"] == "clipped" else 1.0
    alpha *= np.clip((s + 0.5 * np.clip(-before, None, 0)) / fade, 0.25, 1.0) * np.clip(0.5 - before, 0, 1)
    shade = 1 + 0.25 * (rng.random() - 0.5) * np.sin(s / max(length, 1) * np.pi)
    col = np.asarray(colour, np.float32) * shade[:, None]
    spec = np.clip(1 - dd / max(0.3 * r, 0.5), 0, 1) * (0.10 if k_abs > 0.05 else 0.05)
    col = col + spec[:, None]
    a = alpha[:, None].astype(np.float32)
    img[rr, cc] = img[rr, cc] * (1 - a) + col * a
    if k_abs < 0.05:  # light hair: a faint refraction edge makes it visible
        edge = np.exp(-((dd - r) / 0.8) ** 2) * 0.08
        img[rr, cc] *= (1 - edge)[:, None]


def _halos(img, units, hairs, p: SceneParams, rng) -> None:
    """Bluish-grey perifollicular halos behind each opening."""
    if p.halos <= 0:
        return
    h, w = img.shape[:2]
    layer = np.zeros((h, w), np.float32)
    by_unit = {}
    for hair in hairs:
        by_unit.setdefault(hair["unit_id"], hair)
    for u in units:
        hair = by_unit.get(u["unit_id"])
        if hair is None or hair["kind"] != "clipped":
            continue
        o = u["opening_rc"]
        d = hair["path"][min(5, len(hair["path"]) - 1)] - hair["path"][0]
        ang = np.degrees(np.arctan2(d[0], d[1]))
        size = rng.uniform(60, 160) / p.um_per_px
        centre = o - d / max(np.hypot(*d), 1e-9) * size * 0.5
        cv2.ellipse(layer, (int(centre[1]), int(centre[0])), (int(size), int(size * 0.55)), ang, 0, 360,
                    float(rng.uniform(0.4, 1.0)), -1)
    layer = cv2.GaussianBlur(layer, (0, 0), max(2.0, 30 / p.um_per_px))[..., None]
    img *= 1 - 0.35 * p.halos * layer * np.array([1.0, 0.8, 0.45], np.float32)


def _openings_and_scales(img, empties, p: SceneParams, rng) -> None:
    for o in empties:
        cv2.circle(img, (int(o[1]), int(o[0])), max(2, int(30 / p.um_per_px)), (0.45, 0.42, 0.42), -1, cv2.LINE_AA)
    if p.scales <= 0:
        return
    h, w = img.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for _ in range(int(p.scales * 25)):
        c = rng.uniform((0, 0), (h, w))
        rad = rng.uniform(20, 200) / p.um_per_px
        poly = c + rad * rng.uniform(0.4, 1.0, (7, 1)) * np.column_stack(
            [np.sin(np.linspace(0, 2 * np.pi, 7, endpoint=False)), np.cos(np.linspace(0, 2 * np.pi, 7, endpoint=False))])
        cv2.fillPoly(layer, [np.round(poly[:, ::-1]).astype(np.int32)], float(rng.uniform(0.2, 0.7)), cv2.LINE_AA)
    layer = cv2.GaussianBlur(layer, (0, 0), 1.2)[..., None]
    img[:] = img * (1 - layer) + np.array([0.95, 0.95, 0.93], np.float32) * layer


def _optics(img, p: SceneParams, rng) -> np.ndarray:
    h, w = img.shape[:2]
    out = cv2.GaussianBlur(img, (0, 0), max(0.3, p.blur_sigma_px))
    if p.blur_gradient > 0:
        more = cv2.GaussianBlur(img, (0, 0), p.blur_sigma_px + p.blur_gradient)
        ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        if rng.random() < 0.5:
            ramp = ramp[:, ::-1]
        out = out * (1 - ramp) + more * ramp
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rad = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)
    out *= (1 - p.vignetting * rad)[..., None]
    if p.glare > 0:
        g = np.zeros((h, w), np.float32)
        for _ in range(int(p.glare * 40)):
            c = rng.uniform((0, 0), (h, w))
            cv2.ellipse(g, (int(c[1]), int(c[0])), (int(rng.uniform(3, 25)), int(rng.uniform(2, 8))),
                        rng.uniform(0, 180), 0, 360, float(rng.uniform(0.3, 1.0)), -1)
        out += 0.25 * cv2.GaussianBlur(g, (0, 0), 2.0)[..., None]
    out *= np.asarray(p.color_cast, np.float32)
    out = np.clip(out, 0, 1)
    photons = 400.0 / max(p.noise, 1e-3) ** 0.5
    out = rng.poisson(out * photons).astype(np.float32) / photons
    out += rng.normal(0, p.noise, out.shape).astype(np.float32)
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def _overlays(img8: np.ndarray, p: SceneParams, rng) -> tuple[int, int]:
    """Burned-in device overlays; returns the counting field's row range."""
    h, w = img8.shape[:2]
    row0, row1 = 0, h
    if p.red_circle:
        centre = (int(rng.uniform(0.6, 1.2) * w), int(rng.uniform(-0.2, 0.4) * h))
        cv2.circle(img8, centre, int(rng.uniform(0.5, 0.8) * w), (220, 30, 30), 2, cv2.LINE_AA)
        cv2.line(img8, centre, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), (220, 30, 30), 2, cv2.LINE_AA)
        x0, y0 = int(w * 0.6), int(h * 0.25)
        box = img8[y0:y0 + 110, x0:x0 + 210].astype(np.float32)
        img8[y0:y0 + 110, x0:x0 + 210] = (box * 0.5 + 200 * 0.5).astype(np.uint8)
        for k, line in enumerate(["RC0", "C=15.827 mm", "A=19.934 mm^2", "r=2.519 mm"]):
            cv2.putText(img8, line, (x0 + 8, y0 + 24 + 25 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (40, 40, 230), 2, cv2.LINE_AA)
    if p.scale_bar:
        leg = int(round(1000 / p.um_per_px))
        x0, y0 = int(0.03 * w), int(0.93 * h)
        colour = (60, 60, 60) if rng.random() < 0.5 else (235, 235, 235)
        cv2.line(img8, (x0, y0), (x0 + leg, y0), colour, 2)
        cv2.line(img8, (x0, y0), (x0, y0 - leg), colour, 2)
        cv2.rectangle(img8, (x0 + leg - 70, y0 - 22), (x0 + leg, y0 - 4), (70, 70, 70), -1)
        cv2.putText(img8, "1.0 mm", (x0 + leg - 66, y0 - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    if p.header_strip:
        hh = int(rng.integers(30, 60))
        band = img8[:hh].astype(np.float32)
        img8[:hh] = (band * 0.25 + 60 * 0.75).astype(np.uint8)
        x = 4
        for word in ["A%03d" % rng.integers(0, 999), f"{w}x{h}", "2022/01/05 09:00:18", "70x"]:
            colour = (0, 230, 230) if x == 4 else (240, 240, 240)
            cv2.putText(img8, word, (x + 6, int(hh * 0.7)), cv2.FONT_HERSHEY_SIMPLEX, hh / 45, colour, 2, cv2.LINE_AA)
            x += int(len(word) * hh * 0.45) + 20
        row0 = hh
    if p.padding_strip:
        ph = int(rng.integers(12, 40))
        img8[h - ph:] = (222, 222, 222)
        row1 = h - ph
    return row0, row1


def render_frame(params: SceneParams, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Render one frame; returns (uint8 RGB image (H, W, 3), truth dict)."""
    p = params
    img = _skin(rng, p)
    _vessels(rng, img, p)
    hairs, units, empties = _layout(rng, p)
    _halos(img, units, hairs, p, rng)
    colour, k_abs = HAIR_COLOURS[p.hair_color]
    for hair in hairs:
        tint = np.clip(np.asarray(colour) * rng.uniform(0.9, 1.1), 0, 1)
        _draw_hair(img, hair, p, tint, k_abs, rng)
    _openings_and_scales(img, empties, p, rng)
    if p.ink:
        c = rng.uniform((0, 0), (p.height, p.width))
        cv2.circle(img, (int(c[1]), int(c[0])), int(rng.uniform(10, 40)), (0.15, 0.2, 0.8), -1, cv2.LINE_AA)
    img8 = _optics(img, p, rng)
    row0, row1 = _overlays(img8, p, rng)
    if p.jpeg_quality:
        ok, enc = cv2.imencode(".jpg", img8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(p.jpeg_quality)])
        img8 = cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1].copy()
    truth = _truth(p, hairs, units, empties, (row0, row1))
    return img8, truth


def _truth(p: SceneParams, hairs, units, empties, rows) -> dict:
    row0, row1 = rows
    field = dict(row0=int(row0), row1=int(row1), col0=0, col1=int(p.width))
    area = (row1 - row0) * p.width * (p.um_per_px * 1e-4) ** 2

    def inside(rc):
        return row0 <= rc[0] < row1 and 0 <= rc[1] < p.width

    def in_frame(path):
        return bool(((path[:, 0] >= 0) & (path[:, 0] < p.height) & (path[:, 1] >= 0) & (path[:, 1] < p.width)).any())

    out_hairs = []
    for i, hair in enumerate(hairs):
        path = hair["path"]
        length = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum()) * p.um_per_px
        step = max(1, int(round(2 / max(1e-9, length / p.um_per_px / max(len(path) - 1, 1)))))
        line = np.vstack([path[::step], path[-1:]])
        out_hairs.append(dict(
            hair_id=i, unit_id=int(hair["unit_id"]), emergence_rc=[float(x) for x in path[0]],
            tip_rc=[float(x) for x in path[-1]], centerline_rc=np.round(line, 2).tolist(),
            width_um=round(float(hair["width_um"]), 3), length_um=round(length, 2), color=p.hair_color,
            kind=hair["kind"], in_field=bool(inside(path[0])), in_frame=in_frame(path)))
    visible_units = {h["unit_id"] for h in out_hairs if h["in_frame"]}
    out_units = [dict(unit_id=int(u["unit_id"]), opening_rc=[float(x) for x in u["opening_rc"]],
                      n_hairs=int(u["n_hairs"]), in_field=bool(inside(u["opening_rc"])))
                 for u in units if u["unit_id"] in visible_units]
    out_hairs = [h for h in out_hairs if h["in_frame"] or h["in_field"]]
    count = sum(h["in_field"] for h in out_hairs)
    return dict(
        schema=SCHEMA, image="", seed=None, um_per_px=float(p.um_per_px), height_px=int(p.height),
        width_px=int(p.width), field=field, field_area_cm2=float(area), count_in_field=int(count),
        density_per_cm2=float(count / area), hairs=out_hairs, units=out_units,
        empty_openings_rc=[[float(x) for x in e] for e in empties
                           if 0 <= e[0] < p.height and 0 <= e[1] < p.width],
        params=p.to_dict())


def _write(out: Path, stem: str, img: np.ndarray, truth: dict, fmt: str, quality: int | None) -> str:
    name = f"{stem}.{fmt}"
    if fmt == "jpg":
        cv2.imwrite(str(out / name), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality or 95)])
    else:
        cv2.imwrite(str(out / name), img[..., ::-1])
    truth["image"] = name
    (out / f"{stem}.json").write_text(json.dumps(truth))
    return name


def generate(out_dir, n: int, seed: int, *, image_format: str = "auto", **overrides) -> pd.DataFrame:
    """Write ``n`` phantom frames, their truth JSON and ``manifest.csv``.

    Frame ``i`` uses ``np.random.default_rng([seed, i])``, so any single
    frame can be reproduced alone. ``image_format`` ``"auto"`` writes JPEG
    when the scene has a JPEG quality (already applied while rendering),
    else PNG.

    Returns
    -------
    pandas.DataFrame
        The manifest: ``image, um_per_px, field_id``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        params = sample_scene(rng, **overrides)
        img, truth = render_frame(params, rng)
        truth["seed"] = [int(seed), int(i)]
        fmt = image_format if image_format != "auto" else ("jpg" if params.jpeg_quality else "png")
        name = _write(out, f"phantom_{seed}_{i:04d}", img, truth, fmt, params.jpeg_quality)
        rows.append(dict(image=name, um_per_px=params.um_per_px, field_id=i))
    manifest = pd.DataFrame(rows, columns=["image", "um_per_px", "field_id"])
    manifest.to_csv(out / "manifest.csv", index=False)
    return manifest


def generate_samples(out_dir, seed: int = 2026) -> pd.DataFrame:
    """The committed sample set: patient P001, vertex, two sessions x 3 fields.

    70x-like frames (1280x1024 at 2.78 µm/px) of clipped dark hair; the
    second session has a higher density (a responder).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for s, (date, density) in enumerate([("2026-01-10", 150.0), ("2026-03-07", 180.0)]):
        for field in range(3):
            rng = np.random.default_rng([seed, s, field])
            params = sample_scene(rng, height=1024, width=1280, um_per_px=2.78, density_per_cm2=density,
                                  hair_color="black", n_long_hairs=0, jpeg_quality=92,
                                  skin_tone=float(rng.uniform(0.05, 0.3)),
                                  header_strip=field == 0, scale_bar=field == 1)
            img, truth = render_frame(params, rng)
            truth["seed"] = [int(seed), s, field]
            stem = f"P001_{date}_vertex_{field + 1}"
            name = _write(out, stem, img, truth, "jpg", 92)
            rows.append(dict(image=name, um_per_px=2.78, patient_id="P001", site="vertex",
                             session_date=date, field_id=field + 1))
    manifest = pd.DataFrame(rows)
    manifest.to_csv(out / "manifest.csv", index=False)
    return manifest


def load_truth(json_path) -> dict:
    """Read one truth JSON (schema ``tricho-phantom-truth/1``)."""
    data = json.loads(Path(json_path).read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{json_path}: not a phantom truth file (schema {data.get('schema')!r}, expected {SCHEMA!r})")
    return data
