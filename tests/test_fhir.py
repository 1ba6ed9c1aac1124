"""FHIR R4 export (validated with fhir.resources R4B), posting, and pseudonymised outputs."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import frame_with_hairs, write_png
from pipeline import fhir
from pipeline.batch import run_batch
from pipeline.cli import app

pytest.importorskip("fhir.resources")


def _course_run(tmp_path: Path, fake_core, **kwargs) -> Path:
    """Two patients, two sessions each, in the folder layout; analysed with the fake core."""
    root = tmp_path / "clinic"
    k = 0
    for pid in ("P007", "P042"):
        for date in ("2026-01-10", "2026-03-07"):
            for field in (1, 2):
                image = frame_with_hairs(2 + k % 4)
                image[-1, -1] = k
                write_png(root / pid / date / f"vertex_{field}.png", image)
                k += 1
    out = tmp_path / "run"
    run_batch([root], out, um_per_px=5.0, progress=False, **kwargs)
    return out


def test_bundle_validates_with_one_patient_reference_per_patient_and_ucum_units(tmp_path, fake_core):
    out = _course_run(tmp_path, fake_core)
    res = CliRunner().invoke(app, ["export", "fhir", str(out), "--out", str(tmp_path / "bundle.json")])
    assert res.exit_code == 0, res.output
    bundle = json.loads((tmp_path / "bundle.json").read_text())
    fhir.validate(bundle)
    assert bundle["type"] == "collection"
    by_type: dict[str, list] = {}
    for e in bundle["entry"]:
        by_type.setdefault(e["resource"]["resourceType"], []).append(e)
    patients = {e["fullUrl"]: e["resource"]["identifier"][0]["value"] for e in by_type["Patient"]}
    assert sorted(patients.values()) == ["P007", "P042"]
    obs = [e["resource"] for e in by_type["Observation"]]
    assert {o["subject"]["reference"] for o in obs} == set(patients)
    assert len(by_type["DocumentReference"]) == 8 and len(by_type["Device"]) == 1
    units = {o["code"]["coding"][0]["code"]: o["valueQuantity"]["code"] for o in obs}
    assert units["hair-density"] == "/cm2" and units["mean-shaft-thickness"] == "um"
    assert units["cumulative-hair-thickness"] == "mm/cm2"
    assert all(o["valueQuantity"]["system"] == "http://unitsofmeasure.org" for o in obs)
    assert all(o["bodySite"]["coding"][0]["code"] == "43067004" and o["bodySite"]["text"] == "vertex" for o in obs)
    assert {o["effectiveDateTime"] for o in obs} == {"2026-01-10", "2026-03-07"}
    density = [o for o in obs if o["code"]["coding"][0]["code"] == "hair-density"]
    images = pd.read_csv(out / "images.csv").sort_values("image")
    assert sorted(o["valueQuantity"]["value"] for o in density) == \
        sorted(round(v, 6) for v in images["density_per_cm2"])
    comps = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in density[0]["component"]}
    assert set(comps) >= {"hair-count", "vellus-hair-count", "intermediate-hair-count", "terminal-hair-count"}
    docs = [e["resource"] for e in by_type["DocumentReference"]]
    assert {d["identifier"][0]["value"] for d in docs} == set(images["sha256"])


def test_transaction_bundle_has_requests_and_validates(tmp_path, fake_core):
    out = _course_run(tmp_path, fake_core)
    bundle = fhir.build_bundle(pd.read_csv(out / "images.csv", dtype={"patient_id": str}), version="0.1.0",
                               method="test", transaction=True)
    fhir.validate(bundle)
    assert bundle["type"] == "transaction"
    # each entry a conditional create on its first identifier: the same run sent twice creates nothing twice
    for e in bundle["entry"]:
        first = e["resource"]["identifier"][0]
        assert e["request"] == {"method": "POST", "url": e["resource"]["resourceType"],
                                "ifNoneExist": f"identifier={first['system']}|{first['value']}"}
    assert len({e["request"]["ifNoneExist"] for e in bundle["entry"]}) == len(bundle["entry"])
    odd = fhir._entry("urn:uuid:x", {"resourceType": "Patient",
                                     "identifier": [{"system": fhir.PATIENT_SYSTEM, "value": "A&B|C"}]}, True)
    assert odd["request"]["ifNoneExist"] == "identifier=urn:tricho-pipeline:patient-id|A%26B%5C|C"  # not patient A
    again = fhir.build_bundle(pd.read_csv(out / "images.csv", dtype={"patient_id": str}), version="0.1.0",
                              method="test", transaction=True)
    assert again == bundle


def test_export_writes_dates_iso_and_leaves_out_what_is_no_date(tmp_path, fake_core):
    """``20260110`` is exported as 2026-01-10, ``10/01/2026`` left out and counted, a missing site reads
    "scalp" and patient "NA" is a patient (session 59: the export failed on the first, wrote "nan", dropped "NA")."""
    out = _course_run(tmp_path, fake_core)
    images = pd.read_csv(out / "images.csv", dtype=str, keep_default_na=False)
    images.loc[0, "session_date"], images.loc[1, "session_date"] = "20260110", "10/01/2026"
    images.loc[2, "site"], images["patient_id"] = "", images["patient_id"].where(images.index != 3, "NA")
    images.to_csv(out / "images.csv", index=False)
    res = CliRunner().invoke(app, ["export", "fhir", str(out), "--out", str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    bundle = json.loads((tmp_path / "b.json").read_text())
    fhir.validate(bundle)
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert {o["effectiveDateTime"] for o in obs} == {"2026-01-10", "2026-03-07"}
    assert "nan" not in {o["bodySite"]["text"] for o in obs} and "scalp" in {o["bodySite"]["text"] for o in obs}
    patients = {e["resource"]["identifier"][0]["value"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == "Patient"}
    assert "NA" in patients
    assert bundle["meta"]["tag"][0]["display"] == "1"


class _FakeFhir(BaseHTTPRequestHandler):
    """Answers a transaction with 201 for every entry but the last (a 400): errors must be reported."""

    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeFhir.received.append((self.path, body))
        n = len(body["entry"])
        answer = {"resourceType": "Bundle", "type": "transaction-response",
                  "entry": [{"response": {"status": "201 Created" if i < n - 1 else "400 Bad Request",
                                          "location": f"Observation/{i}/_history/1"}} for i in range(n)]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_post_reports_every_entry_and_fails_on_a_rejected_one(tmp_path, fake_core):
    out = _course_run(tmp_path, fake_core)
    server = HTTPServer(("127.0.0.1", 0), _FakeFhir)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/fhir"
        res = CliRunner().invoke(app, ["export", "fhir", str(out), "--out", str(tmp_path / "b.json"),
                                       "--transaction", "--post", url])
    finally:
        server.shutdown()
    path, body = _FakeFhir.received[-1]
    assert path == "/fhir" and body["type"] == "transaction"
    assert res.exit_code == 1
    assert "400 Bad Request" in res.output and f"{len(body['entry']) - 1} accepted, 1 not" in res.output


def test_unreachable_server_is_an_error_not_silence(tmp_path, fake_core):
    out = _course_run(tmp_path, fake_core)
    res = CliRunner().invoke(app, ["export", "fhir", str(out), "--out", str(tmp_path / "b.json"),
                                   "--post", "http://127.0.0.1:9/fhir"])
    assert res.exit_code == 1 and "cannot send the bundle" in res.output


# ----------------------------------------------------------------------------- pseudonymisation


def test_pseudonymized_outputs_contain_no_original_identifier(tmp_path, fake_core):
    out = _course_run(tmp_path, fake_core, pseudonymize="clinic-secret")
    (tmp_path / "clinic" / "P042" / "2026-01-10" / "broken.png").write_bytes(b"")  # an error message names a path
    run_batch([tmp_path / "clinic"], out, um_per_px=5.0, progress=False, pseudonymize="clinic-secret")
    res = CliRunner().invoke(app, ["export", "fhir", str(out), "--out", str(out / "bundle.json")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["compare", str(out), "--out", str(out / "course"), "--boot", "100"])
    assert res.exit_code == 0, res.output
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        data = path.read_bytes()
        for original in (b"P007", b"P042"):
            assert original not in data, f"{original!r} found in {path}"
            assert original.decode() not in path.relative_to(out).as_posix()
    images = pd.read_csv(out / "images.csv")
    assert images["patient_id"].str.startswith("PSN-").all() and images["patient_id"].nunique() == 2
    assert (images["status"] == "error").sum() == 1


def test_pseudonyms_replace_whole_identifiers_only_and_survive_a_second_pass(tmp_path, fake_core):
    """Patients ``1`` and ``20`` must leave dates and each other's pseudonyms alone, the store path in
    run.json is pseudonymised, and exporting with the run's key keeps its pseudonyms (session 59)."""
    from pipeline.pseudonym import Pseudonymizer

    root = tmp_path / "clinic"
    for k, pid in enumerate(("1", "20")):
        for date in ("2026-01-20", "2026-02-01"):
            image = frame_with_hairs(2 + k)
            image[-1, -1] = k * 7 + len(date)
            image[-1, -2] = int(date[-2:])
            write_png(root / pid / date / "vertex.png", image)
    out = tmp_path / "run-20"
    run_batch([root], out, um_per_px=5.0, progress=False, pseudonymize="clinic-secret")
    key = Pseudonymizer("clinic-secret")
    images = pd.read_csv(out / "images.csv", dtype=str)
    assert sorted(images["patient_id"].unique()) == sorted({key.patient("1"), key.patient("20")})
    assert set(images["session_date"]) == {"2026-01-20", "2026-02-01"}
    assert images["image"].str.contains("/2026-02-01/").sum() == 2  # a date is a token of its own...
    # ...but "-20" may be patient 20's: a path keeps no identifier, at the cost of a date; no pseudonym nested
    assert not images["image"].str.replace(r"PSN-[0-9a-f]{16}", "", regex=True).str.contains("PSN|20/|/1/").any()
    run = json.loads((out / "run.json").read_text())
    assert "run-20" not in run["store"] and key.patient("20") in run["store"]
    res = CliRunner().invoke(app, ["export", "fhir", str(out), "--out", str(tmp_path / "b.json"),
                                   "--pseudonymize", "clinic-secret"])
    assert res.exit_code == 0, res.output
    patients = {e["resource"]["identifier"][0]["value"] for e in json.loads((tmp_path / "b.json").read_text())["entry"]
                if e["resource"]["resourceType"] == "Patient"}
    assert patients == set(images["patient_id"])


def test_same_key_same_pseudonym_other_key_other():
    from pipeline.pseudonym import Pseudonymizer

    from pipeline.batch import _pseudonymized_table

    key = Pseudonymizer("k1")
    key.patient("P007")
    table = _pseudonymized_table(pd.DataFrame({"site": ["P007 vertex"], "field_id": ["P007-1"],
                                               "session_date": ["2026-01-10"]}), key)
    assert table.iloc[0].tolist() == [f"{key.patient('P007')} vertex", f"{key.patient('P007')}-1", "2026-01-10"]
    odd = Pseudonymizer("k1")
    assert odd.text("scan#123.jpg") == "scan#123.jpg"
    assert odd.patient("#123") in odd.text("scan#123.jpg") and odd.patient("P-7.") in odd.text("P-7.jpg")
    a, b, c = Pseudonymizer("k1"), Pseudonymizer("k1"), Pseudonymizer("k2")
    assert a.patient("P007") == b.patient("P007") != c.patient("P007")
    assert a.patient("P007").startswith("PSN-") and len(a.patient("P007")) == 20
    assert a.text("clinic/P007/2026-01-10/vertex.png") == f"clinic/{a.patient('P007')}/2026-01-10/vertex.png"
    with pytest.raises(ValueError, match="key is empty"):
        Pseudonymizer("")


def test_export_refuses_what_it_cannot_do_and_says_why(tmp_path, fake_core):
    out = _course_run(tmp_path, fake_core)
    runner = CliRunner()
    res = runner.invoke(app, ["export", "fhir", str(out), "--out", str(tmp_path / "b.json"), "--pseudonymize", ""])
    assert res.exit_code == 2 and "key is empty" in res.output and not (tmp_path / "b.json").exists()
    res = runner.invoke(app, ["export", "fhir", str(out), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "is a folder" in res.output
    assert not list(tmp_path.glob(".*.tmp"))
    res = runner.invoke(app, ["export", "fhir", str(out / "images.csv"), "--out", str(tmp_path / "b.json")])
    assert res.exit_code == 2 and "is a file" in res.output
    res = runner.invoke(app, ["export", "fhir", str(out), "--out", str(tmp_path / "b.json"), "--post", "notaurl"])
    assert res.exit_code == 1 and "cannot send the bundle" in res.output and "Traceback" not in res.output

    loose = tmp_path / "loose"
    write_png(loose / "frame.png", frame_with_hairs(2))
    (loose / "empty.png").write_bytes(b"")
    bare = tmp_path / "bare"
    run_batch([loose], bare, um_per_px=5.0, progress=False)
    res = runner.invoke(app, ["export", "fhir", str(bare), "--out", str(tmp_path / "bare.json")])
    assert res.exit_code == 2 and "no frame can be exported" in res.output
    assert "1 frame(s): no patient_id" in res.output and "1 frame(s): status is not ok" in res.output


def test_an_export_that_leaves_frames_out_names_them():
    images = pd.DataFrame({"status": ["ok", "ok", "error"], "area_cm2": [0.1, 0.1, np.nan],
                           "patient_id": ["P1", None, "P1"], "image": ["a.png", "b.png", "c.png"]})
    assert fhir.frames_left_out(images) == {"no patient_id": 1, "status is not ok": 1}
    bundle = fhir.build_bundle(images, version="0", method="m")
    assert bundle["meta"]["tag"][0]["display"] == "2"
