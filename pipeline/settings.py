"""Analysis settings: one frozen dataclass, written into every run.

Every tunable of the per-frame core lives here, in physical units
(micrometres) wherever the quantity is physical, so that one set of settings
means the same thing at 20x and at 70x.  A run's ``run.json`` stores
``Settings.to_dict()`` and its hash, so a result can always be traced back to
what produced it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any


#: The fixed routes of ``Settings.route``: the contrast map, and whether the
#: light-hair model draws the hair map.
ROUTES = ("auto", "dark", "bright", "colour", "dark+model", "bright+model", "colour+model")


#: Lengths and scales that have no "off" value: a pixel size, a shaft width or length, a radius.
POSITIVE = ("vellus_max_um", "terminal_min_um", "scale_um_per_px", "min_width_um", "max_width_um", "line_length_um",
            "min_hair_length_um", "unit_radius_um", "scale_bar_um", "spur_factor", "min_aspect", "fused_ratio")
#: Settings where 0 turns a step off and a negative value means nothing.
NOT_NEGATIVE = ("stripe_aspect", "stub_aspect", "border_stub_min_um", "fused_min_um", "light_among_dark_min_um",
                "ridge_gain", "seam_dip", "model_seam_level", "dark_seam_level", "tip_step", "comb_split", "faint_line_level", "light_among_dark", "min_focus_score",
                "max_overexposed_pct", "max_underexposed_pct",
                "max_glare_pct", "min_skin_pct", "crossing_angle_deg", "corner_angle_deg", "fork_angle_deg",
                "direction_consensus", "light_hair_below", "weak_shafts_below", "weak_shafts_dark_skin_below",
                "bright_hair_skin_below",
                "fused_quantile", "fork_vote")


@dataclass(frozen=True)
class Settings:
    """Tunables of the per-frame core.

    Parameters
    ----------
    vellus_max_um : float
        Shafts with thickness <= this are *vellus* (µm). Default 30 µm after
        Rudnicka et al., *Atlas of Trichoscopy* (2012), doi:10.1007/978-1-4471-4486-1.
    terminal_min_um : float
        Shafts thicker than this are *terminal* (µm); between the two limits
        a hair is *intermediate*. Default 60 µm.
    scale_um_per_px : float
        Pixel size assumed for filter scales (not for reported values) when a
        frame has no calibration (µm/px). 2.78 µm/px is a 70x trichoscope on a
        1280x1024 sensor.
    min_width_um, max_width_um : float
        Range of shaft widths the detector looks for (µm).
    darkness_threshold : float
        Hysteresis high threshold on the hair probability (0–1).
    darkness_low : float
        Hysteresis low threshold on the hair probability (0–1).
    ridge_gain : float
        Weight of the line-averaged ridge strength against darkness; it
        lets thin, blurred (vellus) shafts reach the threshold.
    light_hair_below : float
        When the frame's darkest shafts are less dark than this (relative
        to skin), it is read as light hair (blond, grey, white): colour
        distance from skin replaces darkness, or brightness on dark skin
        (``bright_hair_skin_below``).
    yellow_shaft_b : float
        A frame on a light-hair route (``segmenter`` ``learned_light_hair``,
        ``learned_low_contrast`` or ``classical_light_hair``) whose hair
        pixels are at least this much yellower than the skin around them
        (median CIELAB b* excess, :func:`pipeline.segment.yellowness_map`)
        has blond hair: the yellowness joins its hair probability
        (:func:`pipeline.frame.with_yellow_shafts`; 0 turns it off). The
        light-hair model saw 19 of 202 blond shafts at 15.6 µm/px (tuning
        phantom 98_0006), the yellowness most of them. On the 51 light-hair
        frames of tuning suites 95-98 the median b* excess on hair was 6.9
        to 14.0 for the 18 blond frames, -16.9 to -0.7 for the grey and
        white ones (any value from 0 to 6.9 routes them alike). Tuning suites 95 / 96 / 97 / 98
        (2026-12-04, session 37): count MAPE 15.51 / 16.91 / 21.35 / 20.25%
        -> 14.13 / 15.86 / 21.21 / 19.38%, thickness MAE of matched hairs
        5.01 / 5.49 / 5.97 / 5.08 -> 5.14 / 5.44 / 6.03 / 6.28 µm (98: 66
        more blond hairs of 98_0006 measured, 1-5 px wide, +25 µm). Real
        fdu_val frames are dark hair and never take a light-hair route.
    bright_hair_skin_below : float
        A frame of light hair whose skin is darker than this (median of the
        channel mean over skin pixels, 0-255) is read by the classical path
        on a brightness map (:func:`pipeline.segment.brightness_map`;
        ``segmenter`` = ``classical_light_hair``) instead of going to
        ``light_hair_model``: there the shafts stand out from skin as dark
        hair does from light skin, while the model fuses a unit's bright
        shafts and misses faint ones. The map is kept only near what
        ``bright_veto_model`` segments (``frame._seen_by_model``), which
        vetoes white scales and glare. Its shafts must reach ``light_hair_below`` of the way
        from skin to white, so brown hair on dark skin (neither darker nor
        brighter) stays with the model. Tuning phantoms (seed 99: 12 white,
        12 grey, 12 blond frames over all skin tones): the 12 frames with
        skin below 110 (skin tones 4-6, levels 46-104) found 123 of their
        165 hairs against 89 for the model, count MAPE 21.5 -> 7.0%; on
        skin of 115 and lighter the map (without the model's veto) was
        worse than the model on 9 of 24 frames and better on 4 (skin
        texture, scales and glare read as shafts). Seed 97: count MAPE
        41.6 -> 40.6%, seed 98: 26.7 -> 26.3%; a frame of white hair on
        skin tone 6 read 11 of 37 hairs before and 34 after.
        0 turns it off.
    bright_route_share : float
        The brightness map (``bright_hair_skin_below``) is taken only when at
        least this share of the frame's skin pixels (percent) lies
        ``light_hair_below`` of the way from skin to white or further; else
        the frame goes to ``light_hair_model``. A few bright scales or a
        glare spot do not make the route: until session 42 the test read the
        99.5th percentile (0.5%), and frames whose brightest pixels were
        mostly scales took the map and lost their faint shafts to it
        (``phantom_95_0036``, grey hair: 4 hairs read at truth 19, 12 now).
        Tuning suites 95 / 96 / 97 / 98, where 7 of the 11 brightness-map
        frames go to the model, 6 of them closer to the truth: count MAPE
        13.95 / 15.36 / 20.79 / 19.24 -> 12.83 / 14.78 / 19.92 / 19.15%
        (mean 17.34 -> 16.67%; 1%: 17.25%, 5%: 16.86%), thickness MAE
        5.10 / 5.55 / 5.99 / 6.30 -> 5.05 / 5.46 / 5.94 / 6.33 µm. Four
        tuning suites of white and grey hair on skin tones 4-6 (seeds
        541-544, 16 frames each): count MAPE 59.0 / 26.7 / 15.6 / 32.1 ->
        51.2 / 20.7 / 13.6 / 26.2%, thickness MAE 10.6 / 13.9 / 7.6 / 7.4 ->
        8.6 / 8.1 / 8.1 / 5.1 µm. The map's own reference (its 99.5th
        percentile, the shafts' plateau) is unchanged.
    translucent_edge_level : float
        On the brightness map of light hair on dark skin, a shaft's width is
        read where its profile crosses this fraction of its peak, not at
        half maximum. A grey or white shaft is translucent: its brightness
        follows the length of the chord through it (Beer-Lambert), a
        rounded profile whose half maximum lies well inside the edges
        (at 0.87 of the width for a faint shaft), where a pigmented shaft is
        nearly opaque and flat-topped. On the 12 tuning frames above, the
        found shafts read at a median 0.72 of their true width at half
        maximum, 0.83 at 0.3 and 0.86 at 0.2 of the peak. With 0.2, the
        thickness MAE of their found hairs is 16.2 µm (123 hairs), against
        22.5 µm for the model's route (89 hairs, read wide: median 1.10).
        The rest is the profile's dark refraction rim, blur, and one shaft
        in ten read below 0.4 of its width (some split in two along their
        length).
    line_length_um : float
        Length of the segment the ridge strength is averaged along (µm).
    min_hair_length_um : float
        Shafts shorter than this are treated as texture and dropped (µm).
    min_aspect : float
        Shafts shorter than this many mask widths are blobs, not hairs.
    stripe_aspect : float
        A wider stripe (short clipped hairs of one unit fused side by side)
        still counts when both its ends are free, it is ``min_aspect`` times
        the frame's typical shaft width and this many times its own width
        (0: off).  Such stripes, dropped as blobs before, are mostly 2-3
        hairs clipped short at 20x-40x.  At 1.5 the tuning phantoms' count
        MAPE went 50.4 -> 50.0% (seed 91), 83.5 -> 83.0 (92), 84.7 -> 84.2
        (93) and fdu_val half A 19.0 -> 18.7% (CCC 0.634 -> 0.647).  Without
        the free-ends condition pieces of long hairs between crossings
        passed too (seed 91: 52.8%).
    stub_aspect : float
        A whole short clipped hair, too short for ``min_aspect`` (a terminal
        hair cut to two of its widths), still counts from this many of its
        widths on when both its ends are free and in view (not cut by the
        border or a masked region) and its edges are straight and parallel
        (``frame.STUB_FLATNESS``, ``frame.STUB_WIDTH_RANGE``; wedges, round
        or ragged skin spots, scales and openings are not, a stub-sized
        ellipse is); 0: off.  Session 56: the hair mask's components holding
        one truth hair and no counted one (``benchmarks/phantom_components.py``
        on tuning suites 95-98) were most often traced and not kept as
        candidates; drawn, those were clean dark stubs of 2-2.4 widths that
        ``min_aspect`` drops.  At 1.5 the tuning suites' count MAPE went
        16.82 -> 16.54% (paired -0.28 +- 0.14; 17 of 192 frames moved, 15
        better), 6,385 -> 6,408 hairs counted for 5,815 -> 5,831 matched;
        fdu_val half A 18.51 -> 18.41%, half B 18.55 -> 18.60%.
        ``min_aspect`` 2.0 for every shaft instead read the tuning suites
        0.91 points better but fdu_val worse (half A +0.80, half B +1.16):
        only 30% of the hairs it added on phantoms were matched.
    border_stub_min_um : float
        A shaft cut by the frame border (one end within a radius of the
        image edge or of a header or footer strip, the other end free) is
        kept from this length on (µm) and from one own width on, instead of
        ``min_hair_length_um`` and ``min_aspect``: a hair that emerges near
        the border and runs out of the frame shows only its first part (0:
        off, such stubs are held to the plain rules).  Not for a mark drawn
        on the skin, which cuts a hair into two pieces of one hair.  At 50
        the tuning phantoms 95-98 read count MAPE 17.55 -> 17.28% (16
        frames moved, 15 closer to the truth), fdu_val 16.88 / 18.59 ->
        16.84 / 18.77% (halves A / B; 11 frames moved, net +9 hairs; the
        labels often leave hairs cut by the border unboxed) and the same
        frames re-saved as JPEG 95 19.26 / 20.92 -> 19.16 / 21.03%
        (docs/HISTORY.md, session 40).
    spur_factor : float
        An end branch shorter than ``spur_factor`` times the local shaft
        half-width at its junction is a spur and is pruned.
    crossing_angle_deg : float
        Two branches at a junction continue one hair when their directions
        deviate from a straight line by at most this angle (degrees).
    corner_angle_deg : float
        A centre line turning by more than this over about two shaft widths
        is two hairs meeting at their shared opening (degrees).
    fused_ratio : float
        A shaft at least this many times the frame's median width is taken
        as round(width / median) touching hairs of one unit (0 disables).
        Set when the generator drew a unit's hairs overlapping by 10-45% of
        their width at the opening (pairs 1.55-1.9 shafts wide; since its
        calibration on real frames they emerge 0.8-1.2 widths apart, and
        real fused stripes are rarer).  At 2.0 most such pairs
        stayed one hair; 1.6 (tuning phantoms, seeds 91-93: count MAPE of
        the frames without long-hair scenes 37.2/31.9/33.7 -> 37.8/30.8/33.9%,
        thickness MAE 21.4/17.5/18.8 -> 19.7/15.0/16.4 um; fdu_val half A
        18.2 -> 18.3%, CCC 0.660 -> 0.662, bias -0.6 -> 0.0 hairs); 1.5 cost
        half A 1.1 points.
    fused_quantile : float
        Percentile of the frame's shaft widths taken as one shaft's width.
        Against the median, a terminal shaft in a frame of mostly thinner
        hairs can be split into two half-width hairs (thick dark phantom
        hairs read at about half their width). Tried 2026-12-01 and not
        kept: 75 with ratio 1.5 cut the tuning phantoms' count MAPE (seeds
        91-93: 34.3/36.8/31.4 -> 30.4/32.3/28.9%) and fdu_val half A's
        (18.3 -> 17.8%), but half A's interior count got worse (MAPE 19.1 ->
        20.2%, CCC 0.71 -> 0.68, bias -1.0 -> -1.5 hairs): fewer real pairs are
        split, and the whole-frame gain comes from agreeing with the labels'
        unboxed border hairs. 65 with 1.6 and 75 with 1.6 gave the same
        pattern (interior 19.9 and 20.7%).
    fused_min_um : float
        A stripe narrower than this (µm) is never split by its width alone
        (0: no floor): one terminal shaft is at most about 120 µm wide
        (terminal hair 60–120 µm; the phantoms draw them in that range),
        so a thick single hair in a frame of mostly thinner ones is not
        read as a fused pair at half its width, while the ``fused_ratio``
        rule still splits wider stripes.  Tuned on
        fdu_val half A (0 / 90 / 110 / 120 / 130: count MAPE 19.3 / 19.2 /
        18.8 / 18.3 / 18.1%, interior 18.1 / 18.0 / 17.8 / 17.8 / 18.2%,
        interior CCC 0.724 / 0.726 / 0.731 / 0.736 / 0.724); 0 -> 120 moved
        half B 20.2 -> 19.5% (interior 19.6 -> 19.3%), 24 of 329 frames
        changed.  Tuning phantoms (seed 97): count MAPE 45.5 -> 43.1%,
        thickness MAE of matched hairs 9.8 -> 8.7 µm, precision 0.74 -> 0.77
        at the same recall (0.75): the removed splits were all false.
        Width splits above the floor still pay on real frames: with the
        floor, ``fused_ratio`` 0 (none) or 2.0 gave half A an interior
        count MAPE of 20.6 or 19.7% against 17.8% at 1.6.
    light_hair_model : str
        Frames without dark shafts (blond, grey, white hair: the darkness
        map's shaft contrast is below ``light_hair_below``) are segmented
        by this learned model (name or folder) instead of the colour
        distance map, which reads skin texture as hair; ``""`` keeps the
        colour map.  The per-frame ``segmenter`` column says which ran.
        ``hairnet-light-v1`` was trained on the frames this model is given
        (``tricho train --scenes light``); against ``hairnet-v2`` in this
        role the tuning phantoms' count MAPE went 33.6 / 22.8% -> 25.8 /
        24.7% (seeds 97 / 98) and 25.7 / 43.2 / 29.3% -> 21.4 / 31.1 /
        19.1% (white, grey, blond hair, seed 99), the matched hairs'
        thickness MAE 7.1 / 7.9 -> 6.2 / 6.2 µm; no fdu_val count moved.
        It also keeps light shafts on dark skin that the brightness map
        finds (``frame.SEEN_BY_MODEL_UM``).  The default since 2026-12-03 is
        ``hairnet-light-v2``, the same training with thin shafts weighted
        (``TrainConfig.thin_weight`` 8): tuning phantoms seed 98 count MAPE
        24.0 -> 22.1%, matched-hair thickness MAE 5.2 -> 5.5 µm; tuning
        courses (seeds 0-7) right calls 83 -> 96%, matched change error
        6.0 -> 5.3% of the count; no fdu_val count moved (commands in
        ``models/hairnet-light-v2/MODEL_CARD.md``).  The default since
        2026-12-04 is ``hairnet-light-v3``, v2's training run twice as
        long (3600 steps): tuning phantoms seeds 97 / 98 count MAPE 21.1 /
        20.9 -> 21.4 / 20.3%, matched-hair thickness MAE 6.2 / 5.7 -> 6.0
        / 5.1 µm; held-out shafts up to 30 µm seen 19 -> 35% (commands and
        report-seed numbers in ``models/hairnet-light-v3/MODEL_CARD.md``).
        The veto of the brightness map on dark skin is
        ``bright_veto_model``'s, not this model's.
    bright_veto_model : str
        The learned model whose map keeps the shafts the brightness map finds
        on dark skin (``segmenter`` = ``classical_light_hair``,
        :func:`pipeline.frame.hair_map`): a component of that map is kept
        when the model sees it, so white scales and glare drop out; ``""``
        turns the veto off.  ``hairnet-light-v2`` (the light-hair model until
        session 34): ``hairnet-light-v3`` in this role gave sharp, flat
        white shafts on dark skin a probability near 0.05 (v2: 0.95; the
        frame of ``tests/test_core.py``'s white shafts then read 0 hairs
        for 4); on white hair over skin tones 4 / 5 / 6 (tuning seeds
        521-523, 12 frames each; ``python benchmarks/veto_model.py``) count
        MAPE 21.0 / 21.3 / 16.2% with v2 in this role, 22.7 / 21.3 / 16.2%
        with v3.
    dark_frame_model : str
        The learned model run on frames of the darkness map (dark hair) to
        find light shafts among the dark ones (``light_among_dark``) and to
        veto dark lines it does not see (``model_veto_share``); ``""`` turns
        both off.  ``hairnet-v2``, trained on every kind of frame: the
        light-hair model in this role lost dark shafts (tuning phantoms
        seed 98: 22.8 -> 25.2%), and searching light shafts with it while
        ``hairnet-v2`` vetoes (a second run per frame) did not pay (seeds
        97 / 98: 25.8 / 24.7 -> 26.1 / 24.7%).
    weak_shafts_below : float
        Frames whose shafts are dark but only this much darker than skin
        (``light_hair_below`` <= shaft darkness < this: brown hair on dark
        skin, heavy blur) also go to ``light_hair_model`` (``segmenter`` =
        ``learned_low_contrast``).  There the darkness map's ridges are a
        shaft's darker rims and the light band between them, so one shaft is
        read as two to four thin hairs.  Tuning phantoms (seeds 91-93, and
        24 frames of brown or dark-brown hair on skin tones 5-6, seeds 95-96;
        ``tricho synth`` with those overrides) with shaft darkness 0.3-0.45:
        classical count MAPE 217% (21 frames), the model 29%.  The lowest
        shaft darkness among the 330 real fdu_val frames is 0.469, so real
        70x frames of dark hair stay on the classical path.
    weak_shafts_dark_skin_below : float
        On dark skin (the skin's median level under ``bright_hair_skin_below``,
        Fitzpatrick types V-VI and some IV) frames whose shafts are under this
        much darker than skin go to ``light_hair_model`` too.  A black shaft
        is only 0.5-0.6 darker than such skin, against 0.7-0.85 on light
        skin, while the skin's furrows and a shaft's own streaks and sheen
        darken it by the same share on any skin: the darkness map breaks
        such shafts into parallel strips and traces furrows.  Tuning phantoms
        (suites 95-98): count MAPE 16.70 -> 15.73% (10 of 192 frames moved,
        8 closer; their 19 frames of black or dark-brown hair on skin types
        V-VI 26.7 -> 21.7%), thickness MAE 5.22 / 5.21 / 5.85 / 6.16 ->
        4.97 / 5.34 / 5.70 / 6.15 µm.  The same 0.6 on any skin cost fdu_val
        2.5 and 2.1 points (half A / B): no real frame of ours has skin that
        dark (their median level is 114 or more), so none moves.
    light_among_dark : float
        Frames on the classical path are also searched for grey or white
        shafts among the dark ones (canities, a light vellus hair beside
        its unit's terminal shafts), which the darkness map cannot see:
        ``dark_frame_model`` segments the frame, and a shaft it finds away
        from the dark mask is added when its median darkness is below this
        fraction of the frame's shaft darkness and it is long and thin
        (``light_among_dark_min_um``, aspect ratio 2.5).  0 turns the search
        off; with ``model_veto_share=0`` too it saves the model's run (0.33 s
        per 1280x1024 frame on one core, the classical path's 0.20 s
        becoming 0.53 s; ``benchmarks/bench_frame.py --set
        light_among_dark=0 --set model_veto_share=0``).
        Tuned on fdu_val half A (0 / 0.1 / 0.35: count MAPE 18.3 / 18.3 /
        18.1%, interior CCC 0.736 / 0.736 / 0.747) and tuning phantoms seed
        97 (43.1 / 41.7 / 41.6%, recall 0.750 -> 0.773 at the same
        precision).  Without the shape test the model's half-seen texture
        added 170-250 hairs to fdu_val; with it, 17 hairs in 15 frames.
        A component that fails the shape test as a whole is traced, and a
        traced shaft of it that passes on its own is kept (two light shafts
        of one opening in a V are one component, not thin as a whole; both
        were lost), except in scenes of uncut long hair
        (:func:`pipeline.frame._light_among_dark`); tuning phantoms seeds 97
        / 98 count MAPE 27.22 / 24.12 -> 27.18 / 23.50% (seed 97's frames of
        grey hair among dark: 0022 10 -> 14 hairs of 15, 0045 7 -> 10 of 21;
        its frame of densely crossing long hair, not read as a long-hair
        scene, 87 -> 105 of 25).
    light_among_dark_min_um : float
        Shortest light shaft (µm: its traced length, or in a long-hair
        scene the long side of its component's minimum-area rectangle)
        that ``light_among_dark`` adds; at least 2.5 times as long as wide
        (``frame.LIGHT_MIN_ASPECT``).  Where hairs cross densely
        (``dense_crossing_share``) at least 250 µm and 4 times
        (``frame.DENSE_LIGHT_MIN_UM``, ``frame.DENSE_LIGHT_MIN_ASPECT``).
        Clipped grey and white shafts are short: at 250 µm and 4 times,
        most that ``dark_frame_model`` saw on a coarse tuning frame
        (``phantom_98_0015``, 8.85 µm/px) were 2-4 times as long as wide.
        Tuning phantoms seeds 97 / 98 (250 µm, 4 -> 180 µm, 2.5, the
        dense test as before; ``tricho analyze``, ``tricho evaluate``):
        count MAPE 24.90 / 21.71 -> 24.40 / 21.16% (96 frames 23.30 ->
        22.78%), recall 0.814 / 0.679 -> 0.822 / 0.690, precision 0.826 /
        0.891 -> 0.824 / 0.890, thickness MAE 6.07 / 5.55 -> 6.25 / 5.57
        µm (the added shafts are read on the model's map).  Without the
        dense test the densely crossing uncut frame ``phantom_97_0012``
        read 104 -> 125 of 25, and fdu_val gained hairs on the edges of
        burned-in text boxes.  fdu_val half A 17.08 -> 17.01% (CCC 0.700
        -> 0.705; 6 frames +1: of three looked at, a thin light vellus
        shaft, a defocused shaft, and one where nothing shows).
    model_veto_share : float
        Frames on the classical darkness map: a traced shaft is dropped
        when less than this share of its centre line lies within 25 µm
        (``frame.SEEN_BY_MODEL_UM``) of ``dark_frame_model``'s hair mask.
        The darkness map also finds dark lines that are no hair (pigment
        network furrows on dark skin, creases, a shaft's two rims); the
        model, trained on phantoms that have them, leaves most of them out.
        A low share keeps what the model half sees: real faint shafts it
        misses in part, a unit's touching shafts it reads as one.  The model
        ran on these frames already (``light_among_dark``), so it costs
        nothing.  It vetoes nothing on a frame the model does not read: one
        where it sees under half of all the traced length, or one drawn on
        flat colour (``frame.MODEL_READS_GRAIN``).  0 disables.  Tuned on fdu_val half A and tuning phantoms
        (seeds 97, 98), count MAPE for 0 / 0.1 / 0.25 / 0.5: half A 18.0 /
        17.5 / 17.4 / 17.4%, seed 97 40.4 / 38.3 / 38.1 / 37.6%, seed 98
        25.9 / 24.8 / 24.8 / 24.7%; at 0.5 fdu_val's interior count
        (hairs 0.3 mm from the border) got worse in 40 frames and better in 24
        (interior MAPE 18.2 -> 18.7%), at 0.25 it stayed (18.2%).
    count_hidden_roots : bool
        With ``fork_angle_deg`` > 0: whether a hair whose root end is a
        junction that is no fork (a crossing) still counts.  Not counting
        them removes pieces of long hairs between crossings (tuning
        phantoms: count MAPE 50.5 -> 45.2%, seed 91; 83.5 -> 67.8%, seed
        92) but misses real hairs whose opening touches another shaft: the
        median frame error rose from 33 to 42% on those phantoms and fdu_val
        half A went from 19.0 to 21.2% (CCC 0.63 -> 0.52).  So they count.
    long_scene_share : float
        A frame is a long-hair scene when at least this share of its traced
        centre-line length lies in shafts longer than 1.5 mm
        (``frame.LONG_SHAFT_UM``; clipped hair is shorter).  There, a hair
        whose root end touches a shaft at least 0.4 mm long that runs on
        0.1 mm or more on both sides of the contact, 0.2 mm or more on its
        own root's side, is not counted (``frame.OCCLUDER_MIN_UM``,
        ``frame.OCCLUDER_SIDE_UM``, ``frame.OCCLUDER_ROOT_UM``): it is a
        piece of a long hair coming out from under another one, not an
        emergence.  Without the rule every piece of a long hair between two
        crossings counted as a hair (a tuning frame of 10 hairs read 36).
        0 disables.  Tuning phantoms (seeds 97, 98), count MAPE off / on:
        38.1 / 33.6%, 24.8 / 22.8%; their 18 frames at or above 0.12: 49.8
        / 33.1% (31.6% without the root-side condition, which keeps the
        second hair of an opening).  fdu_val: 3 of 329 frames have shafts
        over 1.5 mm (12, 20 and 23% of their length); the two above 0.15
        changed, 14 hairs read 10 -> 7 and 10 read 16 -> 15 (half A 17.38 /
        17.45%).  At 0.10 the third lost hairs too (18 read 15 -> 11; half
        A 17.6%), the phantoms read the same.  Real frames of long hair reach
        11-32%, so four of the six in ../shared/data/long_hair are read
        without the rule (see the README's Known limits).
    dense_crossing_share : float
        In a long-hair scene whose traced ends are less than this share
        junctions (a few long strays over clipped hair; ``frame.junction_share``),
        a root end on a crossing shaft is taken for a piece of a long hair
        only when the hair visibly runs on beyond that shaft
        (``frame.CONTINUATION_OFF_LINE_DEG``); otherwise it is a clipped
        hair whose opening lies beside the stray, and counts.  Where hairs
        cross densely (uncut hair) a piece's far side is often lost in the
        tangle, so there the contact alone decides, as before.  0: the
        contact alone always; 1: the far side unless every end is a
        junction.  Tuning phantoms' 20
        long-hair scenes (seeds 97, 98): junction share of uncut scenes
        0.43-0.62 (one sparse one 0.17), of clipped scenes with strays
        0.00-0.24; count MAPE 43.1 -> 41.0% (matched hairs 602 -> 616,
        predictions 805 -> 837); the far side in every long-hair scene:
        42.6%.  fdu_val:
        one frame changes (``220126_B362_4``, 14 boxes, read 7 -> 10); the six
        real ``long_hair`` frames (0.30-0.66) read the same.
    tip_step : float
        Touching shafts of one unit cut at different lengths: a straight
        stripe whose width steps down towards its free tip end, each step at
        least this share of the tip end's width, is one hair per level,
        each with its own width (:func:`pipeline.measure.tip_steps`; 0
        disables; dark hair only).  The levels are a least-squares fit
        of constant plateaus (:func:`pipeline.measure.tip_steps`).  Off by
        default: at 0.4 the dark-hair frames of the tuning phantoms (no
        long-hair scenes) went from 34.7 to 32.8% count MAPE (seed 91),
        30.3 -> 28.0 (92), 33.0 -> 30.0 (93), their mean signed error from -10,
        -21, -16% to -6, -13, -8%, but fdu_val half A went 19.0 -> 19.6%
        (CCC 0.634 -> 0.641); at 0.7 the phantoms gained about half as much.
    comb_split : float
        Short hairs of one unit lying side by side often merge into one
        mask blob or comb whose skeleton runs across them or zigzags, so
        they are dropped or read as one.  A mask component with at least
        this share of its pixels beyond every kept shaft's radius is sought
        again for shafts at higher probability levels and, when it holds
        more of them than were traced there, cut along its seams and traced
        again, each part with its own width
        (:func:`pipeline.frame._split_combs`; 0 disables; classical dark-hair
        frames only).  Session 67: at 0.15 the tuning suites 95-98 went
        20.19 -> 18.70% count MAPE (paired -1.49 +- 0.33 points; 44 of 192
        frames moved, 40 better), 5,924 -> 6,035 hairs counted of which
        85% of the added matched a true hair, thickness MAE 7.76 -> 7.67
        µm; fdu_val 18.46 / 17.91 / 18.18 -> 18.39 / 18.00 / 18.19%
        (halves A / B / all; interior 17.00 -> 16.31%, CCC 0.711 ->
        0.724).  Drafts at 0.3 gained about two thirds as much on the
        suites; at 0.05 a little more, at 73% matched.
    faint_line_level : float
        Thin straight shafts fainter than the hysteresis levels (pale
        vellus hairs) are also sought in classical frames of the darkness
        map: where a line of the probability stands this much above its
        flanks (:func:`pipeline.segment.line_contrast`), away from the dark
        shafts, long, thin and straight (:func:`pipeline.frame._faint_shafts`).
        0 turns it off.  Off by default (session 55).  At 0.15 on the tuning
        phantoms (suites 95-98) count MAPE 16.82 -> 16.41% (paired
        -0.41 +- 0.15 points; 15 of 192 frames better, 2 worse), 6,385 ->
        6,418 hairs counted for 5,815 -> 5,836 matched, thickness MAE within
        0.1 um; fdu_val half A 18.51 -> 18.65% (+0.15 +- 0.26), half B
        18.55 -> 18.35%, interior 16.49 / 18.30 -> 16.32 / 18.04%; fdu_val
        shrunk 3 times (8.34 um/px) 17.90 / 19.24 -> 17.72 / 19.22%.  It
        costs 0.10 s a 70x frame on one core (0.48 -> 0.58 s); tuning
        courses 0-3 call 11 of 12 right either way (change error 2.56 ->
        2.53% of the count).
    direction_consensus : float
        The frame's pooled root-to-tip direction (``frame._frame_direction``)
        is used only when its hairs' end evidence agrees at least this much:
        the signed sum of the votes over the sum of their sizes (0-1). At
        0.5 a JPEG-95 re-save of 60 fdu_val frames moved their counts by
        6.86% instead of 7.86% (``benchmarks/reencode_stability.py``), but
        fdu_val half A read 16.88 -> 17.22% and tuning suites 97 / 98 put
        fewer roots on the right end (0.932 / 0.920 -> 0.901 / 0.892), so it
        stays 0.3 (session 39).
    direction_over_forks : bool
        A fork root (or a root carried through another hair's fork) that
        points against the frame's pooled direction, for a hair within 40°
        of it, is dropped and the hair is rooted by that direction
        (``frame._overrule_forks``). On tuning suites 95-98 the frame's
        direction is right for 99% of the hairs it orients and, in the
        frames where it is decisive, a fork for 84% (59% when the border
        cuts the hair): roots on the emergence side
        0.925 / 0.945 / 0.932 / 0.921 -> 0.943 / 0.952 / 0.952 / 0.935,
        precision and recall of matched hairs up on all four, count MAPE
        17.28 -> 17.34% (session 41).
    paint_drawn_lines : bool
        Thin drawn red lines and circles (a device's measurement circle) are
        painted over from their surroundings before the hair map
        (:func:`pipeline.segment.paint_out_lines`) instead of being masked as
        not skin, so a shaft they cross stays one shaft and a root they touch
        is not taken as cut. (Session 54; numbers in docs/HISTORY.md.)
    fork_vote : float
        Weight of a hair rooted at a fork (or through another hair's fork)
        in the frame's pooled direction (``frame._frame_direction``), where
        every uncut hair votes the difference of its two ends' root scores
        (halo, fading; a median of about 0.16). At 1 (until session 53) a
        few false forks (a cut tip touching another shaft, a spur) outvoted
        a frame's halos: of every third fdu_val frame (110), 23 had a
        decisive direction against the summed own evidence of their uncut
        hairs (``benchmarks/direction_agreement.py``), and in the six of them
        looked at, every root lay at the cut tips. At 0.1: 4 of 82 frames with
        a decisive direction (23 of 69 before), 1 where that evidence alone
        would be decisive the other way (21 before). Tuning suites 95-98:
        roots on the emergence side 0.948 / 0.952 / 0.956 / 0.938 ->
        0.968 / 0.968 / 0.964 / 0.958, units
        MAPE better on three, count MAPE 17.01 -> 17.20% (paired +0.19 +- 0.21);
        fdu_val halves A / B 17.00 / 18.57 -> 17.87 / 18.29% (the border's
        hairs: interior count MAPE of half A 17.48 -> 17.32%).
    fork_angle_deg : float
        Root ends: a hair ending at a junction takes that end as its root
        only when another hair leaves the same junction within this angle
        (a V-shaped opening of one unit), not at a T-contact or a steep
        crossing (0: every junction end is a root).  60 degrees cut the
        count MAPE of the tuning phantoms (seeds 91, 92) from 52.7 to 50.5%
        and 86.2 to 83.5%, and of fdu_val half A from 19.5 to 19.0%.
    split_shaft_deg : float
        A thick shaft whose mask splits along a lighter band (a sheen or a
        medulla) is traced as two lines running side by side.  Two traced
        lines within this angle (degrees) that overlap along most of their
        length, keep a constant distance, span together at most
        ``fused_min_um`` and have no skin between them (the band's level is
        at least a quarter of the shaft contrast) are one hair: the
        narrower line is dropped and the wider takes the pair's outer width
        (:func:`pipeline.frame.merge_split_shafts`; 0 disables).  At 8
        degrees the tuning phantoms (seeds 97, 98) went 25.84 -> 25.45% and
        24.66 -> 24.46% count MAPE, thickness MAE 5.17 -> 5.14 and 5.02 ->
        4.85 µm, precision 0.835 -> 0.838 and 0.881 -> 0.885 (recall the
        same); fdu_val half A 17.45 -> 17.40% (interior 17.32 -> 17.23%),
        half B the same; the light-hair sets did not change.
    broken_gap_um : float
        A faint thin shaft whose mask breaks along the way is traced as two
        pieces, each counted with its own emergence point.  Two traced lines
        whose free ends face each other across at most this gap (µm, between
        the centre lines' ends), within 25 degrees and 2 px of each other's
        line, with the hair probability nowhere along the gap under 0.1 (a
        faint shaft, not skin), are one hair, measured over both pieces
        (:func:`pipeline.frame.join_broken_shafts`; 0 disables).  At 100 µm
        the tuning phantoms (suites 95-98) counted 40 fewer hairs, 8 of
        them matched to a true hair (precision 0.901 -> 0.906, recall 0.796
        -> 0.795, count MAPE 16.83 -> 16.90%, paired +0.06 +- 0.08 points,
        thickness MAE 5.08 / 5.42 / 5.91 / 6.17 -> 5.05 / 5.42 / 5.91 /
        6.15 µm); fdu_val 17.05 / 18.63 -> 17.00 / 18.57% (halves A / B,
        3 frames one hair fewer).
    seam_dip : float
        Touching shafts of one unit: a dip of at least this share of the
        peak darkness between two lobes of a stripe's cross profile is a
        seam between two hairs (0 disables; dark hair only).  Off by
        default: at 0.2 it cost fdu_val half A 0.6 points of count MAPE
        (19.5 -> 20.1%) and did not help the tuning phantoms (seeds 91,
        92), where touching shafts rarely leave a resolved seam.
    model_seam_level : float
        Touching shafts on frames read on ``light_hair_model``'s map (the
        images.csv ``segmenter`` column ``learned_light_hair`` or
        ``learned_low_contrast``): a traced stripe without a junction end
        counts as k hairs when ``seam_model``'s centre-line map (values
        0-1) shows k ridges across its mask, each at least this high
        (:func:`pipeline.measure.ridge_count`; 0 disables; at most 1). On
        those frames it replaces ``seam_dip``. A hair map merges a unit's
        touching shafts into one stripe; a centre-line head trained on each
        hair's own core (``tricho train --centre-label ridge``) keeps them
        apart. The heads of models trained on 1-px lines (``hairnet-light-v2``,
        ``v3``) read about one level across a whole shaft and find one ridge.
        0.3 since session 68, chosen on the 72 light-hair frames of tuning
        suites 95-98 (count MAPE 24.24 -> 23.12%, with 0.5: 23.79%; on a
        cores model's own hair map 0.3 beat 0.5 too); report suites 1001 /
        1002 19.66 / 21.50 -> 18.89 / 20.96% (README, Accuracy).
    seam_model : str
        The learned model (name or folder) whose centre-line map
        ``model_seam_level`` reads; ``""``: ``light_hair_model`` itself. Any
        other model runs a second time on the frame, for that map only; one
        that cannot load is left out, and the frame's ``note`` says so.
        ``hairnet-light-cores-v1`` (trained on cores, session 68): its own
        hair map reads the light-hair frames worse than
        ``hairnet-light-v3``'s, so v3 draws the hair map and it the cores.
    dark_seam_level : float
        ``model_seam_level`` for frames read on the darkness map (the
        images.csv ``segmenter`` column ``classical``): a traced stripe
        without a junction end counts as k hairs when ``dark_frame_model``'s
        centre-line map shows k ridges across its mask, each at least this
        high (0 disables; at most 1); there it replaces ``seam_dip``. The map
        comes from the run of ``dark_frame_model`` those frames have already
        (``light_among_dark``, ``model_veto_share``; with both 0 the model
        does not run and this does nothing), so it costs no second network;
        a split hair's width is then the stripe's mask width / k. It means
        something only for a model trained on cores (``tricho train
        --centre-label ridge``). Off: session 69 trained ``hairnet-v2``'s
        recipe on cores (``tricho train --out D --parallel-units 0.8
        --centre-label ridge --workers 2``, 39 min; not shipped). On the
        116 darkness-map frames of tuning suites 95-98 (``tricho analyze S
        --out R --workers 2 --set dark_frame_model=D [--set
        dark_seam_level=0.3]``, ``tricho evaluate R --truth S``,
        ``benchmarks/paired_runs.py``) that model in this role read count
        MAPE 15.61 -> 14.60% (-1.01 +- 0.57 points) and its cores at 0.3 a
        further -0.03 +- 0.14 (17 hairs added, 8 of them matched); most
        touching pairs there are split by width already, or end at a
        junction, where stripes are not split. On fdu_val (halves A / B)
        the same two steps read 18.39 / 18.00 -> 19.93 / 19.25 -> 20.40 /
        19.14%. At ``hairnet-v2``'s thresholds the model gains nothing on
        those phantoms (15.56%) and still reads fdu_val 19.25 / 18.39%.
    unit_radius_um : float
        Hairs whose emergence points lie within this distance share one
        follicular unit (µm; single linkage, plus the hairs of one fork).
        180 since session 41 (120 before): a unit's openings lie within
        about one shaft width of each other (60-130 µm in the phantoms) and
        the core's emergence points are a median 40 µm off, so 120 left
        mates apart. Tuning suites 95-98, pairs of matched hairs grouped by
        the radius alone (120 / 150 / 180 / 240 / 320 µm): true unit-mates
        left apart 822 / 502 / 333 /
        224 / 127, hairs of different units joined 31 / 39 / 49 / 77 / 253;
        units MAPE 18.8 / 21.5 / 25.7 / 19.2% at 120, 14.1 / 15.7 / 19.5 /
        17.6% at 180, 12.7 / 15.0 / 19.1 / 17.0% at 240. 180 keeps clear of
        the rise in wrong joins past 240 (denser real scalps).
    emergence_reach : float
        A traced centre line stops about a radius short of its shaft's end,
        and a hair fades in where it leaves the skin, so the root end of the
        centre line lies inside the shaft: on tuning phantoms (seeds 97, 98,
        clipped scenes, correctly oriented hairs) a median 1.6 true radii
        (IQR 1.1-2.1) from the true emergence point along the hair, 0.2
        across it. The reported emergence point (``row, col``) of a hair
        whose root end is free and not cut is where the hair's mask ends
        beyond it, walking outward along the hair at most this many radii
        (:func:`pipeline.frame.mask_end`; 0: the centre line's end); a hair
        forking from a shaft that runs through its opening takes that
        shaft's point. Tuning phantoms (`tricho evaluate`), 0 / 3: median
        emergence error 60 / 34 µm (seed 97) and 67 / 43 µm (98);
        follicular units MAPE 26.1 / 23.7% and 23.1 / 21.6%; counts equal
        (the counting rule reads the centre line's end); thickness MAE of
        matched hairs 5.95 / 5.99 and 5.53 / 5.58 µm (the same widths; a
        few unit-mates pair with the truth the other way round); tuning
        courses 0-3 12 / 12 right both, change error 3.82 / 3.72%. Walking
        from junction ends too (a fork, where the stripe runs on into the
        partner's shaft) crossed into the partner's stripe and swapped the
        mates' points: units 21.7 / 20.6% but thickness MAE 6.70 / 6.19 µm,
        so a junction end stays where it is.
    thickness_method : str
        ``"profile"`` (integrated contrast across the shaft, blur-invariant),
        ``"edges"`` (half-maximum width of the shaft's own profile where it
        is resolved, else ``"profile"``) or ``"distance"`` (2 x distance
        transform on the centre line); see :mod:`pipeline.measure`.
    thickness_percentile : float
        ``edges`` on a contrast map: the percentile of the widths read at
        stations along a shaft that is its thickness (50: the median).
        Stations narrowed by a neighbour, a crossing or the shaft's taper
        into the skin read low more often than anything reads high; 70 was
        set on tuning phantoms (seeds 97 and 98: matched-hair thickness MAE
        of classical frames 5.87 -> 5.37 and 6.31 -> 5.57 µm, with each
        station's width bounded by the shaft's mask run). On a model's hair
        map the plain median width is kept: there the shafts of low-contrast
        frames already read wide (bias +11 to +18 µm on those seeds).
    thickness_map : str
        What the thickness is measured on when a learned model segmented the
        frame: ``"contrast"`` (the frame's darkness or colour-contrast map,
        as on the classical path) or ``"model"`` (the model's hair map,
        trained on the shafts' exact geometric cover, so its profile does not
        depend on the shaft's colour). Classical frames always use the
        contrast map.
    segmenter : str
        Hair probability from ``"classical"`` filters, the ``"learned"``
        network (:mod:`pipeline.learned`), or ``"auto"``: the learned one
        when its model card's measurements prefer it.
    route : str
        How the classical segmenter reads a frame (:func:`pipeline.frame.hair_map`):
        ``"auto"`` decides per frame; else a fixed route ``MAP`` or
        ``MAP+model``, ``MAP`` one of ``dark`` (darkness), ``bright``
        (brightness) or ``colour`` (colour distance from skin), ``+model``
        the ``light_hair_model`` drawing the hair map.  Each frame's route
        is the ``route`` column of images.csv.
    series_route : bool
        ``tricho analyze``: frames of one spot over a course (same
        ``patient_id``, ``site`` and ``field_id``) are all read by the route
        most of them take on their own (ties: the earliest session's), so a
        change of light between visits does not switch the method
        (:func:`pipeline.batch.series_routes`).
    model : str
        Learned model name (a folder under ``models/``) or path.
    learned_backend : str
        What runs the learned network: ``"onnx"`` (ONNX Runtime on the
        folder's ``weights.onnx``; 2.5x faster than torch per tile on this
        project's 2-core CPU, see ``benchmarks/onnx_speed.py``), ``"torch"``
        (``weights.pt``), or ``"auto"``: ONNX Runtime when the folder has a
        checked ``weights.onnx`` and onnxruntime imports, else torch.  Both
        give the same maps to about 1e-5.  ``"onnx-int8"`` runs the folder's
        8-bit copy (``weights.int8.onnx``, ``tricho quantize``): a tile about
        2.2x faster than ``"onnx"``, maps within about 5e-4 on average (see
        ``benchmarks/onnx_int8.py`` and the README's Speed).
    min_focus_score : float
        Quality gate: frames with a lower normalised Laplacian variance
        (:func:`pipeline.quality.focus_score`) are flagged ``blurred``. The
        blurriest of 66 sampled real 70x frames scores 5.6; the same frames
        blurred by a 3-px Gaussian score at most 1.4.
    max_overexposed_pct, max_underexposed_pct, max_glare_pct : float
        Quality gate: largest share of the field (%) that may be clipped
        bright, clipped dark, or specular glare.
    min_skin_pct : float
        Quality gate: smallest share of the frame (%) that must be usable skin (of a pillarboxed
        frame, of its view between the side bars).
    scale_bar_um : float
        Length a burned-in L scale bar's leg stands for (µm), when a frame's
        pixel size is read from it ("1.0 mm" on the devices we know).
    """

    vellus_max_um: float = 30.0
    terminal_min_um: float = 60.0
    scale_um_per_px: float = 2.78
    min_width_um: float = 8.0
    max_width_um: float = 160.0
    darkness_threshold: float = 0.5
    darkness_low: float = 0.42
    ridge_gain: float = 0.0
    light_hair_below: float = 0.3
    yellow_shaft_b: float = 4.0
    bright_hair_skin_below: float = 110.0
    bright_route_share: float = 2.0
    translucent_edge_level: float = 0.2
    line_length_um: float = 150.0
    min_hair_length_um: float = 100.0
    min_aspect: float = 2.5
    stripe_aspect: float = 1.5
    stub_aspect: float = 1.5
    border_stub_min_um: float = 50.0
    spur_factor: float = 2.0
    crossing_angle_deg: float = 35.0
    corner_angle_deg: float = 45.0
    unit_radius_um: float = 180.0
    emergence_reach: float = 3.0
    fused_ratio: float = 1.6
    fused_quantile: float = 50.0
    fused_min_um: float = 120.0
    seam_dip: float = 0.0
    model_seam_level: float = 0.3
    seam_model: str = "hairnet-light-cores-v1"
    dark_seam_level: float = 0.0
    direction_consensus: float = 0.3
    fork_angle_deg: float = 60.0
    split_shaft_deg: float = 8.0
    broken_gap_um: float = 100.0
    tip_step: float = 0.0
    comb_split: float = 0.15
    faint_line_level: float = 0.0
    count_hidden_roots: bool = True
    long_scene_share: float = 0.15
    direction_over_forks: bool = True
    paint_drawn_lines: bool = True
    fork_vote: float = 0.1
    dense_crossing_share: float = 0.3
    light_hair_model: str = "hairnet-light-v3"
    bright_veto_model: str = "hairnet-light-v2"
    dark_frame_model: str = "hairnet-v2"
    weak_shafts_below: float = 0.45
    weak_shafts_dark_skin_below: float = 0.6
    light_among_dark: float = 0.35
    light_among_dark_min_um: float = 180.0
    model_veto_share: float = 0.25
    thickness_method: str = "edges"
    thickness_percentile: float = 70.0
    thickness_map: str = "model"
    segmenter: str = "classical"
    route: str = "auto"
    series_route: bool = True
    model: str = "hairnet-v2"
    learned_backend: str = "auto"
    min_focus_score: float = 2.0
    max_overexposed_pct: float = 5.0
    max_underexposed_pct: float = 5.0
    max_glare_pct: float = 10.0
    min_skin_pct: float = 50.0
    scale_bar_um: float = 1000.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            wrong = {"float": isinstance(value, bool) or not isinstance(value, (int, float)),
                     "int": isinstance(value, bool) or not isinstance(value, int),
                     "bool": not isinstance(value, bool), "str": not isinstance(value, str)}.get(kind, False)
            if wrong:
                raise TypeError(f"{f.name} takes a {kind}, not {value!r} ({type(value).__name__})")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number, not {value}")
        if not self.min_width_um < self.max_width_um:
            raise ValueError(f"min_width_um ({self.min_width_um}) must be below max_width_um ({self.max_width_um})")
        if not 0 <= self.darkness_low <= self.darkness_threshold <= 1:
            raise ValueError(f"the hysteresis thresholds must satisfy 0 <= darkness_low ({self.darkness_low}) <= "
                             f"darkness_threshold ({self.darkness_threshold}) <= 1")
        for name in POSITIVE:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} is a length or scale and must be above 0, not {getattr(self, name)}")
        for name in NOT_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (off) or more, not {getattr(self, name)}")
        if not 0 < self.vellus_max_um <= self.terminal_min_um:
            raise ValueError(
                f"class limits must satisfy 0 < vellus_max_um ({self.vellus_max_um}) "
                f"<= terminal_min_um ({self.terminal_min_um})"
            )
        if self.thickness_method not in ("profile", "edges", "distance"):
            raise ValueError(
                f"thickness_method must be 'profile', 'edges' or 'distance', not {self.thickness_method!r}"
            )
        if not 0 < self.bright_route_share < 100:
            raise ValueError(
                f"bright_route_share is a share of a frame's skin pixels in percent, between 0 and 100 "
                f"(exclusive), not {self.bright_route_share}"
            )
        if not 0 < self.translucent_edge_level < 1:
            raise ValueError(
                f"translucent_edge_level is a fraction of a profile's peak, between 0 and 1 "
                f"(exclusive), not {self.translucent_edge_level}"
            )
        if not 0 <= self.model_veto_share <= 1:
            raise ValueError(
                f"model_veto_share is a share of a shaft's centre line, between 0 (off) and 1, "
                f"not {self.model_veto_share}"
            )
        if not 0 <= self.long_scene_share <= 1:
            raise ValueError(
                f"long_scene_share is a share of a frame's traced length, between 0 (off) and 1, "
                f"not {self.long_scene_share}"
            )
        if not 0 <= self.dense_crossing_share <= 1:
            raise ValueError(
                f"dense_crossing_share is a share of the traced hairs' ends, between 0 (contact alone) and 1 "
                f"(far side always), not {self.dense_crossing_share}"
            )
        if not 0 <= self.emergence_reach <= 20:
            raise ValueError(
                f"emergence_reach is how far the emergence point may move beyond the centre line's end, in shaft "
                f"radii, 0 (off) to 20, not {self.emergence_reach}"
            )
        if self.yellow_shaft_b < 0:
            raise ValueError(f"yellow_shaft_b is a CIELAB b* difference, 0 (off) or more, not {self.yellow_shaft_b}")
        if not 0 <= self.broken_gap_um <= 1000:
            raise ValueError(f"broken_gap_um is a gap in µm, 0 (off) to 1000, not {self.broken_gap_um}")
        if not 0 <= self.split_shaft_deg < 90:
            raise ValueError(f"split_shaft_deg is an angle in degrees, 0 (off) to under 90, not {self.split_shaft_deg}")
        if not self.dark_seam_level <= 1:
            raise ValueError(f"dark_seam_level is a level of dark_frame_model's centre-line map, 0 (off) to 1, "
                             f"not {self.dark_seam_level}")
        if not self.model_seam_level <= 1:
            raise ValueError(f"model_seam_level is a level of the model's centre-line map, 0 (off) to 1, "
                             f"not {self.model_seam_level}")
        if not 0 <= self.thickness_percentile <= 100:
            raise ValueError(f"thickness_percentile is a percentile, between 0 and 100, not {self.thickness_percentile}")
        if self.thickness_map not in ("contrast", "model"):
            raise ValueError(f"thickness_map must be 'contrast' or 'model', not {self.thickness_map!r}")
        if self.learned_backend not in ("auto", "onnx", "onnx-int8", "torch"):
            raise ValueError(
                f"learned_backend must be 'auto', 'onnx', 'onnx-int8' or 'torch', not {self.learned_backend!r}"
            )
        if self.route not in ROUTES:
            raise ValueError(f"route must be one of {', '.join(ROUTES)}, not {self.route!r}")
        if self.segmenter not in ("classical", "learned", "auto"):
            raise ValueError(
                f"segmenter must be 'classical', 'learned' or 'auto', not {self.segmenter!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every setting (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def classical_models(self) -> list[tuple[str, str]]:
        """The learned models the classical path may run, as (name, role) pairs; ``""`` names one turned off
        (``seam``: ``seam_model``, when ``model_seam_level`` asks for a model other than ``light_hair_model``)."""
        seam = self.seam_model if self.model_seam_level > 0 and self.seam_model != self.light_hair_model else ""
        return [(self.light_hair_model, "light_hair"), (self.bright_veto_model, "bright_veto"),
                (self.dark_frame_model, "dark_frame"), (seam, "seam")]

    def digest(self) -> str:
        """Short sha256 of the settings, stable across runs and machines."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def from_overrides(cls, pairs: list[str] | None) -> "Settings":
        """Settings with ``KEY=VALUE`` overrides (as given to ``tricho analyze --set``).

        Raises
        ------
        ValueError
            Naming the bad pair and the valid keys.
        """
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        changes: dict[str, Any] = {}
        for pair in pairs or []:
            key, sep, raw = pair.partition("=")
            key = key.strip()
            if not sep or key not in kinds:
                raise ValueError(f"--set {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(kinds))}")
            changes[key] = _parse_value(pair, key, raw.strip(), kinds[key])
        return cls(**changes)

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)


_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _parse_value(pair: str, key: str, raw: str, kind: Any) -> Any:
    """One ``--set`` value as its setting's type (str, bool, int or float)."""
    if kind in (str, "str"):
        return raw
    if kind in (bool, "bool"):
        if raw.lower() not in _BOOLS:
            raise ValueError(f"--set {pair!r}: {key} takes true or false")
        return _BOOLS[raw.lower()]
    try:
        return int(raw) if kind in (int, "int") else float(raw)
    except ValueError:
        raise ValueError(f"--set {pair!r}: {key} takes {'a whole number' if kind in (int, 'int') else 'a number'}") from None

