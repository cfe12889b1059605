"""What is on a board, without any secret: MicroPython version, unique ID, identity summary,
firmware version and the firmware's cached DPS assignment.

Secret files are never read: only their names are listed, and only chosen non-secret fields of
wifi.json and assignment.json are picked out on the board itself.
"""

from collections.abc import Callable

from iotcprov.board.connection import BoardSession, open_board
from iotcprov.board.deploy import read_deployed
from iotcprov.board.layout import ASSIGNMENT, LEGACY_WIFI, WIFI_FILE, identity_dir
from iotcprov.board.provision import ActiveIdentity, read_active_identity

# Runs on the board: returns only the named fields of a JSON file, so a secret never crosses the wire.
_PICK = (
    "import json\ndef _ipk(p,k):\n try:\n  with open(p) as f:d=json.load(f)\n except Exception:return None\n"
    " return {n:d.get(n) for n in k} if isinstance(d,dict) else None\n"
)


def board_info_session(session: BoardSession) -> dict:
    facts = session.facts()
    session.exec(_PICK)
    active = read_active_identity(session)
    identity = None
    wifi_paths = [LEGACY_WIFI]
    if active is not None:
        wifi_paths.insert(0, f"{identity_dir(active.folder)}/{WIFI_FILE}")
        identity = active.summary()
        identity["files"] = sorted(
            name for name, is_dir in session.list_dir(identity_dir(active.folder)) or [] if not is_dir
        )
        identity["complete"] = active.settings is not None
    return {
        "port": session.port,
        "micropython": micropython_text(facts.version_text),
        "version": ".".join(str(n) for n in facts.version),
        "platform": facts.platform,
        "machine": facts.machine,
        "unique_id": facts.unique_id,
        "mpy": "{}.{}".format(*facts.mpy_version) if facts.mpy_version else None,
        "identity": identity,
        "wifi_ssid": _wifi_ssid(session, wifi_paths),
        "firmware": read_deployed(session),
        "assignment": _assignment(session, active),
    }


def micropython_text(version_text: str) -> str:
    """`sys.version` on MicroPython is "3.4.0; MicroPython v1.23.0 on 2024-06-02": the Python
    language level it implements, then the release. The release part."""
    return version_text.split("; ", 1)[-1]


def cache_key(active: ActiveIdentity) -> str | None:
    """What the firmware stores with a cached assignment (firmware/iotc/config.py: cache_key)."""
    settings = active.settings or {}
    parts = (settings.get("fingerprint"), settings.get("id_scope"), settings.get("device_id"))
    if not all(isinstance(part, str) for part in parts):
        return None
    dps_host = settings.get("dps_host", "global.azure-devices-provisioning.net")
    return "|".join((*parts, str(dps_host), active.folder))


def _assignment(session: BoardSession, active: ActiveIdentity | None) -> dict | None:
    """The cached DPS assignment the firmware will use: None when there is none, or when it was
    cached for another identity (the firmware then registers again)."""
    cached = session.eval(f"_ipk({ASSIGNMENT!r},['hub','device_id','identity'])")
    if not cached or active is None or cached.pop("identity", None) != cache_key(active):
        return None
    return cached


def _wifi_ssid(session: BoardSession, paths: list[str]) -> str | None:
    """The SSID the firmware uses: the active folder's wifi.json, else the pre-folder one."""
    for path in paths:
        picked = session.eval(f"_ipk({path!r},['ssid'])")
        if picked is not None:
            return picked.get("ssid")
    return None


def board_info(port: str, connect: Callable[[str], BoardSession] = open_board) -> dict:
    with connect(port) as session:
        return board_info_session(session)
