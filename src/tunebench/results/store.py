"""The study store: SQLite in the output folder, every attempt at every run, written in one transaction each.

Identity (one rule for the store, the outputs and the skip logic):

* a **computation** is a run id: a hash of everything that determines a result (model, data and
  split hashes, method, resolved training settings, device; see ``study.run_id_for``).  The study
  name and the run's label are not part of it.  A computation that finished once is not trained
  again unless ``--force``: any study row that asks for it reuses the stored result (a copy of the
  record and its predictions, marked ``reused_from``).
* a **row** of a study is ``(study name, run label)``.  Its current result is its newest
  ``finished`` attempt, else its newest attempt of any status.  A study's outputs show the rows of
  its latest plan (``set_plan``), in plan order; rows of an older plan stay in the store.
* **attempts are never overwritten**: every run that ends (finished, diverged, failed,
  interrupted, pruned) adds an attempt.  A finished result is replaced only by a newer finished
  attempt of the same row and computation (``--force``); an unfinished attempt is kept beside it
  as history and never hides it.

Tables: ``attempts`` (one row per attempt, the whole record as JSON), ``attempt_predictions``
(test labels and probabilities of an attempt), ``plans`` (each study's latest list of run labels),
and the view ``runs`` (the current attempt of each row).  A store written before this layout (one
row per run id) is migrated on open, in one transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tunebench.errors import StoreError, first_line

VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL,
    study       TEXT NOT NULL,
    label       TEXT NOT NULL,
    position    INTEGER NOT NULL,
    strategy    TEXT NOT NULL,
    status      TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_row ON attempts (study, label);
CREATE INDEX IF NOT EXISTS attempts_by_run ON attempts (run_id, status);
CREATE TABLE IF NOT EXISTS attempt_predictions (
    attempt_id    INTEGER PRIMARY KEY REFERENCES attempts(id) ON DELETE CASCADE,
    split         TEXT NOT NULL,
    labels        TEXT NOT NULL,
    probabilities TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plans (
    study      TEXT PRIMARY KEY,
    labels     TEXT NOT NULL,
    planned_at TEXT NOT NULL
);
CREATE VIEW IF NOT EXISTS runs AS
    SELECT id, run_id, study, label, position, strategy, status, finished_at, record FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY study, label
                                     ORDER BY status = 'finished' DESC, finished_at DESC, id DESC) AS newest
        FROM attempts)
    WHERE newest = 1;
"""

STORE_NAME = "tunebench.sqlite"


class Store:
    """A small SQLite store; open it with ``Store(path)`` and use it as a context manager."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        """``readonly``: only read (``report``, ``store check``); a store of the first layout is still
        migrated, which writes, so it must then be writable like any store a command writes."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        version = None
        if self.path.exists():
            check_store(self.path)  # read-only, before anything could write into a damaged file
            version = recognise(self.path)  # read-only too: a store of another tool or a newer layout
        if readonly and version == VERSION:
            self._db = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True, timeout=30)
            return
        if self.path.exists():
            check_writable(self.path)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        if self._db.execute("PRAGMA user_version").fetchone()[0] != VERSION:
            self._create()

    def _create(self) -> None:
        """Create the tables (migrating a store of the first layout) in one transaction."""
        self._db.isolation_level = None  # explicit BEGIN/COMMIT: DDL included in the transaction
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if _has_table(self._db, "runs", kind="table"):  # the layout before attempts
                    _migrate_v1(self._db)
                for statement in _statements(SCHEMA):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={VERSION}")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        finally:
            self._db.isolation_level = ""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db:  # commits on success, rolls back on error
            yield self._db

    # --- writing -------------------------------------------------------------------------------

    def put(self, record: dict[str, Any], labels: list[int] | None = None,
            probabilities: list[list[float]] | None = None) -> int:
        """Add one attempt (and its test predictions) atomically; return its id.

        A ``finished`` attempt replaces the older finished attempts of the same row and computation
        (a ``--force`` rerun); nothing else is ever removed.
        """
        record = {k: v for k, v in record.items() if k != "attempt"}
        label = label_of(record)
        with self._transaction() as db:
            if record["status"] == "finished":
                db.execute("DELETE FROM attempts WHERE study = ? AND label = ? AND run_id = ? AND status = 'finished'",
                           (record["study"], label, record["run_id"]))
            cursor = db.execute(
                "INSERT INTO attempts (run_id, study, label, position, strategy, status, finished_at, record) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (record["run_id"], record["study"], label, record["position"], record["strategy"],
                 record["status"], record["finished_at"], json.dumps(record)),
            )
            attempt = int(cursor.lastrowid)
            if labels is not None and probabilities is not None:
                db.execute("INSERT INTO attempt_predictions (attempt_id, split, labels, probabilities) "
                           "VALUES (?, ?, ?, ?)", (attempt, "test", json.dumps(labels), json.dumps(probabilities)))
        return attempt

    def reuse(self, source: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        """Store a finished result again under another row (``fields``: study, label, position, ...).

        The computation is the same (same run id), so its record and predictions are copied, not
        recomputed; ``reused_from`` names the attempt they came from.
        """
        stored = self.predictions_of(source)
        record = {**{k: v for k, v in source.items() if k != "attempt"}, **fields,
                  "reused_from": {"study": source["study"], "label": label_of(source),
                                  "finished_at": source["finished_at"]},
                  "finished_at": now()}
        labels, probabilities = stored if stored is not None else (None, None)
        attempt = self.put(record, labels, probabilities)
        return {**record, "attempt": attempt}

    def set_plan(self, study: str, labels: list[str]) -> None:
        """The run labels of ``study``'s latest plan, in order: what its outputs show."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO plans (study, labels, planned_at) VALUES (?, ?, ?)",
                       (study, json.dumps(list(labels)), now()))

    # --- reading -------------------------------------------------------------------------------

    def finished(self, run_id: str) -> bool:
        """True when the computation ``run_id`` has a finished attempt (in any study)."""
        return self.finished_result(run_id) is not None

    def finished_result(self, run_id: str) -> dict[str, Any] | None:
        """The newest finished attempt of the computation ``run_id``, in any study, or None."""
        row = self._db.execute("SELECT id, record FROM attempts WHERE run_id = ? AND status = 'finished' "
                               "ORDER BY finished_at DESC, id DESC LIMIT 1", (run_id,)).fetchone()
        return None if row is None else _record(row, self.path)

    def current(self, study: str, label: str) -> dict[str, Any] | None:
        """The current result of one row of a study, or None."""
        row = self._db.execute("SELECT id, record FROM runs WHERE study = ? AND label = ?", (study, label)).fetchone()
        return None if row is None else _record(row, self.path)

    def plan(self, study: str) -> list[str] | None:
        row = self._db.execute("SELECT labels FROM plans WHERE study = ?", (study,)).fetchone()
        return None if row is None else json.loads(row[0])

    def latest_study(self, among: list[str]) -> str | None:
        """The most recently planned of the studies ``among``, or None if none has a plan."""
        rows = self._db.execute("SELECT study FROM plans ORDER BY planned_at DESC").fetchall()
        return next((name for (name,) in rows if name in among), None)

    def records(self, study: str | None = None) -> list[dict[str, Any]]:
        """The current result of every row (of ``study`` if given), each study limited to its latest
        plan's rows in plan order; studies without a stored plan show all their rows."""
        query, args = "SELECT id, record FROM runs", ()
        if study is not None:
            query, args = query + " WHERE study = ?", (study,)
        rows = [_record(r, self.path) for r in self._db.execute(query + " ORDER BY position, finished_at, id", args)]
        plans = {name: self.plan(name) for name in {r["study"] for r in rows}}
        kept = []
        for r in rows:
            order = plans[r["study"]]
            if order is None or label_of(r) in order:
                kept.append(r)
        return sorted(kept, key=lambda r: (r["study"], _place(plans[r["study"]], r)))

    def history(self, study: str | None = None) -> list[dict[str, Any]]:
        """Every attempt (of ``study`` if given), oldest first."""
        query, args = "SELECT id, record FROM attempts", ()
        if study is not None:
            query, args = query + " WHERE study = ?", (study,)
        return [_record(r, self.path) for r in self._db.execute(query + " ORDER BY finished_at, id", args)]

    def predictions_of(self, record: dict[str, Any]) -> tuple[list[int], list[list[float]]] | None:
        """The test predictions of a record read from this store (its ``attempt``)."""
        if record.get("attempt") is None:
            return self.predictions(record["run_id"])
        row = self._db.execute("SELECT labels, probabilities FROM attempt_predictions WHERE attempt_id = ?",
                               (record["attempt"],)).fetchone()
        return None if row is None else (json.loads(row[0]), json.loads(row[1]))

    def predictions(self, run_id: str) -> tuple[list[int], list[list[float]]] | None:
        """The test predictions of the newest finished attempt of the computation ``run_id``."""
        row = self._db.execute(
            "SELECT p.labels, p.probabilities FROM attempt_predictions p JOIN attempts a ON a.id = p.attempt_id "
            "WHERE a.run_id = ? AND a.status = 'finished' ORDER BY a.finished_at DESC, a.id DESC LIMIT 1",
            (run_id,)).fetchone()
        return None if row is None else (json.loads(row[0]), json.loads(row[1]))


def damage(path: Path) -> str | None:
    """What is wrong with the SQLite file at ``path`` (read only: ``PRAGMA quick_check``), or None."""
    try:
        db = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        return first_line(exc, 120)
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
        problems = [r[0] for r in rows if r[0] != "ok"]
        return "; ".join(problems)[:160] if problems else None
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            return None  # in use, not damaged: the study lock says who holds it
        return first_line(exc, 120)
    finally:
        db.close()


def check_store(path: Path) -> None:
    """Raise one :class:`StoreError` sentence when the store at ``path`` is damaged."""
    problem = damage(path)
    if problem is not None:
        raise StoreError(f"the study store '{path}' is damaged ({problem}); nothing was written to it; "
                         f"'tunebench store repair {path.parent}' copies what can still be read into a new store "
                         "and keeps the damaged file beside it")


#: the columns of the first layout's ``runs`` table (``_migrate_v1``)
V1_COLUMNS = {"run_id", "study", "position", "strategy", "status", "finished_at", "record"}
#: the tables of this layout
TABLES = {"attempts", "attempt_predictions", "plans"}


def recognise(path: Path) -> int | None:
    """The layout of the store at ``path`` (``VERSION``; 0 for the first layout; None for an empty file),
    read only; one :class:`StoreError` sentence for a file tunebench did not write (another tool's SQLite,
    a newer layout): no command writes to a store it does not recognise."""
    db = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=30)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                                                 "AND name NOT LIKE 'sqlite_%'")}
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"the study store '{path}' cannot be read ({first_line(exc, 120)}); nothing was written "
                         "to it") from None
    finally:
        db.close()
    if version > VERSION:
        raise StoreError(f"the study store '{path}' was written by a newer tunebench (layout {version}; this one "
                         f"knows up to {VERSION}); nothing was written to it; use that version, or choose another "
                         "--output")
    if version == VERSION and tables >= TABLES:
        return VERSION
    if version == 0 and not tables:
        return None  # an empty SQLite file: a new store
    if version == 0 and columns >= V1_COLUMNS and "attempts" not in tables:
        return 0
    if version == 0 and tables >= TABLES:  # this layout, its version not yet set (a repair's new copy)
        return 0
    shown = ", ".join(sorted(tables)[:8]) or "none"
    raise StoreError(f"'{path}' is not a tunebench study store (layout {version}, tables: {shown}); nothing was "
                     "written to it; move it away or choose another --output")


def check_writable(path: Path) -> None:
    """One sentence when a command that writes the store may not: a read-only file stays read-only."""
    if not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222:
        raise StoreError(f"the study store '{path}' is read-only; nothing was written to it; make it writable "
                         f"(chmod u+w '{path}') or choose another --output")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreError(f"the folder '{path.parent}' of the study store is read-only (SQLite writes its journal "
                         "beside the store); nothing was written; choose another --output")


def check_store_writable(path: Path) -> None:
    """What ``Store(path)`` checks before writing, read only: one sentence if it would refuse."""
    if path.exists():
        check_store(path)
        recognise(path)
        check_writable(path)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def label_of(record: dict[str, Any]) -> str:
    """A stored run's name in its study (records from before sweeps have only a strategy)."""
    return record.get("label", record["strategy"])


def _record(row: tuple[int, str], path: Path) -> dict[str, Any]:
    """A stored record with the id of its attempt (``attempt``: not part of the stored JSON)."""
    try:
        record = json.loads(row[1])
    except ValueError:
        record = None
    if not isinstance(record, dict) or not {"run_id", "study", "status", "strategy"} <= record.keys():
        raise StoreError(f"the study store '{path}' holds an unreadable record (attempt {row[0]}); nothing was "
                         f"written to it; 'tunebench store repair {path.parent}' copies the readable records into "
                         "a new store and keeps the damaged file beside it")
    return {**record, "attempt": int(row[0])}


def _place(order: list[str] | None, record: dict[str, Any]) -> int:
    """A row's place in its study: in its latest plan, else (no plan stored) its position."""
    return record["position"] if order is None else order.index(label_of(record))


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _has_table(db: sqlite3.Connection, name: str, kind: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?", (kind, name)).fetchone() is not None


def _migrate_v1(db: sqlite3.Connection) -> None:
    """Move a store of the first layout (``runs`` keyed by run id, ``predictions``) into attempts."""
    for statement in _statements(SCHEMA.split("CREATE VIEW")[0]):  # the tables; the view takes the old name
        db.execute(statement)
    old = db.execute("SELECT run_id, study, position, strategy, status, finished_at, record FROM runs "
                     "ORDER BY finished_at").fetchall()
    for run_id, study, position, strategy, status, finished_at, text in old:
        label = json.loads(text).get("label", strategy)
        cursor = db.execute(
            "INSERT INTO attempts (run_id, study, label, position, strategy, status, finished_at, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (run_id, study, label, position, strategy, status, finished_at, text))
        if _has_table(db, "predictions", kind="table"):
            db.execute("INSERT INTO attempt_predictions (attempt_id, split, labels, probabilities) "
                       "SELECT ?, split, labels, probabilities FROM predictions WHERE run_id = ?",
                       (cursor.lastrowid, run_id))
    db.execute("DROP TABLE IF EXISTS predictions")
    db.execute("DROP TABLE runs")
