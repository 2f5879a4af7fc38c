"""The study store: SQLite in the output folder, one row per run, written in one transaction.

A run's row holds its whole record (config, metrics, curves, resources, environment) as JSON,
and its test predictions in a second table.  A row is written only when the run has ended, so a
study that stops half-way keeps every finished run and redoes only the rest.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    study       TEXT NOT NULL,
    position    INTEGER NOT NULL,
    strategy    TEXT NOT NULL,
    status      TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    record      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS predictions (
    run_id        TEXT PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE,
    split         TEXT NOT NULL,
    labels        TEXT NOT NULL,
    probabilities TEXT NOT NULL
);
"""

STORE_NAME = "tunebench.sqlite"


class Store:
    """A small SQLite store; open it with ``Store(path)`` and use it as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

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

    def finished(self, run_id: str) -> bool:
        row = self._db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row is not None and row[0] == "finished"

    def put(self, record: dict[str, Any], labels: list[int] | None = None,
            probabilities: list[list[float]] | None = None) -> None:
        """Write one run (and its test predictions) atomically, replacing an older row."""
        with self._transaction() as db:
            db.execute("DELETE FROM runs WHERE run_id = ?", (record["run_id"],))
            db.execute(
                "INSERT INTO runs (run_id, study, position, strategy, status, finished_at, record) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record["run_id"], record["study"], record["position"], record["strategy"],
                 record["status"], record["finished_at"], json.dumps(record)),
            )
            if labels is not None and probabilities is not None:
                db.execute("INSERT INTO predictions (run_id, split, labels, probabilities) VALUES (?, ?, ?, ?)",
                           (record["run_id"], "test", json.dumps(labels), json.dumps(probabilities)))

    def records(self, study: str | None = None) -> list[dict[str, Any]]:
        """Every stored run (of ``study`` if given) in study order."""
        query = "SELECT record FROM runs"
        args: tuple[Any, ...] = ()
        if study is not None:
            query += " WHERE study = ?"
            args = (study,)
        query += " ORDER BY position, finished_at"
        return [json.loads(r[0]) for r in self._db.execute(query, args)]

    def predictions(self, run_id: str) -> tuple[list[int], list[list[float]]] | None:
        row = self._db.execute("SELECT labels, probabilities FROM predictions WHERE run_id = ?",
                               (run_id,)).fetchone()
        return None if row is None else (json.loads(row[0]), json.loads(row[1]))


def label_of(record: dict[str, Any]) -> str:
    """A stored run's name in its study (records from before sweeps have only a strategy)."""
    return record.get("label", record["strategy"])


def latest_per_label(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per run label, the newest (a re-run with --force replaces), in study order."""
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        label = label_of(r)
        if label not in latest or r["finished_at"] >= latest[label]["finished_at"]:
            latest[label] = r
    return sorted(latest.values(), key=lambda r: (r["position"], label_of(r)))
