"""The manifest's tables, as numbered migrations applied on first use (both back-ends).

`meta.schema` holds the version a manifest is at. Opening one at an older version applies the
missing migrations in the same transaction that checks it; a manifest from a newer iotcprov is
refused, never written.
"""

from collections.abc import Callable

from iotcprov.errors import InputError

SCHEMA_VERSION = 2

_V1_DEVICES = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY{nocase},
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
)"""

_V1_COMMON = [
    "CREATE UNIQUE INDEX IF NOT EXISTS devices_board ON devices (board_id) WHERE board_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS devices_pending ON devices (status, position)",
    """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    host TEXT,
    pid INTEGER,
    settings TEXT,
    outcome TEXT
)""",
]

# version -> statements, per dialect. Version 1 is the single-PC manifest of iotcprov 0.1.
MIGRATIONS: dict[str, dict[int, list[str]]] = {
    "sqlite": {
        1: [_V1_DEVICES.format(nocase=" COLLATE NOCASE"), *_V1_COMMON],
    },
    "postgresql": {
        1: [
            _V1_DEVICES.format(nocase=""),
            # what COLLATE NOCASE gives SQLite: "Dev-1" and "dev-1" are one ID
            "CREATE UNIQUE INDEX IF NOT EXISTS devices_id_nocase ON devices (lower(device_id))",
            *_V1_COMMON,
        ],
    },
}
_V2 = [  # stations: who holds a claim, who ran what; stale claims are found by their last change
    "ALTER TABLE devices ADD COLUMN station TEXT",
    "ALTER TABLE runs ADD COLUMN station TEXT",
    "CREATE INDEX IF NOT EXISTS devices_claims ON devices (status, updated_at)",
]
for _dialect in MIGRATIONS.values():
    _dialect[2] = _V2

META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


def migrate(
    execute: Callable[..., object], fetchone: Callable[[str], tuple | None], dialect: str, location: str
) -> int:
    """Bring the manifest to SCHEMA_VERSION inside the caller's transaction; returns the version
    it had (0: new). `execute(sql, args)` runs a statement; `fetchone(sql)` returns a row."""
    found = fetchone("SELECT value FROM meta WHERE key = 'schema'") if _has_meta(fetchone, dialect) else None
    version = int(found[0]) if found else 0
    if version > SCHEMA_VERSION:
        raise InputError(
            f"--manifest: {location} has schema {version}, written by a newer iotcprov; this one reads "
            f"up to {SCHEMA_VERSION}: upgrade iotcprov on this station (pip install -U iotcprov)"
        )
    if version == SCHEMA_VERSION:
        return version
    execute(META, ())
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[dialect][step]:
            execute(statement, ())
    if found is None:
        execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    else:
        execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
    return version


def _has_meta(fetchone: Callable[[str], tuple | None], dialect: str) -> bool:
    if dialect == "sqlite":
        return fetchone("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'") is not None
    return fetchone("SELECT to_regclass('meta')")[0] is not None  # type: ignore[index]
