"""FHIR R4 export: one Observation per frame and metric, in a Bundle a clinic system can take.

Pure: the ``images`` table of a run (and the run's record) in, a Bundle as a
plain dict out; :func:`validate` checks it with the ``fhir.resources`` R4B
models, :func:`post_bundle` sends it to a FHIR server.

What is in the Bundle
---------------------
* one ``Patient`` per ``patient_id`` (identifier system
  ``urn:tricho-pipeline:patient-id``), referenced by every Observation;
* one ``Device`` naming the pipeline, its version and the segmenter / model;
* one ``DocumentReference`` per frame (the photo: file name, content type,
  its sha256 as an identifier), the Observations' ``derivedFrom``;
* per ok frame with a pixel size, one ``Observation`` per metric of
  :data:`METRICS`: status ``final``, category ``imaging``, a code of the local
  CodeSystem :data:`CODE_SYSTEM` (there are no LOINC or SNOMED CT codes for
  these trichoscopy measures), ``valueQuantity`` in UCUM units,
  ``effectiveDateTime`` = the session date, ``bodySite`` SNOMED CT 43067004
  (skin structure of scalp) with the site as text, ``device`` and
  ``method``; the hair density Observation carries the hair count, the
  class counts and the skin area of the field as components.

Every resource also carries its stable ``urn:uuid`` (uuid5 of what it
describes) as an identifier (system ``urn:ietf:rfc:3986``); in a
``transaction`` each entry is a conditional create on its first identifier
(``ifNoneExist``), so a run sent twice creates nothing twice.  A session
date is written ISO (``20260110`` as ``2026-01-10``); a frame whose date is
neither form is left out and counted.

Frames are the unit (not sessions) so that every number traces to one photo;
session values are sums over these and are in ``tricho compare``'s tables.
"""
from __future__ import annotations

import json
import math
import uuid
from urllib.parse import quote
from typing import Any

import pandas as pd

CODE_SYSTEM = "urn:tricho-pipeline:codesystem:trichoscopy"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
PATIENT_SYSTEM = "urn:tricho-pipeline:patient-id"
SHA256_SYSTEM = "urn:tricho-pipeline:sha256"
#: Identifier system of a resource's own ``urn:uuid`` (RFC 3986).
URI_SYSTEM = "urn:ietf:rfc:3986"

#: images.csv column -> (local code, display, UCUM code, unit text)
METRICS: dict[str, tuple[str, str, str, str]] = {
    "density_per_cm2": ("hair-density", "Hair density", "/cm2", "hairs/cm2"),
    "terminal_density_per_cm2": ("terminal-hair-density", "Terminal hair density", "/cm2", "hairs/cm2"),
    "mean_thickness_um": ("mean-shaft-thickness", "Mean hair shaft thickness", "um", "um"),
    "vellus_share_pct": ("vellus-hair-share", "Vellus hair share", "%", "%"),
    "cumulative_thickness_mm_per_cm2": ("cumulative-hair-thickness", "Cumulative hair thickness", "mm/cm2", "mm/cm2"),
    "hairs_per_unit": ("hairs-per-follicular-unit", "Hairs per follicular unit", "1", "hairs/unit"),
}
COMPONENTS = {
    "hair_count": ("hair-count", "Hair count in the field", "1", "hairs"),
    "vellus_count": ("vellus-hair-count", "Vellus hair count", "1", "hairs"),
    "intermediate_count": ("intermediate-hair-count", "Intermediate hair count", "1", "hairs"),
    "terminal_count": ("terminal-hair-count", "Terminal hair count", "1", "hairs"),
    "area_cm2": ("field-area", "Skin area of the field", "cm2", "cm2"),
}


def _uuid(*parts: Any) -> str:
    """A stable urn:uuid for the same inputs (uuid5), so re-exports give the same ids."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'tricho:' + '|'.join(map(str, parts)))}"


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _quantity(value: float, ucum: str, unit: str) -> dict:
    return {"value": round(value, 6), "unit": unit, "system": UCUM, "code": ucum}


def _code(code: str, display: str) -> dict:
    return {"coding": [{"system": CODE_SYSTEM, "code": code, "display": display}], "text": display}


def _left_out_reason(row: pd.Series) -> str:
    """Why a frame of images.csv gets no Observation ("" when it gets them)."""
    pid = str(row.get("patient_id") or "").strip()
    if str(row.get("status")) != "ok":
        return "status is not ok"
    if _number(row.get("area_cm2")) is None:
        return "no pixel size (no area)"
    if not pid or pid == "nan":
        return "no patient_id"
    if _session_date(row) is None:
        return "session_date not written YYYY-MM-DD or YYYYMMDD"
    return ""


def _session_date(row: pd.Series) -> str | None:
    """The frame's session date as ISO ``YYYY-MM-DD``; "" when it has none, None when it is not a date
    (:func:`pipeline.course.iso_date`: ``20260110`` reads as ``2026-01-10``, ``10/01/2026`` is refused)."""
    from pipeline.course import iso_date

    date = row.get("session_date")
    if not isinstance(date, str) or not date.strip():
        return ""
    return iso_date(date.strip())


def frames_left_out(images: pd.DataFrame) -> dict[str, int]:
    """The frames :func:`build_bundle` leaves out, counted by reason.

    Examples
    --------
    >>> t = pd.DataFrame({"status": ["ok", "ok", "error"], "area_cm2": [0.1, 0.1, None],
    ...                   "patient_id": ["P1", None, "P1"]})
    >>> frames_left_out(t)
    {'no patient_id': 1, 'status is not ok': 1}
    """
    reasons = [_left_out_reason(row) for _, row in images.iterrows()]
    return dict(sorted((r, reasons.count(r)) for r in set(reasons) if r))


def build_bundle(images: pd.DataFrame, *, version: str, method: str, transaction: bool = False) -> dict:
    """A FHIR R4 Bundle of the run's frames (see the module doc).

    Parameters
    ----------
    images : DataFrame
        ``images.csv`` of a run; rows without ``status == 'ok'``, pixel size
        or ``patient_id`` give no Observation (the returned bundle's
        ``meta.tag`` says how many were left out).
    version : str
        Package version (Device.version).
    method : str
        What measured (segmenter and model), the Observations' ``method`` text.
    transaction : bool
        ``transaction`` (each entry with a ``request``) instead of ``collection``.
    """
    frames = images.copy()
    if "terminal_density_per_cm2" not in frames:
        area = pd.to_numeric(frames.get("area_cm2"), errors="coerce")
        frames["terminal_density_per_cm2"] = pd.to_numeric(frames.get("terminal_count"), errors="coerce") / area
    entries: list[dict] = []
    device_url = _uuid("device", version, method)
    entries.append(_entry(device_url, {
        "resourceType": "Device",
        "deviceName": [{"name": "tricho-pipeline", "type": "manufacturer-name"}],
        "version": [{"value": version}],
        "note": [{"text": method}],
    }, transaction))
    patients: dict[str, str] = {}
    skipped = 0
    for _, row in frames.iterrows():
        pid = str(row.get("patient_id") or "").strip()
        if _left_out_reason(row):
            skipped += 1
            continue
        if pid not in patients:
            patients[pid] = _uuid("patient", pid)
            entries.append(_entry(patients[pid], {
                "resourceType": "Patient", "identifier": [{"system": PATIENT_SYSTEM, "value": pid}]}, transaction))
        doc_url = _uuid("frame", row.get("sha256"), row.get("image"))
        entries.append(_entry(doc_url, _document(row), transaction))
        for column, (code, display, ucum, unit) in METRICS.items():
            value = _number(row.get(column))
            if value is None:
                continue
            obs = _observation(row, code, display, _quantity(value, ucum, unit), patients[pid], device_url, doc_url,
                               method)
            if column == "density_per_cm2":
                obs["component"] = [
                    {"code": _code(c, d), "valueQuantity": _quantity(v, u, t)}
                    for col, (c, d, u, t) in COMPONENTS.items() if (v := _number(row.get(col))) is not None]
            entries.append(_entry(_uuid("obs", doc_url, code, version, method), obs, transaction))  # a re-analysis is new
    return {"resourceType": "Bundle", "type": "transaction" if transaction else "collection",
            "meta": {"tag": [{"system": CODE_SYSTEM, "code": "frames-left-out", "display": str(skipped)}]},
            "entry": entries}


def _document(row: pd.Series) -> dict:
    name = str(row.get("image"))
    kind = "image/jpeg" if name.lower().endswith((".jpg", ".jpeg")) else \
        "application/dicom" if name.lower().endswith(".dcm") else "image/png" if name.lower().endswith(".png") else \
        "application/octet-stream"
    doc = {"resourceType": "DocumentReference", "status": "current",
           "description": "Trichoscopy frame the measurements were derived from",
           "content": [{"attachment": {"contentType": kind, "title": name}}]}
    sha = str(row.get("sha256") or "")
    if len(sha) == 64:
        doc["identifier"] = [{"system": SHA256_SYSTEM, "value": sha}]
    return doc


def _observation(row, code, display, quantity, patient_url, device_url, doc_url, method) -> dict:
    obs = {
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "imaging", "display": "Imaging"}]}],
        "code": _code(code, display),
        "subject": {"reference": patient_url},
        "valueQuantity": quantity,
        "bodySite": {"coding": [{"system": SNOMED, "code": "43067004", "display": "Skin structure of scalp"}],
                     "text": site if isinstance(site := row.get("site"), str) and site.strip() else "scalp"},
        "device": {"reference": device_url},
        "method": {"text": method},
        "derivedFrom": [{"reference": doc_url}],
    }
    date = _session_date(row)
    if date:
        obs["effectiveDateTime"] = date
    return obs


def _entry(full_url: str, resource: dict, transaction: bool) -> dict:
    """A bundle entry.  Every resource carries an identifier (its own stable uuid where it has no other), and
    in a transaction each is a conditional create on it (``ifNoneExist``), so sending the same run twice
    creates nothing twice."""
    resource.setdefault("identifier", [])
    resource["identifier"].append({"system": URI_SYSTEM, "value": full_url})
    entry = {"fullUrl": full_url, "resource": resource}
    if transaction:
        first = resource["identifier"][0]
        entry["request"] = {"method": "POST", "url": resource["resourceType"],
                            "ifNoneExist": "identifier=" + quote(f"{_search_escaped(first['system'])}|"
                                                                 f"{_search_escaped(first['value'])}", safe=":/|")}
    return entry


def _search_escaped(value: str) -> str:
    r"""A token's part as a FHIR search value: ``\``, ``|``, ``,`` and ``$`` escaped with a backslash (then the
    whole is URL-encoded), so patient ``A&B`` or ``A|B`` is not read as another."""
    return "".join("\\" + ch if ch in "\\|,$" else ch for ch in str(value))


def validate(bundle: dict) -> None:
    """Validate a Bundle dict against the FHIR R4B models of ``fhir.resources`` (raises on error)."""
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)


def post_bundle(bundle: dict, base_url: str, *, timeout_s: float = 60.0) -> list[dict[str, str]]:
    """POST a bundle to a FHIR server; the outcome of every entry.

    A ``transaction`` bundle goes to ``BASE_URL`` itself, a ``collection`` to
    ``BASE_URL/Bundle``. Returns one dict per entry (``fullUrl``, ``status``,
    ``location``) from the server's response bundle.

    Raises
    ------
    RuntimeError
        The server could not be reached or answered with an error (its
        OperationOutcome text included).
    """
    import urllib.error
    import urllib.request

    url = base_url.rstrip("/") + ("" if bundle.get("type") == "transaction" else "/Bundle")
    try:
        request = urllib.request.Request(url, data=json.dumps(bundle).encode(), method="POST",
                                         headers={"Content-Type": "application/fhir+json",
                                                  "Accept": "application/fhir+json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            answer = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")[:500]
        raise RuntimeError(f"FHIR server {url} answered {exc.code} {exc.reason}: {body}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RuntimeError(f"cannot send the bundle to {url} ({exc}); check the address and that the "
                           "server runs") from None
    sent = bundle.get("entry", [])
    got = answer.get("entry", []) if isinstance(answer, dict) else []
    out = []
    for i, entry in enumerate(sent):
        response = (got[i].get("response", {}) if i < len(got) else {}) or {}
        out.append({"fullUrl": entry.get("fullUrl", ""), "status": str(response.get("status", "no response")),
                    "location": str(response.get("location", ""))})
    return out
