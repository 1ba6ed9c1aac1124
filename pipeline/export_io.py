"""File layer of ``tricho export``: read an analysis run, write (and send) its FHIR Bundle."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from pipeline import fhir


class ExportError(Exception):
    """The export cannot run; the text says what to do."""


def _method(run: dict) -> str:
    settings = run.get("settings", {})
    model = run.get("model") or {}
    text = f"tricho-pipeline {run.get('version', '?')}, segmenter {settings.get('segmenter', 'classical')}"
    if model:
        role = "light-hair model" if model.get("role") == "light_hair" else "model"
        text += f", {role} {model.get('name')} (weights sha256 {str(model.get('sha256', ''))[:12]})"
    return text + f", settings {run.get('settings_digest', '?')}"


def export_fhir(results: str | Path, out: str | Path, *, transaction: bool = False,
                pseudonymize: str | None = None, left_out: dict[str, int] | None = None) -> dict:
    """Build, validate and write the FHIR Bundle of a run folder; returns the bundle.

    ``left_out``, when given, is filled with the frames the bundle leaves
    out, counted by reason (:func:`pipeline.fhir.frames_left_out`).

    Raises
    ------
    ExportError
        No images.csv / run.json in ``results``; an empty pseudonymisation
        key; no frame that can be exported (each reason named); a bundle
        that does not validate; ``out`` not writable as a file.
    """
    results, out = Path(results), Path(out)
    if results.exists() and not results.is_dir():
        raise ExportError(f"{results} is a file: give the output folder of `tricho analyze` (it holds images.csv)")
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder: give the bundle's file name (e.g. {out / 'bundle.json'})")
    try:
        images = pd.read_csv(results / "images.csv", keep_default_na=False, na_values=[""],  # patient "NA" is a patient
                             dtype={"patient_id": str, "site": str, "session_date": str, "image": str, "sha256": str})
        run = json.loads((results / "run.json").read_text())
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ExportError(f"{exc.filename} not found: give the output folder of `tricho analyze`") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ExportError(f"{results}: images.csv or run.json unreadable ({exc}); rerun `tricho analyze`") from None
    if not isinstance(run, dict):
        raise ExportError(f"{results / 'run.json'} is not the record `tricho analyze` writes (a JSON object); "
                          "rerun `tricho analyze`")
    if pseudonymize is not None:
        from pipeline.pseudonym import Pseudonymizer

        try:
            pseudo = Pseudonymizer(pseudonymize)
        except ValueError as exc:
            raise ExportError(f"--pseudonymize: {exc}") from None
        images["patient_id"] = images["patient_id"].map(lambda v: pseudo.patient(v) if isinstance(v, str) else v)
        images["image"] = images["image"].map(pseudo.text)
    skipped = fhir.frames_left_out(images)
    if left_out is not None:
        left_out.update(skipped)
    if sum(skipped.values()) >= len(images):
        why = "; ".join(f"{n} frame(s): {r}" for r, n in skipped.items()) or "the run has no frames"
        raise ExportError(f"{results}: no frame can be exported ({why}). A frame is exported when its status is ok "
                          "and it has a pixel size and a patient_id (a manifest.csv column, or folders "
                          "PATIENT/SESSION_DATE/SITE[_FIELD].ext; see the README, 'Metadata')")
    bundle = fhir.build_bundle(images, version=str(run.get("version", "?")), method=_method(run),
                               transaction=transaction)
    try:
        fhir.validate(bundle)
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError and kin
        raise ExportError(f"the bundle does not validate as FHIR R4 ({exc}); please report this") from None
    _write_json(bundle, out)
    return bundle


def _write_json(data: dict, out: Path) -> None:
    """Write ``data`` to ``out`` through a temporary file renamed over it; no temporary file is left on failure."""
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, out)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise ExportError(f"--out {out}: cannot write the bundle there ({exc.strerror or exc}); give a file in a "
                          "writable folder") from None
