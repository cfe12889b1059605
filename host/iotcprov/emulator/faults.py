"""Fault injection: small declarative records in the store, consulted by the behaviour modules.

Kinds (endpoint "dps" or "hub"; `device` narrows a fault to one device; `remaining` counts uses):
- dps-status     next N DPS answers carry `status` (429, 503, ...) with `retry_after`, then normal.
- drop           the next N connections are closed after `after_packets` packets from the client.
- refuse-connect the next N CONNECTs are answered with CONNACK `return_code`.
- delay          the next N answers (all while `remaining` is null) wait `seconds` before going out.
- session-limit  the hub ends each session at min(token expiry, connect time + `seconds`).
- outage         hub connections are dropped now and reconnects refused until `until`.
- dps-rate       DPS answers 429 once more than `per_minute` registrations came in the last minute.
"""

from __future__ import annotations

from typing import Any

from iotcprov.emulator.store import Store

KINDS = {
    "dps-status": {"status", "retry_after"},
    "drop": {"after_packets"},
    "refuse-connect": {"return_code"},
    "delay": {"seconds"},
    "session-limit": {"seconds"},
    "outage": {"seconds"},
    "dps-rate": {"per_minute"},
}
PARAMETERS = tuple(sorted(set().union(*KINDS.values())))  # every kind's parameters, for the CLI and API
ENDPOINTS = {"dps", "hub"}
DEFAULT_ENDPOINT = {"dps-status": "dps", "session-limit": "hub", "outage": "hub", "dps-rate": "dps"}


class FaultError(ValueError):
    """A fault record that cannot be applied; the message names the field."""


class Faults:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: list[dict] | None = None

    def _all(self) -> list[dict]:
        if self._cache is None:
            self._cache = self.store.faults()
        return self._cache

    def add(
        self,
        kind: str,
        now: float,
        endpoint: str | None = None,
        device: str | None = None,
        count: int | None = None,
        **params: Any,
    ) -> dict:
        if kind not in KINDS:
            raise FaultError(f"kind: unknown fault {kind!r}; use one of {', '.join(sorted(KINDS))}")
        endpoint = endpoint or DEFAULT_ENDPOINT.get(kind)
        if endpoint not in ENDPOINTS:
            raise FaultError("endpoint: give dps or hub")
        missing = KINDS[kind] - {k for k, v in params.items() if v is not None}
        if missing:
            raise FaultError(f"{', '.join(sorted(missing))}: required for a {kind} fault")
        params = {k: v for k, v in params.items() if k in KINDS[kind] and v is not None}
        for name, value in params.items():
            if not isinstance(value, int | float) or value < 0:
                raise FaultError(f"{name}: must be a number >= 0")
        if count is not None and count < 1:
            raise FaultError("count: must be at least 1")
        if kind in ("dps-status", "drop", "refuse-connect") and count is None:
            count = 1
        until = now + params["seconds"] if kind == "outage" else None
        fault_id = self.store.add_fault(kind, endpoint, device, count, until, params, now)
        self._cache = None
        return next(f for f in self._all() if f["id"] == fault_id)

    def list(self, now: float) -> list[dict]:
        self._expire(now)
        return list(self._all())

    def clear(self, fault_id: int | None = None) -> int:
        self._cache = None
        return self.store.delete_fault(fault_id)

    def _expire(self, now: float) -> None:
        for fault in self._all():
            if fault["until"] is not None and fault["until"] <= now:
                self.store.delete_fault(fault["id"])
                self._cache = None

    def find(self, kind: str, endpoint: str, device: str | None, now: float) -> dict | None:
        """The oldest matching fault, without using it up."""
        if not self._all():
            return None
        self._expire(now)
        for fault in self._all():
            if fault["kind"] != kind or fault["endpoint"] != endpoint:
                continue
            if fault["device"] and (device is None or fault["device"].lower() != device.lower()):
                continue
            return fault
        return None

    def take(self, kind: str, endpoint: str, device: str | None, now: float) -> dict | None:
        """Like find, and count one use of it (a fault with no count stays until cleared)."""
        fault = self.find(kind, endpoint, device, now)
        if fault is not None and fault["remaining"] is not None:
            fault["remaining"] -= 1
            self.store.update_fault_remaining(fault["id"], fault["remaining"])
            if fault["remaining"] <= 0:
                self._cache = None
        return fault
