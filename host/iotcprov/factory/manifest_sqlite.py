"""The embedded manifest back-end: one SQLite file (WAL), safe across threads and processes."""

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from iotcprov.errors import InputError, OperationError
from iotcprov.factory.manifest import DEFAULT_MANIFEST, Db, Manifest, T, default_station
from iotcprov.factory.manifest_schema import migrate

BUSY_TIMEOUT_MS = 30_000


class SqliteManifest(Manifest):
    """Thread-safe (one connection behind a lock); process-safe through SQLite's write lock."""

    def __init__(self, path: str | Path, *, station: str | None = None) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.station = station if station is not None else default_station()
        if self.path.is_dir():
            raise InputError(
                f"--manifest: {self.path} is a folder; give a file name, e.g. {DEFAULT_MANIFEST}"
            )
        if not self.path.parent.is_dir():
            raise InputError(f"--manifest: the folder {self.path.parent} does not exist; create it first")
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        try:
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._atomic(
                lambda db: migrate(
                    db.execute, lambda sql: db.execute(sql).fetchone(), "sqlite", self.location
                )
            )
        except sqlite3.DatabaseError as error:
            self.close()
            raise InputError(f"--manifest: {self.path} is not a usable SQLite manifest ({error})") from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    def _atomic(self, work: Callable[[Db], T]) -> T:
        assert self._db is not None
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return result
            except sqlite3.OperationalError as error:
                raise OperationError(
                    f"--manifest: {self.path}: {error}; is the disk full or read-only?"
                ) from None

    def _query(self, work: Callable[[Db], T]) -> T:
        assert self._db is not None
        with self._lock:
            return work(self._db)
