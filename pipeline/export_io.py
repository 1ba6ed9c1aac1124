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
                pseudonymize: str | None = None) -> dict:
    """Build, validate and write the FHIR Bundle of a run folder; returns the bundle.

    Raises
    ------
    ExportError
        No images.csv / run.json in ``results``, or a bundle that does not validate.
    """
    results, out = Path(results), Path(out)
    try:
        images = pd.read_csv(results / "images.csv", dtype={"patient_id": str, "site": str, "session_date": str,
                                                              "image": str, "sha256": str})
        run = json.loads((results / "run.json").read_text())
    except FileNotFoundError as exc:
        raise ExportError(f"{exc.filename} not found: give the output folder of `tricho analyze`") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise ExportError(f"{results}: images.csv or run.json unreadable ({exc}); rerun `tricho analyze`") from None
    if pseudonymize:
        from pipeline.pseudonym import Pseudonymizer

        pseudo = Pseudonymizer(pseudonymize)
        images["patient_id"] = images["patient_id"].map(lambda v: pseudo.patient(v) if isinstance(v, str) else v)
        images["image"] = images["image"].map(pseudo.text)
    bundle = fhir.build_bundle(images, version=str(run.get("version", "?")), method=_method(run),
                               transaction=transaction)
    try:
        fhir.validate(bundle)
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError and kin
        raise ExportError(f"the bundle does not validate as FHIR R4 ({exc}); please report this") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(bundle, fh, indent=1)
    os.replace(tmp, out)
    return bundle
