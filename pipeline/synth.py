"""Phantom trichoscopy frames with exact truth.

Renders close-up scalp frames like those of a handheld 20x–70x trichoscope,
together with the exact truth of every hair (emergence point, centre line,
shaft diameter, visible length, follicular unit), so the analysis pipeline
can be scored against exact answers.  It varies what real frames vary:
density, vellus/intermediate/terminal width mixes, hair colour (black to
white), skin tone (Fitzpatrick I–VI), follicular units of 1–4 hairs, hair
flow, clipped and long crossing hairs, perifollicular halos, empty openings,
scales, vessels, pigment network, ink, skin micro-relief, defocus (with a
gradient), Poisson–Gaussian noise, vignetting, glare, white balance, JPEG,
and burned-in device overlays (text header, padding strip, "1.0 mm" scale
bar, red measurement circle with its text box).

Geometry and coordinates
------------------------
All positions are ``(row, col)`` in pixels, with the centre of pixel
``(i, j)`` at ``(i, j)``.  Direction angles are measured from the +col axis
towards the +row axis.  Lengths inside the generator are drawn in
micrometres and converted with the frame's pixel size.

Shaft optics
------------
A pigmented shaft is close to opaque; its transmission across the diameter
follows Beer–Lambert over the chord through a cylinder,
``alpha(x) = 1 - exp(-k * 2 * sqrt(r**2 - x**2))``, with ``k`` large for
black and dark brown hair (a box profile of width = diameter) and small for
blond, grey and white hair.  The distance of each pixel centre to the centre
line is computed analytically over line segments and the profile is box
filtered across the shaft (4 sub-samples), so edges are sub-pixel exact.

Truth schema ``tricho-phantom-truth/1``
---------------------------------------
One JSON per frame with ``schema, image, seed, um_per_px, height_px,
width_px, field{row0,row1,col0,col1}, field_area_cm2, count_in_field,
density_per_cm2, hairs[...], units[...], empty_openings_rc, params``.
``field`` is the half-open counting box: the frame minus the full-width
header strip (top) and padding strip (bottom) when present.  A hair counts
when its emergence point ``(r, c)`` satisfies ``row0 <= r < row1`` and
``col0 <= c < col1`` (the trichoscopy convention that a hair belongs to the
field it emerges in).  ``hairs`` lists every hair of which some part (centre
line +- half width) falls inside the frame; ``units`` every unit with such a
hair; ``empty_openings_rc`` the empty openings inside the frame.  A hair and
its unit of two or more hairs say ``together`` when the unit's hairs lie
together (``SceneParams.unit_parallel_share``) rather than opening as a V; an
uncut long hair never does.

References
----------
Vellus <= 30 um, intermediate 30–60 um, terminal > 60 um: Rudnicka L. et al.,
"Hair shafts in trichoscopy", Dermatol Clin 31(4):695–708, 2013,
doi:10.1016/j.det.2013.06.007.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

__all__ = [
    "SCHEMA", "HAIR_COLORS", "SceneParams", "sample_scene", "render_frame", "paint_hair",
    "generate", "generate_samples", "load_truth",
]

SCHEMA = "tricho-phantom-truth/1"

#: Hair colours the generator knows, dark to light.
HAIR_COLORS = ("black", "dark_brown", "brown", "blond", "grey", "white")

#: Per colour: shaft RGB in [0, 1], absorption k (1/µm), highlight strength,
#: dark refraction rim strength (what makes white hair visible on light skin).
_HAIR_OPTICS: dict[str, tuple[tuple[float, float, float], float, float, float]] = {
    "black": ((0.095, 0.092, 0.105), 0.30, 0.10, 0.00),
    "dark_brown": ((0.14, 0.105, 0.09), 0.18, 0.10, 0.00),
    "brown": ((0.27, 0.19, 0.14), 0.055, 0.10, 0.06),
    "blond": ((0.74, 0.62, 0.42), 0.022, 0.10, 0.16),
    "grey": ((0.62, 0.62, 0.62), 0.016, 0.09, 0.20),
    "white": ((0.93, 0.93, 0.91), 0.010, 0.08, 0.24),
}

#: Skin colour seen through a trichoscope, Fitzpatrick I..VI (RGB in [0, 1]).
_SKIN_RGB = {
    1: (0.62, 0.59, 0.56),
    2: (0.60, 0.57, 0.51),
    3: (0.56, 0.53, 0.46),
    4: (0.47, 0.40, 0.33),
    5: (0.36, 0.28, 0.22),
    6: (0.25, 0.185, 0.15),
}

#: Shaft diameter classes (µm): vellus, intermediate, terminal.
_WIDTH_CLASSES_UM = ((10.0, 30.0), (30.0, 60.0), (60.0, 120.0))

_FONT = cv2.FONT_HERSHEY_SIMPLEX


# =========================================================================== parameters

@dataclass(frozen=True)
class SceneParams:
    """Every randomised choice of one phantom frame.

    Lengths are micrometres (``_um``) or pixels (``_px``) as named; angles in
    degrees from the +col axis towards the +row axis; colours as named in
    ``HAIR_COLORS``.  Placements of hairs, units and texture are drawn by
    ``render_frame`` from its own generator; everything a user may want to
    fix lives here.

    Attributes
    ----------
    height, width : int
        Frame size (pixels).
    um_per_px : float
        Pixel size (µm/px); 70x trichoscopes give about 2.2–3.6.
    density_per_cm2 : float
        Requested hair density (hairs/cm²); the realised in-field density
        matches it in expectation.
    unit_size_probs : tuple of 4 float
        Probabilities of follicular units with 1, 2, 3, 4 hairs.
    hair_color : str
        Main hair colour, one of ``HAIR_COLORS``.
    grey_fraction : float
        Share of hairs that are grey or white instead (0–1).
    skin_tone : int
        Fitzpatrick skin type 1 (very light) to 6 (dark).
    frac_vellus, frac_intermediate : float
        Shares of vellus (10–30 µm) and intermediate (30–60 µm) hairs; the
        rest are terminal (60–120 µm).
    terminal_width_um : float
        Mean diameter of terminal hairs (µm), sd 10 µm, kept in 60–120.
    clip_length_um : tuple of 2 float
        Range of visible lengths of clipped hairs (µm).
    n_long_hairs : int
        Number of uncut long hairs emerging *outside* the field that lie
        across it (fewer when the frame has fewer hairs within reach).
    uncut_fraction : float
        Share of the hairs emerging *inside* the field (or within 0.2 mm of
        it) that are uncut long hairs (0 = clipped scalp; long-hair scenes
        0.8–1).  In the real long-hair frames most shafts in view emerge in
        the field and a smaller number (about 0.2–1.2 per emerging hair)
        crosses it from outside.
    long_length_um : tuple of 2 float
        Range of visible lengths of long hairs (µm).
    flow_angle_deg, flow_bend_deg : float
        Mean hair direction and the amplitude of its smooth variation.
    unit_spread_deg : float
        Divergence between neighbouring hairs of a unit that opens as a V (deg).
    unit_parallel_share : float
        Share of the units of two or more hairs whose hairs lie together:
        neighbours emerge 0.72–1.68 mean widths apart, diverge by up to 5°
        per mean width between them (0–8°, median about 3°; a V's
        ``unit_spread_deg`` per width) and bend alike (in units of 3–4 the
        outer hairs diverge more, and the clamp on a unit's breadth can
        bring neighbours to 0.5 widths).  Drawn per unit from a stream of
        its own (seeded by the unit's number and opening, not the scene's
        seed), so the layout's other draws are the same for any share;
        which hairs near the frame become long or uncut, and the painted
        textures and noise, follow the moved geometry.  0.8 after two
        counts by eye of fdu_val half A frames (54 of 64 decided units
        parallel; docs/HISTORY.md, sessions 65 and 66).
    skin_texture : float
        Strength of micro-relief, creases and frost (0 = flat skin).
    light_angle_deg : float
        Direction the light comes from (sets highlights and shadows).
    blur_sigma_px, blur_gradient_px, blur_gradient_deg : float
        Gaussian defocus (px), extra defocus reached across the frame, and
        the direction of that gradient.
    noise_gain, noise_read : float
        Poisson–Gaussian noise: variance ``noise_gain * I + noise_read**2``
        on intensities ``I`` in [0, 1].
    vignetting : float
        Relative darkening at the frame corners.
    glare : float
        Strength of bright specular patches (0 = none).
    white_balance : tuple of 3 float
        RGB gains (colour cast).
    jpeg_quality : int or None
        JPEG quality applied to the frame (None = lossless PNG).
    header_strip, header_px : bool, int
        Dark semi-transparent text header at the top, its height (px).
    padding_strip, padding_px : bool, int
        Solid light grey padding strip at the bottom, its height (px).
    scale_bar, scale_bar_rc, scale_bar_color : bool, (int, int), str
        L-shaped "1.0 mm" bar; corner pixel of the L (lower-left); ``"dark"``
        or ``"white"``.  Each leg is ``round(1000 / um_per_px)`` px long.
    red_circle, circle_center_rc, circle_radius_px, circle_line_deg
        Red measurement circle (centre, radius in px), the angle of its red
        radius line, and its semi-transparent text box with blue text.
    halos, halo_strength : bool, float
        Bluish-grey perifollicular halos and their strength (0–1).
    empty_openings, empty_opening_ratio : bool, float
        Empty follicular openings, as a share of hair-bearing units.
    scales, vessels, pigment_network, ink_blotch : bool
        Scales/dandruff, thin red vessels, brown honeycomb pigment network,
        blue ink blotches.
    """

    height: int = 1024
    width: int = 1280
    um_per_px: float = 2.78
    density_per_cm2: float = 150.0
    unit_size_probs: tuple[float, float, float, float] = (0.40, 0.42, 0.15, 0.03)
    hair_color: str = "black"
    grey_fraction: float = 0.0
    skin_tone: int = 3
    frac_vellus: float = 0.04
    frac_intermediate: float = 0.12
    terminal_width_um: float = 80.0
    clip_length_um: tuple[float, float] = (250.0, 1100.0)
    n_long_hairs: int = 0
    uncut_fraction: float = 0.0
    long_length_um: tuple[float, float] = (2500.0, 7000.0)
    flow_angle_deg: float = 45.0
    flow_bend_deg: float = 12.0
    unit_spread_deg: float = 15.0
    unit_parallel_share: float = 0.8
    skin_texture: float = 1.0
    light_angle_deg: float = 135.0
    blur_sigma_px: float = 1.5
    blur_gradient_px: float = 0.0
    blur_gradient_deg: float = 0.0
    noise_gain: float = 0.0015
    noise_read: float = 0.006
    vignetting: float = 0.15
    glare: float = 0.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    jpeg_quality: int | None = None
    header_strip: bool = False
    header_px: int = 44
    padding_strip: bool = False
    padding_px: int = 32
    scale_bar: bool = False
    scale_bar_rc: tuple[int, int] = (900, 45)
    scale_bar_color: str = "dark"
    red_circle: bool = False
    circle_center_rc: tuple[float, float] = (0.0, 0.0)
    circle_radius_px: float = 900.0
    circle_line_deg: float = 30.0
    halos: bool = True
    halo_strength: float = 0.7
    empty_openings: bool = True
    empty_opening_ratio: float = 0.15
    scales: bool = False
    vessels: bool = False
    pigment_network: bool = False
    ink_blotch: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.hair_color not in HAIR_COLORS:
            problems.append(f"hair_color {self.hair_color!r} is not one of {HAIR_COLORS}")
        if int(self.skin_tone) not in _SKIN_RGB:
            problems.append(f"skin_tone {self.skin_tone!r} must be a Fitzpatrick type 1..6")
        if self.height < 16 or self.width < 16:
            problems.append(f"frame {self.height}x{self.width} is too small (16 px minimum)")
        if self.um_per_px <= 0:
            problems.append(f"um_per_px must be > 0, got {self.um_per_px}")
        if self.density_per_cm2 < 0:
            problems.append(f"density_per_cm2 must be >= 0, got {self.density_per_cm2}")
        if len(self.unit_size_probs) != 4 or min(self.unit_size_probs) < 0 or sum(self.unit_size_probs) <= 0:
            problems.append("unit_size_probs must be 4 non-negative numbers (1..4 hairs per unit)")
        if not 0 <= self.unit_parallel_share <= 1:
            problems.append(f"unit_parallel_share must be in [0, 1], got {self.unit_parallel_share}")
        if self.frac_vellus + self.frac_intermediate > 1 + 1e-9:
            problems.append("frac_vellus + frac_intermediate must be <= 1")
        if self.scale_bar_color not in ("dark", "white"):
            problems.append("scale_bar_color must be 'dark' or 'white'")
        if problems:
            raise ValueError("bad SceneParams: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @property
    def field_rows(self) -> tuple[int, int]:
        """Counting-field row range ``(row0, row1)``, half open."""
        row0 = int(self.header_px) if self.header_strip else 0
        row1 = self.height - (int(self.padding_px) if self.padding_strip else 0)
        return row0, row1


_FIELDS = {f.name for f in dataclasses.fields(SceneParams)}


def sample_scene(rng: np.random.Generator, **overrides: Any) -> SceneParams:
    """Draw varied scene parameters; ``overrides`` fix any field.

    About 70% of frames are 1280x1024; 75% are 70x-like (2.2–3.6 µm/px at
    1280 px wide: a field 2.8–4.6 mm wide), the rest 20x–40x-like (5–9 µm/px,
    6.4–11.5 mm).  Smaller drawn sensors (1024 x 768, 640 x 480) show the same
    fields with larger pixels; a fixed ``width`` keeps the 1280 px ranges.  Every value is drawn whether or not
    it is overridden, so fixing one field leaves the others unchanged.
    Placements (scale bar corner, circle) are drawn after the size, pixel
    size and strips are fixed, so they stay valid under overrides.

    Parameters
    ----------
    rng : numpy.random.Generator
        Seeded generator.
    **overrides
        Any ``SceneParams`` field, e.g. ``density_per_cm2=150``,
        ``hair_color="black"``.

    Returns
    -------
    SceneParams

    Raises
    ------
    TypeError
        An override that is not a ``SceneParams`` field.
    """
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise TypeError(f"unknown scene parameter(s) {unknown}; allowed: {sorted(_FIELDS)}")
    d: dict[str, Any] = {}
    for stage in (_draw_core, _draw_optics, _draw_overlays):
        d.update(stage(rng, {**d, **overrides}))  # later stages see the fixed values
        d.update({k: v for k, v in overrides.items() if k in d})
    return SceneParams(**{**d, **overrides})  # a field no stage draws keeps its default unless fixed


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """Scene overrides from ``KEY=VALUE`` strings (``tricho synth --set``).

    A value is read as JSON when it parses (``5``, ``0.3``, ``false``,
    ``[200, 600]``), else kept as text (``brown``).

    Raises
    ------
    ValueError
        A pair without ``=`` or a key that is not a ``SceneParams`` field,
        naming the pair and the allowed keys.
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or key not in _FIELDS:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(_FIELDS))}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw.strip()
        if key in POSITIVE_OVERRIDES and not (isinstance(out[key], (int, float)) and out[key] > 0):
            raise ValueError(f"--set {pair!r}: {key} takes a number above 0")
    return out


#: Scene parameters that are sizes: an override must be a number above 0.
POSITIVE_OVERRIDES = ("um_per_px", "height", "width")


#: Frame width (px) for which the drawn pixel sizes hold (:func:`_draw_core`).
#: A lens of 20x-70x shows a field 2.8-11.5 mm wide whatever the sensor: a
#: drawn 640 x 480 frame has twice the pixel size of a 1280 x 1024 one (a
#: 640 px frame at 2.2-3.6 µm/px would show 1.4-2.3 mm, a 150-200x field).
REFERENCE_WIDTH_PX = 1280


def _draw_core(rng: np.random.Generator, d: dict[str, Any]) -> dict[str, Any]:
    """Frame size, pixel size, hair population and skin."""
    size = [(1024, 1280), (768, 1024), (480, 640)][rng.choice(3, p=[0.7, 0.15, 0.15])]
    fine = rng.random() < 0.75
    um = float(rng.uniform(2.2, 3.6) if fine else rng.uniform(5.0, 9.0))  # for a frame 1280 px wide
    if "width" not in d:  # a drawn sensor size sees the same field through the same lens
        um *= REFERENCE_WIDTH_PX / size[1]
    mini = rng.random() < 0.45  # miniaturised scalp (androgenetic alopecia-like)
    thin = float(rng.uniform(0.3, 0.6)) if mini else float(rng.uniform(0.0, 0.15))
    vel_share = float(rng.uniform(0.3, 0.6)) if mini else float(rng.uniform(0.0, 0.4))
    colour = str(rng.choice(HAIR_COLORS, p=[0.36, 0.30, 0.12, 0.10, 0.07, 0.05]))
    tone = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.10, 0.22, 0.33, 0.17, 0.10, 0.08]))
    p1 = float(rng.uniform(0.55, 0.75) if mini else rng.uniform(0.25, 0.5))
    rest = rng.dirichlet([6.0, 2.0, 0.5]) * (1 - p1)
    lo = float(rng.uniform(120, 350))
    # 0: clipped scalp; 1: a few stray long hairs; 2: uncut long hair (70x only,
    # like ../shared/data/long_hair: most shafts emerge in view, fewer pass over)
    long_kind = rng.choice(3, p=[0.78, 0.15, 0.07])
    stray, _ = int(rng.integers(1, 11)), rng.integers(25, 90)  # second draw kept for stream stability
    long_kind = 1 if long_kind == 2 and not fine else long_kind
    out = dict(
        height=size[0], width=size[1], um_per_px=um,
        density_per_cm2=float(rng.uniform(40, 300)),
        unit_size_probs=(p1, *map(float, rest)),
        hair_color=colour,
        grey_fraction=0.0 if rng.random() < 0.7 else float(rng.uniform(0.05, 0.5)),
        skin_tone=tone,
        frac_vellus=thin * vel_share, frac_intermediate=thin * (1 - vel_share),
        terminal_width_um=float(rng.uniform(68, 100)),
        clip_length_um=(lo, lo + float(rng.uniform(200, 700) if rng.random() < 0.75 else rng.uniform(700, 1150))),
        n_long_hairs=[0, stray, 0][long_kind], uncut_fraction=0.0,
        long_length_um=(2000.0, float(rng.uniform(4000, 9000))),
        flow_angle_deg=float(rng.uniform(0, 360)), flow_bend_deg=float(rng.uniform(5, 25)),
        unit_spread_deg=float(rng.uniform(8, 25)),
        skin_texture=float(rng.uniform(0.5, 1.3)), light_angle_deg=float(rng.uniform(0, 360)),
        halos=bool(rng.random() < 0.9), halo_strength=float(rng.uniform(0.3, 1.0)),
        empty_openings=bool(rng.random() < 0.6), empty_opening_ratio=float(rng.uniform(0.05, 0.3)),
        scales=bool(rng.random() < 0.45), vessels=bool(rng.random() < 0.25),
        pigment_network=bool(rng.random() < (0.8 if tone >= 4 else 0.12)),
        ink_blotch=bool(rng.random() < 0.1),
    )
    if long_kind == 2:  # fixed values (overrides) win over the drawn ones
        out.update(_uncut_scene(rng, {**out, **{k: v for k, v in d.items() if k in out}}))
    return out


def _uncut_scene(rng: np.random.Generator, d: dict[str, Any]) -> dict[str, Any]:
    """An uncut long-hair scene: 80–100% of the hairs emerging in view are
    long, and 0.2–1.2 hairs per such hair cross the field from outside."""
    uncut = float(rng.uniform(0.8, 1.0))
    field_cm2 = d["height"] * d["width"] * d["um_per_px"] ** 2 * 1e-8
    n_pass = _stochastic_round(rng, float(rng.uniform(0.2, 1.2)) * uncut * d["density_per_cm2"] * field_cm2)
    return dict(uncut_fraction=uncut, n_long_hairs=n_pass)


def _draw_optics(rng: np.random.Generator, d: dict[str, Any]) -> dict[str, Any]:
    """Defocus, noise, vignetting, glare, colour cast, compression."""
    fine = d["um_per_px"] < 4.5
    blue = rng.random() < 0.2  # some devices give a strong bluish cast
    return dict(
        blur_sigma_px=float((rng.uniform(0.8, 1.8) if rng.random() < 0.7 else rng.uniform(1.8, 3.5))
                            if fine else rng.uniform(0.4, 1.2)),
        blur_gradient_px=0.0 if rng.random() < 0.6 else float(rng.uniform(0.5, 2.5)),
        blur_gradient_deg=float(rng.uniform(0, 360)),
        noise_gain=float(rng.uniform(0.0003, 0.003)), noise_read=float(rng.uniform(0.003, 0.012)),
        vignetting=float(rng.uniform(0.0, 0.35)),
        glare=0.0 if rng.random() < 0.5 else float(rng.uniform(0.05, 0.35)),
        white_balance=(float(rng.normal(1.0, 0.05)) - 0.08 * blue, 1.0,
                       float(rng.normal(1.0, 0.07)) + float(rng.uniform(0.2, 0.4)) * blue),
        jpeg_quality=None if rng.random() < 0.5 else int(rng.integers(60, 96)),
    )


def _draw_overlays(rng: np.random.Generator, d: dict[str, Any]) -> dict[str, Any]:
    """Device overlays, placed to fit the final frame size and pixel size."""
    h, w, um = d["height"], d["width"], d["um_per_px"]
    header = bool(rng.random() < 0.25)
    header_px = max(18, int(rng.integers(30, 61) * w / 1280))
    padding = bool(rng.random() < 0.25)
    padding_px = int(round(h * rng.uniform(0.025, 0.035)))
    bottom = h - (d.get("padding_px", padding_px) if d.get("padding_strip", padding) else 0)
    top = d.get("header_px", header_px) if d.get("header_strip", header) else 0
    leg = round(1000.0 / um)
    corner = (int(bottom - rng.uniform(0.06, 0.11) * h), int(rng.uniform(0.025, 0.05) * w))
    fits = corner[0] - leg > top + 8 and corner[1] + leg + 0.12 * w < w
    radius = float(rng.uniform(2300, 2700) / um)
    centre = (float(rng.uniform(-0.3, 0.8) * h), float(rng.uniform(-0.3, 0.9) * w))
    return dict(
        header_strip=header, header_px=header_px, padding_strip=padding, padding_px=padding_px,
        scale_bar=bool(rng.random() < 0.3) and fits, scale_bar_rc=corner,
        scale_bar_color="dark" if rng.random() < 0.7 else "white",
        red_circle=bool(rng.random() < 0.15), circle_center_rc=centre, circle_radius_px=radius,
        circle_line_deg=float(rng.uniform(0, 360)),
    )


# =========================================================================== layout

@dataclass
class _Hair:
    """One hair while rendering (pixels unless noted)."""

    unit_id: int
    emergence: np.ndarray  # (2,) row, col
    theta: float  # start direction (rad)
    width_um: float
    length_um: float
    color: str
    kind: str = "clipped"
    tan_cut: float = 0.0
    tone: float = 1.0
    curvature: tuple[float, float] = (0.0, 0.0)  # kappa at start and end (1/px)
    together: bool = False  # of a unit whose hairs lie together (``unit_parallel_share``)
    curve: np.ndarray | None = None  # (n, 2) fine samples, emergence first
    s: np.ndarray | None = None  # (n,) arc length of the samples


@dataclass
class _Layout:
    hairs: list[_Hair]
    openings: np.ndarray  # (U, 2)
    unit_theta: np.ndarray  # (U,)
    unit_sizes: np.ndarray  # (U,)
    empties: np.ndarray  # (E, 2)


def _stochastic_round(rng: np.random.Generator, x: float) -> int:
    base = math.floor(x)
    return int(base + (rng.random() < x - base))


def _spread_points(rng: np.random.Generator, n: int, box: tuple[float, float, float, float],
                   dmin: float) -> np.ndarray:
    """``n`` uniform points in ``box`` (r0, r1, c0, c1), re-drawn until no two are closer than ``dmin``.

    Distances wrap around the box (a torus), and re-drawing one point of
    each close pair does not depend on position, so the result is
    stationary: the expected density is ``n / area`` everywhere, with no
    edge effect (a plain box would pile points up along its edges).
    """
    r0, r1, c0, c1 = box
    size = np.array([r1 - r0, c1 - c0])
    pts = rng.uniform((0, 0), size, (n, 2))
    for _ in range(200):
        if n < 2 or dmin <= 0:
            break
        pairs = cKDTree(pts, boxsize=size).query_pairs(dmin, output_type="ndarray")
        if len(pairs) == 0:
            break
        bad = np.unique(pairs[:, 1])
        pts[bad] = rng.uniform((0, 0), size, (len(bad), 2))
    return pts + (r0, c0)


def _flow_field(p: SceneParams, rng: np.random.Generator):
    """Smooth hair-direction field: ``theta(points (N, 2)) -> (N,)`` radians."""
    base, amp = math.radians(p.flow_angle_deg), math.radians(p.flow_bend_deg)
    waves = []
    for weight in (0.65, 0.35):
        wavelength = rng.uniform(3000, 9000) / p.um_per_px
        ang = rng.uniform(0, math.pi)
        k = 2 * math.pi / wavelength * np.array([math.sin(ang), math.cos(ang)])
        waves.append((weight, k, rng.uniform(0, 2 * math.pi)))

    def theta(rc: np.ndarray) -> np.ndarray:
        rc = np.atleast_2d(rc)
        return base + amp * sum(wt * np.sin(rc @ k + ph) for wt, k, ph in waves)
    return theta


def _draw_width_um(p: SceneParams, rng: np.random.Generator) -> float:
    u = rng.random()
    if u < p.frac_vellus:
        lo, hi = _WIDTH_CLASSES_UM[0]
        return float(rng.uniform(lo + 2, hi))
    if u < p.frac_vellus + p.frac_intermediate:
        lo, hi = _WIDTH_CLASSES_UM[1]
        return float(rng.uniform(lo, hi))
    return float(np.clip(rng.normal(p.terminal_width_um, 10.0), 60.5, 120.0))


def _draw_color(p: SceneParams, rng: np.random.Generator) -> str:
    if rng.random() < p.grey_fraction:
        return "white" if rng.random() < 0.4 else "grey"
    return p.hair_color


def _unit_hairs(p: SceneParams, rng: np.random.Generator, uid: int, opening: np.ndarray,
                theta_u: float, n: int) -> list[_Hair]:
    """The ``n`` hairs of one unit: touching at the opening, then lying together or opening as a V.

    Whether a unit lies together (``unit_parallel_share``), its divergence and
    its spacing factor come from a stream of the unit's own (seeded by its
    number and opening), so that the layout's other draws are unchanged; the
    direction jitter of hairs lying together is halved.
    """
    um = p.um_per_px
    own = np.random.default_rng([uid, *(int(abs(v) * 1000) for v in opening)])
    parallel = n > 1 and own.random() < p.unit_parallel_share
    widths = np.array([round(_draw_width_um(p, rng), 1) for _ in range(n)])
    wpx = widths / um
    # A V: neighbouring emergence points 0.8-1.2 mean widths apart and a
    # divergence of 8-25 deg (``unit_spread_deg``), as set on look-alike frames'
    # wide stripes (benchmarks/stripe_widths.py, fdu_val half A only).  Lying
    # together (session 66): 0.72-1.68 widths apart (overlapping a little, touching,
    # or a gap), diverging 0-5 deg per width between them, bending alike, as most
    # real units are seen by eye.
    gaps = 0.5 * (wpx[:-1] + wpx[1:]) * rng.uniform(0.8, 1.2, max(n - 1, 0))
    spacing, spread_deg = (own.uniform(0.9, 1.4), own.uniform(0.0, 5.0)) if parallel else (1.0, p.unit_spread_deg)
    lateral = np.concatenate([[0.0], np.cumsum(gaps * spacing)])
    lateral -= lateral.mean()
    limit = 1.07 * spacing * wpx.max()
    if np.abs(lateral).max() > limit:
        lateral *= limit / np.abs(lateral).max()
    along = np.clip(rng.normal(0, 0.15, n), -0.3, 0.3) * wpx
    direction = np.array([math.sin(theta_u), math.cos(theta_u)])
    normal = np.array([math.cos(theta_u), -math.sin(theta_u)])
    step = math.radians(spread_deg) / max(wpx.mean(), 1e-6)
    jitter = 0.5 if parallel else 1.0
    lo, hi = p.clip_length_um
    hairs = []
    for i in range(n):
        emergence = np.round(opening + lateral[i] * normal + along[i] * direction, 3)
        length = max(float(rng.uniform(lo, hi)), 2.5 * widths[i])
        hairs.append(_Hair(
            unit_id=uid, emergence=emergence,
            theta=theta_u + lateral[i] * step + jitter * math.radians(rng.normal(0, 1.5)),
            width_um=float(widths[i]), length_um=round(length, 1), color=_draw_color(p, rng),
            tan_cut=math.tan(math.radians(float(np.clip(rng.normal(0, 12), -40, 40)))),
            tone=float(rng.uniform(0.85, 1.15)),
            curvature=(float(rng.uniform(-1, 1)) * um / 8000.0,) * 2,
        ))
    if parallel:  # hairs lying together bend alike
        for hair in hairs:
            hair.curvature, hair.together = hairs[0].curvature, True
    return hairs


def _layout(p: SceneParams, rng: np.random.Generator) -> _Layout:
    """Openings, units and hairs over the frame extended by the longest hair."""
    um, h, w = p.um_per_px, p.height, p.width
    reach_clip = p.clip_length_um[1] / um + 130 / um
    reach_long = p.long_length_um[1] / um if p.n_long_hairs > 0 else 0.0
    margin = max(reach_clip, reach_long) + 2.0
    box = (-margin, h + margin, -margin, w + margin)
    area_cm2 = (h + 2 * margin) * (w + 2 * margin) * um * um * 1e-8
    probs = np.asarray(p.unit_size_probs, float) / sum(p.unit_size_probs)
    lam_units = p.density_per_cm2 / float(probs @ np.arange(1, 5))
    n_units = _stochastic_round(rng, lam_units * area_cm2)
    ratio = p.empty_opening_ratio if p.empty_openings else 0.0
    n_empty = _stochastic_round(rng, n_units * ratio)
    per_px2 = (n_units + n_empty) / max((h + 2 * margin) * (w + 2 * margin), 1.0)
    dmin = 0.5 / math.sqrt(per_px2) if per_px2 > 0 else 0.0
    pts = np.round(_spread_points(rng, n_units + n_empty, box, dmin), 3)
    openings, empties = pts[:n_units], pts[n_units:]
    flow = _flow_field(p, rng)
    theta_u = flow(openings) + np.radians(rng.normal(0, 6, n_units)) if n_units else np.zeros(0)
    sizes = rng.choice(4, size=n_units, p=probs) + 1
    hairs: list[_Hair] = []
    for uid in range(n_units):
        hairs += _unit_hairs(p, rng, uid, openings[uid], float(theta_u[uid]), int(sizes[uid]))
    _make_long(p, rng, hairs)
    _build_curves(p, hairs)
    return _Layout(hairs, openings, theta_u, sizes, empties)


def _near_frame(rc: np.ndarray, shape: tuple[int, int], pad: float) -> bool:
    return bool(-0.5 - pad <= rc[0] < shape[0] - 0.5 + pad and -0.5 - pad <= rc[1] < shape[1] - 0.5 + pad)


def _make_long(p: SceneParams, rng: np.random.Generator, hairs: list[_Hair]) -> None:
    """Make hairs uncut: ``uncut_fraction`` of those emerging in view, then up
    to ``n_long_hairs`` emerging outside the field that reach across it."""
    if (p.n_long_hairs <= 0 and p.uncut_fraction <= 0) or not hairs:
        return
    um, shape = p.um_per_px, (p.height, p.width)
    near = 200.0 / um
    inside = np.array([_near_frame(h.emergence, shape, near) for h in hairs])
    lo, hi = p.long_length_um
    for idx in np.flatnonzero(inside):
        if rng.random() < p.uncut_fraction:  # emerging in view: long enough that most leave the field
            hairs[idx] = _uncut(p, rng, hairs[idx], float(rng.uniform(max(lo, 4000.0), max(hi, 4500.0))),
                                thicken=False)
    done = 0
    for idx in rng.permutation(np.flatnonzero(~inside)):
        if done >= p.n_long_hairs:
            break
        length = float(rng.uniform(*p.long_length_um))
        if not _near_frame(hairs[idx].emergence, shape, length / um):
            continue
        trial = _uncut(p, rng, hairs[idx], length)
        if _curve_in_frame(trial, shape, um):
            hairs[idx] = trial
            done += 1


def _uncut(p: SceneParams, rng: np.random.Generator, hair: _Hair, length: float, *, thicken: bool = True) -> _Hair:
    """A long uncut version of ``hair``, ``length`` µm visible (gentle bends,
    centre line built); a hair passing over from outside gets a thicker floor
    (45–100 µm)."""
    um = p.um_per_px
    kmax = um / 1500.0  # tightest bend: 1.5 mm radius
    long = dataclasses.replace(
        hair, kind="long", length_um=round(max(length, 20 * hair.width_um), 1), together=False,
        width_um=round(max(hair.width_um, float(rng.uniform(45, 100))), 1) if thicken else hair.width_um,
        curvature=(float(rng.uniform(-kmax, kmax)) * 0.5, float(rng.uniform(-kmax, kmax)) * 0.8),
        tan_cut=math.tan(math.radians(float(rng.normal(0, 20)))))
    _curve(long, um)
    return long


def _curve(hair: _Hair, um: float) -> None:
    """Sample the centre line (heading with linearly varying curvature), emergence first."""
    length = hair.length_um / um
    ds = 0.5 if hair.kind == "clipped" else 1.0
    n = max(3, int(math.ceil(length / ds)) + 1)
    s = np.linspace(0.0, length, n)
    k0, k1 = hair.curvature
    theta = hair.theta + k0 * s + 0.5 * (k1 - k0) / max(length, 1e-9) * s * s
    mid = 0.5 * (theta[1:] + theta[:-1])
    step = np.diff(s)
    d = np.column_stack([np.sin(mid) * step, np.cos(mid) * step])
    hair.curve = hair.emergence + np.vstack([[0.0, 0.0], np.cumsum(d, axis=0)])
    hair.s = s


def _curve_in_frame(hair: _Hair, shape: tuple[int, int], um: float) -> bool:
    pad = 0.5 * hair.width_um / um
    c = hair.curve
    inside = ((c[:, 0] >= -0.5 - pad) & (c[:, 0] < shape[0] - 0.5 + pad)
              & (c[:, 1] >= -0.5 - pad) & (c[:, 1] < shape[1] - 0.5 + pad))
    return bool(inside.any())


def _build_curves(p: SceneParams, hairs: list[_Hair]) -> None:
    shape = (p.height, p.width)
    for hair in hairs:
        if hair.curve is None and _near_frame(hair.emergence, shape, (hair.length_um + hair.width_um) / p.um_per_px):
            _curve(hair, p.um_per_px)


# =========================================================================== noise fields

def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Zero-mean, unit-sd Gaussian random field with correlation length ``sigma_px``."""
    h, w = shape
    down = max(1.0, sigma_px / 3.0)
    sh, sw = max(4, int(h / down) + 3), max(4, int(w / down) + 3)
    small = rng.standard_normal((sh, sw)).astype(np.float32)
    small = cv2.GaussianBlur(small, (0, 0), max(0.5, sigma_px / down))
    small = (small - small.mean()) / max(float(small.std()), 1e-6)
    big = cv2.resize(small, (int(round(sw * down)), int(round(sh * down))), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(big[:h, :w])


def _cell_edges(rng: np.random.Generator, shape: tuple[int, int], cell_px: float, warp_px: float) -> np.ndarray:
    """Boundaries of random polygonal cells (a 1-px network in [0, 1]), gently warped."""
    h, w = shape
    n = max(4, int(h * w / (cell_px * cell_px)))
    seeds = np.ones((h, w), np.uint8)
    seeds[rng.integers(0, h, n), rng.integers(0, w, n)] = 0
    _, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    edges = np.zeros((h, w), np.float32)
    edges[:, :-1] += labels[:, :-1] != labels[:, 1:]
    edges[:-1, :] += labels[:-1, :] != labels[1:, :]
    if warp_px > 0:
        edges = _warp(rng, np.minimum(edges, 1.0), warp_px, cell_px)
    return np.minimum(edges, 1.0)


def _warp(rng: np.random.Generator, img: np.ndarray, amount_px: float, scale_px: float) -> np.ndarray:
    h, w = img.shape[:2]
    dr = _smooth_noise(rng, (h, w), scale_px) * amount_px
    dc = _smooth_noise(rng, (h, w), scale_px) * amount_px
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(img, cols + dc, rows + dr, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _band_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Band-pass noise (difference of Gaussians) with unit sd."""
    white = rng.standard_normal(shape).astype(np.float32)
    band = cv2.GaussianBlur(white, (0, 0), sigma_px) - cv2.GaussianBlur(white, (0, 0), 2.5 * sigma_px)
    return band / max(float(band.std()), 1e-6)


# =========================================================================== skin

def _render_skin(p: SceneParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Skin colour, low-frequency mottling, micro-relief and frost.

    Returns
    -------
    img : ndarray of float32, shape (H, W, 3)
        Skin RGB in [0, 1].
    frost : ndarray of float32, shape (H, W)
        Bright granular "frost" in [0, ~1], reused for glare and scales.
    """
    shape, um, tex = (p.height, p.width), p.um_per_px, p.skin_texture
    base = np.asarray(_SKIN_RGB[int(p.skin_tone)], np.float32)
    img = np.empty(shape + (3,), np.float32)
    img[:] = base
    lum = 0.05 * _smooth_noise(rng, shape, 500 / um) + 0.025 * _smooth_noise(rng, shape, 120 / um)
    red = np.clip(_smooth_noise(rng, shape, 300 / um), 0, None) * 0.02
    img *= (1 + lum)[..., None]
    img += red[..., None] * np.array([0.9, -0.35, -0.25], np.float32)
    if tex <= 0:
        return img, np.zeros(shape, np.float32)
    tex *= (float(base.mean()) / 0.53) ** 0.8  # keratin glints show less on dark skin
    edges = _cell_edges(rng, shape, rng.uniform(100, 260) / um, 16 / um)
    edges *= np.clip(0.5 + 0.6 * _smooth_noise(rng, shape, 200 / um), 0, 1.5)
    narrow = cv2.GaussianBlur(edges, (0, 0), max(0.7, 3 / um))
    broad = cv2.GaussianBlur(edges, (0, 0), max(1.5, 9 / um))
    relief = 3.0 * broad - 2.0 * narrow  # a dark furrow between bright shoulders
    relief += 0.6 * cv2.GaussianBlur(_cell_edges(rng, shape, rng.uniform(40, 90) / um, 8 / um), (0, 0),
                                     max(0.6, 2 / um))
    creases = _creases(rng, shape, um)
    frost = _frost(rng, shape, um)
    fibres = _fibres(rng, shape, um)
    blotch = _band_noise(rng, shape, max(2.0, 30 / um))
    bright = (0.06 * relief + 0.06 * creases + 0.12 * frost + 0.06 * np.clip(fibres, 0, None)
              - 0.03 * np.clip(-fibres, 0, None) + 0.015 * blotch)
    img += (tex * bright)[..., None] * np.array([0.95, 0.97, 1.0], np.float32)
    sparkle = _sparkle(rng, shape, um) * np.clip(0.1 + frost * 3.0, 0, 1.5)
    img += (tex * 0.35 * sparkle)[..., None] * np.array([0.92, 0.97, 1.08], np.float32)
    grain = _band_noise(rng, shape, max(0.7, 2.5 / um))
    img *= (1 + 0.02 * tex * grain)[..., None]
    return img, frost


def _creases(rng: np.random.Generator, shape: tuple[int, int], um: float) -> np.ndarray:
    """Longer whitish skin furrows: gently curving polylines, partly parallel."""
    h, w = shape
    layer = np.zeros(shape, np.float32)
    n = int(rng.integers(6, 20) * h * w * um * um / (1024 * 1280 * 2.78 ** 2)) + 3
    main = rng.uniform(0, math.pi)
    for _ in range(n):
        ang = main + rng.normal(0, 0.5) if rng.random() < 0.6 else rng.uniform(0, math.pi)
        pts = [rng.uniform((0, 0), (h, w))]
        for _ in range(int(rng.integers(4, 12))):
            ang += rng.normal(0, 0.15)
            pts.append(pts[-1] + rng.uniform(60, 160) / um * np.array([math.sin(ang), math.cos(ang)]))
        arr = (np.array(pts)[:, ::-1] * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(layer, [arr], False, float(rng.uniform(0.3, 1.0)), 1, cv2.LINE_AA, 4)
    return cv2.GaussianBlur(layer, (0, 0), max(0.7, 4 / um))


def _line_kernel(length_px: float, angle: float) -> np.ndarray:
    k = int(max(3, math.ceil(length_px)) | 1)
    kernel = np.zeros((k, k), np.float32)
    h = (k - 1) / 2
    dx, dy = math.cos(angle) * h, math.sin(angle) * h
    cv2.line(kernel, (int(round(h - dx)), int(round(h - dy))), (int(round(h + dx)), int(round(h + dy))), 1.0, 1,
             cv2.LINE_AA)
    return kernel / kernel.sum()


def _fibres(rng: np.random.Generator, shape: tuple[int, int], um: float) -> np.ndarray:
    """Elongated ridges and crevices of the horny layer, two local orientations blended (unit sd)."""
    out = np.zeros(shape, np.float32)
    weight = np.clip(0.5 + 0.6 * _smooth_noise(rng, shape, 250 / um), 0, 1)
    base = rng.uniform(0, math.pi)
    for wt, ang in ((weight, base), (1 - weight, base + rng.uniform(0.6, 1.6))):
        white = rng.standard_normal(shape).astype(np.float32)
        streak = cv2.filter2D(white, -1, _line_kernel(rng.uniform(12, 30) / um, ang))
        streak -= cv2.GaussianBlur(streak, (0, 0), max(2.0, 12 / um))
        out += wt * streak / max(float(streak.std()), 1e-6)
    return out


def _sparkle(rng: np.random.Generator, shape: tuple[int, int], um: float) -> np.ndarray:
    """Sparse, sharp, slightly elongated specular specks (0..~1)."""
    white = rng.standard_normal(shape).astype(np.float32)
    dots = np.clip(white - 3.0, 0, None) * 1.5
    dots = cv2.filter2D(dots, -1, _line_kernel(max(2.0, 6 / um), rng.uniform(0, math.pi)))
    dots = cv2.GaussianBlur(dots, (0, 0), max(0.5, 1.2 / um))
    return np.clip(dots * (3.0 / max(float(dots.max()), 1e-6)), 0, 1)


def _frost(rng: np.random.Generator, shape: tuple[int, int], um: float) -> np.ndarray:
    """Bright granular speckle in patches (the glittering keratin of real frames)."""
    speck = np.clip(_band_noise(rng, shape, max(0.8, 5 / um)) - 1.2, 0, None)
    cluster = np.clip(_band_noise(rng, shape, max(1.5, 16 / um)) - 0.2, 0, None)
    cloud = np.clip(_band_noise(rng, shape, max(3.0, 45 / um)), 0, None)
    patch = np.clip(0.2 + 0.7 * _smooth_noise(rng, shape, 300 / um), 0.0, 1.4)
    return (0.3 * speck + 0.4 * cluster + 0.35 * cloud) * patch


def _pigment_network(img: np.ndarray, p: SceneParams, rng: np.random.Generator) -> None:
    """Brown honeycomb: pigmented lines around lighter holes (darker skin)."""
    um, shape = p.um_per_px, img.shape[:2]
    net = _cell_edges(rng, shape, rng.uniform(100, 200) / um, 14 / um)
    net = cv2.GaussianBlur(net, (0, 0), max(1.5, rng.uniform(14, 26) / um))
    net *= np.clip(0.65 + 0.5 * _smooth_noise(rng, shape, 60 / um), 0, 1.3)  # broken, uneven lines
    net /= max(float(np.percentile(net, 99.5)), 1e-6)
    darkness = {1: 0.3, 2: 0.4, 3: 0.6, 4: 0.8, 5: 1.0, 6: 1.0}[int(p.skin_tone)]
    strength = darkness * rng.uniform(0.3, 0.6) * np.clip(0.7 + 0.5 * _smooth_noise(rng, shape, 400 / um), 0.1, 1.2)
    dark = np.clip(net * strength, 0, 0.8)[..., None]
    img *= 1 - dark * np.array([0.60, 0.70, 0.78], np.float32)


def _vessels(img: np.ndarray, p: SceneParams, rng: np.random.Generator) -> None:
    """Thin meandering red vessels (arborising / twisted capillaries)."""
    um, (h, w) = p.um_per_px, img.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(2, 9))):
        pts = [rng.uniform((0, 0), (h, w))]
        ang = rng.uniform(0, 2 * math.pi)
        bend = rng.uniform(0.03, 0.12)
        for _ in range(int(rng.uniform(300, 1500) / um / 4)):
            ang += rng.normal(0, bend)
            pts.append(pts[-1] + 4 * np.array([math.sin(ang), math.cos(ang)]))
        arr = (np.array(pts)[:, ::-1] * 16).astype(np.int32).reshape(-1, 1, 2)
        thick = max(1, int(round(rng.uniform(8, 22) / um)))
        cv2.polylines(layer, [arr], False, float(rng.uniform(0.15, 0.45)), thick, cv2.LINE_AA, 4)
    layer = cv2.GaussianBlur(layer, (0, 0), max(1.0, 8 / um))[..., None]
    img *= 1 - layer * np.array([0.10, 0.45, 0.40], np.float32)


def _ink(img: np.ndarray, p: SceneParams, rng: np.random.Generator, frost: np.ndarray) -> None:
    """Blue marker-ink blotch following the skin texture, with stray dots."""
    um, (h, w) = p.um_per_px, img.shape[:2]
    centre = rng.uniform((0, 0), (h, w))
    radius = rng.uniform(300, 1100) / um
    rows, cols = np.ogrid[0:h, 0:w]
    dist = np.hypot(rows - centre[0], cols - centre[1]) / radius
    blob = np.clip(1.2 - dist + 0.45 * _smooth_noise(rng, (h, w), 60 / um), 0, 1)
    texture = np.clip(0.25 + 0.35 * _fibres(rng, (h, w), um) + 2.0 * frost, 0, 1)
    blob = np.clip((blob - 0.3) * 2.5, 0, 1) * texture
    dots = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(3, 15))):
        r, c = rng.uniform((0, 0), (h, w))
        cv2.circle(dots, (int(c * 16), int(r * 16)), int(16 * rng.uniform(4, 15) / um + 8), 1.0, -1, cv2.LINE_AA, 4)
    a = np.clip(np.maximum(blob, dots) * rng.uniform(0.6, 0.9), 0, 1)[..., None]
    ink = np.array([0.12, 0.20, 0.85], np.float32)
    img[:] = img * (1 - a) + ink * a * (0.5 + 0.8 * img.mean(axis=2, keepdims=True))


# =========================================================================== halos, openings, scales

def _stamp(canvas: np.ndarray, centre: np.ndarray, theta: float, sig_back: float, sig_front: float,
           sig_side: float, amp: float, offset_side: float = 0.0) -> None:
    """Max-blend an anisotropic (comet-shaped) Gaussian onto ``canvas``."""
    h, w = canvas.shape
    reach = 3.0 * max(sig_back, sig_front, sig_side) + abs(offset_side)
    r0, r1 = int(max(0, centre[0] - reach)), int(min(h, centre[0] + reach + 1))
    c0, c1 = int(max(0, centre[1] - reach)), int(min(w, centre[1] + reach + 1))
    if r0 >= r1 or c0 >= c1:
        return
    dr = np.arange(r0, r1, dtype=np.float32)[:, None] - centre[0]
    dc = np.arange(c0, c1, dtype=np.float32)[None, :] - centre[1]
    u = dr * math.sin(theta) + dc * math.cos(theta)
    v = dr * math.cos(theta) - dc * math.sin(theta) - offset_side
    su = np.where(u < 0, sig_back, sig_front)
    val = amp * np.exp(-0.5 * ((u / su) ** 2 + (v / sig_side) ** 2))
    np.maximum(canvas[r0:r1, c0:c1], val, out=canvas[r0:r1, c0:c1])


def _halo_maps(p: SceneParams, rng: np.random.Generator, lay: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Perifollicular halo and sub-surface shaft maps at full size (values 0–1)."""
    f, um = 0.5, p.um_per_px  # drawn at half resolution: both are soft
    small = (max(2, int(p.height * f) + 1), max(2, int(p.width * f) + 1))
    halo, sub = np.zeros(small, np.float32), np.zeros(small, np.float32)
    shape = (p.height, p.width)
    by_unit: dict[int, list[_Hair]] = {}
    for hair in lay.hairs:
        by_unit.setdefault(hair.unit_id, []).append(hair)
    for uid, opening in enumerate(lay.openings):
        if not _near_frame(opening, shape, 1500 / um):
            continue
        theta = float(lay.unit_theta[uid])
        if p.halos:
            amp = p.halo_strength * rng.uniform(0.5, 1.0)
            side = rng.uniform(80, 200) / um * f
            _stamp(halo, opening * f, theta, rng.uniform(250, 650) / um * f, rng.uniform(50, 120) / um * f,
                   side, amp, offset_side=rng.normal(0, 0.35) * side)
        for hair in by_unit.get(uid, []):
            wpx = hair.width_um / um * f
            depth = rng.uniform(50, 170) / um * f
            _stamp(sub, hair.emergence * f, hair.theta, depth, 0.35 * wpx + 0.5, 0.6 * wpx + 0.6,
                   rng.uniform(0.3, 0.7) * (1.0 if hair.color in ("black", "dark_brown", "brown") else 0.3))
    for e in lay.empties:
        if p.halos and _near_frame(e, shape, 600 / um):
            _stamp(halo, e * f, rng.uniform(0, 2 * math.pi), rng.uniform(80, 250) / um * f,
                   40 / um * f, rng.uniform(40, 90) / um * f, 0.5 * p.halo_strength * rng.uniform(0.3, 1.0))
    up = (p.width, p.height)
    return (cv2.resize(halo, up, interpolation=cv2.INTER_LINEAR),
            cv2.resize(sub, up, interpolation=cv2.INTER_LINEAR))


def _apply_halos(img: np.ndarray, p: SceneParams, rng: np.random.Generator, lay: _Layout,
                 frost: np.ndarray) -> None:
    halo, sub = _halo_maps(p, rng, lay)
    fuzz = np.clip(0.9 + 0.8 * (frost - frost.mean()) + 0.2 * _band_noise(rng, frost.shape, 6 / p.um_per_px),
                   0.4, 1.6)  # halos look fibrous, not smooth
    halo = np.clip(halo * fuzz, 0, 1)[..., None]
    img *= 1 - halo * (1 - np.array([0.60, 0.71, 0.90], np.float32))
    sub = np.clip(sub, 0, 1)[..., None]
    img *= 1 - sub * (1 - np.array([0.42, 0.48, 0.60], np.float32))
    img += (0.12 * p.skin_texture * halo[..., 0] * frost)[..., None]


def _empty_openings(img: np.ndarray, p: SceneParams, rng: np.random.Generator, lay: _Layout) -> None:
    """Small greyish-brown dots (openings without a visible shaft)."""
    um, (h, w) = p.um_per_px, img.shape[:2]
    for e in lay.empties:
        rad = rng.uniform(15, 35) / um
        if not _near_frame(e, (h, w), 3 * rad):
            continue
        reach = int(3 * rad + 2)
        r0, r1, c0, c1 = (max(0, int(e[0]) - reach), min(h, int(e[0]) + reach + 1),
                          max(0, int(e[1]) - reach), min(w, int(e[1]) + reach + 1))
        if r0 >= r1 or c0 >= c1:
            continue
        d2 = ((np.arange(r0, r1)[:, None] - e[0]) ** 2 + (np.arange(c0, c1)[None, :] - e[1]) ** 2) / rad ** 2
        dot = (rng.uniform(0.3, 0.6) * np.exp(-1.5 * d2)).astype(np.float32)[..., None]
        img[r0:r1, c0:c1] *= 1 - dot * np.array([0.55, 0.55, 0.50], np.float32)


def _flakes(p: SceneParams, rng: np.random.Generator, lay: _Layout) -> list[tuple]:
    """Scales: (centre, radius_px, over_hairs) for each flake; half near openings."""
    if not p.scales:
        return []
    um, (h, w) = p.um_per_px, (p.height, p.width)
    area_ratio = h * w * um * um / (1024 * 1280 * 2.78 ** 2)
    n = int(rng.integers(3, 25) * max(area_ratio, 0.2)) + 1
    inside = [o for o in lay.openings if _near_frame(o, (h, w), 0)]
    flakes = []
    for _ in range(n):
        if inside and rng.random() < 0.55:
            centre = inside[int(rng.integers(len(inside)))] + rng.normal(0, 120 / um, 2)
        else:
            centre = rng.uniform((0, 0), (h, w))
        flakes.append((centre, rng.uniform(40, 320) / um, bool(rng.random() < 0.4)))
    return flakes


def _draw_flake(img: np.ndarray, centre: np.ndarray, radius: float, rng: np.random.Generator,
                frost: np.ndarray) -> None:
    """One whitish, semi-transparent, irregular flake."""
    h, w = img.shape[:2]
    ang = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    rad = np.ones_like(ang)
    for k in range(2, 7):
        rad += rng.normal(0, 0.28 / k) * np.cos(k * ang + rng.uniform(0, 2 * math.pi))
    rad = radius * np.clip(rad, 0.35, 1.6)
    stretch, turn = rng.uniform(1.0, 2.5), rng.uniform(0, math.pi)
    pr, pc = rad * np.sin(ang) / stretch, rad * np.cos(ang)
    pts = np.column_stack([pr * math.cos(turn) + pc * math.sin(turn), pc * math.cos(turn) - pr * math.sin(turn)])
    reach = int(1.5 * radius + 4)
    r0, c0 = int(centre[0]) - reach, int(centre[1]) - reach
    mask = np.zeros((2 * reach + 1, 2 * reach + 1), np.float32)
    local = ((pts + centre - (r0, c0))[:, ::-1] * 16).astype(np.int32)
    cv2.fillPoly(mask, [local], 1.0, cv2.LINE_AA, 4)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.8, 0.12 * radius))
    rr0, rr1, cc0, cc1 = max(0, r0), min(h, r0 + mask.shape[0]), max(0, c0), min(w, c0 + mask.shape[1])
    if rr0 >= rr1 or cc0 >= cc1:
        return
    m = mask[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0]
    a = (m * rng.uniform(0.2, 0.55) * np.clip(0.45 + 1.5 * frost[rr0:rr1, cc0:cc1], 0.25, 1.3))[..., None]
    colour = np.array([0.90, 0.89, 0.85], np.float32) * rng.uniform(0.9, 1.05)
    img[rr0:rr1, cc0:cc1] = img[rr0:rr1, cc0:cc1] * (1 - a) + colour * a


# =========================================================================== hair shafts

def _render_vertices(hair: _Hair) -> tuple[np.ndarray, np.ndarray]:
    """A subset of the fine samples used as line-segment vertices for rendering.

    Chords of length ``sqrt(0.24 * rho)`` on a curve of radius ``rho`` (px)
    deviate from it by at most 0.03 px; clipped hairs (radius >= 8 mm) get
    24 px chords, long ones (radius >= 1.5 mm) 4–24 px.
    """
    kmax = max(abs(hair.curvature[0]), abs(hair.curvature[1]), 1e-9)
    seg = 24.0 if hair.kind == "clipped" else float(np.clip(math.sqrt(0.24 / kmax), 4.0, 24.0))
    ds = hair.s[1] - hair.s[0]
    m = max(1, int(round(seg / ds)))
    idx = np.unique(np.r_[np.arange(0, len(hair.s), m), len(hair.s) - 1])
    return hair.curve[idx], hair.s[idx]


def _shaft_field(verts: np.ndarray, s_verts: np.ndarray, reach: float, shape: tuple[int, int]):
    """Signed distance and arc position of every pixel within ``reach`` of a polyline.

    The first and last segments are extended (unclamped), so the cut tip
    and the emergence end are flat, not round.

    Returns
    -------
    rr, cc : ndarray of int
        Pixel indices within reach.
    sd : ndarray of float32
        Signed distance to the centre line (px); the sign tells the side.
    s : ndarray of float32
        Arc length (px) of the nearest centre-line point from emergence.
    """
    h, w = shape
    lo = np.floor(verts.min(axis=0) - reach).astype(int)
    hi = np.ceil(verts.max(axis=0) + reach).astype(int) + 1
    r0, c0, r1, c1 = max(lo[0], 0), max(lo[1], 0), min(hi[0], h), min(hi[1], w)
    if r0 >= r1 or c0 >= c1:
        return None
    dist = np.full((r1 - r0, c1 - c0), np.inf, np.float32)
    arc = np.zeros_like(dist)
    side = np.zeros_like(dist)
    nseg = len(verts) - 1
    per_chunk = max(1, int(48.0 / max(float(np.diff(s_verts).mean()), 1e-6)))
    for j0 in range(0, nseg, per_chunk):
        j1 = min(j0 + per_chunk, nseg)
        _chunk_field(verts[j0:j1 + 1], s_verts[j0:j1 + 1], j0 == 0, j1 == nseg, reach,
                     (r0, c0, r1, c1), dist, arc, side)
    rr, cc = np.nonzero(dist <= reach)
    return rr + r0, cc + c0, side[rr, cc] * dist[rr, cc], arc[rr, cc]


def _chunk_field(v: np.ndarray, sv: np.ndarray, first: bool, last: bool, reach: float,
                 box: tuple[int, int, int, int], dist: np.ndarray, arc: np.ndarray, side: np.ndarray) -> None:
    """Update the nearest-segment buffers with the segments ``v`` over their bounding box."""
    r0, c0, r1, c1 = box
    lo = np.maximum(np.floor(v.min(axis=0) - reach).astype(int), (r0, c0))
    hi = np.minimum(np.ceil(v.max(axis=0) + reach).astype(int) + 1, (r1, c1))
    if lo[0] >= hi[0] or lo[1] >= hi[1]:
        return
    a = v[:-1]
    d = np.diff(v, axis=0)
    seglen = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
    u = d / seglen[:, None]
    pr = (np.arange(lo[0], hi[0])[None, :, None] - a[:, 0, None, None]).astype(np.float32)
    pc = (np.arange(lo[1], hi[1])[None, None, :] - a[:, 1, None, None]).astype(np.float32)
    ur, uc = u[:, 0, None, None].astype(np.float32), u[:, 1, None, None].astype(np.float32)
    t = pr * ur + pc * uc
    perp = pc * ur - pr * uc
    tmin = np.zeros((len(a), 1, 1), np.float32)
    tmax = seglen.astype(np.float32)[:, None, None]
    if first:
        tmin[0] = -np.inf
    if last:
        tmax[-1] = np.inf
    tc = np.minimum(np.maximum(t, tmin), tmax)
    d2 = (t - tc) ** 2 + perp ** 2
    n = d2[0].size
    k = np.argmin(d2, axis=0)
    flat = k.ravel() * n + np.arange(n)
    best = np.sqrt(d2.ravel()[flat]).reshape(k.shape)
    s = (sv[:-1].astype(np.float32)[k] + tc.ravel()[flat].reshape(k.shape))
    sgn = np.where(perp.ravel()[flat].reshape(k.shape) >= 0, 1.0, -1.0).astype(np.float32)
    sl = (slice(lo[0] - r0, hi[0] - r0), slice(lo[1] - c0, hi[1] - c0))
    better = best < dist[sl]
    dist[sl][better] = best[better]
    arc[sl][better] = s[better]
    side[sl][better] = sgn[better]


def _shaft_alpha(sd: np.ndarray, s: np.ndarray, radius, k_px: float, length: float,
                 tan_cut: float, fade_len: float) -> np.ndarray:
    """Beer–Lambert opacity, box-filtered across the shaft; flat cut tip; fade at emergence."""
    alpha = np.zeros_like(sd)
    for off in (-0.375, -0.125, 0.125, 0.375):
        x = sd + off
        chord = 2.0 * np.sqrt(np.clip(radius * radius - x * x, 0, None))
        alpha += 1.0 - np.exp(-k_px * chord)
    alpha *= 0.25
    tip = np.clip(length + tan_cut * sd - s + 0.5, 0, 1)
    fade = np.clip(s / max(fade_len, 1e-6), 0, 1)
    return alpha * tip * fade * fade * (3 - 2 * fade)


def _shaft_colour(sd: np.ndarray, s: np.ndarray, radius: float, rgb: np.ndarray, spec: float,
                  light_side: float, tone: float, rng: np.random.Generator) -> np.ndarray:
    """Shaft colour: cylinder shading, a thin highlight, variation along the length."""
    x = np.clip(sd / max(radius, 1e-6), -1, 1)
    nz = np.sqrt(1 - x * x)
    ph = rng.uniform(0, 2 * math.pi, 3)
    lam = rng.uniform(60, 200) * max(radius, 1.0) / 10
    along = 1 + 0.07 * np.sin(2 * math.pi * s / lam + ph[0]) + 0.04 * np.sin(2 * math.pi * s / (0.31 * lam) + ph[1])
    grain = 1 + 0.05 * rng.standard_normal(len(sd)).astype(np.float32)
    col = rgb[None, :] * (tone * (0.78 + 0.22 * nz) * along * grain)[:, None]
    if rgb.mean() < 0.3:  # cuticle sheen: dark shafts show a lighter blue-grey rim
        edge = np.clip((np.abs(x) - 0.72) / 0.28, 0, 1)[:, None] * 0.35
        col = col * (1 - edge) + np.array([0.26, 0.27, 0.31], np.float32) * edge
    k = rng.uniform(2.0, 5.0, 3) * math.pi
    streaks = sum(np.sin(k[i] * x + 0.03 * s / max(radius, 1.0) * (i + 1) + ph[i]) for i in range(3)) / 3
    col *= (1 + (0.25 if rgb.mean() < 0.3 else 0.05) * streaks)[:, None]  # pigment streaks of the cortex
    width = 0.12 + 0.6 / max(radius, 1.0)
    glint = np.clip(0.7 + 0.6 * np.sin(s / lam * 7 + ph[2]) + 0.4 * np.sin(s / lam * 2.3 + ph[0]), 0, 2)
    hl = spec * np.exp(-(((x - 0.4 * light_side) / width) ** 2)) * glint
    return col + hl[:, None] * np.array([0.80, 0.84, 0.90], np.float32)


def _paint_shaft(img: np.ndarray, hair: _Hair, um: float, light_deg: float, rng: np.random.Generator,
                 fade: bool = True, alpha_out: np.ndarray | None = None) -> None:
    """Composite one hair onto ``img`` (float RGB) in place.

    ``alpha_out`` (float32, frame shape), when given, keeps the per-pixel
    maximum shaft opacity: the exact hair coverage used as a training label.
    """
    rgb, k_um, spec, rim = _HAIR_OPTICS[hair.color]
    radius = 0.5 * hair.width_um / um
    if hair.width_um <= 30:
        k_um *= 0.7  # vellus hairs carry less pigment
    verts, sv = _render_vertices(hair)
    field = _shaft_field(verts, sv, radius + 2.0, img.shape[:2])
    if field is None or len(field[0]) == 0:
        return
    rr, cc, sd, s = field
    length = hair.length_um / um
    fade = (2 * radius if hair.kind == "clipped" else 3 * radius) if fade else 1e-3
    wobble = rng.uniform(20, 60) * max(radius, 2.0)  # slight diameter variation (+-3%) around the true mean
    local_r = radius * (1 + 0.03 * np.sin(2 * math.pi * s / wobble + rng.uniform(0, 2 * math.pi)))
    local_r *= 0.55 + 0.45 * np.clip(s / fade, 0, 1)  # the shaft dives obliquely into the skin: it tapers
    alpha = _shaft_alpha(sd, s, local_r, k_um * um, length, hair.tan_cut, fade)
    if alpha_out is not None:
        cover = _shaft_alpha(sd, s, local_r, 50.0, length, hair.tan_cut, fade)  # opaque: geometry only
        np.maximum.at(alpha_out, (rr, cc), cover.astype(np.float32))
    light_side = 1.0 if math.cos(math.radians(light_deg) - hair.theta - math.pi / 2) >= 0 else -1.0
    col = _shaft_colour(sd, s, radius, np.asarray(rgb, np.float32), spec, light_side, hair.tone, rng)
    pix = img[rr, cc]
    a = alpha[:, None]
    pix = pix * (1 - a) + col * a
    if rim > 0:
        gate = np.clip(length + hair.tan_cut * sd - s + 0.5, 0, 1) * np.clip(s / fade, 0, 1)
        ring = rim * np.exp(-(((np.abs(sd) - 0.9 * radius) / max(0.7, 0.12 * radius)) ** 2)) * gate
        pix *= (1 - ring)[:, None]
    img[rr, cc] = pix


def _shadows(img: np.ndarray, p: SceneParams, hairs: list[_Hair]) -> None:
    """Soft cast shadows of the shafts on the skin (offset away from the light)."""
    um = p.um_per_px
    away = math.radians(p.light_angle_deg) + math.pi
    for kind, strength in (("clipped", 0.10), ("long", 0.30)):
        group = [hh for hh in hairs if hh.kind == kind and hh.curve is not None]
        if not group:
            continue
        wpx = float(np.median([hh.width_um for hh in group])) / um
        off = (0.6 if kind == "clipped" else 2.0) * wpx
        shift = np.array([math.sin(away), math.cos(away)]) * off
        layer = np.zeros(img.shape[:2], np.float32)
        for hh in group:
            verts, _ = _render_vertices(hh)
            start = min(len(verts) - 1, 1)
            pts = ((verts[start:] + shift)[:, ::-1] * 16).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(layer, [pts], False, 1.0, max(1, int(round(hh.width_um / um))), cv2.LINE_AA, 4)
        layer = cv2.GaussianBlur(layer, (0, 0), max(0.8, (0.8 if kind == "clipped" else 1.2) * wpx))
        img *= (1 - strength * layer)[..., None]


def paint_hair(image: np.ndarray, centerline_rc: np.ndarray, *, width_um: float, um_per_px: float,
               color: str = "black", cut_angle_deg: float = 0.0, fade: bool = True,
               light_angle_deg: float = 90.0, seed: int = 0) -> np.ndarray:
    """Composite one hair shaft onto a float RGB image, as the generator draws it.

    Parameters
    ----------
    image : ndarray of float, shape (M, N, 3)
        RGB in [0, 1]; not modified.
    centerline_rc : array_like, shape (K, 2)
        Centre line from emergence to tip, (row, col) pixels, K >= 2; it is
        resampled to 0.5 px along its length.
    width_um : float
        Shaft diameter (µm).
    um_per_px : float
        Pixel size (µm/px).
    color : str
        One of ``HAIR_COLORS``.
    cut_angle_deg : float
        Obliqueness of the cut tip (0 = square).
    fade : bool
        Fade the shaft into the skin over one diameter at the emergence end
        (else the emergence end is cut square).
    light_angle_deg : float
        Light direction (sets the highlight side).
    seed : int
        Seed of the pigment grain.

    Returns
    -------
    ndarray of float32, shape (M, N, 3)
    """
    line = np.asarray(centerline_rc, float).reshape(-1, 2)
    seg = np.hypot(*np.diff(line, axis=0).T)
    s_in = np.r_[0.0, np.cumsum(seg)]
    s = np.linspace(0, s_in[-1], max(3, int(math.ceil(s_in[-1] / 0.5)) + 1))
    curve = np.column_stack([np.interp(s, s_in, line[:, 0]), np.interp(s, s_in, line[:, 1])])
    d = line[1] - line[0]
    hair = _Hair(unit_id=0, emergence=line[0], theta=math.atan2(d[0], d[1]), width_um=float(width_um),
                 length_um=float(s_in[-1] * um_per_px), color=color,
                 tan_cut=math.tan(math.radians(cut_angle_deg)), curve=curve, s=s)
    out = np.array(image, np.float32, copy=True)
    _paint_shaft(out, hair, um_per_px, light_angle_deg, np.random.default_rng(seed), fade=fade)
    return out


# =========================================================================== optics

def _glare(img: np.ndarray, p: SceneParams, rng: np.random.Generator, frost: np.ndarray) -> None:
    """Bright specular patches, glittering where the skin is granular."""
    um, (h, w) = p.um_per_px, img.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 5))):
        c = rng.uniform((0, 0), (h, w))
        _stamp(layer, c, rng.uniform(0, 2 * math.pi), *(rng.uniform(150, 600, 2) / um), rng.uniform(100, 400) / um,
               float(rng.uniform(0.5, 1.0)))
    img += (p.glare * layer * (0.35 + 2.5 * frost))[..., None] * np.array([0.97, 0.99, 1.0], np.float32)


def _defocus(img: np.ndarray, p: SceneParams) -> np.ndarray:
    """Gaussian defocus, optionally growing linearly across the frame."""
    h, w = img.shape[:2]
    out = cv2.GaussianBlur(img, (0, 0), p.blur_sigma_px) if p.blur_sigma_px > 0.05 else img
    if p.blur_gradient_px > 0.05:
        more = cv2.GaussianBlur(img, (0, 0), p.blur_sigma_px + p.blur_gradient_px)
        a = math.radians(p.blur_gradient_deg)
        rows, cols = np.ogrid[0:h, 0:w]
        proj = (rows - h / 2) * math.sin(a) + (cols - w / 2) * math.cos(a)
        half = 0.5 * (abs(h * math.sin(a)) + abs(w * math.cos(a)))
        ramp = np.clip(0.5 + proj / (2 * half), 0, 1).astype(np.float32)[..., None]
        out = out * (1 - ramp) + more * ramp
    return out


def _camera(img: np.ndarray, p: SceneParams, rng: np.random.Generator) -> np.ndarray:
    """White balance, vignetting, Poisson–Gaussian noise; returns uint8 RGB."""
    h, w = img.shape[:2]
    img = img * np.asarray(p.white_balance, np.float32)
    rows, cols = np.ogrid[0:h, 0:w]
    rad2 = ((rows - h / 2) ** 2 + (cols - w / 2) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)
    img *= (1 - p.vignetting * rad2).astype(np.float32)[..., None]
    img = np.clip(img, 0, 1)
    if p.noise_gain > 0 or p.noise_read > 0:
        sigma = np.sqrt(p.noise_gain * img + p.noise_read ** 2)
        img = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


# =========================================================================== overlays

def _blend_rect(img8: np.ndarray, r0: int, r1: int, c0: int, c1: int, rgb, alpha: float) -> None:
    h, w = img8.shape[:2]
    r0, r1, c0, c1 = max(0, r0), min(h, r1), max(0, c0), min(w, c1)
    if r0 < r1 and c0 < c1:
        box = img8[r0:r1, c0:c1].astype(np.float32)
        img8[r0:r1, c0:c1] = (box * (1 - alpha) + np.asarray(rgb, np.float32) * alpha + 0.5).astype(np.uint8)


def _header(img8: np.ndarray, p: SceneParams, rng: np.random.Generator) -> None:
    """Device text header: translucent band with dark boxes of white/cyan text."""
    hh, w = int(p.header_px), p.width
    _blend_rect(img8, 0, hh, 0, w, (60, 60, 60), 0.45)
    mag = min((20, 30, 40, 50, 60, 70, 100, 200), key=lambda m: abs(m - 70 * 2.78 / p.um_per_px))
    words = [f"{'ABC'[rng.integers(3)]}{rng.integers(0, 1000):03d}", f"{w}x{p.height}",
             f"2022/{rng.integers(1, 13):02d}/{rng.integers(1, 29):02d} {rng.integers(8, 19):02d}:"
             f"{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}", "unit: mm", f"{mag}x", "calibration not used"]
    scale = 0.46 * hh / 22.0
    thick = max(1, int(round(scale * 1.4)))
    c = 4
    for i, word in enumerate(words):
        (tw, th), _ = cv2.getTextSize(word, _FONT, scale, thick)
        if c + tw + 16 > w - 4:
            break
        _blend_rect(img8, 3, hh - 3, c, c + tw + 14, (78, 78, 78), 0.88)
        colour = (40, 225, 225) if i == 0 else (238, 238, 238)
        cv2.putText(img8, word, (c + 7, (hh + th) // 2), _FONT, scale, colour, thick, cv2.LINE_AA)
        c += tw + 14 + int(rng.integers(4, 9))


def _scale_bar(img8: np.ndarray, p: SceneParams) -> None:
    """L-shaped bar: each leg ``round(1000 / um_per_px)`` px, corner at ``scale_bar_rc``."""
    leg = int(round(1000.0 / p.um_per_px))
    r, c = (int(v) for v in p.scale_bar_rc)
    t = 2 if p.um_per_px > 2.5 else 3
    colour = (45, 45, 48) if p.scale_bar_color == "dark" else (236, 236, 236)
    _blend_rect(img8, r - t + 1, r + 1, c, c + leg, colour, 0.95)  # horizontal: cols c .. c+leg-1
    _blend_rect(img8, r - leg + 1, r + 1, c, c + t, colour, 0.95)  # vertical: rows r-leg+1 .. r
    scale = 0.6 * p.height / 1024 + 0.15
    (tw, th), _ = cv2.getTextSize("1.0 mm", _FONT, scale, 1)
    bc = c + leg + max(6, int(0.008 * p.width))
    _blend_rect(img8, r - th - 10, r + 6, bc, bc + tw + 12, (72, 72, 72), 0.9)
    cv2.putText(img8, "1.0 mm", (bc + 6, r - 2), _FONT, scale, (245, 245, 245), 1, cv2.LINE_AA)


def _red_circle(img8: np.ndarray, p: SceneParams) -> None:
    """Red measurement circle with a radius line and a translucent box of blue text."""
    h, w = img8.shape[:2]
    cr, cc = p.circle_center_rc
    rad = p.circle_radius_px
    red = (225, 28, 34)
    cv2.circle(img8, (int(cc * 16), int(cr * 16)), int(rad * 16), red, 1 + (w > 900), cv2.LINE_AA, 4)
    a = math.radians(p.circle_line_deg)
    end = (cr + rad * math.sin(a), cc + rad * math.cos(a))
    cv2.line(img8, (int(cc * 16), int(cr * 16)), (int(end[1] * 16), int(end[0] * 16)), red, 1, cv2.LINE_AA, 4)
    r_mm = rad * p.um_per_px / 1000
    lines = ["RC0", f"C={2 * math.pi * r_mm:.3f} mm", f"A={math.pi * r_mm ** 2:.3f} mm^2", f"r={r_mm:.3f} mm"]
    scale = 1.2 * w / 1280
    (tw, th), _ = cv2.getTextSize(lines[2], _FONT, scale, 2)
    bw, bh = tw + int(24 * scale), 4 * int(th * 1.75) + int(14 * scale)
    top = int(np.clip(end[0], 4, h - bh - 4))
    left = int(np.clip(end[1] + 8, 4, w - bw - 4))
    _blend_rect(img8, top, top + bh, left, left + bw, (205, 205, 205), 0.45)
    for i, text in enumerate(lines):
        y = top + int(th * 1.75) * (i + 1)
        cv2.putText(img8, text, (left + int(12 * scale), y), _FONT, scale, (25, 25, 235), 2, cv2.LINE_AA)


def _overlays(img8: np.ndarray, p: SceneParams, rng: np.random.Generator) -> None:
    """Burned-in device overlays, drawn over everything (they occlude hairs)."""
    if p.red_circle:
        _red_circle(img8, p)
    if p.scale_bar:
        _scale_bar(img8, p)
    if p.header_strip and p.header_px > 0:
        _header(img8, p, rng)
    if p.padding_strip and p.padding_px > 0:
        level = int(rng.integers(212, 228))
        img8[p.height - int(p.padding_px):] = level


# =========================================================================== frame and truth

def render_frame(params: SceneParams, rng: np.random.Generator,
                 layers: dict | None = None) -> tuple[np.ndarray, dict]:
    """Render one frame and its exact truth.

    Parameters
    ----------
    params : SceneParams
        What to render (see ``sample_scene``).
    rng : numpy.random.Generator
        Seeded generator for placements and texture.
    layers : dict, optional
        When given, filled with ``"hair_cover"``: float32 (height, width),
        the geometric coverage of every painted shaft (0–1, sharp, before
        defocus), the per-pixel label for training a segmenter.

    Returns
    -------
    image : ndarray of uint8, shape (height, width, 3)
        RGB frame; already JPEG-compressed when ``params.jpeg_quality`` is set.
    truth : dict
        Truth per the ``tricho-phantom-truth/1`` schema; ``image`` and
        ``seed`` are left for the caller (``generate``) to fill in.
    """
    p = params
    lay = _layout(p, rng)
    img, frost = _render_skin(p, rng)
    if p.pigment_network:
        _pigment_network(img, p, rng)
    if p.vessels:
        _vessels(img, p, rng)
    if p.ink_blotch:
        _ink(img, p, rng, frost)
    _apply_halos(img, p, rng, lay, frost)
    _empty_openings(img, p, rng, lay)
    flakes = _flakes(p, rng, lay)
    for centre, radius, over in flakes:
        if not over:
            _draw_flake(img, centre, radius, rng, frost)
    drawn = [hh for hh in lay.hairs if hh.curve is not None]
    _shadows(img, p, drawn)
    order = [hh for hh in drawn if hh.kind == "clipped"] + [hh for hh in drawn if hh.kind == "long"]
    cover = np.zeros(img.shape[:2], np.float32) if layers is not None else None
    for hair in order:
        _paint_shaft(img, hair, p.um_per_px, p.light_angle_deg, rng, alpha_out=cover)
    if layers is not None:
        layers["hair_cover"] = cover
    for centre, radius, over in flakes:
        if over:
            _draw_flake(img, centre, radius, rng, frost)
    if p.glare > 0:
        _glare(img, p, rng, frost)
    img8 = _camera(_defocus(img, p), p, rng)
    _overlays(img8, p, rng)
    if p.jpeg_quality:
        ok, enc = cv2.imencode(".jpg", img8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(p.jpeg_quality)])
        img8 = np.ascontiguousarray(cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1])
    return img8, _truth(p, lay)


def _in_box(rc, row0: int, row1: int, col0: int, col1: int) -> bool:
    return bool(row0 <= rc[0] < row1 and col0 <= rc[1] < col1)


def _hair_truth(hair: _Hair, um: float, field: tuple[int, int, int, int]) -> dict[str, Any]:
    length = float(hair.s[-1])
    s_out = np.linspace(0.0, length, max(2, int(math.ceil(length / 2.0)) + 1))
    line = np.column_stack([np.interp(s_out, hair.s, hair.curve[:, 0]), np.interp(s_out, hair.s, hair.curve[:, 1])])
    line[0] = hair.emergence
    return dict(
        hair_id=-1, unit_id=int(hair.unit_id),
        emergence_rc=[float(hair.emergence[0]), float(hair.emergence[1])],
        tip_rc=[round(float(v), 3) for v in hair.curve[-1]],
        centerline_rc=np.round(line, 2).tolist(),
        width_um=float(hair.width_um), length_um=float(hair.length_um),
        color=hair.color, kind=hair.kind, together=bool(hair.together),
        in_field=_in_box(hair.emergence, *field), in_frame=True,
    )


def _truth(p: SceneParams, lay: _Layout) -> dict[str, Any]:
    """Assemble the truth dict from the layout (hairs in frame only)."""
    um, shape = p.um_per_px, (p.height, p.width)
    row0, row1 = p.field_rows
    col0, col1 = 0, p.width
    field = (row0, row1, col0, col1)
    hairs = [_hair_truth(hh, um, field) for hh in lay.hairs
             if hh.curve is not None and _curve_in_frame(hh, shape, um)]
    unit_ids = sorted({h["unit_id"] for h in hairs})
    new_uid = {old: new for new, old in enumerate(unit_ids)}
    for i, h in enumerate(hairs):
        h["hair_id"], h["unit_id"] = i, new_uid[h["unit_id"]]
    together = {h["unit_id"] for h in hairs if h["together"]}
    units = [dict(unit_id=new_uid[u], opening_rc=[float(v) for v in lay.openings[u]],
                  n_hairs=int(lay.unit_sizes[u]), in_field=_in_box(lay.openings[u], *field),
                  together=bool(lay.unit_sizes[u] >= 2 and new_uid[u] in together)) for u in unit_ids]
    area = (row1 - row0) * (col1 - col0) * um ** 2 * 1e-8  # px² x (µm/px)² -> cm²
    count = sum(h["in_field"] for h in hairs)
    empties = [[float(r), float(c)] for r, c in lay.empties if _near_frame((r, c), shape, 0)]
    return dict(
        schema=SCHEMA, image=None, seed=None, um_per_px=float(um), height_px=int(p.height), width_px=int(p.width),
        field=dict(row0=int(row0), row1=int(row1), col0=int(col0), col1=int(col1)),
        field_area_cm2=float(area), count_in_field=int(count),
        density_per_cm2=float(count / area) if area > 0 else 0.0,
        hairs=hairs, units=units, empty_openings_rc=empties, params=p.to_dict(),
    )


# =========================================================================== files

def _write_frame(out: Path, stem: str, img: np.ndarray, truth: dict, fmt: str, quality: int | None) -> str:
    """Write ``<stem>.png|.jpg`` and ``<stem>.json``; returns the image file name."""
    ext = {"png": "png", "jpg": "jpg", "jpeg": "jpg"}.get(fmt.lower())
    if ext is None:
        raise ValueError(f"image_format must be 'auto', 'png' or 'jpg', got {fmt!r}")
    name = f"{stem}.{ext}"
    flags = [cv2.IMWRITE_JPEG_QUALITY, int(quality or 95)] if ext == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
    if not cv2.imwrite(str(out / name), np.ascontiguousarray(img[..., ::-1]), flags):
        raise OSError(f"could not write {out / name}: check that the folder is writable")
    truth["image"] = name
    (out / f"{stem}.json").write_text(json.dumps(truth, separators=(",", ":")), encoding="utf-8")
    return name


def generate(out_dir, n: int, seed: int, *, image_format: str = "auto", **overrides: Any) -> pd.DataFrame:
    """Write ``n`` phantom frames, their truth JSON and ``manifest.csv``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created).
    n : int
        Number of frames.
    seed : int
        Frame ``i`` uses ``np.random.default_rng([seed, i])`` for both its
        scene and its rendering, so any single frame can be reproduced alone.
    image_format : {"auto", "png", "jpg"}
        ``"auto"`` writes JPEG when the scene has a ``jpeg_quality`` (already
        applied while rendering), else PNG.
    **overrides
        ``SceneParams`` fields fixed for every frame.

    Returns
    -------
    pandas.DataFrame
        The manifest, columns ``image, um_per_px, field_id``; files are
        ``phantom_{seed}_{i:04d}.png|.jpg`` and ``.json``.
    """
    if image_format.lower() not in ("auto", "png", "jpg", "jpeg"):
        raise ValueError(f"image_format must be 'auto', 'png' or 'jpg', got {image_format!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(int(n)):
        rng = np.random.default_rng([int(seed), i])
        params = sample_scene(rng, **overrides)
        img, truth = render_frame(params, rng)
        truth["seed"] = [int(seed), i]
        fmt = image_format if image_format != "auto" else ("jpg" if params.jpeg_quality else "png")
        name = _write_frame(out, f"phantom_{seed}_{i:04d}", img, truth, fmt, params.jpeg_quality)
        rows.append(dict(image=name, um_per_px=params.um_per_px, field_id=i))
    manifest = pd.DataFrame(rows, columns=["image", "um_per_px", "field_id"])
    manifest.to_csv(out / "manifest.csv", index=False)
    return manifest


#: The committed sample set: (session date, density /cm², vellus share, intermediate share).
_SAMPLE_SESSIONS = (("2026-01-10", 150.0, 0.07, 0.16), ("2026-03-07", 178.0, 0.05, 0.13))
#: Overlays per field, so the set shows each kind of burned-in overlay once or more.
_SAMPLE_OVERLAYS = (
    dict(header_strip=True, scale_bar=True, padding_strip=False, red_circle=False),
    dict(header_strip=False, scale_bar=False, padding_strip=True, red_circle=False),
    dict(header_strip=False, scale_bar=False, padding_strip=False, red_circle=True),
)


def generate_samples(out_dir, seed: int = 2026) -> pd.DataFrame:
    """The small committed sample set: one patient, one site, two sessions x 3 fields.

    Patient ``P001``, site ``vertex``, sessions 2026-01-10 and 2026-03-07;
    1280x1024 at 2.78 µm/px, clipped black hair on Fitzpatrick III skin,
    JPEG quality 92.  The second session is rendered at a higher density
    (178 vs 150 /cm²) with slightly fewer thin hairs: a responder.  Frame
    ``k`` (0..5, in manifest order) uses ``np.random.default_rng([seed, k])``.

    Returns
    -------
    pandas.DataFrame
        The manifest: ``image, um_per_px, patient_id, site, session_date,
        field_id``; images are ``P001_<date>_vertex_<field>.jpg``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for si, (date, density, vel, inter) in enumerate(_SAMPLE_SESSIONS):
        for field in range(3):
            k = 3 * si + field
            rng = np.random.default_rng([int(seed), k])
            params = sample_scene(
                rng, height=1024, width=1280, um_per_px=2.78, density_per_cm2=density, hair_color="black",
                grey_fraction=0.0, skin_tone=3, frac_vellus=vel, frac_intermediate=inter, terminal_width_um=82.0,
                clip_length_um=(180.0, 850.0), n_long_hairs=0, uncut_fraction=0.0, jpeg_quality=92, ink_blotch=False,
                blur_sigma_px=float(rng.uniform(1.0, 2.0)), **_SAMPLE_OVERLAYS[field])
            img, truth = render_frame(params, rng)
            truth["seed"] = [int(seed), k]
            name = _write_frame(out, f"P001_{date}_vertex_{field + 1}", img, truth, "jpg", 92)
            rows.append(dict(image=name, um_per_px=2.78, patient_id="P001", site="vertex",
                             session_date=date, field_id=field + 1))
    manifest = pd.DataFrame(rows, columns=["image", "um_per_px", "patient_id", "site", "session_date", "field_id"])
    manifest.to_csv(out / "manifest.csv", index=False)
    return manifest


def load_truth(json_path) -> dict:
    """Read one truth JSON (schema ``tricho-phantom-truth/1``).

    Raises
    ------
    ValueError
        The file is not a phantom truth file.
    """
    path = Path(json_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: not a phantom truth file (schema {found!r}, expected {SCHEMA!r})")
    return data
