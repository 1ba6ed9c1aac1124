"""The results store: every measured frame, keyed so no work is done twice.

A frame's result is keyed by what decides it (:func:`result_key`): the
sha256 of the file's bytes, the settings digest, the package version and the
calibration inputs (manifest / CLI pixel size, device).  Rerunning a batch
looks each key up and measures only what is missing; changed settings give
new keys and so recompute.  Each frame's result (its row and its hairs) is
written in one transaction, so a run killed at any moment (``kill -9``)
leaves only whole results behind and a rerun completes it.

SQLite in the run's output folder by default (``OUT/results.sqlite``); any
SQLAlchemy URL (e.g. ``postgresql+psycopg://user@host/db``) for a shared
clinic server.  ``images.csv`` / ``hairs.csv`` / Parquet are exports of it.

Tables
------
``results``
    One row per result key: status, pixel size and its source, the
    per-frame metrics (JSON), image size, seconds.
``hairs``
    One row per counted hair of a result (the ``hairs.csv`` columns).
``runs`` / ``run_frames``
    Each batch run (settings, version, times) and which image of it used
    which result, with its manifest / folder metadata.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import sqlalchemy as sa

__all__ = ["ResultStore", "StoreError", "result_key", "default_url"]

STORE_NAME = "results.sqlite"
_meta = sa.MetaData()

results_table = sa.Table(
    "results", _meta,
    sa.Column("result_key", sa.String(64), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("settings_digest", sa.String(32), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("um_per_px", sa.Float),
    sa.Column("calibration_source", sa.String(32)),
    sa.Column("metrics_json", sa.Text, nullable=False),
    sa.Column("file_metadata_json", sa.Text, nullable=False, default="{}"),
    sa.Column("width_px", sa.Integer),
    sa.Column("height_px", sa.Integer),
    sa.Column("seconds", sa.Float),
    sa.Column("created_utc", sa.String(40), nullable=False),
)

#: Hair columns stored (``class`` is a reserved word in Python, not in SQL: quoted by SQLAlchemy).
HAIR_STORE_COLUMNS = [
    ("hair_id", sa.Integer), ("unit_id", sa.Integer), ("row", sa.Float), ("col", sa.Float),
    ("length_um", sa.Float), ("thickness_um", sa.Float), ("class", sa.String(16)),
    ("length_px", sa.Float), ("thickness_px", sa.Float), ("touches_border", sa.Boolean),
    ("root_known", sa.Boolean), ("mid_row", sa.Float), ("mid_col", sa.Float),
]
hairs_table = sa.Table(
    "hairs", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("result_key", sa.String(64), sa.ForeignKey("results.result_key", ondelete="CASCADE"),
              nullable=False, index=True),
    *[sa.Column(name, kind) for name, kind in HAIR_STORE_COLUMNS],
)

runs_table = sa.Table(
    "runs", _meta,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("started_utc", sa.String(40), nullable=False),
    sa.Column("finished_utc", sa.String(40)),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("settings_digest", sa.String(32), nullable=False),
    sa.Column("settings_json", sa.Text, nullable=False),
    sa.Column("inputs_json", sa.Text, nullable=False),
)

run_frames_table = sa.Table(
    "run_frames", _meta,
    sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("image", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("result_key", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("metadata_json", sa.Text, nullable=False),
)


class StoreError(RuntimeError):
    """The store cannot be opened or written; the text says which and what to do."""


def default_url(out_dir: str | Path) -> str:
    """SQLite file ``OUT/results.sqlite`` as an SQLAlchemy URL."""
    return f"sqlite:///{Path(out_dir).resolve() / STORE_NAME}"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """Short sha256 of the package's own files (its ``.py`` sources and its device table).

    Part of every result key beside the package version, which does not
    change between releases: a result measured by other code is measured
    again, not reused. (Found on 2026-12-01: a benchmark re-run after a change
    to the skin mask reused every course frame's stored result, measured
    before the change, because settings and version were the same.)
    """
    root = Path(__file__).parent
    h = hashlib.sha256()
    for f in sorted(root.glob("*.py")) + sorted(root.glob("*.csv")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def result_key(sha256: str, settings_digest: str, version: str, calibration: dict[str, Any]) -> str:
    """Key of one frame's result: what decides it, hashed (hex, 64 chars).

    Parameters
    ----------
    sha256 : str
        Of the file's bytes.
    settings_digest : str
        :meth:`pipeline.settings.Settings.digest`.
    version : str
        Package version (a new version may measure differently); the key
        also holds :func:`code_digest`, since other code of the same version
        may too.
    calibration : dict
        The calibration inputs given for the frame (manifest / CLI pixel
        size, device name); what is read from the pixels follows from sha256.
    """
    blob = json.dumps([sha256, settings_digest, version, code_digest(), calibration], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _plain(value: Any) -> Any:
    """JSON/SQL-safe scalar (numpy -> Python, NaN -> None)."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA:
        return None
    return value


class ResultStore:
    """Results of measured frames in an SQL database (see the module doc).

    Parameters
    ----------
    url : str
        SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://...``.

    Raises
    ------
    StoreError
        The database cannot be reached or its tables cannot be created.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
            self.engine = sa.create_engine(url, **kwargs)
            if url.startswith("sqlite"):
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            _meta.create_all(self.engine)
        except Exception as exc:  # noqa: BLE001 - any driver error becomes one message
            raise StoreError(f"cannot open the results store {self.safe_url} ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); check the --db URL, that the "
                             "server runs and the user may create tables") from None

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden."""
        try:
            return sa.engine.make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001
            return "<unparseable URL>"

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ results

    def known(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` already have a stored result."""
        keys = list(dict.fromkeys(keys))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                rows = conn.execute(sa.select(results_table.c.result_key)
                                    .where(results_table.c.result_key.in_(chunk)))
                found.update(r[0] for r in rows)
        return found

    def put(self, key: str, *, sha256: str, settings_digest: str, version: str, result: dict[str, Any],
            um_per_px: float | None, calibration_source: str) -> None:
        """Store one ok result and its hairs in one transaction (replacing any older one)."""
        metrics = {k: _plain(v) for k, v in result["metrics"].items()}
        row = dict(result_key=key, sha256=sha256, settings_digest=settings_digest, version=version,
                   status=result["status"], um_per_px=_plain(um_per_px), calibration_source=calibration_source,
                   metrics_json=json.dumps(metrics, default=str),
                   file_metadata_json=json.dumps(result.get("file_metadata") or {}, default=str),
                   width_px=result.get("width_px"),
                   height_px=result.get("height_px"), seconds=_plain(result.get("seconds")), created_utc=_now())
        hairs = _hair_records(key, result.get("hairs"))
        with self.engine.begin() as conn:
            conn.execute(hairs_table.delete().where(hairs_table.c.result_key == key))
            conn.execute(results_table.delete().where(results_table.c.result_key == key))
            conn.execute(results_table.insert(), [row])
            if hairs:
                conn.execute(hairs_table.insert(), hairs)

    def get(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored results by key: ``metrics`` (dict), ``hairs`` (DataFrame) and the row's fields."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                for r in conn.execute(sa.select(results_table).where(results_table.c.result_key.in_(chunk))):
                    d = dict(r._mapping)
                    d["metrics"] = json.loads(d.pop("metrics_json"))
                    d["file_metadata"] = json.loads(d.pop("file_metadata_json") or "{}")
                    out[d["result_key"]] = d
                hairs = pd.read_sql(sa.select(hairs_table).where(hairs_table.c.result_key.in_(chunk))
                                    .order_by(hairs_table.c.result_key, hairs_table.c.hair_id), conn)
                for key, table in hairs.groupby("result_key", sort=False):
                    if key in out:
                        out[key]["hairs"] = table.drop(columns=["id", "result_key"]).reset_index(drop=True)
        empty = pd.DataFrame(columns=[name for name, _ in HAIR_STORE_COLUMNS])
        for d in out.values():
            d.setdefault("hairs", empty.copy())
        return out

    # ------------------------------------------------------------------ runs

    def start_run(self, *, settings_json: str, settings_digest: str, version: str, inputs: list[str]) -> str:
        """Record a new run; returns its id."""
        run_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(runs_table.insert(), [dict(run_id=run_id, started_utc=_now(), version=version,
                                                    settings_digest=settings_digest, settings_json=settings_json,
                                                    inputs_json=json.dumps(inputs))])
        return run_id

    def finish_run(self, run_id: str, frames: list[dict[str, Any]]) -> None:
        """Record which image of the run used which result (one transaction)."""
        rows = [dict(run_id=run_id, position=i, image=f["image"], path=f["path"], result_key=f.get("result_key"),
                     status=f["status"], error=f.get("error") or None,
                     metadata_json=json.dumps(f.get("metadata") or {}, default=str)) for i, f in enumerate(frames)]
        with self.engine.begin() as conn:
            if rows:
                conn.execute(run_frames_table.insert(), rows)
            conn.execute(runs_table.update().where(runs_table.c.run_id == run_id).values(finished_utc=_now()))

    def counts(self) -> dict[str, int]:
        """Rows per table (for checks and tests)."""
        with self.engine.connect() as conn:
            return {t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
                    for t in (results_table, hairs_table, runs_table, run_frames_table)}


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer; crash-safe
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _hair_records(key: str, hairs: pd.DataFrame | None) -> list[dict[str, Any]]:
    if hairs is None or len(hairs) == 0:
        return []
    names = [name for name, _ in HAIR_STORE_COLUMNS]
    table = hairs.reindex(columns=names)
    records = []
    for rec in table.to_dict("records"):
        rec = {k: _plain(v) for k, v in rec.items()}
        for flag in ("touches_border", "root_known"):
            if rec[flag] is not None:
                rec[flag] = bool(rec[flag])
        for whole in ("hair_id", "unit_id"):
            if rec[whole] is not None:
                rec[whole] = int(rec[whole])
        records.append({"result_key": key, **rec})
    return records
