"""The emulator's persistent state in SQLite under the data folder.

One connection, used from the server's event loop only. Rows are plain dicts at the edges so the
behaviour modules never see SQL. The data folder holds secrets (group keys, the server CA key): it
is created 0700 and the database 0600.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY COLLATE NOCASE, attestation TEXT NOT NULL,
    primary_key TEXT, secondary_key TEXT,
    ca_pem TEXT, ca_thumbprint TEXT, verification_code TEXT, verified INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS individual (
    device_id TEXT PRIMARY KEY COLLATE NOCASE, attestation TEXT NOT NULL,
    primary_key TEXT, secondary_key TEXT, cert_pem TEXT, thumbprint TEXT,
    enabled INTEGER NOT NULL DEFAULT 1, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY COLLATE NOCASE, enrollment_kind TEXT, enrollment_name TEXT,
    attestation TEXT, assigned_hub TEXT, status TEXT,
    registrations INTEGER NOT NULL DEFAULT 0, created REAL, last_registration REAL,
    dps_model_id TEXT, hub_model_id TEXT, dps_payload TEXT,
    hub_connections INTEGER NOT NULL DEFAULT 0, connected INTEGER NOT NULL DEFAULT 0,
    last_connected REAL, last_disconnected REAL, disconnect_reason TEXT,
    desired TEXT NOT NULL DEFAULT '{}', desired_version INTEGER NOT NULL DEFAULT 1,
    reported TEXT NOT NULL DEFAULT '{}', reported_version INTEGER NOT NULL DEFAULT 1,
    messages INTEGER NOT NULL DEFAULT 0, last_message REAL);
CREATE TABLE IF NOT EXISTS telemetry (
    id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL COLLATE NOCASE, time REAL NOT NULL,
    body TEXT, body_base64 TEXT, properties TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS telemetry_device ON telemetry (device_id, id);
CREATE TABLE IF NOT EXISTS c2d (
    id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL COLLATE NOCASE, time REAL NOT NULL,
    body BLOB NOT NULL, properties TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, endpoint TEXT, kind TEXT NOT NULL,
    device TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, endpoint TEXT, device TEXT COLLATE NOCASE,
    remaining INTEGER, until REAL, params TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS app_devices (
    device_id TEXT PRIMARY KEY COLLATE NOCASE, display_name TEXT, template TEXT,
    enabled INTEGER NOT NULL DEFAULT 1, simulated INTEGER NOT NULL DEFAULT 0,
    organizations TEXT NOT NULL DEFAULT '[]', created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id TEXT PRIMARY KEY, token_hash TEXT NOT NULL, roles TEXT NOT NULL, expiry_ms INTEGER NOT NULL,
    created REAL NOT NULL);
"""

# Columns added after the first release: (table, column, declaration), added to an older database.
ADDED_COLUMNS = [
    ("groups", "display_name", "TEXT"),
    ("groups", "group_type", "TEXT NOT NULL DEFAULT 'iot'"),
    ("devices", "messages", "INTEGER NOT NULL DEFAULT 0"),
    ("devices", "last_message", "REAL"),
]

TELEMETRY_KEPT = 200  # per device; older messages are trimmed
EVENTS_KEPT = 5000


def _secure_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def merge_patch(document: dict, patch: dict) -> dict:
    """JSON merge patch as twins use it: nested objects merge, null removes a key."""
    merged = dict(document)
    for key, value in patch.items():
        if key == "$version":
            continue
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


class Store:
    def __init__(self, data_dir: Path) -> None:
        _secure_dir(data_dir)
        db_path = data_dir / "emulator.sqlite3"
        if not db_path.exists():
            os.close(os.open(db_path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._add_columns()
        self._telemetry_since_trim: dict[str, int] = {}

    def close(self) -> None:
        self.db.close()

    def _add_columns(self) -> None:
        for table, column, declaration in ADDED_COLUMNS:
            present = {row["name"] for row in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    # ------------------------------------------------------------ helpers
    def _one(self, sql: str, *args: Any) -> dict | None:
        row = self.db.execute(sql, args).fetchone()
        return dict(row) if row else None

    def _all(self, sql: str, *args: Any) -> list[dict]:
        return [dict(row) for row in self.db.execute(sql, args)]

    # ------------------------------------------------------------ meta
    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", key)
        return row["value"] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def id_scope(self) -> str:
        scope = self.meta("id_scope")
        if scope is None:
            scope = "0ne" + secrets.token_hex(4).upper()
            self.set_meta("id_scope", scope)
        return scope

    # ------------------------------------------------------------ enrollments
    def group(self, name: str) -> dict | None:
        return self._one("SELECT * FROM groups WHERE name = ?", name)

    def groups(self, attestation: str | None = None) -> list[dict]:
        """All groups, or those of one attestation. X.509 groups without a CA certificate yet
        (made through the IoT Central API, whose certificate comes later) count only in the former:
        nothing can authenticate through them."""
        if attestation == "x509":
            return self._all(
                "SELECT * FROM groups WHERE attestation = 'x509' AND ca_pem IS NOT NULL ORDER BY created"
            )
        if attestation:
            return self._all("SELECT * FROM groups WHERE attestation = ? ORDER BY created", attestation)
        return self._all("SELECT * FROM groups ORDER BY created")

    def delete_group(self, name: str) -> int:
        return self.db.execute("DELETE FROM groups WHERE name = ?", (name,)).rowcount

    def add_group(self, row: dict) -> None:
        row = {"created": time.time(), **row}
        columns = ", ".join(row)
        self.db.execute(
            f"INSERT INTO groups ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
        )

    def update_group(self, name: str, **values: Any) -> None:
        sets = ", ".join(f"{column} = ?" for column in values)
        self.db.execute(f"UPDATE groups SET {sets} WHERE name = ?", (*values.values(), name))

    def individual(self, device_id: str) -> dict | None:
        return self._one("SELECT * FROM individual WHERE device_id = ?", device_id)

    def individuals(self) -> list[dict]:
        return self._all("SELECT * FROM individual ORDER BY created")

    def add_individual(self, row: dict) -> None:
        row = {"created": time.time(), **row}
        columns = ", ".join(row)
        self.db.execute(
            f"INSERT INTO individual ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
        )

    def update_individual(self, device_id: str, **values: Any) -> None:
        sets = ", ".join(f"{column} = ?" for column in values)
        self.db.execute(f"UPDATE individual SET {sets} WHERE device_id = ?", (*values.values(), device_id))

    def delete_individual(self, device_id: str) -> int:
        return self.db.execute("DELETE FROM individual WHERE device_id = ?", (device_id,)).rowcount

    # ------------------------------------------------------------ the application's device list
    def app_device(self, device_id: str) -> dict | None:
        """A device as IoT Central lists it (created through the API, or approved at registration)."""
        return self._one("SELECT * FROM app_devices WHERE device_id = ?", device_id)

    def app_devices(self) -> list[dict]:
        return self._all("SELECT * FROM app_devices ORDER BY device_id")

    def put_app_device(self, device_id: str, **values: Any) -> None:
        """Create the row (with `values`) or update the columns given."""
        if self.app_device(device_id) is None:
            row = {"device_id": device_id, "created": time.time(), **values}
            columns = ", ".join(row)
            self.db.execute(
                f"INSERT INTO app_devices ({columns}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
        elif values:
            sets = ", ".join(f"{column} = ?" for column in values)
            self.db.execute(
                f"UPDATE app_devices SET {sets} WHERE device_id = ?", (*values.values(), device_id)
            )

    def delete_device(self, device_id: str) -> int:
        """Forget a device everywhere: the application's list, its registration, its telemetry."""
        removed = 0
        for table in ("app_devices", "devices", "telemetry", "c2d"):
            removed += self.db.execute(f"DELETE FROM {table} WHERE device_id = ?", (device_id,)).rowcount
        return removed

    # ------------------------------------------------------------ API tokens (hashes only)
    def api_token(self, token_id: str) -> dict | None:
        return self._one("SELECT * FROM api_tokens WHERE token_id = ?", token_id)

    def add_api_token(self, token_id: str, token_hash: str, roles: list, expiry_ms: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO api_tokens (token_id, token_hash, roles, expiry_ms, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (token_id, token_hash, json.dumps(roles), expiry_ms, time.time()),
        )

    # ------------------------------------------------------------ devices
    def device(self, device_id: str) -> dict | None:
        return self._one("SELECT * FROM devices WHERE device_id = ?", device_id)

    def devices(self) -> list[dict]:
        return self._all("SELECT * FROM devices ORDER BY device_id")

    def record_registration(self, device_id: str, values: dict, now: float) -> None:
        """An assignment: create the device or update it, counting registrations."""
        existing = self.device(device_id)
        if existing is None:
            self.db.execute("INSERT INTO devices (device_id, created) VALUES (?, ?)", (device_id, now))
        values = {**values, "last_registration": now}
        sets = ", ".join(f"{column} = ?" for column in values)
        self.db.execute(
            f"UPDATE devices SET registrations = registrations + 1, {sets} WHERE device_id = ?",
            (*values.values(), device_id),
        )

    def device_connected(self, device_id: str, model_id: str | None, now: float) -> None:
        self.db.execute(
            "UPDATE devices SET connected = 1, hub_connections = hub_connections + 1, last_connected = ?,"
            " hub_model_id = COALESCE(?, hub_model_id) WHERE device_id = ?",
            (now, model_id, device_id),
        )

    def device_disconnected(self, device_id: str, reason: str, now: float) -> None:
        self.db.execute(
            "UPDATE devices SET connected = 0, last_disconnected = ?, disconnect_reason = ?"
            " WHERE device_id = ?",
            (now, reason, device_id),
        )

    def reset_connections(self, reason: str, now: float) -> int:
        """Mark every device disconnected (at start-up); returns how many were marked connected."""
        cursor = self.db.execute(
            "UPDATE devices SET connected = 0, last_disconnected = ?, disconnect_reason = ?"
            " WHERE connected = 1",
            (now, reason),
        )
        return cursor.rowcount

    def twin(self, device_id: str) -> dict:
        row = self.device(device_id) or {}
        desired = json.loads(row.get("desired") or "{}")
        reported = json.loads(row.get("reported") or "{}")
        desired["$version"] = row.get("desired_version", 1)
        reported["$version"] = row.get("reported_version", 1)
        return {"desired": desired, "reported": reported}

    def patch_twin_side(self, device_id: str, side: str, patch: dict) -> int:
        """Merge `patch` into the twin's desired or reported side; returns that side's new version."""
        assert side in ("desired", "reported")
        row = self.device(device_id) or {}
        version = row.get(f"{side}_version", 1) + 1
        document = merge_patch(json.loads(row.get(side) or "{}"), patch)
        self.db.execute(
            f"UPDATE devices SET {side} = ?, {side}_version = ? WHERE device_id = ?",
            (json.dumps(document), version, device_id),
        )
        return version

    # ------------------------------------------------------------ telemetry
    def add_telemetry(self, device_id: str, body: bytes, properties: dict, now: float) -> dict:
        try:
            text, b64 = body.decode("utf-8"), None
        except UnicodeDecodeError:
            import base64

            text, b64 = None, base64.b64encode(body).decode()
        self.db.execute(
            "INSERT INTO telemetry (device_id, time, body, body_base64, properties) VALUES (?, ?, ?, ?, ?)",
            (device_id, now, text, b64, json.dumps(properties)),
        )
        self.db.execute(
            "UPDATE devices SET messages = messages + 1, last_message = ? WHERE device_id = ?",
            (now, device_id),
        )
        count = self._telemetry_since_trim.get(device_id, 0) + 1
        if count >= 50:
            self.db.execute(
                "DELETE FROM telemetry WHERE device_id = ? AND id <= (SELECT id FROM telemetry"
                " WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (device_id, device_id, TELEMETRY_KEPT),
            )
            count = 0
        self._telemetry_since_trim[device_id] = count
        return {"body": text, "properties": properties, "time": now}

    def telemetry(self, device_id: str, limit: int = TELEMETRY_KEPT, after_id: int = 0) -> list[dict]:
        rows = self._all(
            "SELECT * FROM (SELECT * FROM telemetry WHERE device_id = ? AND id > ? ORDER BY id DESC LIMIT ?)"
            " ORDER BY id",
            device_id,
            after_id,
            limit,
        )
        out = []
        for row in rows:
            message = {
                "id": row["id"],
                "time": row["time"],
                "body": row["body"],
                "properties": json.loads(row["properties"]),
            }
            if row["body_base64"] is not None:
                message["body_base64"] = row["body_base64"]
            out.append(message)
        return out

    def telemetry_count(self) -> int:
        return self._one("SELECT COUNT(*) AS n FROM telemetry")["n"]

    # ------------------------------------------------------------ cloud-to-device
    def enqueue_c2d(self, device_id: str, body: bytes, properties: dict, now: float) -> int:
        cursor = self.db.execute(
            "INSERT INTO c2d (device_id, time, body, properties) VALUES (?, ?, ?, ?)",
            (device_id, now, body, json.dumps(properties)),
        )
        return int(cursor.lastrowid)

    def pending_c2d(self, device_id: str) -> list[dict]:
        rows = self._all("SELECT * FROM c2d WHERE device_id = ? ORDER BY id", device_id)
        for row in rows:
            row["properties"] = json.loads(row["properties"])
        return rows

    def delete_c2d(self, message_id: int) -> None:
        self.db.execute("DELETE FROM c2d WHERE id = ?", (message_id,))

    def purge_c2d(self, device_id: str) -> int:
        return self.db.execute("DELETE FROM c2d WHERE device_id = ?", (device_id,)).rowcount

    # ------------------------------------------------------------ events and counters
    def add_event(self, endpoint: str, kind: str, device: str | None, reason: str | None, now: float) -> dict:
        cursor = self.db.execute(
            "INSERT INTO events (time, endpoint, kind, device, reason) VALUES (?, ?, ?, ?, ?)",
            (now, endpoint, kind, device, reason),
        )
        if cursor.lastrowid % 500 == 0:
            self.db.execute("DELETE FROM events WHERE id <= ?", (cursor.lastrowid - EVENTS_KEPT,))
        return {
            "id": cursor.lastrowid,
            "time": now,
            "endpoint": endpoint,
            "kind": kind,
            "device": device,
            "reason": reason,
        }

    def events(
        self, after_id: int = 0, kind: str | None = None, device: str | None = None, limit: int = 1000
    ) -> list[dict]:
        sql, args = "SELECT * FROM events WHERE id > ?", [after_id]
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        if device:
            sql += " AND device = ? COLLATE NOCASE"
            args.append(device)
        sql += " ORDER BY id LIMIT ?"
        return self._all(sql, *args, limit)

    def last_event_id(self) -> int:
        return int(self._one("SELECT COALESCE(MAX(id), 0) AS id FROM events")["id"])

    def bump(self, name: str, by: int = 1) -> None:
        self.db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def counters(self) -> dict[str, int]:
        return {row["name"]: row["value"] for row in self._all("SELECT * FROM counters ORDER BY name")}

    # ------------------------------------------------------------ faults
    def add_fault(
        self,
        kind: str,
        endpoint: str | None,
        device: str | None,
        remaining: int | None,
        until: float | None,
        params: dict,
        now: float,
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO faults (kind, endpoint, device, remaining, until, params, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (kind, endpoint, device, remaining, until, json.dumps(params), now),
        )
        return int(cursor.lastrowid)

    def faults(self) -> list[dict]:
        rows = self._all("SELECT * FROM faults ORDER BY id")
        for row in rows:
            row["params"] = json.loads(row["params"])
        return rows

    def update_fault_remaining(self, fault_id: int, remaining: int) -> None:
        if remaining <= 0:
            self.db.execute("DELETE FROM faults WHERE id = ?", (fault_id,))
        else:
            self.db.execute("UPDATE faults SET remaining = ? WHERE id = ?", (remaining, fault_id))

    def delete_fault(self, fault_id: int | None = None) -> int:
        if fault_id is None:
            return self.db.execute("DELETE FROM faults").rowcount
        return self.db.execute("DELETE FROM faults WHERE id = ?", (fault_id,)).rowcount
