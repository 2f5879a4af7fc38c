"""``tunebench store check`` / ``repair``: say whether a study store is damaged, and save what can be read.

Written by hand because nothing in the dependencies does it: Python's ``sqlite3`` module has no
equivalent of the ``sqlite3`` shell's ``.recover`` (and the shell is no dependency), and
``Connection.iterdump`` stops at the first unreadable page.  This copies table by table and row by
row (by rowid), so one damaged page costs the rows on it, not the rest of the store.  The damaged
file is never written to: it is opened read-only and, after the copy, renamed beside the new one.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tunebench.errors import StoreError
from tunebench.results.store import SCHEMA, STORE_NAME, VERSION, Store, _statements, check_writable, damage, recognise

#: rowids probed past the last one a damaged table still lists
PROBE = 10_000


@dataclass
class Repaired:
    store: Path
    damaged: Path | None  # None: the store was intact and nothing was changed
    copied: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)

    def sentence(self) -> str:
        if self.damaged is None:
            return f"the study store '{self.store}' is intact: nothing to repair, nothing was changed"
        parts = [f"{table} {n:,}" + (f" ({self.unreadable[table]:,} unreadable)" if self.unreadable.get(table) else "")
                 for table, n in self.copied.items()]
        return (f"copied what could be read into a new store at {self.store} ({', '.join(parts) or 'nothing'}); "
                f"the damaged file is kept as {self.damaged}")


def store_path(out_dir: Path | str) -> Path:
    out_dir = Path(out_dir)
    path = out_dir / STORE_NAME if out_dir.is_dir() else out_dir
    if not path.is_file():
        raise StoreError(f"no study store at '{path}' (expected {STORE_NAME} in a study's output folder)")
    return path


def check(out_dir: Path | str) -> str:
    """One sentence: the store is fine (with its size), or a StoreError naming the damage.  Reads only:
    the file's bytes (its layout version included) are the same afterwards."""
    path = store_path(out_dir)
    problem = damage(path)
    if problem is not None:
        raise StoreError(f"the study store '{path}' is damaged ({problem}); 'tunebench store repair {path.parent}' "
                         "copies what can still be read into a new store and keeps the damaged file beside it")
    if recognise(path) != VERSION:  # the first layout (or an empty file): counted without migrating it
        db = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            names = [n for (n,) in db.execute("SELECT study FROM runs")] if _tables(db) else []
        finally:
            db.close()
        return (f"the study store '{path}' is intact: {len(names)} run(s) in {len(set(names))} study(ies), in the "
                "first layout (the next 'tunebench run' on it migrates it)")
    with Store(path, readonly=True) as store:
        attempts = store.history()
    studies = sorted({r["study"] for r in attempts})
    return f"the study store '{path}' is intact: {len(attempts)} attempt(s) in {len(studies)} study(ies)"


def needs_repair(path: Path) -> bool:
    """Whether the store at ``path`` has anything to repair: damage SQLite sees, or a record that does not
    parse (read only; a file tunebench does not recognise is one :class:`StoreError`)."""
    if damage(path) is not None:
        return True
    recognise(path)  # another tool's file or a newer layout: refused, never "repaired" into a new store
    db = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        for name, _ in _tables(db):
            quoted = '"' + name.replace('"', '""') + '"'
            for row in db.execute(f"SELECT * FROM {quoted}"):
                if not _json_columns_parse(name, row, db):
                    return True
                if name in ("attempts", "runs") and not _is_record(row, db, name):
                    return True
    except sqlite3.DatabaseError:
        return True
    finally:
        db.close()
    return False


def _is_record(row: tuple, db: sqlite3.Connection, table: str) -> bool:
    columns = [c[1] for c in db.execute(f"PRAGMA table_info(\"{table}\")")]
    record = json.loads(dict(zip(columns, row, strict=False))["record"])
    return isinstance(record, dict) and {"run_id", "study", "status", "strategy"} <= record.keys()


def kept_name(path: Path) -> Path:
    """A name for the damaged file that no earlier repair holds (the time to the microsecond, then a count)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    for n in range(1, 10_000):
        candidate = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{n}" if n > 1 else ""))
        if not any(candidate.with_name(candidate.name + s).exists() for s in ("", "-wal", "-shm")):
            return candidate
    raise StoreError(f"no free name beside '{path}' to keep the damaged file; nothing was changed")


def repair(out_dir: Path | str) -> Repaired:
    """Copy every readable row of the store into a new file, put it in place, keep the damaged one.

    A store with nothing to repair is left as it is.  The caller holds the folder's study lock
    (``tunebench store repair`` does): a repair never runs beside a live study or another repair.
    """
    path = store_path(out_dir)
    if not needs_repair(path):
        return Repaired(path, None)
    check_writable(path)  # a read-only store stays read-only: refused, not replaced by a writable one
    damaged = kept_name(path)
    fresh = path.with_name(f"{path.name}.repairing")
    try:
        result = _copy_into(path, fresh, damaged)
        os.chmod(fresh, path.stat().st_mode & 0o7777)  # the new store keeps the old one's permissions
        for suffix in ("", "-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.rename(damaged.with_name(damaged.name + suffix))
        fresh.rename(path)
    finally:
        for suffix in ("", "-journal"):
            fresh.with_name(fresh.name + suffix).unlink(missing_ok=True)
    with Store(path):  # creates the view and anything missing, migrates a first-layout store
        pass
    return result


def _copy_into(path: Path, fresh: Path, damaged: Path) -> Repaired:
    fresh.unlink(missing_ok=True)  # left by a repair that was killed
    source = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    target = sqlite3.connect(fresh)
    result = Repaired(path, damaged)
    try:
        tables = _tables(source)
        for statement in [sql for _, sql in tables] or _statements(SCHEMA.split("CREATE VIEW")[0]):
            target.execute(statement)
        for name, _ in tables:
            copied, lost = _copy_rows(source, target, name)
            result.copied[name], result.unreadable[name] = copied, lost
        if {"attempts", "attempt_predictions"} <= {name for name, _ in tables}:  # predictions of a lost attempt
            orphans = target.execute("DELETE FROM attempt_predictions WHERE attempt_id NOT IN (SELECT id FROM attempts)")
            result.unreadable["attempt_predictions"] += orphans.rowcount
            result.copied["attempt_predictions"] -= orphans.rowcount
        target.commit()
    finally:
        source.close()
        target.close()
    return result


def _tables(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the tables the damaged file still lists (none if its schema is unreadable)."""
    try:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL "
                          "AND name NOT LIKE 'sqlite_%'").fetchall()
    except sqlite3.DatabaseError:
        return []
    return [(name, sql) for name, sql in rows]


def _copy_rows(source: sqlite3.Connection, target: sqlite3.Connection, table: str) -> tuple[int, int]:
    quoted = '"' + table.replace('"', '""') + '"'
    rowids: list[int] = []
    complete = True
    try:
        for (rowid,) in source.execute(f"SELECT rowid FROM {quoted}"):
            rowids.append(rowid)
    except sqlite3.DatabaseError:
        complete = False
    if not complete:  # the table's index pages are damaged: probe rowids one by one
        rowids = sorted(set(rowids) | set(range(1, (max(rowids) if rowids else 0) + PROBE)))
    copied = lost = 0
    for rowid in rowids:
        try:
            row = source.execute(f"SELECT rowid, * FROM {quoted} WHERE rowid = ?", (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            lost += 1
            continue
        if row is None:
            continue
        if not _json_columns_parse(table, row[1:], source):
            lost += 1
            continue
        try:
            target.execute(f"INSERT INTO {quoted} VALUES ({', '.join('?' * (len(row) - 1))})", row[1:])
            copied += 1
        except sqlite3.DatabaseError:
            lost += 1
    return copied, lost


#: tunebench's JSON columns: a row whose JSON no longer parses (a damaged overflow page) is not copied
JSON_COLUMNS = {"attempts": ("record",), "attempt_predictions": ("labels", "probabilities"), "plans": ("labels",),
                "runs": ("record",), "predictions": ("labels", "probabilities")}


def _json_columns_parse(table: str, values: tuple, db: sqlite3.Connection) -> bool:
    names = JSON_COLUMNS.get(table)
    if not names:
        return True
    columns = [c[1] for c in db.execute(f"PRAGMA table_info(\"{table}\")")]
    for name, value in zip(columns, values, strict=False):
        if name in names:
            try:
                json.loads(value)
            except (TypeError, ValueError):
                return False
    return True
