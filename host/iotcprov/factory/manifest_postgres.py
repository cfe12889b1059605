"""The shared manifest back-end: one PostgreSQL database for stations on many PCs (psycopg 3).

psycopg is imported only here, only when a `postgresql://` manifest is given, so the host tool
stays importable without it (`pip install 'iotcprov[postgres]'` adds it).

Connection trouble gives one line naming the server with the password redacted. A transaction
that fails because the connection dropped (or lost a race for a new row) is rolled back by the
server and run again on a new connection, with backoff: every manifest transaction is safe to
repeat (a claim is keyed by its board, so a claim whose commit was lost is found again as the
board's own row; an ID is never claimed by nobody).
"""

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from iotcprov.errors import InputError, OperationError
from iotcprov.factory.manifest import Db, Manifest, T, default_station, dsn_password, redact
from iotcprov.factory.manifest_schema import migrate

INSTALL_HINT = "pip install 'iotcprov[postgres]' (or: pip install 'psycopg[binary]')"
ATTEMPTS = 4  # a transaction, or the first connection
BACKOFF_S = (0.5, 1.0, 2.0)
CONNECT_TIMEOUT_S = 10
ADVISORY_LOCK = 0x10C7_9_0F  # serialises schema migrations and the numbering of new IDs

# libpq messages that retrying cannot fix: the option is wrong.
_NOT_RETRIED = ("password authentication failed", "no password supplied", "does not exist", "role ")




def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise InputError(
            f"--manifest: a postgresql:// manifest needs psycopg 3; install it: {INSTALL_HINT}"
        ) from None
    return psycopg


class _Cursor:
    """`?` placeholders (the shared SQL) on a psycopg cursor (`%s`)."""

    def __init__(self, connection: Any) -> None:
        self._cursor = connection.cursor()

    def execute(self, sql: str, args: Sequence = ()) -> Any:
        return self._cursor.execute(sql.replace("?", "%s"), tuple(args))


class PostgresManifest(Manifest):
    lock_rows = " FOR UPDATE"
    lock_rows_skip = " FOR UPDATE SKIP LOCKED"
    same_id = "lower(device_id) = lower(?)"  # the devices_id_nocase index

    def __init__(self, dsn: str, *, station: str | None = None, must_exist: bool = False) -> None:
        self._psycopg = _psycopg()
        self._dsn = dsn
        self.location = redact(dsn)
        self.station = station if station is not None else default_station()
        self._lock = threading.RLock()
        self._connection: Any = None
        self._connect()
        try:
            if (
                must_exist
                and self._query(lambda db: db.execute("SELECT to_regclass('meta')").fetchone()[0]) is None
            ):
                raise InputError(
                    f"--manifest: {self.location} holds no factory manifest yet; give the database a "
                    "factory run wrote"
                )
            self._atomic(self._migrate)
        except BaseException:
            self.close()
            raise

    def _migrate(self, db: Db) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (ADVISORY_LOCK,))
        migrate(db.execute, lambda sql: db.execute(sql).fetchone(), "postgresql", self.location)

    def _lock_for_adding(self, db: Db) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (ADVISORY_LOCK,))

    # --- connection -----------------------------------------------------------------------------------

    def _connect(self) -> None:
        for attempt in range(ATTEMPTS):
            try:
                self._connection = self._psycopg.connect(
                    self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                    keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
                    application_name=f"iotcprov factory {self.station}"[:63],
                )  # fmt: skip
                return
            except self._psycopg.OperationalError as error:
                reason = self._say(error)
                if any(text in reason for text in _NOT_RETRIED):
                    raise InputError(
                        f"--manifest: {self.location}: {reason}; check the user, password and database"
                    ) from None
                if attempt + 1 == ATTEMPTS:
                    raise OperationError(
                        f"--manifest: cannot reach PostgreSQL at {self.location} after {ATTEMPTS} attempts: "
                        f"{reason}; is the server up and the address right?"
                    ) from None
            except self._psycopg.ProgrammingError as error:  # a DSN that does not parse
                raise InputError(
                    f"--manifest: {self.location} is not a usable PostgreSQL address ({self._say(error)})"
                ) from None
            time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])  # backoff between attempts

    def _say(self, error: BaseException) -> str:
        """One line of a psycopg error, never the password."""
        text = " ".join(str(error).split()) or type(error).__name__
        password = dsn_password(self._dsn)
        if password:
            text = text.replace(password, "***")
        return text.replace(self._dsn, self.location)[:300]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # --- transactions -----------------------------------------------------------------------------------

    def _atomic(self, work: Callable[[Db], T]) -> T:
        return self._run(work, write=True)

    def _query(self, work: Callable[[Db], T]) -> T:
        return self._run(work, write=False)

    def _run(self, work: Callable[[Db], T], *, write: bool) -> T:
        psycopg = self._psycopg
        retried = (psycopg.OperationalError, psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected)
        with self._lock:
            for attempt in range(ATTEMPTS):
                try:
                    if self._connection is None or self._connection.closed:
                        self._connect()
                    with self._connection.transaction():
                        return work(_Cursor(self._connection))
                except psycopg.errors.InsufficientPrivilege as error:
                    raise OperationError(
                        f"--manifest: {self.location}: {self._say(error)}; the role needs the rights in "
                        "docs/factory.md (Several stations, one database)"
                    ) from None
                except retried as error:
                    if attempt + 1 == ATTEMPTS:
                        raise OperationError(
                            f"--manifest: {self.location}: {self._say(error)} ({ATTEMPTS} attempts); "
                            "the manifest is unchanged by the failed step; check the server and run again"
                        ) from None
                    connection = self._connection
                    lost = connection is not None and (connection.broken or connection.closed)
                    if lost:  # a new connection on the next attempt
                        connection.close()
                        self._connection = None
                except psycopg.Error as error:
                    raise OperationError(f"--manifest: {self.location}: {self._say(error)}") from None
                time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])  # backoff before retrying
        raise AssertionError("unreachable")
