"""Treatment courses: sessions per patient and site, change with uncertainty, response.

Pure: the ``images`` and ``hairs`` tables of an analysis run in, tidy tables
out (``sessions``, ``changes``, ``summary``). No file is read or written here.

Definitions
-----------
Session value
    The fields of one session are pooled: density = total hairs / total
    area; terminal density likewise; mean thickness over all hairs;
    vellus share = vellus hairs / hairs; cumulative thickness = sum of
    diameters / total area; hairs per unit = hairs / units.
Change
    session value minus reference value (the baseline session, or the
    previous session), in the metric's units and in percent of the reference.
Confidence interval (95%)
    Percentile bootstrap (``n_boot`` draws, seeded): in each draw the
    fields of each of the two sessions are resampled with replacement,
    each field's hair count is redrawn from a Poisson law around its count
    (counting noise), and the hairs of each drawn field are resampled with
    replacement for the thickness metrics (Efron & Tibshirani 1993,
    doi:10.1007/978-1-4899-4541-9).
Minimal detectable change (MDC95)
    The within-visit standard deviation of a metric between fields of the
    same session, pooled over every session with two or more fields, gives
    the standard error of measurement of a session value,
    SEM = SD_within / sqrt(n_fields); MDC95 = 1.96 x sqrt(2) x SEM = 2.77 x SEM
    (Weir 2005, doi:10.1519/15184.1), using the smaller field count of the
    two sessions compared.
Real change
    ``|change| > MDC95`` and a CI that excludes zero.
Visit agreement (same-spot matching only)
    Of the hairs either visit counts in the common region of its field
    pairs, the share the two visits' detections pair directly, before the
    re-examination of gained and lost hairs: (persisting - rechecked) /
    (persisting + gained + lost). Low agreement means the two visits do not
    see the same hairs (light or grey hair, dark skin, poor focus), and the
    re-examination then decides most hairs; on phantom courses it then
    reads nearly every change as none.
Response (per patient and site, latest session against baseline)
    ``improved`` when the density change is real and positive, ``worsened``
    when it is real and negative, else ``stable``; ``indeterminate`` instead
    when the latest session was matched to the baseline with a visit
    agreement below ``CourseSettings.min_agreement``. Thickness, terminal
    density and vellus share are reported beside it, not used for the call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

#: Metrics compared, with the images.csv / hairs.csv names they derive from.
METRICS = [
    "density_per_cm2", "terminal_density_per_cm2", "mean_thickness_um", "vellus_share_pct",
    "cumulative_thickness_mm_per_cm2", "hairs_per_unit",
]
PRIMARY = "density_per_cm2"
KEYS = ["patient_id", "site"]
#: How a session date may be written (manifest cells, folder names, ``--baseline``).
DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d")


def iso_date(text: str) -> str | None:
    """A session date written ``YYYY-MM-DD`` or ``YYYYMMDD`` as ISO ``YYYY-MM-DD``; None for anything else.

    Sessions are ordered by this text, so every date must be written one way
    before it is compared: ``15/01/2026`` could be read day-first or
    month-first and is refused rather than guessed.

    >>> iso_date("20260115"), iso_date("2026-01-15"), iso_date("15/01/2026")
    ('2026-01-15', '2026-01-15', None)
    """
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class CourseSettings:
    """Tunables of the course comparison (written into the compare run's JSON).

    Attributes
    ----------
    n_boot : int
        Bootstrap draws for each confidence interval.
    seed : int
        Seed of the bootstrap.
    include_flagged : bool
        Keep frames with ``quality_flags`` (left out by default).
    baseline : str or None
        Session date taken as baseline, ``YYYY-MM-DD`` or ``YYYYMMDD``
        (kept as ISO, :func:`iso_date`); default the first session.
    matched_retest_sd_pct : float
        SD of the measured same-spot (matched) hair-count change between two
        visits with no true change, in % of the count, measured on phantom
        courses (``python benchmarks/course_response.py --retest --seeds
        0:30``): 3.7% since 2026-12-05 (session 69 read 3.02%, robust SD
        2.56%, session 68 3.70% / 2.09%, session 67 4.15%: kept; session
        47: 3.73%, robust SD 2.73%, with ``recheck_floor_model``; session 49, after the model
        tiles were laid on the stride: 3.30%, robust 2.84%, but 3.3 calls
        20 of 24 tuning courses right against 3.7's 21; 3.66%, robust 2.18%,
        before the floor;
        session 34 had measured 3.53%). With 3.7 instead of 3.1 the tuning
        courses (seeds 0-7, ``course_response.py --seeds 0:8 --reuse-runs
        --retest-sd-pct 3.7``) call 22 of 24 right instead of 21 (stable 7
        no longer ``worsened``), the report courses the same 26 of 30.
        3.1% (3.07%, robust SD 1.80%; mean absolute change 1.95%)
        from 2026-12-03 (session 29), with the re-examination reading
        through counted hairs (``recheck_through_counted``) and the blue-cast
        sheen no longer masked as drawn marks (the report courses' calls did
        not change with it: 22 of 30 either way); before them
        4.7% (4.65%, robust SD 3.64%) on tuning seeds 0-29 with
        grey and white shafts among dark ones re-examined on the map they
        were found on (:func:`pipeline.frame.light_shaft_map`, session 22)
        and ``hairnet-light-v1`` as the light-hair model; with
        ``hairnet-light-v2`` (2026-12-03, session 26) 4.61% (robust 4.01%),
        inside the SD's sampling error (about 0.6 points over 30 pairs), so
        4.7% stays;
        4.8% (4.76%, robust SD 3.57%) before it, with the
        key points found on a blurred frame (``register.KEYPOINT_BLUR_PX``,
        2026-12-02); 5.0% (robust SD 3.4%) before it, with the
        re-examination thresholds of 2026-12-02 (``recheck_ratio`` 0.4,
        ``recheck_floor`` 0.3; 4.75%, robust 3.75%, with 0.3 / 0.15), the
        classical segmenter (light-hair and low-contrast frames on
        ``hairnet-light-v1``, split thick shafts joined by
        ``Settings.split_shaft_deg``), the re-examination of gained and lost hairs on each
        frame's own map, the width floor for fused stripes
        (``Settings.fused_min_um``), the search for light shafts among dark
        ones (``Settings.light_among_dark``), specks kept out of the skin
        mask (``segment.SPECK_PX``: a speck beside a root no longer hides its
        hair in one visit and not the other), the veto of dark lines the
        light-hair model does not see (``Settings.model_veto_share``), and
        frames rendered by the generator of 2026-12-01 (``python
        benchmarks/course_response.py --retest --seeds 0:30``).  Earlier
        values: 4.7% (robust 3.7%) with the earlier re-examination
        thresholds, 5.5% (robust 4.5%) with ``hairnet-v2`` as the light-hair
        model and before the split-shaft rule, 5.4% (robust 4.4%) before the veto, 5.7% (robust 4.9%) before
        the specks, the same to every digit before the brightness map for
        light hair on dark skin (``Settings.bright_hair_skin_below``, which
        no retest frame takes), 5.6% (robust 5.1%) before
        the light-shaft search, 5.7% (robust 4.9%) before the width floor,
        4.6% (before the low-contrast routing and the
        re-rendered frames), about 5.2% before the unit calibration, 6.0% on
        the earlier three-scene courses. One percentage serves every course
        (on the earlier courses the SD in % hardly depended on the count:
        5.8% with 60 hairs or more, 6.3% with fewer); MDC95 = 1.96 x it.
    recheck_ratio, recheck_floor : float
        Same-spot matching: a gained or lost hair is re-examined in the other
        visit's frame and called persisting when the shaft is there at
        least at ``recheck_ratio`` of its own probability and at
        ``recheck_floor`` (:func:`pipeline.register.recheck_unmatched`;
        ``recheck_ratio=0`` turns this off). Each frame is read on the map
        its hairs were counted on (the run's settings from its run.json,
        :func:`pipeline.frame.hair_map`); until 2026-12-01 every frame was
        read on the classical map, also the ones a learned model counted.
        A grey or white shaft found among dark ones, which the darkness map
        does not show, is read on the model map it was found on
        (:func:`pipeline.frame.light_shaft_map`; since 2026-12-02, session 22).
        0.4 / 0.3 since 2026-12-02 (0.3 / 0.15 before): on tuning courses
        (seeds 0-7, ``course_response.py --seeds 0:8 --reuse-runs
        --recheck-ratio R --recheck-floor F`` and ``course_truth.py``) the
        matched change error fell 5.75 -> 5.33% of the count and the right
        call rose 67 -> 75%, on a plateau (0.3-0.5 / 0.25-0.35: 5.33-5.40%,
        71-75%).
    recheck_floor_model : float
        ``recheck_floor`` for a field pair either of whose frames was read on
        a learned model's map (its ``route`` in images.csv ends in
        ``+model``: light hair, low contrast; :meth:`floor_for`). 0.7 since
        2026-12-05 (session 47), chosen on tuning courses (seeds 0-7,
        ``course_response.py --seeds 0:8 --out D``, then ``--reuse-runs
        --recheck-floor-model F``, ``course_hairs.py D``): at 0.3 / 0.5 /
        0.6 / 0.7 / 0.8 right call 18 / 20 / 21 / 21 / 21 of 24, matched
        change error 3.26 / 3.14 / 3.03 / 2.89 / 2.92% of the count (0.7
        against 0.3: -0.38 +- 0.27 points, paired by course). The gain is
        the two blond patients' (seeds 3 and 6, 4.48 / 4.58 -> 3.14 /
        3.21%): at 0.3 the other visit's model map held 0.3 along 150 of
        seed 6's 295 true losses and gains, which were read as persisting
        (2 at 0.7, while 158 flipped detections are now read as changes
        against 63). Report courses: README, "Treatment courses on phantoms".
    recheck_through_counted : float
        Same-spot matching: the re-examination also accepts a shaft the
        other visit counted inside another hair's stripe where its map
        reaches this level (``through_counted`` of
        :func:`pipeline.register.recheck_unmatched`); 0: off.  0.3 since
        2026-12-03 (session 29), on tuning courses whose hairs also leave
        and join units (seeds 0-7, ``CourseSpec.within_unit_share`` 0.5;
        ``course_response.py --seeds 0:4`` and ``--seeds 4:8``, then
        ``--reuse-runs --recheck-through-counted 0.3``): matched change
        error 5.18 -> 3.59% of the count (mean of 120 sessions), right call
        19 -> 22 of 24; 0.2-0.3 accept the same hairs
        (``course_flip_evidence.py OUT --seeds 0:4``).
    min_agreement : float
        Same-spot matching: below this visit agreement (module doc) the
        response is ``indeterminate``, not a call the tool cannot back. Set
        on tuning phantoms: in the latest session the light- and
        grey-haired tuning courses (seeds 0 and 3) agree on 26-41% of hairs
        (5 of 6 below 40%) and were called ``stable`` whatever their truth;
        the dark-haired ones (seeds 1 and 2) on 36-68% (1 of 6 below);
        same-day retests (seeds 0-29) span 25-85%, and the four below 40%
        are grey hair, dark skin or a dense field
        (``python benchmarks/course_response.py --seeds 0:4`` and ``--retest
        --seeds 0:30``, ``field_pairs.csv`` of each course). 0 turns it off.
    min_overlap : float
        Same-spot matching: a registration that lays the later frame over
        less than this share of the baseline frame is refused (the pair is
        compared pooled). A device put back on its tattoo dot shows nearly
        the same skin: on tuning courses every true pair overlaps 93% or more
        (seeds 0, 2, 5, 7, 60 pairs); two unrelated sample frames that ORB
        paired by chance (21 inliers) overlapped 24%.
    response_basis : str
        What the response is called on: ``"latest"``, the latest session's
        density change against baseline (real when beyond its MDC95 with a
        95% CI excluding zero), or ``"trend"``, the change by the latest
        session read off the least-squares line through all sessions
        (:func:`course_trend`; real when beyond its MDC95, which is smaller:
        every visit's count weighs in, not two, and when the latest change's
        95% bootstrap interval, moved to the line's value and narrowed by the
        same factor, excludes zero). With one session after baseline both
        are the same rule. Both are in ``summary.csv``. ``"trend"`` since
        2026-12-02: on tuning courses (seeds 0-7, ``course_response.py
        --seeds 0:8 --reuse-runs``) the right call rose from 67 to 88%.
    match_margin_um : float
        Same-spot matching counts hairs only at least this far inside both
        frames (µm), so a hair one visit sees whole and the other cut by
        its border is not read as a change. Off by default: 150 µm made no
        difference to the matched change error on tuning courses (seeds 0-3)
        and doubled the robust test-retest SD (less skin compared).
    """

    n_boot: int = 2000
    seed: int = 0
    include_flagged: bool = False
    baseline: str | None = None
    matched_retest_sd_pct: float = 3.7
    recheck_ratio: float = 0.4
    recheck_floor: float = 0.3
    recheck_floor_model: float = 0.7
    recheck_through_counted: float = 0.3
    min_agreement: float = 0.4
    match_margin_um: float = 0.0
    min_overlap: float = 0.5
    response_basis: str = "trend"

    def __post_init__(self):
        if self.response_basis not in ("latest", "trend"):
            raise ValueError(f"response_basis must be 'latest' or 'trend', not {self.response_basis!r}")
        if self.baseline is not None:
            day = iso_date(str(self.baseline).strip())
            if day is None:
                raise ValueError(f"baseline {self.baseline!r} is not a date: write it YYYY-MM-DD or YYYYMMDD")
            object.__setattr__(self, "baseline", day)

    def floor_for(self, *routes: object) -> float:
        """The re-examination floor for a field pair whose frames took ``routes`` (images.csv ``route``):
        ``recheck_floor_model`` when any was read on a learned model's map (ends in ``+model``), else
        ``recheck_floor``.

        >>> CourseSettings(recheck_floor=0.3, recheck_floor_model=0.5).floor_for("dark", "colour+model")
        0.5
        >>> CourseSettings(recheck_floor=0.3, recheck_floor_model=0.5).floor_for("dark", None)
        0.3
        """
        on_model = any(isinstance(r, str) and r.endswith("+model") for r in routes)
        return self.recheck_floor_model if on_model else self.recheck_floor


# ----------------------------------------------------------------------------- selecting frames


def usable_frames(images: pd.DataFrame, settings: CourseSettings = CourseSettings()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Frames that enter the comparison, and the left-out ones with the reason.

    A frame enters when it is ``ok``, has a patient, site, session date and
    a pixel size (area), and no quality flag (unless ``include_flagged``).
    """
    frames = images.copy()
    for col in ("patient_id", "site", "session_date", "quality_flags", "status"):
        if col not in frames:
            frames[col] = ""
        frames[col] = frames[col].astype("string").fillna("").str.strip()
    reason = pd.Series("", index=frames.index, dtype="string")
    reason[frames["status"] != "ok"] = "status is not ok"
    missing = (frames["patient_id"] == "") | (frames["site"] == "") | (frames["session_date"] == "")
    reason[(reason == "") & missing] = "no patient_id, site or session_date"
    written = frames["session_date"].tolist()
    day = [iso_date(t) if t else None for t in written]
    undated = (reason == "") & pd.Series([d is None for d in day], index=frames.index)
    reason[undated] = ("session_date '" + frames["session_date"][undated]
                       + "' is not a date: write it YYYY-MM-DD or YYYYMMDD in the manifest")
    frames["session_date"] = pd.Series([d or t for d, t in zip(day, written)], index=frames.index, dtype="string")
    area = pd.to_numeric(frames.get("area_cm2"), errors="coerce")
    reason[(reason == "") & ~(area > 0)] = "no pixel size (no area)"
    if not settings.include_flagged:
        flagged = frames["quality_flags"] != ""
        reason[(reason == "") & flagged] = "quality flag: " + frames["quality_flags"]
    left = frames[reason != ""].assign(reason=reason[reason != ""])
    return frames[reason == ""].copy(), left[["image", "reason"] if "image" in left else ["reason"]]


# ----------------------------------------------------------------------------- session values


def _field_table(frames: pd.DataFrame, hairs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per field: counts and area; and each field's hair thicknesses (µm)."""
    f = pd.DataFrame({
        "image": frames["image"].astype(str),
        "patient_id": frames["patient_id"].astype(str), "site": frames["site"].astype(str),
        "session_date": frames["session_date"].astype(str),
        "area_cm2": pd.to_numeric(frames["area_cm2"], errors="coerce"),
        "hairs": pd.to_numeric(frames["hair_count"], errors="coerce").fillna(0),
        "terminal": pd.to_numeric(frames["terminal_count"], errors="coerce").fillna(0),
        "vellus": pd.to_numeric(frames["vellus_count"], errors="coerce").fillna(0),
        "units": pd.to_numeric(frames["follicular_units"], errors="coerce").fillna(0),
    }).reset_index(drop=True)
    by_image = {str(k): g["thickness_um"].to_numpy(float) for k, g in hairs.groupby("image")} if len(hairs) else {}
    thick = {img: by_image.get(img, np.zeros(0)) for img in f["image"]}
    return f, thick


def _pooled(hairs: np.ndarray, area: np.ndarray, terminal: np.ndarray, vellus: np.ndarray, units: np.ndarray,
            thickness: list[np.ndarray]) -> dict[str, float]:
    """Session values from arrays over its fields (see the module doc)."""
    n, a = float(hairs.sum()), float(area.sum())
    t = np.concatenate(thickness) if thickness else np.zeros(0)
    t = t[np.isfinite(t)]
    return {
        "density_per_cm2": n / a if a > 0 else math.nan,
        "terminal_density_per_cm2": float(terminal.sum()) / a if a > 0 else math.nan,
        "mean_thickness_um": float(t.mean()) if t.size else math.nan,
        "vellus_share_pct": 100.0 * float(vellus.sum()) / n if n > 0 else math.nan,
        "cumulative_thickness_mm_per_cm2": float(t.sum()) / 1000.0 / a if a > 0 else math.nan,
        "hairs_per_unit": n / float(units.sum()) if units.sum() > 0 else math.nan,
    }


def session_table(fields: pd.DataFrame, thick: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per patient, site and session: ``n_fields``, ``n_hairs``, ``area_cm2`` and the pooled METRICS."""
    rows = []
    for (pid, site, date), g in fields.groupby(["patient_id", "site", "session_date"], sort=True):
        vals = _pooled(g["hairs"].to_numpy(), g["area_cm2"].to_numpy(), g["terminal"].to_numpy(),
                       g["vellus"].to_numpy(), g["units"].to_numpy(), [thick[i] for i in g["image"]])
        rows.append({"patient_id": pid, "site": site, "session_date": date, "n_fields": len(g),
                     "n_hairs": int(g["hairs"].sum()), "area_cm2": float(g["area_cm2"].sum()), **vals})
    return pd.DataFrame(rows, columns=["patient_id", "site", "session_date", "n_fields", "n_hairs", "area_cm2",
                                       *METRICS])


# ----------------------------------------------------------------------------- repeatability


def within_visit_sd(fields: pd.DataFrame, thick: dict[str, np.ndarray]) -> dict[str, float]:
    """Pooled within-session SD of each metric between single fields (NaN without repeated fields).

    Each field's own value of a metric is computed as a one-field session;
    the squared deviations from its session's mean are pooled over all
    sessions with at least two fields (degrees of freedom: fields - sessions).
    """
    per_field = []
    for _, r in fields.iterrows():
        vals = _pooled(np.array([r.hairs]), np.array([r.area_cm2]), np.array([r.terminal]), np.array([r.vellus]),
                       np.array([r.units]), [thick[r.image]])
        per_field.append({"patient_id": r.patient_id, "site": r.site, "session_date": r.session_date, **vals})
    pf = pd.DataFrame(per_field)
    out = {}
    for m in METRICS:
        ss, dof = 0.0, 0
        for _, g in pf.groupby(["patient_id", "site", "session_date"]):
            v = g[m].to_numpy(float)
            v = v[np.isfinite(v)]
            if v.size >= 2:
                ss += float(((v - v.mean()) ** 2).sum())
                dof += v.size - 1
        out[m] = math.sqrt(ss / dof) if dof > 0 else math.nan
    return out


def mdc95(sd_within: float, n_fields: int) -> float:
    """Minimal detectable change of a session value pooled over ``n_fields`` fields.

    Examples
    --------
    >>> round(mdc95(10.0, 4), 3)   # 2.77 x 10 / sqrt(4)
    13.859
    """
    if not (n_fields >= 1 and math.isfinite(sd_within)):
        return math.nan
    return 1.959964 * math.sqrt(2.0) * sd_within / math.sqrt(n_fields)


# ----------------------------------------------------------------------------- change and its CI


def _session_arrays(g: pd.DataFrame, thick: dict[str, np.ndarray]) -> dict:
    return {"hairs": g["hairs"].to_numpy(float), "area": g["area_cm2"].to_numpy(float),
            "terminal": g["terminal"].to_numpy(float), "vellus": g["vellus"].to_numpy(float),
            "units": g["units"].to_numpy(float), "thick": [thick[i] for i in g["image"]]}


def _draw_session(s: dict, rng: np.random.Generator) -> dict[str, float]:
    """One bootstrap replicate of a session's values: fields, counts (Poisson) and hairs resampled."""
    idx = rng.integers(0, len(s["hairs"]), len(s["hairs"]))
    hairs = s["hairs"][idx]
    drawn = rng.poisson(np.maximum(hairs, 0)).astype(float)
    scale = np.divide(drawn, hairs, out=np.ones_like(hairs), where=hairs > 0)
    thicknesses = []
    for j, k in zip(idx, drawn.astype(int)):
        t = s["thick"][j]
        thicknesses.append(t[rng.integers(0, t.size, k)] if t.size and k > 0 else np.zeros(0))
    return _pooled(drawn, s["area"][idx], s["terminal"][idx] * scale, s["vellus"][idx] * scale,
                   s["units"][idx] * scale, thicknesses)


def change_ci(a: pd.DataFrame, b: pd.DataFrame, thick: dict[str, np.ndarray], *, n_boot: int,
              rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """95% percentile-bootstrap interval of (session b - session a) for every metric."""
    sa_, sb_ = _session_arrays(a, thick), _session_arrays(b, thick)
    diffs = {m: np.empty(n_boot) for m in METRICS}
    for i in range(n_boot):
        va, vb = _draw_session(sa_, rng), _draw_session(sb_, rng)
        for m in METRICS:
            diffs[m][i] = vb[m] - va[m]
    out = {}
    for m, d in diffs.items():
        d = d[np.isfinite(d)]
        out[m] = (float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))) if d.size else (math.nan, math.nan)
    return out


def compare_course(images: pd.DataFrame, hairs: pd.DataFrame,
                   settings: CourseSettings = CourseSettings(),
                   field_pairs: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Sessions, changes and the response per patient and site.

    Parameters
    ----------
    images, hairs : pandas.DataFrame
        ``images.csv`` and ``hairs.csv`` of an analysis run (column contract
        of :mod:`pipeline.batch`).
    settings : CourseSettings
    field_pairs : DataFrame, optional
        Same-spot matches of fields against their baseline (one row per
        field pair: ``patient_id, site, session_date, reference_date,
        registered, common_area_cm2, n_before, n_after, terminal_before,
        terminal_after, vellus_before, vellus_after, thickness_sum_before_um,
        thickness_sum_after_um, persisting, gained, lost``; see
        :func:`pipeline.course_io.match_fields`). Where a session has
        registered pairs, its baseline change of the counting metrics is
        computed over the common region (``method = matched``).

    Returns
    -------
    dict of str -> DataFrame
        ``sessions`` (one row per patient, site, session), ``changes``
        (one row per session after the first, metric and reference
        (``baseline`` or ``previous``)), ``summary`` (one row per patient
        and site), ``left_out`` (frames not used, with the reason),
        ``repeatability`` (within-visit SD per metric).
    """
    frames, left = usable_frames(images, settings)
    fields, thick = _field_table(frames, hairs)
    sessions = session_table(fields, thick)
    sd = within_visit_sd(fields, thick)
    rng = np.random.default_rng(settings.seed)
    changes, summary = [], []
    for (pid, site), course in sessions.groupby(KEYS, sort=True):
        course = course.sort_values("session_date").reset_index(drop=True)
        base_date = settings.baseline if settings.baseline in set(course["session_date"]) else course["session_date"][0]
        for i, row in course.iterrows():
            if row["session_date"] == base_date:
                continue
            refs = [("baseline", course[course["session_date"] == base_date].iloc[0])]
            if i > 0 and course.loc[i - 1, "session_date"] != base_date:
                refs.append(("previous", course.loc[i - 1]))
            for ref_name, ref in refs:
                rows = _change_rows(fields, thick, ref, row, ref_name, sd, settings.n_boot, rng)
                if ref_name == "baseline" and field_pairs is not None and len(field_pairs):
                    rows = _matched_rows(rows, field_pairs, row, ref, settings, rng)
                changes += rows
        summary.append(_summary_row(pid, site, course, base_date, changes, settings.min_agreement,
                                    basis=settings.response_basis))
    change_cols = ["patient_id", "site", "session_date", "reference", "reference_date", "metric", "value",
                   "baseline", "change", "change_pct", "ci_low", "ci_high", "mdc", "real_change", "method",
                   "visit_agreement_pct"]
    return {
        "sessions": sessions,
        "changes": pd.DataFrame(changes, columns=change_cols),
        "summary": pd.DataFrame(summary, columns=SUMMARY_COLUMNS),
        "left_out": left.reset_index(drop=True),
        "repeatability": pd.DataFrame([{"metric": m, "sd_within": v} for m, v in sd.items()]),
    }


def _change_rows(fields, thick, ref, row, ref_name, sd, n_boot, rng) -> list[dict]:
    def session_fields(r):
        return fields[(fields.patient_id == r.patient_id) & (fields.site == r.site)
                      & (fields.session_date == r.session_date)]

    a, b = session_fields(ref), session_fields(row)
    ci = change_ci(a, b, thick, n_boot=n_boot, rng=rng)
    out = []
    for m in METRICS:
        value, base = float(row[m]), float(ref[m])
        change = value - base
        mdc = mdc95(sd[m], min(len(a), len(b)))
        lo, hi = ci[m]
        real = bool(math.isfinite(mdc) and abs(change) > mdc and (lo > 0 or hi < 0))
        out.append({"patient_id": row.patient_id, "site": row.site, "session_date": row.session_date,
                    "reference": ref_name, "reference_date": ref.session_date, "metric": m, "value": value,
                    "baseline": base, "change": change,
                    "change_pct": 100.0 * change / base if base else math.nan,
                    "ci_low": lo, "ci_high": hi, "mdc": mdc, "real_change": real, "method": "pooled"})
    return out


MATCHED_METRICS = ["density_per_cm2", "terminal_density_per_cm2", "mean_thickness_um", "vellus_share_pct",
                   "cumulative_thickness_mm_per_cm2"]


def _matched_values(p: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Before / after values of MATCHED_METRICS over the common regions of field pairs ``p``."""
    area = float(p["common_area_cm2"].sum())
    out = []
    for side in ("before", "after"):
        n = float(p[f"n_{side}"].sum())
        t = float(p[f"thickness_sum_{side}_um"].sum())
        out.append({"density_per_cm2": n / area if area > 0 else math.nan,
                    "terminal_density_per_cm2": float(p[f"terminal_{side}"].sum()) / area if area > 0 else math.nan,
                    "mean_thickness_um": t / n if n > 0 else math.nan,
                    "vellus_share_pct": 100.0 * float(p[f"vellus_{side}"].sum()) / n if n > 0 else math.nan,
                    "cumulative_thickness_mm_per_cm2": t / 1000.0 / area if area > 0 else math.nan})
    return out[0], out[1]


def _matched_rows(rows: list[dict], field_pairs: pd.DataFrame, row, ref, settings: CourseSettings,
                  rng: np.random.Generator) -> list[dict]:
    """Replace the pooled baseline change of the counting metrics by the same-spot one where fields registered.

    CI: bootstrap over the registered field pairs (the spots sample the
    scalp), and for density each drawn pair's count change is blurred by the
    measured same-spot detection noise (normal, SD
    ``settings.matched_retest_sd_pct`` of its baseline count). The same
    hairs are seen twice, so there is no Poisson sampling term. MDC95 of the
    density: 1.96 x that test-retest SD (already the SD of a difference) per area.
    """
    p = field_pairs[(field_pairs.patient_id == row.patient_id) & (field_pairs.site == row.site)
                    & (field_pairs.session_date == row.session_date) & (field_pairs.reference_date == ref.session_date)
                    & field_pairs.registered.astype(bool)]
    if p.empty or float(p["common_area_cm2"].sum()) <= 0:
        return rows
    before, after = _matched_values(p)
    draws = {m: [] for m in MATCHED_METRICS}
    for _ in range(settings.n_boot):
        q = p.iloc[rng.integers(0, len(p), len(p))].copy()
        b, a = _matched_values(q)
        noise = rng.normal(0.0, settings.matched_retest_sd_pct / 100.0 * q["n_before"].to_numpy(float))
        counted = float((q["n_after"] - q["n_before"]).sum() + noise.sum()) / float(q["common_area_cm2"].sum())
        for m in MATCHED_METRICS:
            draws[m].append(counted if m == "density_per_cm2" else a[m] - b[m])
    agreement = visit_agreement(p)
    n_before, area = float(p["n_before"].sum()), float(p["common_area_cm2"].sum())
    sd_change = settings.matched_retest_sd_pct / 100.0 * n_before / area  # hairs/cm², of a change
    out = []
    for r in rows:
        m = r["metric"]
        if m not in MATCHED_METRICS:
            out.append(r)
            continue
        d = np.asarray(draws[m], float)
        d = d[np.isfinite(d)]
        lo, hi = (float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))) if d.size else (math.nan, math.nan)
        change = after[m] - before[m]
        mdc = 1.959964 * sd_change if m == "density_per_cm2" else r["mdc"]
        real = bool(math.isfinite(mdc) and abs(change) > mdc and (lo > 0 or hi < 0))
        out.append({**r, "value": after[m], "baseline": before[m], "change": change,
                    "change_pct": 100.0 * change / before[m] if before[m] else math.nan,
                    "ci_low": lo, "ci_high": hi, "mdc": mdc, "real_change": real, "method": "matched",
                    "visit_agreement_pct": agreement})
    return out


def visit_agreement(pairs: pd.DataFrame) -> float:
    """Visit agreement (%) of matched field pairs (module doc); NaN without hairs.

    Examples
    --------
    >>> p = pd.DataFrame({"persisting": [8, 2], "rechecked": [2, 0], "gained": [1, 0], "lost": [1, 0]})
    >>> visit_agreement(p)   # (10 - 2) / (10 + 1 + 1)
    66.66666666666667
    """
    persisting = float(pairs["persisting"].sum())
    rechecked = float(pairs["rechecked"].sum()) if "rechecked" in pairs else 0.0
    total = persisting + float(pairs["gained"].sum()) + float(pairs["lost"].sum())
    return 100.0 * (persisting - rechecked) / total if total > 0 else math.nan


SUMMARY_COLUMNS = ["patient_id", "site", "n_sessions", "baseline_date", "latest_date", "response",
                   "density_change", "density_change_pct", "density_ci_low", "density_ci_high", "density_mdc",
                   "mean_thickness_change_um", "terminal_density_change", "vellus_share_change_pp",
                   "visit_agreement_pct", "density_trend", "density_trend_pct", "density_trend_mdc",
                   "density_trend_ci_low", "density_trend_ci_high", "response_basis"]


def course_trend(days: np.ndarray, change: np.ndarray, mdc_latest: float) -> tuple[float, float]:
    """Change by the latest session read off the least-squares line through all sessions, and its MDC95.

    Parameters
    ----------
    days : ndarray
        Days since baseline of the sessions after it (ascending).
    change : ndarray
        Their change against baseline (any unit).
    mdc_latest : float
        MDC95 of the latest session's change against baseline (same unit).

    Returns
    -------
    trend, mdc : float
        ``slope x span`` of the ordinary least-squares line through
        (0, 0) and every (day, change), and its MDC95. Each change carries
        the baseline visit's error, which the line's intercept absorbs, and
        its own visit's, independent between visits; with the SD of a
        visit's error sigma = MDC / (1.96 sqrt 2), the trend's SD is
        sigma x span / sqrt(Sxx), so MDC = mdc_latest x span / sqrt(2 Sxx):
        the same as the latest session's with one session after baseline,
        0.85 of it with five evenly spaced sessions after baseline.
    """
    t = np.r_[0.0, np.asarray(days, float)]
    y = np.r_[0.0, np.asarray(change, float)]
    sxx = float(((t - t.mean()) ** 2).sum())
    span = float(t[-1] - t[0])
    if sxx <= 0 or not np.isfinite(y).all():
        return math.nan, math.nan
    slope = float(((t - t.mean()) * (y - y.mean())).sum() / sxx)
    return slope * span, mdc_latest * span / math.sqrt(2.0 * sxx)


def trend_response(trend: float, mdc: float, ci_low: float, ci_high: float) -> str:
    """The response a course's density trend says: ``improved`` or ``worsened`` when the trend is beyond
    its MDC95 and its 95% interval excludes zero, else ``stable`` (``CourseSettings.response_basis`` "trend").

    Examples
    --------
    >>> trend_response(12.0, 8.0, 3.0, 20.0), trend_response(-12.0, 8.0, -20.0, 1.0), trend_response(5.0, 8.0, 1.0, 9.0)
    ('improved', 'stable', 'stable')
    """
    if abs(trend) > mdc and (ci_low > 0 or ci_high < 0):
        return "improved" if trend > 0 else "worsened"
    return "stable"


def _trend_of(changes: list[dict], pid, site, base_date) -> tuple[float, float]:
    """:func:`course_trend` of the primary metric's baseline changes of one course."""
    rows = sorted((c for c in changes if c["patient_id"] == pid and c["site"] == site and c["metric"] == PRIMARY
                   and c["reference"] == "baseline"), key=lambda c: c["session_date"])
    if not rows:
        return math.nan, math.nan
    days = (pd.to_datetime([c["session_date"] for c in rows]) - pd.Timestamp(base_date)).days.to_numpy(float)
    return course_trend(days, np.array([c["change"] for c in rows], float), float(rows[-1]["mdc"]))


def _summary_row(pid, site, course, base_date, changes, min_agreement: float, *, basis: str) -> dict:
    latest = course["session_date"].iloc[-1]
    row = {"patient_id": pid, "site": site, "n_sessions": len(course), "baseline_date": base_date,
           "latest_date": latest, "response": "stable"}
    mine = [c for c in changes if c["patient_id"] == pid and c["site"] == site and c["session_date"] == latest
            and c["reference"] == "baseline"]
    by_metric = {c["metric"]: c for c in mine}
    if PRIMARY not in by_metric:
        # nothing measured against the baseline at the latest visit: no call to make
        row["response"] = ("single session" if len(course) == 1 else
                           "no session after baseline" if latest == base_date else "stable")
        return row
    d = by_metric[PRIMARY]
    agreement = d.get("visit_agreement_pct", math.nan)
    trend, trend_mdc = _trend_of(changes, pid, site, base_date)
    # the latest change's bootstrap interval, moved to the line's value and narrowed as its MDC is
    narrow = trend_mdc / d["mdc"] if d["mdc"] and np.isfinite(d["mdc"]) else math.nan
    trend_lo = trend - (d["change"] - d["ci_low"]) * narrow
    trend_hi = trend + (d["ci_high"] - d["change"]) * narrow
    if basis == "trend" and np.isfinite([trend, trend_mdc, trend_lo, trend_hi]).all():
        row["response"] = trend_response(trend, trend_mdc, trend_lo, trend_hi)
    elif d["real_change"]:
        row["response"] = "improved" if d["change"] > 0 else "worsened"
    if d["method"] == "matched" and agreement < 100.0 * min_agreement:  # NaN compares False
        row["response"] = "indeterminate"
    row.update(density_change=d["change"], density_change_pct=d["change_pct"], density_ci_low=d["ci_low"],
               density_ci_high=d["ci_high"], density_mdc=d["mdc"],
               mean_thickness_change_um=by_metric["mean_thickness_um"]["change"],
               terminal_density_change=by_metric["terminal_density_per_cm2"]["change"],
               vellus_share_change_pp=by_metric["vellus_share_pct"]["change"], visit_agreement_pct=agreement,
               density_trend=trend, density_trend_pct=100.0 * trend / d["baseline"] if d["baseline"] else math.nan,
               density_trend_mdc=trend_mdc, density_trend_ci_low=trend_lo, density_trend_ci_high=trend_hi,
               response_basis=basis)
    return row
