"""File layer of ``tricho compare``: read an analysis run, write the course tables.

``run_compare(RESULTS, OUT)`` reads ``RESULTS/images.csv`` and
``RESULTS/hairs.csv`` (an ``tricho analyze`` output folder), runs
:func:`pipeline.course.compare_course` and writes ``OUT/sessions.csv``,
``OUT/changes.csv``, ``OUT/summary.csv``, ``OUT/left_out.csv``,
``OUT/repeatability.csv``, ``OUT/field_pairs.csv`` / ``OUT/matches.csv``
(same-spot matching), ``OUT/reports/PATIENT.html`` (one self-contained page
per patient) and ``OUT/compare.json`` (settings, version, inputs, the
response rule).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

import pipeline
from pipeline.batch import folder_problem, overlay_names
from pipeline.course import CourseSettings, compare_course, usable_frames
from pipeline.settings import Settings

_LATEST = "the density change of the latest session against baseline exceeds its"
_TREND = ("the density change by the latest session, read off the least-squares line through the changes of "
          "every session against baseline (and 0 at baseline), exceeds its")
_RULE = ("improved / worsened: {what} minimal detectable change (pooled fields: MDC95 = 2.77 x SEM from the "
         "within-visit spread between fields; same spot matched: 1.96 x the test-retest SD of a matched count "
         "change{scaled}){ci}; otherwise stable. indeterminate: the latest session was matched to the baseline "
         "spot, but the two visits' detections paired directly less than CourseSettings.min_agreement (default "
         "40%) of the hairs either counted there (visit_agreement_pct: the tool does not see the same hairs "
         "twice, e.g. light or grey hair, dark skin, focus); count by hand or re-image")


def response_rule(basis: str = "trend") -> str:
    """The response rule in words, for ``CourseSettings.response_basis`` ``basis`` (written into every compare run)."""
    if basis == "trend":
        return _RULE.format(what=_TREND, scaled="; for the line, that MDC x span / sqrt(2 Sxx) of the session days",
                            ci=" and the latest change's 95% bootstrap CI, moved to the line's value and narrowed "
                               "by the same factor, excludes zero")
    return _RULE.format(what=_LATEST, scaled="", ci=" and its 95% bootstrap CI excludes zero")


RESPONSE_RULE = response_rule()


class CompareError(Exception):
    """The comparison cannot run (missing or unreadable run folder); the text says what to do."""


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""],
                           dtype={"patient_id": str, "site": str, "session_date": str, "field_id": str,
                                  "quality_flags": str, "image": str})
    except (FileNotFoundError, NotADirectoryError):
        raise CompareError(f"{path} not found: give the output folder of `tricho analyze`") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CompareError(f"{path}: cannot be read as CSV ({exc}); rerun `tricho analyze`") from None


def _check_usable(images: pd.DataFrame, settings: CourseSettings, results: Path) -> None:
    """Refuse a run no course can be read from, and a ``--baseline`` date no course has, saying why."""
    frames, left = usable_frames(images, settings)
    if frames.empty:
        reasons = left["reason"].value_counts() if len(left) else pd.Series(dtype=int)
        why = "; ".join(f"{n} frame(s): {r}" for r, n in reasons.items()) or "the run has no frames"
        raise CompareError(
            f"{results}: no frame can enter a comparison ({why}). A comparison needs frames with status ok, a "
            "pixel size, and patient_id, site and session_date (a manifest.csv beside the images, or folders "
            "PATIENT/SESSION_DATE/SITE[_FIELD].ext; see the README, 'Metadata'); quality-flagged frames enter "
            "with --include-flagged")
    if settings.baseline is not None:
        dates = sorted(set(frames["session_date"].astype(str)))
        if settings.baseline not in dates:
            shown = ", ".join(dates[:12]) + (" ..." if len(dates) > 12 else "")
            raise CompareError(f"--baseline {settings.baseline}: no session has that date; the run's session dates "
                               f"are {shown} (give one of them, as written in images.csv, or leave --baseline out "
                               "to take each course's first session)")


def _image_paths(results: Path, images: pd.DataFrame) -> dict[str, Path]:
    """Where each frame of a run lives, from run.json's inputs (folders, manifests or files)."""
    try:
        inputs = [Path(p) for p in json.loads((results / "run.json").read_text()).get("inputs", [])]
    except (OSError, ValueError):
        inputs = []
    roots = [p if p.is_dir() else p.parent for p in inputs]
    out = {}
    for key in images["image"].astype(str):
        for root in roots:
            if (root / key).is_file():
                out[key] = root / key
                break
    return out


#: Settings a run made before they existed is read back at: the value that gives what it did then
#: (drawn lines masked, not painted out; frames of dark skin read on the darkness map unless their shafts were
#: under ``weak_shafts_below`` darker). ``bright_veto_model`` reads back as the run's ``light_hair_model``.
BEFORE_IT_EXISTED = {"paint_drawn_lines": False, "weak_shafts_dark_skin_below": 0.0}


def run_settings(results: Path) -> Settings:
    """The analysis settings a run recorded in its run.json (defaults where it has none).

    Keys this version does not know (a run of another version) are left out.
    A run made before ``bright_veto_model`` existed vetoed with its
    ``light_hair_model``, so that model is read back in the role; one made
    before ``paint_drawn_lines`` masked drawn lines, so it is read back off;
    one made before ``weak_shafts_dark_skin_below`` read frames of dark skin
    on the darkness map unless their shafts were under ``weak_shafts_below``
    darker, so it is read back at 0.
    """
    try:
        recorded = json.loads((results / "run.json").read_text()).get("settings", {})
    except (OSError, ValueError):
        recorded = {}
    if isinstance(recorded, dict) and recorded:
        older = dict(BEFORE_IT_EXISTED)
        if "light_hair_model" in recorded:
            older["bright_veto_model"] = recorded["light_hair_model"]
        recorded = older | recorded  # what the run recorded wins; a setting it did not know reads as it ran
    known = {f.name for f in dataclasses.fields(Settings)}
    try:
        return Settings(**{k: v for k, v in recorded.items() if k in known})
    except (TypeError, ValueError):
        return Settings()


def _probability_cache(settings: Settings, routes: dict[str, str] | None = None):
    """``probability(key, image, um_per_px)``: a frame's hair probability as the analysis computed it
    (the same route and segmenter, :func:`pipeline.frame.hair_map`), computed once per key.

    ``routes`` maps an image key to the route its row of images.csv records
    (``route``; a frame re-routed with its spot, ``Settings.series_route``,
    is read by that route again). ``probability.light(key, image, um_per_px)``
    gives the map its light shafts among dark ones were found on
    (:func:`pipeline.frame.light_shaft_map`; None for other frames), also once per key.
    ``probability.field(key, image, um_per_px)`` gives the pixels where the
    analysis could count a hair: skin (not a header strip, overlay, text or
    glare) in the counting field's rows.
    """
    from pipeline.core import placed_in_frame, view_of
    from pipeline.frame import hair_map, light_shaft_map

    # per key: the HairMap (the light map is derived from it without routing again), and the view it was read on
    maps: dict[str, tuple] = {}
    light_cache: dict[str, object] = {}
    routes = routes or {}

    def _map(key: str, image, um_per_px: float):
        if key not in maps:
            route = routes.get(key) or "auto"
            own = settings.replace(route=route) if route != settings.route else settings
            seen, view = view_of(image)  # a pillarboxed frame's view, read alone as the analysis read it
            maps[key] = hair_map(seen, um_per_px=um_per_px, settings=own), view, image.shape[:2]
        return maps[key]

    def _in_frame(a, key: str):
        _, view, shape = maps[key]
        return a if view is None else placed_in_frame(a, view, shape)

    def probability(key: str, image, um_per_px: float):
        return _in_frame(_map(key, image, um_per_px)[0].prob, key)

    def light(key: str, image, um_per_px: float):
        if key not in light_cache:
            light_cache[key] = _in_frame(light_shaft_map(_map(key, image, um_per_px)[0], um_per_px=um_per_px), key)
        return light_cache[key]

    def field(key: str, image, um_per_px: float):
        m = _map(key, image, um_per_px)[0]
        return _in_frame(m.valid & np.asarray(m.field_rows, bool)[:, None], key)
    probability.light = light
    probability.field = field
    return probability


def pair_counts(m: pd.DataFrame, hf: pd.DataFrame, hm: pd.DataFrame) -> dict:
    """Counts, class counts and thickness sums before and after of one matched field pair.

    A hair is there before when its status is ``persisting`` or ``lost``,
    after when ``persisting`` or ``gained``; a re-examined hair
    (``rechecked``) takes the class and thickness of the visit that measured it.
    """
    fi, mi = m["fixed_index"].to_numpy(int), m["moving_index"].to_numpy(int)
    cls_f = np.where(fi >= 0, hf["class"].to_numpy(object)[np.maximum(fi, 0)] if len(hf) else None, None)
    cls_m = np.where(mi >= 0, hm["class"].to_numpy(object)[np.maximum(mi, 0)] if len(hm) else None, None)
    before_cls = np.where(fi >= 0, cls_f, cls_m)
    after_cls = np.where(mi >= 0, cls_m, cls_f)
    before = m["status"].isin(["persisting", "lost"]).to_numpy()
    after = m["status"].isin(["persisting", "gained"]).to_numpy()
    return {"n_before": int(before.sum()), "n_after": int(after.sum()),
            "terminal_before": int((before_cls[before] == "terminal").sum()),
            "terminal_after": int((after_cls[after] == "terminal").sum()),
            "vellus_before": int((before_cls[before] == "vellus").sum()),
            "vellus_after": int((after_cls[after] == "vellus").sum()),
            "thickness_sum_before_um": float(np.nansum(m["thickness_before_um"].to_numpy(float)[before])),
            "thickness_sum_after_um": float(np.nansum(m["thickness_after_um"].to_numpy(float)[after])),
            "persisting": int((m.status == "persisting").sum()),
            "gained": int((m.status == "gained").sum()), "lost": int((m.status == "lost").sum()),
            "rechecked": int(m["rechecked"].sum()) if "rechecked" in m else 0}


def match_fields(images: pd.DataFrame, hairs: pd.DataFrame, results: Path,
                 settings: CourseSettings = CourseSettings(), *, gate_um: float = 60.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Register each field of a later session with the same field (``field_id``) at baseline, and match hairs.

    Returns
    -------
    field_pairs : DataFrame
        One row per field pair (see :func:`pipeline.course.compare_course`).
    matches : DataFrame
        One row per hair of a registered pair (:func:`pipeline.register.match_visits`)
        with the pair's keys.
    """
    from pipeline import register
    from pipeline.imageio import ImageReadError, read_image

    frames, _ = usable_frames(images, settings)
    if "field_id" not in frames or frames["field_id"].astype("string").fillna("").eq("").all():
        return pd.DataFrame(), pd.DataFrame()
    paths = _image_paths(results, frames)
    routed = images[images["route_source"].isin(["series", "fixed"])] if "route_source" in images else images.iloc[:0]
    analysis, routes = run_settings(results), dict(zip(routed["image"], routed["route"].astype(str)))
    by_image = {k: g.reset_index(drop=True) for k, g in hairs.groupby("image")} if len(hairs) else {}
    empty = pd.DataFrame(columns=["row", "col", "thickness_um", "class"])
    pairs, matches = [], []
    frames = frames.assign(field_id=frames["field_id"].astype("string").fillna(""))
    for (pid, site), course in frames.groupby(["patient_id", "site"]):
        probability = _probability_cache(analysis, routes)  # one course's maps in memory at a time
        dates = sorted(course["session_date"].unique())
        base_date = settings.baseline if settings.baseline in dates else dates[0]
        base = course[course.session_date == base_date].set_index("field_id")
        for _, row in course[course.session_date != base_date].iterrows():
            if row.field_id == "" or row.field_id not in base.index:
                continue
            ref = base.loc[row.field_id]
            ref = ref.iloc[0] if isinstance(ref, pd.DataFrame) else ref
            keys = dict(patient_id=pid, site=site, session_date=row.session_date, reference_date=base_date,
                        field_id=row.field_id, image=row.image, reference_image=ref.image)
            if ref.image not in paths or row.image not in paths:
                pairs.append({**keys, "registered": False, "how": "image files not found"})
                continue
            try:
                fixed, moving = read_image(paths[ref.image]), read_image(paths[row.image])
            except ImageReadError as exc:
                pairs.append({**keys, "registered": False, "how": str(exc)})
                continue
            hf, hm = by_image.get(ref.image, empty), by_image.get(row.image, empty)
            um = float(ref.um_per_px)
            reg, how = register.register_frames(fixed, moving), "skin"
            if reg is None:
                reg, how = register.register_points(hf[["row", "col"]].to_numpy(float), hm[["row", "col"]].to_numpy(float),
                                                    radius_px=gate_um / um), "openings"
            if reg is None:
                pairs.append({**keys, "registered": False, "how": "no registration (skin and openings disagree)"})
                continue
            overlap = register.common_region(fixed.shape[:2], moving.shape[:2], reg.matrix)
            shared = float(overlap.mean())
            if shared < settings.min_overlap:
                pairs.append({**keys, "registered": False, "n_inliers": reg.n_inliers,
                              "how": f"registered ({how}) onto only {shared:.0%} of the baseline frame, under "
                                     f"min_overlap {settings.min_overlap:.0%}: not the same spot"})
                continue
            # compared only where both visits could count a hair: a glare patch or a text box in one visit
            # hides its hairs there (no probability, no count), which would otherwise read as losses or gains
            region = register.common_region(
                fixed.shape[:2], moving.shape[:2], reg.matrix, probability.field(ref.image, fixed, um),
                probability.field(row.image, moving, um), margin_px=max(settings.match_margin_um, 0.0) / um)
            m = register.match_visits(hf, hm, reg.matrix, region, gate_px=gate_um / um)
            if settings.recheck_ratio > 0:
                m = register.recheck_unmatched(
                    m, hf, hm, reg.matrix, probability(ref.image, fixed, um), probability(row.image, moving, um),
                    um_per_px=um, ratio=settings.recheck_ratio,
                    floor=settings.floor_for(ref.get("route"), row.get("route")),
                    through_counted=settings.recheck_through_counted,
                    fixed_light=lambda: probability.light(ref.image, fixed, um),
                    moving_light=lambda: probability.light(row.image, moving, um))
            pairs.append({**keys, "registered": True, "how": how, "n_inliers": reg.n_inliers,
                          "rotation_deg": round(reg.rotation_deg, 3),
                          "common_area_cm2": float(region.sum()) * (um * 1e-4) ** 2, **pair_counts(m, hf, hm)})
            matches.append(m.assign(**keys))
    return pd.DataFrame(pairs), (pd.concat(matches, ignore_index=True) if matches else pd.DataFrame())


def _write_reports(out: Path, results: Path, images: pd.DataFrame, tables: dict, basis: str) -> None:
    """One self-contained HTML report per patient in OUT/reports/."""
    from pipeline.report import patient_report

    folder = out / "reports"
    folder.mkdir(exist_ok=True)
    frames = _image_paths(results, images)
    overlays = results / "overlays"
    keys = images["image"].astype(str)
    overlay_files = dict(zip(keys, overlay_names(keys)))  # as the run named them, in its frame order
    patients = sorted(tables["sessions"]["patient_id"].astype(str).unique())
    for pid, stem in report_names(patients).items():
        page = patient_report(pid, tables, overlays_dir=overlays if overlays.is_dir() else None, frames=frames,
                              overlay_files=overlay_files, rule=response_rule(basis), version=pipeline.__version__)
        tmp = folder / f".{stem}.html.tmp"
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(folder / f"{stem}.html")


def report_name(patient_id: str) -> str:
    """The file stem of a patient's report: the id itself when every character is a letter, digit, ``-``,
    ``_`` or ``.`` (not leading; at most 100 of them); else those kept (the first 100), the rest ``_``, and 8 hex digits of the id's sha256, so ``A/B`` and
    ``A_B`` do not overwrite each other's report.

    >>> report_name("P007"), report_name("A/B")
    ('P007', 'A_B-998d3ed8')
    """
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in patient_id)
    if safe == patient_id and not safe.startswith(".") and len(safe) <= 100:
        return safe
    return f"{'_' if safe.startswith('.') else ''}{safe[:100]}-{_id_hash(patient_id)}"


def _id_hash(patient_id: str) -> str:
    """8 hex digits of the id's sha256: what keeps two patients' report names apart."""
    return hashlib.sha256(patient_id.encode()).hexdigest()[:8]


def report_names(patient_ids: list[str]) -> dict[str, str]:
    """Each patient's report file stem (:func:`report_name`), with the id's hash added where two stems differ
    only in case (``P007`` and ``p007`` are one file on macOS and Windows) or one id's stem is another's name."""
    names = {pid: report_name(pid) for pid in patient_ids}
    folded: dict[str, list[str]] = {}
    for pid, name in names.items():
        folded.setdefault(name.lower(), []).append(pid)
    for pids in folded.values():
        if len(pids) > 1:
            for pid in pids:
                names[pid] = f"{names[pid]}-{_id_hash(pid)}"
    return names


def run_compare(results: str | Path, out: str | Path, settings: CourseSettings = CourseSettings(),
                *, match: bool = True) -> dict:
    """Compare the sessions of an analysis run and write the tables (see the module doc).

    With ``match`` (default), fields that share a ``field_id`` across
    sessions are registered and their hairs matched (:func:`match_fields`);
    ``field_pairs.csv`` and ``matches.csv`` are written too.

    Returns
    -------
    dict of str -> DataFrame
        As :func:`pipeline.course.compare_course`, plus ``field_pairs`` and ``matches``.
    """
    results, out = Path(results), Path(out)
    if results.exists() and not results.is_dir():
        raise CompareError(f"{results} is a file: give the output folder of `tricho analyze` (it holds images.csv)")
    images = _read(results / "images.csv")
    hairs = _read(results / "hairs.csv")
    _check_usable(images, settings, results)
    problem = folder_problem(out, "--out")
    if problem:
        raise CompareError(problem)
    pairs, matches = match_fields(images, hairs, results, settings) if match else (pd.DataFrame(), pd.DataFrame())
    tables = compare_course(images, hairs, settings, field_pairs=pairs if len(pairs) else None)
    tables.update(field_pairs=pairs, matches=matches)
    for name, table in tables.items():
        tmp = out / f".{name}.csv.tmp"
        table.to_csv(tmp, index=False, lineterminator="\n")
        tmp.replace(out / f"{name}.csv")
    _write_reports(out, results, images, tables, settings.response_basis)
    record = {"package": "tricho-pipeline", "version": pipeline.__version__, "results": str(results),
              "settings": dataclasses.asdict(settings), "response_rule": response_rule(settings.response_basis),
              "matched": bool(match),
              "created_utc": datetime.now(timezone.utc).isoformat(),
              "counts": {k: int(len(v)) for k, v in tables.items()}}
    (out / "compare.json").write_text(json.dumps(record, indent=2) + "\n")
    return tables
