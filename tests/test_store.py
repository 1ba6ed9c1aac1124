"""Results store, resumable runs, duplicates, Dask: the batch a clinic can rerun safely.

Store tests run against SQLite always and against PostgreSQL when
``TRICHO_TEST_POSTGRES_URL`` names a server (``.ci/run`` installs and starts
one, so CI runs them).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import fake_analyze_frame, frame_with_hairs, tree_digest, write_png
from pipeline.batch import run_batch
from pipeline.settings import Settings
from pipeline.store import ResultStore, default_url, result_key

PG_URL = os.environ.get("TRICHO_TEST_POSTGRES_URL")
ROOT = Path(__file__).resolve().parents[1]


def _pg_fresh(url: str, name: str) -> str:
    """A fresh schema-free database on the test server (dropped and created)."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return str(sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return default_url(tmp_path / "db")
    if not PG_URL:
        pytest.skip("no PostgreSQL server: set TRICHO_TEST_POSTGRES_URL (.ci/run starts one)")
    return _pg_fresh(PG_URL, f"tricho_test_{os.getpid()}_{abs(hash(request.node.name)) % 10**8}")


def _read(out, name="images.csv"):
    return pd.read_csv(out / name, keep_default_na=False, na_values=[""])


# ----------------------------------------------------------------------------- the store itself


def test_store_round_trip(store_url, tmp_path):
    (tmp_path / "db").mkdir(exist_ok=True)
    store = ResultStore(store_url)
    res = fake_analyze_frame(frame_with_hairs(3), um_per_px=2.0)
    key = result_key("ab" * 32, "digest", "0.1.0", {"cli": 2.0})
    payload = {"status": "ok", "metrics": res.metrics, "hairs": res.hairs, "width_px": 100, "height_px": 100,
               "seconds": 0.1, "file_metadata": {"patient_id": "P1"}}
    store.put(key, sha256="ab" * 32, settings_digest="digest", version="0.1.0", result=payload,
              um_per_px=2.0, calibration_source="cli")
    store.put(key, sha256="ab" * 32, settings_digest="digest", version="0.1.0", result=payload,
              um_per_px=2.0, calibration_source="cli")  # a second put replaces, never duplicates
    assert store.known([key, "other"]) == {key}
    got = store.get([key])[key]
    assert got["metrics"]["hair_count"] == 3 and got["file_metadata"] == {"patient_id": "P1"}
    assert got["hairs"]["hair_id"].tolist() == [1, 2, 3]
    assert got["hairs"]["thickness_um"].tolist() == [20.0, 20.0, 20.0]
    assert store.counts()["results"] == 1 and store.counts()["hairs"] == 3
    store.close()


def test_result_key_depends_on_what_decides_the_result():
    base = result_key("a" * 64, "d1", "0.1.0", {"cli": 2.0, "manifest": None})
    assert base == result_key("a" * 64, "d1", "0.1.0", {"manifest": None, "cli": 2.0})
    assert len({base, result_key("b" * 64, "d1", "0.1.0", {"cli": 2.0, "manifest": None}),
                result_key("a" * 64, "d2", "0.1.0", {"cli": 2.0, "manifest": None}),
                result_key("a" * 64, "d1", "0.1.0", {"cli": 2.5, "manifest": None})}) == 4


def test_unreachable_store_is_a_batch_error(tmp_path, good_folder, fake_core):
    from pipeline.batch import BatchError

    with pytest.raises(BatchError, match="cannot open the results store"):
        run_batch([good_folder], tmp_path / "out", db="postgresql+psycopg://nobody@127.0.0.1:1/none",
                  progress=False)


# ----------------------------------------------------------------------------- resumable, idempotent


def test_rerun_does_no_work_twice_and_gives_the_same_tables(store_url, tmp_path, good_folder, fake_core):
    (tmp_path / "db").mkdir(exist_ok=True)
    out = tmp_path / "out"
    first = run_batch([good_folder], out, um_per_px=2.0, progress=False, db=store_url)
    tables = {n: (out / n).read_text() for n in ("images.csv", "hairs.csv")}
    second = run_batch([good_folder], out, um_per_px=2.0, progress=False, db=store_url)
    assert (first.n_reused, second.n_reused) == (0, 9)
    assert {n: (out / n).read_text() for n in tables} == tables
    counts = ResultStore(store_url).counts()
    assert (counts["results"], counts["hairs"], counts["runs"]) == (9, sum(range(9)), 2)


def test_results_of_other_code_are_measured_again(tmp_path, good_folder, fake_core, monkeypatch):
    """Same settings, version and files, but a changed package: nothing is reused."""
    from pipeline import store

    out = tmp_path / "out"
    run_batch([good_folder], out, um_per_px=2.0, progress=False)
    assert run_batch([good_folder], out, um_per_px=2.0, progress=False).n_reused == 9
    monkeypatch.setattr(store, "code_digest", lambda: "other-code")
    monkeypatch.setattr("pipeline.batch.code_digest", lambda: "other-code")
    assert run_batch([good_folder], out, um_per_px=2.0, progress=False).n_reused == 0


def test_changed_settings_or_calibration_recompute(tmp_path, good_folder, fake_core):
    out = tmp_path / "out"
    run_batch([good_folder], out, um_per_px=2.0, progress=False)
    assert run_batch([good_folder], out, um_per_px=2.0, progress=False,
                     settings=Settings(vellus_max_um=25.0)).n_reused == 0
    assert run_batch([good_folder], out, um_per_px=3.0, progress=False).n_reused == 0
    assert run_batch([good_folder], out, um_per_px=3.0, progress=False).n_reused == 9
    assert _read(out)["um_per_px"].unique().tolist() == [3.0]


def test_a_deleted_overlay_is_redrawn(tmp_path, good_folder, fake_core):
    out = tmp_path / "out"
    run_batch([good_folder], out, um_per_px=2.0, progress=False)
    (out / "overlays" / "img_3.png").unlink()
    summary = run_batch([good_folder], out, um_per_px=2.0, progress=False)
    assert summary.n_reused == 8 and (out / "overlays" / "img_3.png").is_file()


def test_duplicate_content_is_measured_once(tmp_path, good_folder, fake_core):
    (good_folder / "zz_copy_of_3.png").write_bytes((good_folder / "img_3.png").read_bytes())
    summary = run_batch([good_folder], tmp_path / "out", um_per_px=2.0, progress=False)
    images = _read(tmp_path / "out").set_index("image")
    assert images.loc["img_3.png", "status"] == "ok"
    assert images.loc["zz_copy_of_3.png", "status"] == "skipped"
    assert "same content as img_3.png" in images.loc["zz_copy_of_3.png", "error"]
    assert (summary.n_ok, summary.n_skipped, summary.n_error, summary.exit_code) == (9, 1, 0, 0)


def test_parquet_exports_match_the_csv(tmp_path, good_folder, fake_core):
    out = tmp_path / "out"
    run_batch([good_folder], out, um_per_px=2.0, progress=False)
    for name in ("images", "hairs"):
        csv, pq = _read(out, f"{name}.csv"), pd.read_parquet(out / f"{name}.parquet")
        assert list(pq.columns) == list(csv.columns) and len(pq) == len(csv)
    assert pd.read_parquet(out / "images.parquet")["hair_count"].tolist() == list(range(9))


def test_parquet_of_a_run_without_pixel_size_reads_with_a_calibrated_one(tmp_path, good_folder, fake_core):
    """Without any pixel size ``um_per_px`` is all empty; it must still be a number column in Parquet
    (session 59: it was written as text, and the two runs' files could not be read as one dataset)."""
    import pyarrow.dataset as ds

    run_batch([good_folder], tmp_path / "a", um_per_px=2.0, progress=False)
    run_batch([good_folder], tmp_path / "b", progress=False)
    plain = pd.read_parquet(tmp_path / "b" / "images.parquet")
    assert plain["um_per_px"].isna().all() and plain["um_per_px"].dtype == "float64"
    both = ds.dataset([str(tmp_path / r / "images.parquet") for r in "ab"]).to_table().to_pandas()
    assert len(both) == 18 and both["um_per_px"].notna().sum() == 9


def _phantoms(folder: Path, n: int) -> Path:
    from pipeline.synth import generate

    generate(folder, n, 4242, height=480, width=640)
    return folder


def _stored(out: Path) -> int:
    db = out / "results.sqlite"
    if not db.is_file():
        return 0
    try:
        with sa.create_engine(f"sqlite:///{db}").connect() as conn:
            return int(conn.execute(sa.text("select count(*) from results")).scalar_one())
    except sa.exc.OperationalError:
        return 0


def test_run_killed_with_sigkill_and_rerun_has_every_frame_once(tmp_path):
    """A real `tricho analyze` killed mid-run (kill -9) and rerun: same tables as a clean run, nothing twice."""
    frames = _phantoms(tmp_path / "in", 16)
    before = tree_digest(frames)
    clean, out = tmp_path / "clean", tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline.cli", "analyze", str(frames), "--workers", "1", "--quiet", "--out"]
    subprocess.run(cmd + [str(clean)], check=True, capture_output=True, cwd=ROOT)
    proc = subprocess.Popen(cmd + [str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.time() + 300
    while _stored(out) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: use more frames"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _stored(out)
    assert 3 <= killed_at < 16
    rerun = subprocess.run(cmd + [str(out)], capture_output=True, text=True, cwd=ROOT)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    for name in ("images.csv", "hairs.csv"):
        assert (out / name).read_text() == (clean / name).read_text()
    store = ResultStore(default_url(out))
    counts = store.counts()
    assert counts["results"] == 16 and counts["hairs"] == int(_read(out)["hair_count"].sum())
    assert tree_digest(frames) == before


# ----------------------------------------------------------------------------- Dask


def test_dask_local_cluster_gives_the_same_results_as_local_workers(tmp_path):
    distributed = pytest.importorskip("distributed")
    frames = _phantoms(tmp_path / "in", 3)
    run_batch([frames], tmp_path / "local", workers=2, progress=False, overlays=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        run_batch([frames], tmp_path / "dask", progress=False, overlays=False, scheduler=cluster.scheduler_address)
    for name in ("images.csv", "hairs.csv"):
        assert (tmp_path / "dask" / name).read_text() == (tmp_path / "local" / name).read_text()
    assert (tmp_path / "dask" / "run.json").read_text().count(cluster.scheduler_address) == 1


def test_unreachable_scheduler_is_a_batch_error(tmp_path, good_folder, fake_core):
    from pipeline.batch import BatchError

    with pytest.raises(BatchError, match="cannot reach the Dask scheduler"):
        run_batch([good_folder], tmp_path / "out", progress=False, scheduler="tcp://127.0.0.1:9")


# ----------------------------------------------------------------------------- folder layout


def test_folder_layout_gives_patient_session_site_field(tmp_path, fake_core):
    root = tmp_path / "clinic"
    write_png(root / "P007" / "2026-03-01" / "vertex_2.png", frame_with_hairs(2))
    write_png(root / "P007" / "20260315" / "crown.png", frame_with_hairs(3))
    write_png(root / "loose" / "scan.png", frame_with_hairs(1))
    from rich.console import Console

    console = Console(record=True, width=200)
    run_batch([root], tmp_path / "out", um_per_px=2.0, progress=False, console=console)
    images = pd.read_csv(tmp_path / "out" / "images.csv", dtype=str, keep_default_na=False).set_index("image")
    row = images.loc["P007/2026-03-01/vertex_2.png"]
    assert (row.patient_id, row.session_date, row.site, row.field_id) == ("P007", "2026-03-01", "vertex", "2")
    row = images.loc["P007/20260315/crown.png"]
    assert (row.patient_id, row.session_date, row.site, row.field_id) == ("P007", "2026-03-15", "crown", "")
    assert images.loc["loose/scan.png", "patient_id"] == ""
    text = "".join(console.export_text().split())  # the console may wrap a long path
    assert f"folder'{root / 'loose'}'" in text and "P007" not in text


def test_manifest_overrides_the_layout(tmp_path, fake_core):
    root = tmp_path / "clinic"
    write_png(root / "P1" / "2026-01-01" / "vertex.png", frame_with_hairs(2))
    (root / "manifest.csv").write_text("image,patient_id,site,device\nP1/2026-01-01/vertex.png,X9,occiput,handheld-70x\n")
    run_batch([root], tmp_path / "out", progress=False)
    row = pd.read_csv(tmp_path / "out" / "images.csv", dtype=str, keep_default_na=False).iloc[0]
    assert (row.patient_id, row.site, row.session_date) == ("X9", "occiput", "2026-01-01")  # a gap filled by the layout
    # device profile: 2.78 µm/px at 1280 px wide -> 35.6 µm/px for this 100-px frame
    assert (row.calibration_source, float(row.um_per_px)) == ("device", pytest.approx(2.78 * 1280 / 100))


# ----------------------------------------------------------------------------- bad input, 10% of a batch


def _bad_batch(folder: Path) -> dict[str, str]:
    """18 good frames and 2 + odd-but-valid ones; returns {name: expected status}."""
    from PIL import Image

    expected = {}
    for k in range(18):
        image = frame_with_hairs(k % 5)
        image[-1, -1] = k  # every good frame has bytes of its own
        write_png(folder / f"good_{k:02d}.png", image)
        expected[f"good_{k:02d}.png"] = "ok"
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a text file, not a photo")
    jpeg = folder / "cut.jpg"
    Image.fromarray(frame_with_hairs(2, shape=(200, 200))).save(jpeg, quality=90)
    jpeg.write_bytes(jpeg.read_bytes()[:1500])
    (folder / "huge.png").write_bytes(_png_header(20000, 20000))
    expected.update({"zero.jpg": "error", "notes.jpg": "error", "cut.jpg": "error", "huge.png": "error"})
    Image.fromarray(frame_with_hairs(3)).save(folder / "png_named.jpg", format="PNG")
    Image.fromarray((frame_with_hairs(3)[..., 0].astype(np.uint16) * 257)).save(folder / "sixteen.tif")
    Image.fromarray(frame_with_hairs(3)[..., 0]).save(folder / "grey.png")
    Image.fromarray(frame_with_hairs(3)).convert("CMYK").save(folder / "cmyk.tif")
    expected.update({"png_named.jpg": "ok", "sixteen.tif": "ok", "grey.png": "ok", "cmyk.tif": "ok"})
    (folder / "good_00_copy.png").write_bytes((folder / "good_00.png").read_bytes())
    expected["good_00_copy.png"] = "skipped"
    return expected


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height but that holds almost no data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_a_batch_with_bad_files_measures_every_good_one(tmp_path, fake_core):
    folder = tmp_path / "in"
    expected = _bad_batch(folder)
    before = tree_digest(folder)
    summary = run_batch([folder], tmp_path / "out", um_per_px=2.0, progress=False)
    images = _read(tmp_path / "out").set_index("image")
    assert images["status"].to_dict() == expected
    assert images.loc["good_03.png", "hair_count"] == 3 and images.loc["grey.png", "hair_count"] == 3
    for name, status in expected.items():
        if status == "error":
            assert str(folder / name) in images.loc[name, "error"]
    assert "truncated" in images.loc["cut.jpg", "error"] and "refused" in images.loc["huge.png", "error"]
    assert summary.exit_code == 1 and tree_digest(folder) == before
