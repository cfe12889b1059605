"""The factory manifest: which device ID went to which board, in one SQLite file.

Rules that keep it consistent under threads, several processes and a kill at any moment:

- Every change is one transaction (`BEGIN IMMEDIATE`, so two writers queue instead of racing).
- An ID is claimed in the same transaction that binds it to a board (by unique ID), right before
  the first identity byte is sent. A claim is never released: the ID stays with that board until
  the board finishes (`done`), so an ID can never end up on two boards, even when a run was
  killed after the identity reached the board but before the manifest heard of it.
- A board is at most one row (unique index on `board_id`): a board seen again is recognised,
  and resumes (claimed, failed) or is skipped (done) with its own ID.
- Nothing secret is stored: the credential appears as its fingerprint only.

Statuses: `pending` (not handed out), `claimed` (bound to a board, work in progress or
interrupted), `failed` (bound to a board whose last attempt failed; retried when it comes back),
`done`.
"""

import datetime
import json
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from iotcprov.errors import InputError, OperationError
from iotcprov.factory.devices import DeviceEntry

DEFAULT_MANIFEST = "iotcprov-factory.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

PENDING, CLAIMED, FAILED, DONE = "pending", "claimed", "failed", "done"
STATUSES = (PENDING, CLAIMED, FAILED, DONE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY COLLATE NOCASE,
    position INTEGER NOT NULL UNIQUE,
    model_id TEXT,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'claimed', 'failed', 'done')),
    stage TEXT,
    board_id TEXT,
    port TEXT,
    auth TEXT,
    fingerprint TEXT,
    firmware_version TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_id TEXT,
    added_at TEXT NOT NULL,
    claimed_at TEXT,
    updated_at TEXT,
    finished_at TEXT,
    error TEXT,
    CHECK ((status = 'pending') = (board_id IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_board ON devices (board_id) WHERE board_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS devices_pending ON devices (status, position);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    host TEXT,
    pid INTEGER,
    settings TEXT,
    outcome TEXT
);
"""


def now_utc() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A bound setting whose name is not its command-line option.
_SETTING_OPTIONS = {"auth": "--group-key/--ca-cert"}


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    position: int
    model_id: str | None
    status: str
    stage: str | None
    board_id: str | None
    port: str | None
    auth: str | None
    fingerprint: str | None
    firmware_version: str | None
    attempts: int
    run_id: str | None
    added_at: str
    claimed_at: str | None
    updated_at: str | None
    finished_at: str | None
    error: str | None

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_COLUMNS = ", ".join(f.name for f in fields(DeviceRecord))


@dataclass(frozen=True)
class Counts:
    pending: int = 0
    claimed: int = 0
    failed: int = 0
    done: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.claimed + self.failed + self.done


class Manifest:
    """An open manifest. Thread-safe (one connection behind a lock); process-safe through SQLite."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(
                f"--manifest: {self.path} is a folder; give a file name, e.g. {DEFAULT_MANIFEST}"
            )
        if not self.path.parent.is_dir():
            raise InputError(f"--manifest: the folder {self.path.parent} does not exist; create it first")
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            with self._transaction() as db:
                for statement in _SCHEMA.split(";"):  # executescript would commit on its own
                    if statement.strip():
                        db.execute(statement)
                version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if version is None:
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif int(version[0]) != SCHEMA_VERSION:
                    raise InputError(
                        f"--manifest: {self.path} has schema {version[0]}; "
                        f"this iotcprov reads {SCHEMA_VERSION}"
                    )
        except sqlite3.DatabaseError as error:
            raise InputError(f"--manifest: {self.path} is not a usable SQLite manifest ({error})") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            raise OperationError(
                f"--manifest: {self.path}: {error}; is the disk full or read-only?"
            ) from None
        finally:
            self._lock.release()

    # --- settings that must not change between runs on one manifest --------------------------------

    def bind_settings(self, **settings: str) -> None:
        """Record settings on the first run; refuse a later run whose settings differ."""
        with self._transaction() as db:
            for name, value in settings.items():
                found = db.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
                if found is None:
                    db.execute("INSERT INTO meta VALUES (?, ?)", (name, value))
                elif found[0] != value:
                    option = _SETTING_OPTIONS.get(name, "--" + name.replace("_", "-"))
                    raise InputError(
                        f"{option}: the manifest {self.path} was started with "
                        f"{found[0]!r}, not {value!r}; use the same setting or another --manifest"
                    )

    # --- device IDs ----------------------------------------------------------------------------------

    def add_devices(self, entries: Sequence[DeviceEntry]) -> int:
        """Add IDs not yet in the manifest (in order, after the existing ones); returns how many.

        An ID already present keeps its row; a different model ID for it is refused."""
        added = 0
        stamp = now_utc()
        with self._transaction() as db:
            position = db.execute("SELECT COALESCE(MAX(position), 0) FROM devices").fetchone()[0]
            for entry in entries:
                found = db.execute(
                    "SELECT device_id, model_id FROM devices WHERE device_id = ?", (entry.device_id,)
                ).fetchone()
                if found is not None:
                    if found[1] != entry.model_id:
                        where = f"line {entry.line}: " if entry.line else ""
                        raise InputError(
                            f"--devices: {where}device {entry.device_id!r} is in the manifest with model "
                            f"{found[1]!r}, not {entry.model_id!r}; keep the model or use another --manifest"
                        )
                    continue
                position += 1
                db.execute(
                    "INSERT INTO devices (device_id, position, model_id, added_at) VALUES (?, ?, ?, ?)",
                    (entry.device_id, position, entry.model_id, stamp),
                )
                added += 1
        return added

    def counts(self) -> Counts:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM devices GROUP BY status").fetchall()
        return Counts(**dict(rows))

    def pending_left(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM devices WHERE status = 'pending'").fetchone()[0]

    def records(self, status: str | None = None) -> list[DeviceRecord]:
        query = f"SELECT {_COLUMNS} FROM devices"
        args: tuple = ()
        if status is not None:
            query += " WHERE status = ?"
            args = (status,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY position", args).fetchall()
        return [DeviceRecord(*row) for row in rows]

    def for_board(self, board_id: str) -> DeviceRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM devices WHERE board_id = ?", (board_id,)
            ).fetchone()
        return DeviceRecord(*row) if row else None

    # --- the life of a claim ---------------------------------------------------------------------------

    def claim(self, board_id: str, port: str, run_id: str, *, again: bool = False) -> DeviceRecord | None:
        """The ID for `board_id`, bound to it in one transaction.

        The board's own row if it has one (claimed or failed: resumed; done: only with `again`,
        else None), otherwise the first pending ID (None when none is left)."""
        stamp = now_utc()
        with self._transaction() as db:
            own = db.execute(
                "SELECT device_id, status FROM devices WHERE board_id = ?", (board_id,)
            ).fetchone()
            if own is not None:
                device_id, status = own
                if status == DONE and not again:
                    return None
            else:
                first = db.execute(
                    "SELECT device_id FROM devices WHERE status = 'pending' ORDER BY position LIMIT 1"
                ).fetchone()
                if first is None:
                    return None
                device_id = first[0]
            db.execute(
                "UPDATE devices SET status = 'claimed', stage = 'claimed', board_id = ?, port = ?,"
                " run_id = ?, attempts = attempts + 1, claimed_at = COALESCE(claimed_at, ?),"
                " updated_at = ?, error = NULL"
                " WHERE device_id = ?",
                (board_id, port, run_id, stamp, stamp, device_id),
            )
            row = db.execute(f"SELECT {_COLUMNS} FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return DeviceRecord(*row)

    def update(self, device_id: str, board_id: str, **values: str | None) -> None:
        """Set stage / auth / fingerprint / firmware_version of a claim held by `board_id`."""
        allowed = {"stage", "auth", "fingerprint", "firmware_version", "port"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"not manifest fields: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self._transaction() as db:
            self._update_own(db, device_id, board_id, assignments, (*values.values(),), status=CLAIMED)

    def finish(
        self, device_id: str, board_id: str, *, fingerprint: str, firmware_version: str | None
    ) -> None:
        stamp = now_utc()
        with self._transaction() as db:
            self._update_own(
                db, device_id, board_id,
                "status = 'done', stage = 'done', fingerprint = ?, firmware_version = ?, finished_at = ?,"
                " error = NULL",
                (fingerprint, firmware_version, stamp),
            )  # fmt: skip

    def fail(self, device_id: str, board_id: str, *, stage: str, error: str) -> None:
        with self._transaction() as db:
            self._update_own(
                db, device_id, board_id, "status = 'failed', stage = ?, error = ?", (stage, error)
            )

    def _update_own(
        self, db: sqlite3.Connection, device_id: str, board_id: str, assignments: str, values: tuple,
        status: str | None = None,
    ) -> None:  # fmt: skip
        """Change a row only while `board_id` holds it (a claim is never taken over)."""
        set_status = f", status = '{status}'" if status else ""
        changed = db.execute(
            f"UPDATE devices SET {assignments}{set_status}, updated_at = ?"
            " WHERE device_id = ? AND board_id = ?",
            (*values, now_utc(), device_id, board_id),
        ).rowcount
        if changed != 1:
            raise OperationError(f"manifest: device {device_id} is not held by board {board_id}")

    # --- runs --------------------------------------------------------------------------------------------

    def start_run(self, settings: dict) -> str:
        run_id = uuid.uuid4().hex[:12]
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs (run_id, started_at, host, pid, settings) VALUES (?, ?, ?, ?, ?)",
                (run_id, now_utc(), socket.gethostname(), os.getpid(), json.dumps(settings, sort_keys=True)),
            )
        return run_id

    def end_run(self, run_id: str, outcome: dict) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET ended_at = ?, outcome = ? WHERE run_id = ?",
                (now_utc(), json.dumps(outcome, sort_keys=True), run_id),
            )

    def runs(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, started_at, ended_at, host, pid, settings, outcome"
                " FROM runs ORDER BY started_at"
            ).fetchall()
        names = ("run_id", "started_at", "ended_at", "host", "pid", "settings", "outcome")
        return [dict(zip(names, row, strict=True)) for row in rows]


def open_existing(path: str | Path) -> Manifest:
    """A manifest that must already exist (for reports)."""
    if not Path(path).is_file():
        raise InputError(f"--manifest: {path} does not exist; give the manifest a factory run wrote")
    return Manifest(path)
