"""The factory manifest: which device ID went to which board, through one interface.

Two back-ends keep the same rows with the same meaning: SQLite (the embedded default, one file,
`manifest_sqlite`) and PostgreSQL (one database shared by stations on many PCs,
`manifest_postgres`, needs psycopg). `open_manifest` picks one from `--manifest`.

Rules that keep it consistent under threads, several processes, several stations and a kill at
any moment:

- Every change is one transaction (SQLite: `BEGIN IMMEDIATE`, writers queue; PostgreSQL: row
  locks, the next pending ID taken with `FOR UPDATE SKIP LOCKED`).
- An ID is claimed in the same transaction that binds it to a board (by unique ID) and names the
  station, right before the first identity byte is sent. The ID then stays with that board until
  the board finishes (`done`), so an ID can never end up on two boards, even when a station was
  killed after the identity reached the board but before the manifest heard of it.
- A claim in the hands of another station is not taken over while that station may still be
  working on it. A stale claim (no update for `--claim-timeout`, or `factory release --station`)
  is released, never silently: if no identity byte was sent yet (stage `claimed`) the ID goes back
  to `pending` and is reissued; otherwise it stays bound to its board as `failed`, and the board
  resumes with it at any station.
- A board is at most one row (unique index on `board_id`): a board seen again is recognised,
  and resumes (claimed, failed) or is skipped (done) with its own ID.
- Nothing secret is stored: credentials appear as fingerprints only.

Statuses: `pending` (not handed out), `claimed` (bound to a board, work in progress or
interrupted), `failed` (bound to a board whose last attempt failed; retried when it comes back),
`done`.
"""

import datetime
import json
import os
import re
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar

from iotcprov.errors import InputError, OperationError
from iotcprov.factory.devices import DeviceEntry

DEFAULT_MANIFEST = "iotcprov-factory.sqlite"
MANIFEST_ENV = "IOTCPROV_MANIFEST"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_CLAIM_TIMEOUT = 900.0  # seconds without an update before another station may release a claim

T = TypeVar("T")

PENDING, CLAIMED, FAILED, DONE = "pending", "claimed", "failed", "done"
STATUSES = (PENDING, CLAIMED, FAILED, DONE)


def now_utc() -> str:
    return _stamp(datetime.datetime.now(datetime.UTC))


def _stamp(moment: datetime.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_ago(seconds: float) -> str:
    """A timestamp `seconds` before now, comparable (as text) with the manifest's timestamps."""
    return _stamp(datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds))


def default_station() -> str:
    return socket.gethostname() or "station"


def is_postgres(location: str | Path) -> bool:
    return str(location).startswith(POSTGRES_SCHEMES)


# Where a DSN holds its password: in the URL's user info, or as a `password=` parameter.
_URL_PASSWORD = re.compile(r"^(postgres(?:ql)?://[^:/@?]*):([^@/?]*)@")
_PARAM_PASSWORD = re.compile(r"(?i)(password=)([^&\s]*)")


def redact(location: str | Path) -> str:
    """A manifest location fit to print: a DSN's password (URL or `password=`) becomes ***."""
    text = _URL_PASSWORD.sub(r"\1:***@", str(location))
    return _PARAM_PASSWORD.sub(r"\1***", text)


def dsn_password(dsn: str) -> str | None:
    """The password a DSN holds, to take it out of messages that quote the DSN's parts."""
    match = _URL_PASSWORD.match(dsn) or _PARAM_PASSWORD.search(dsn)
    return match[2] if match and match[2] else None


# A bound setting whose name is not its command-line option.
_SETTING_OPTIONS = {"auth": "--group-key/--ca-cert", "credential": "--group-key/--ca-cert"}


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
    station: str | None = None

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


COLUMNS = ", ".join(f.name for f in fields(DeviceRecord))


@dataclass(frozen=True)
class Counts:
    pending: int = 0
    claimed: int = 0
    failed: int = 0
    done: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.claimed + self.failed + self.done


@dataclass(frozen=True)
class Released:
    """A stale claim given up: `reissued` (back to pending) or kept by its board as failed."""

    record: DeviceRecord  # as it was before the release
    reissued: bool

    def as_fields(self) -> dict:
        """For events, the audit log and output: what happened to the ID, and whose claim it was."""
        return {
            "device": self.record.device_id,
            "board": self.record.board_id,
            "held_by": self.record.station,
            "held_port": self.record.port,
            "stage": self.record.stage,
            "last_change": self.record.updated_at,
            "action": "reissued" if self.reissued else "kept by its board (resumes with it)",
        }


class ClaimHeld(OperationError):
    """The board's ID is being worked on by another station that may still be alive."""


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list: ...


class Db(Protocol):
    """What a transaction offers the shared logic: SQL with `?` placeholders."""

    def execute(self, sql: str, args: Sequence = ()) -> Cursor: ...


class Manifest(ABC):
    """An open manifest: every back-end runs this logic; it supplies transactions and dialect."""

    location: str  # for messages: a path, or a DSN with its password redacted
    station: str
    #: appended to the SELECT that picks a row to change (PostgreSQL: row locks).
    lock_rows: str = ""
    lock_rows_skip: str = ""
    #: the same device ID whatever its case, by an index: SQLite's key is COLLATE NOCASE
    same_id: str = "device_id = ?"

    # --- what a back-end supplies -------------------------------------------------------------------

    @abstractmethod
    def _atomic(self, work: Callable[[Db], T]) -> T:
        """`work` in one transaction, rolled back on any exception. A back-end may run `work`
        again after a lost connection: every `work` here is safe to repeat."""

    @abstractmethod
    def _query(self, work: Callable[[Db], T]) -> T:
        """`work` that only reads."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- settings that must not change between runs on one manifest --------------------------------

    def bind_settings(self, **settings: str) -> None:
        """Record settings on the first run; refuse a later run whose settings differ."""

        def work(db: Db) -> None:
            for name, value in settings.items():
                found = db.execute(
                    f"SELECT value FROM meta WHERE key = ?{self.lock_rows}", (name,)
                ).fetchone()
                if found is None:
                    db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (name, value))
                elif found[0] != value:
                    option = _SETTING_OPTIONS.get(name, "--" + name.replace("_", "-"))
                    raise InputError(
                        f"{option}: the manifest {self.location} was started with "
                        f"{found[0]!r}, not {value!r}; use the same setting or another --manifest"
                    )

        self._atomic(work)

    # --- device IDs ----------------------------------------------------------------------------------

    def add_devices(self, entries: Sequence[DeviceEntry]) -> int:
        """Add IDs not yet in the manifest (in order, after the existing ones); returns how many.

        An ID already present keeps its row; a different model ID for it is refused."""
        stamp = now_utc()

        def work(db: Db) -> int:
            added = 0
            self._lock_for_adding(db)
            position = db.execute("SELECT COALESCE(MAX(position), 0) FROM devices").fetchone()[0]
            for entry in entries:
                found = db.execute(
                    f"SELECT device_id, model_id FROM devices WHERE {self.same_id}",
                    (entry.device_id,),
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

        return self._atomic(work)

    def _lock_for_adding(self, db: Db) -> None:  # noqa: B027 (SQLite needs nothing more)
        """Positions are handed out one adder at a time (SQLite: the write lock already does it)."""

    def counts(self) -> Counts:
        rows = self._query(
            lambda db: db.execute("SELECT status, COUNT(*) FROM devices GROUP BY status").fetchall()
        )
        return Counts(**{status: int(count) for status, count in rows})

    def pending_left(self) -> int:
        count = "SELECT COUNT(*) FROM devices WHERE status = 'pending'"
        return int(self._query(lambda db: db.execute(count).fetchone()[0]))

    def records(
        self, status: str | None = None, *, station: str | None = None,
        since: str | None = None, until: str | None = None,
    ) -> list[DeviceRecord]:  # fmt: skip
        """Rows in manifest order; `since`/`until` (ISO UTC) select by the last change."""
        conditions, args = [], []
        for condition, value in (
            ("status = ?", status), ("station = ?", station),
            ("COALESCE(finished_at, updated_at, claimed_at) >= ?", since),
            ("COALESCE(finished_at, updated_at, claimed_at) < ?", until),
        ):  # fmt: skip
            if value is not None:
                conditions.append(condition)
                args.append(value)
        where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
        query = f"SELECT {COLUMNS} FROM devices{where} ORDER BY position"
        rows = self._query(lambda db: db.execute(query, args).fetchall())
        return [DeviceRecord(*row) for row in rows]

    def for_board(self, board_id: str) -> DeviceRecord | None:
        query = f"SELECT {COLUMNS} FROM devices WHERE board_id = ?"
        row = self._query(lambda db: db.execute(query, (board_id,)).fetchone())
        return DeviceRecord(*row) if row else None

    # --- the life of a claim ---------------------------------------------------------------------------

    def claim(
        self, board_id: str, port: str, run_id: str, *, again: bool = False,
        claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
    ) -> DeviceRecord | None:  # fmt: skip
        """The ID for `board_id`, bound to it and to this station in one transaction.

        The board's own row if it has one (claimed or failed: resumed; done: only with `again`,
        else None), otherwise the first pending ID (None when none is left). A row another
        station claimed less than `claim_timeout` seconds ago raises ClaimHeld."""
        stamp = now_utc()

        def work(db: Db) -> DeviceRecord | None:
            own = db.execute(
                "SELECT device_id, status, station, updated_at FROM devices WHERE board_id = ?"
                + self.lock_rows,
                (board_id,),
            ).fetchone()
            if own is not None:
                device_id, status, holder, updated_at = own
                if status == DONE and not again:
                    return None
                if (
                    status == CLAIMED and holder not in (None, self.station)
                    and (updated_at or "") >= seconds_ago(claim_timeout)
                ):  # fmt: skip
                    raise ClaimHeld(
                        f"board {board_id}: its device {device_id} is being worked on by station {holder!r} "
                        f"(last change {updated_at}); wait --claim-timeout ({claim_timeout:g} s) or run "
                        f"`iotcprov factory release --station {holder}` if that station is down"
                    )
            else:
                first = db.execute(
                    "SELECT device_id FROM devices WHERE status = 'pending' ORDER BY position LIMIT 1"
                    + self.lock_rows_skip
                ).fetchone()
                if first is None:
                    return None
                device_id = first[0]
            db.execute(
                "UPDATE devices SET status = 'claimed', stage = 'claimed', board_id = ?, port = ?,"
                " run_id = ?, station = ?, attempts = attempts + 1, claimed_at = COALESCE(claimed_at, ?),"
                " updated_at = ?, error = NULL"
                " WHERE device_id = ?",
                (board_id, port, run_id, self.station, stamp, stamp, device_id),
            )
            row = db.execute(f"SELECT {COLUMNS} FROM devices WHERE device_id = ?", (device_id,)).fetchone()
            return DeviceRecord(*row)

        return self._atomic(work)

    def update(self, device_id: str, board_id: str, **values: str | None) -> None:
        """Set stage / auth / fingerprint / firmware_version of a claim held by `board_id`."""
        allowed = {"stage", "auth", "fingerprint", "firmware_version", "port"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"not manifest fields: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in values)
        self._atomic(
            lambda db: self._update_own(
                db, device_id, board_id, assignments, (*values.values(),), status=CLAIMED
            )
        )

    def finish(
        self, device_id: str, board_id: str, *, fingerprint: str, firmware_version: str | None
    ) -> None:
        stamp = now_utc()
        self._atomic(
            lambda db: self._update_own(
                db, device_id, board_id,
                "status = 'done', stage = 'done', fingerprint = ?, firmware_version = ?, finished_at = ?,"
                " error = NULL",
                (fingerprint, firmware_version, stamp),
            )
        )  # fmt: skip

    def fail(self, device_id: str, board_id: str, *, stage: str, error: str) -> None:
        self._atomic(
            lambda db: self._update_own(
                db, device_id, board_id, "status = 'failed', stage = ?, error = ?", (stage, error)
            )
        )

    def _update_own(
        self, db: Db, device_id: str, board_id: str, assignments: str, values: tuple,
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

    def release(self, *, station: str | None = None, older_than: float | None = None) -> list[Released]:
        """Release claims of `station` (all of them), or claims unchanged for `older_than` seconds.

        A claim whose board got no identity byte yet (stage `claimed`) goes back to pending; any
        other stays with its board as failed (the board resumes with it)."""
        if (station is None) == (older_than is None):
            raise ValueError("release: give either station or older_than")
        if station is not None:
            condition, args = "station = ?", (station,)
        else:
            condition, args = "updated_at < ?", (seconds_ago(older_than or 0.0),)
        stamp = now_utc()

        def work(db: Db) -> list[Released]:
            released = []
            rows = db.execute(
                f"SELECT {COLUMNS} FROM devices WHERE status = 'claimed' AND {condition} ORDER BY position"
                + self.lock_rows_skip,
                args,
            ).fetchall()
            for row in rows:
                record = DeviceRecord(*row)
                if record.stage == CLAIMED:
                    db.execute(
                        "UPDATE devices SET status = 'pending', stage = NULL, board_id = NULL, port = NULL,"
                        " run_id = NULL, station = NULL, claimed_at = NULL, auth = NULL, fingerprint = NULL,"
                        " updated_at = ?, error = NULL WHERE device_id = ?",
                        (stamp, record.device_id),
                    )
                else:
                    error = (
                        f"released: station {record.station!r} stopped at stage {record.stage}; "
                        "the board resumes with this ID"
                    )
                    db.execute(
                        "UPDATE devices SET status = 'failed', station = NULL, error = ?, updated_at = ?"
                        " WHERE device_id = ?",
                        (error, stamp, record.device_id),
                    )
                released.append(Released(record, reissued=record.stage == CLAIMED))
            return released

        return self._atomic(work)

    # --- runs --------------------------------------------------------------------------------------------

    def start_run(self, settings: dict) -> str:
        run_id = uuid.uuid4().hex[:12]
        row = (
            run_id, now_utc(), socket.gethostname(), os.getpid(), json.dumps(settings, sort_keys=True),
            self.station,
        )  # fmt: skip
        self._atomic(
            lambda db: db.execute(
                "INSERT INTO runs (run_id, started_at, host, pid, settings, station)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
                row,
            )
        )
        return run_id

    def end_run(self, run_id: str, outcome: dict) -> None:
        values = (now_utc(), json.dumps(outcome, sort_keys=True), run_id)
        self._atomic(
            lambda db: db.execute("UPDATE runs SET ended_at = ?, outcome = ? WHERE run_id = ?", values)
        )

    def runs(self) -> list[dict]:
        names = ("run_id", "started_at", "ended_at", "host", "pid", "settings", "outcome", "station")
        query = f"SELECT {', '.join(names)} FROM runs ORDER BY started_at"
        rows = self._query(lambda db: db.execute(query).fetchall())
        return [dict(zip(names, row, strict=True)) for row in rows]


def open_manifest(location: str | Path, *, station: str | None = None, must_exist: bool = False) -> Manifest:
    """The manifest at `location`: a `postgresql://` DSN, or a SQLite file path."""
    station = station if station is not None else default_station()
    check_station(station)
    if is_postgres(location):
        from iotcprov.factory.manifest_postgres import PostgresManifest

        return PostgresManifest(str(location), station=station, must_exist=must_exist)
    from iotcprov.factory.manifest_sqlite import SqliteManifest

    if must_exist and not Path(location).is_file():
        raise InputError(f"--manifest: {location} does not exist; give the manifest a factory run wrote")
    return SqliteManifest(location, station=station)


def open_existing(location: str | Path, *, station: str | None = None) -> Manifest:
    """A manifest that must already exist (for reports)."""
    return open_manifest(location, station=station, must_exist=True)


def check_station(station: str) -> None:
    if not station.strip() or len(station) > 64 or any(ord(c) < 32 for c in station):
        raise InputError(f"--station: {station!r} is not a usable name; give 1 to 64 printable characters")
