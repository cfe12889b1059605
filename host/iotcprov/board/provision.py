"""Write an identity onto a board atomically, read it back as a summary, or erase it.

Atomic by one rename (docs/design.md): the files, Wi-Fi settings included, go into a new identity
folder, each verified by a SHA-256 computed on the board; only then does `/iotc-data/active`
change, through a temporary file and `os.rename`. A power cut at any moment leaves the old
identity with its Wi-Fi settings or the new one with its own active, both complete. Only
per-device credentials reach the board: a group key is used on the host to derive the device key
and goes no further.
"""

import datetime
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from iotcprov.board.connection import BoardSession, open_board, run_counted
from iotcprov.board.identity import IdentityBundle, WifiSettings
from iotcprov.board.layout import (
    ACTIVE,
    ACTIVE_TEMP,
    DATA_DIR,
    FIRMWARE_DIR,
    IDENTITY_FILE,
    IDENTITY_PREFIX,
    LEGACY_WIFI,
    WIFI_FILE,
    identity_dir,
)
from iotcprov.errors import InputError, OperationError

__all__ = [
    "ActiveIdentity", "EraseDeclined", "ProvisionResult", "WifiSettings", "erase", "erase_identity",
    "provision",
    "read_active_identity", "set_board_clock", "write_identity",
]  # fmt: skip

# What an operator may see of identity.json (everything in it is non-secret by contract).
SUMMARY_FIELDS = (
    "device_id",
    "id_scope",
    "auth",
    "dps_host",
    "dps_port",
    "hub_port",
    "model_id",
    "fingerprint",
)


@dataclass(frozen=True)
class ActiveIdentity:
    folder: str
    settings: dict | None  # None when identity.json is missing or unreadable

    @property
    def device_id(self) -> str | None:
        return (self.settings or {}).get("device_id")

    @property
    def id_scope(self) -> str | None:
        return (self.settings or {}).get("id_scope")

    def summary(self) -> dict:
        settings = self.settings or {}
        return {"folder": self.folder, **{name: settings.get(name) for name in SUMMARY_FIELDS}}


@dataclass(frozen=True)
class ProvisionResult:
    device_id: str
    fingerprint: str
    folder: str
    unchanged: bool  # the same identity was already active and verified
    replaced_device_id: str | None  # the other device the board held, when --replace was given
    clock_set: bool
    has_wifi: bool  # the active identity has Wi-Fi settings (given, or kept from the board)
    has_firmware: bool  # /lib/iotc is on the board: something will use the identity
    bytes_sent: int
    bytes_received: int
    seconds: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def read_active_identity(session: BoardSession) -> ActiveIdentity | None:
    """The identity `active` names, or None when the board has none."""
    folder = (session.read_text(ACTIVE) or "").strip()
    if not folder:
        return None
    text = session.read_text(f"{identity_dir(folder)}/{IDENTITY_FILE}")
    try:
        settings = json.loads(text) if text else None
    except ValueError:
        settings = None
    return ActiveIdentity(folder, settings if isinstance(settings, dict) else None)


def _check_replace(current: ActiveIdentity | None, bundle: IdentityBundle, replace: bool) -> str | None:
    """The other device ID being replaced, or None. Refuses a different identity without replace."""
    if current is None or current.settings is None:
        return None
    same = current.device_id == bundle.device_id and current.id_scope == bundle.id_scope
    if same:
        return None
    if not replace:
        raise InputError(
            f"--replace: the board already holds device {current.device_id!r} (scope {current.id_scope}); "
            "give --replace to overwrite it"
        )
    return current.device_id


def _folder_verified(session: BoardSession, bundle: IdentityBundle) -> bool:
    paths = bundle.board_files()
    digests = session.hash_files(list(paths))
    return all(digests[path] == hashlib.sha256(data).hexdigest() for path, data in paths.items())


def _remove_leftovers(session: BoardSession, keep: str) -> None:
    leftovers = [
        identity_dir(name)
        for name, is_dir in session.list_dir(DATA_DIR) or []
        if is_dir and name.startswith(IDENTITY_PREFIX) and name != keep
    ]
    session.remove_trees([*leftovers, LEGACY_WIFI])  # the active folder holds the Wi-Fi settings now


def _current_wifi(session: BoardSession, current: ActiveIdentity | None) -> bytes | None:
    """The Wi-Fi settings the board uses now (wifi.json's bytes, a secret: never shown), so that a
    new identity given none keeps them: the active folder's, else the pre-folder location."""
    paths = ([f"{identity_dir(current.folder)}/{WIFI_FILE}"] if current is not None else []) + [LEGACY_WIFI]
    for path in paths:
        text = session.read_text(path)
        if text is not None:
            return text.encode("utf-8")
    return None


def set_board_clock(session: BoardSession, now: datetime.datetime | None = None) -> bool:
    """Set the board's RTC to the host's UTC time (as `mpremote rtc --set`). False if it has no RTC."""
    now = now or datetime.datetime.now(datetime.UTC)
    stamp = (now.year, now.month, now.day, now.weekday(), now.hour, now.minute, now.second, 0)
    try:
        session.exec(f"import machine\nmachine.RTC().datetime({stamp!r})")
    except OperationError:
        return False
    return True


def write_identity(
    session: BoardSession,
    bundle: IdentityBundle,
    *,
    replace: bool = False,
    wifi: WifiSettings | None = None,
    set_clock: bool = True,
) -> ProvisionResult:
    """Put `bundle` on the board behind `session` and make it active (see the module docstring)."""
    started = time.monotonic()
    sent, received = session.bytes_sent, session.bytes_received
    current = read_active_identity(session)
    replaced = _check_replace(current, bundle, replace)
    bundle = bundle.with_wifi(wifi.file() if wifi is not None else _current_wifi(session, current))
    unchanged = current is not None and current.folder == bundle.folder and _folder_verified(session, bundle)
    if not unchanged:
        folder = identity_dir(bundle.folder)
        session.fresh_folder(folder)  # a leftover of an interrupted attempt; never the active one
        # identity.json last: a folder without it is plainly incomplete to anyone looking. One
        # compressed stream when the board inflates (`BoardSession.write_files`), each file's
        # SHA-256 checked as it is written.
        names = sorted(bundle.files, key=lambda n: n == IDENTITY_FILE)
        session.write_files({f"{folder}/{name}": bundle.files[name] for name in names})
        session.replace_file(ACTIVE, bundle.active_file())
    _remove_leftovers(session, keep=bundle.folder)
    clock_set = set_board_clock(session) if set_clock else False
    return ProvisionResult(
        device_id=bundle.device_id,
        fingerprint=bundle.fingerprint,
        folder=bundle.folder,
        unchanged=unchanged,
        replaced_device_id=replaced,
        clock_set=clock_set,
        has_wifi=WIFI_FILE in bundle.files,
        has_firmware=session.eval(f"bool(_ils({FIRMWARE_DIR!r}))"),  # not the listing: a shorter answer
        bytes_sent=session.bytes_sent - sent,
        bytes_received=session.bytes_received - received,
        seconds=time.monotonic() - started,
    )


def provision(
    port: str,
    bundle: IdentityBundle,
    *,
    replace: bool = False,
    wifi: WifiSettings | None = None,
    set_clock: bool = True,
    connect: Callable[[str], BoardSession] = open_board,
) -> ProvisionResult:
    """Open `port` and write `bundle` (see write_identity). The counts include connecting."""
    return run_counted(
        port,
        lambda session: write_identity(session, bundle, replace=replace, wifi=wifi, set_clock=set_clock),
        connect,
    )


class EraseDeclined(Exception):
    """The confirmation said no: nothing was erased."""


def erase(
    port: str,
    connect: Callable[[str], BoardSession] = open_board,
    confirm: Callable[[str | None], bool] | None = None,
) -> str | None:
    """Open `port` and erase the identity (see erase_identity); returns the erased device ID."""
    with connect(port) as session:
        return erase_identity(session, confirm)


def erase_identity(session: BoardSession, confirm: Callable[[str | None], bool] | None = None) -> str | None:
    """Remove the identity, Wi-Fi settings and assignment cache. `active` goes first, so an
    interruption leaves a board with no identity rather than half of one. Returns the device ID
    that was erased, or None. `confirm(device ID or None)` is asked first, once the board says
    what it holds; EraseDeclined when it answers no."""
    current = read_active_identity(session)
    if confirm is not None and not confirm(current.device_id if current else None):
        raise EraseDeclined
    session.exec(f"try:os.remove({ACTIVE!r})\nexcept OSError:pass")
    session.remove_tree(ACTIVE_TEMP)
    session.remove_tree(DATA_DIR)
    return current.device_id if current else None
