"""The settings of one virtual board, checked before anything starts."""

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from iotcprov.errors import InputError
from iotcprov.virtual_board.faults import check_faults
from iotcprov.virtual_board.frozen import standins_folder
from iotcprov.virtual_board.heap import check_heap
from iotcprov.virtual_board.releases import Release, check_release

_MAC = re.compile(r"[0-9A-Fa-f]{2}(?:([:-]?)[0-9A-Fa-f]{2})(?:\1[0-9A-Fa-f]{2}){4}")
MAX_BAUD = 5_000_000


@dataclass(frozen=True)
class BoardOptions:
    directory: Path  # the board's filesystem '/'
    state_directory: Path  # outside the board: port link, faults, clock, console log
    mac: bytes  # 6 bytes: machine.unique_id() and the station MAC
    baud: int  # 0 = unthrottled
    heap: int | None  # bytes the application gets (see heap.py); None: the unix port's default heap
    micropython: str  # the unix port executable
    standins: Path  # mounted at /.vboard: the stand-ins, precompiled when mpy-cross can
    faults: dict = field(default_factory=dict)
    release: Release = field(default_factory=lambda: check_release(None))  # what its stand-ins reproduce


def parse_mac(text: str) -> bytes:
    if not _MAC.fullmatch(text or ""):
        raise InputError(f"--mac: {text!r} is not six hex pairs; write it like AA:BB:CC:DD:EE:FF")
    return bytes.fromhex(re.sub("[:-]", "", text))


def default_mac(directory: Path) -> bytes:
    """A stable, locally administered unicast MAC derived from the board folder."""
    digest = bytearray(hashlib.sha256(str(directory.resolve()).encode()).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02
    return bytes(digest)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02X}" for b in mac)


def check_directory(path: Path | str) -> Path:
    path = Path(path)
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise InputError(f"--dir: {str(path)!r} {what}; give an existing folder to be the board's filesystem")
    return path.resolve()


def check_state_directory(path: Path | str) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"--state: {str(path)!r} is not a folder; give a folder (it is created if missing)")
    return path.resolve()


def check_baud(baud: int) -> int:
    if not isinstance(baud, int) or isinstance(baud, bool) or not 0 <= baud <= MAX_BAUD:
        raise InputError(
            f"--baud: {baud!r} is not a UART speed; give 0 (unthrottled) up to {MAX_BAUD}, e.g. 115200"
        )
    return baud


def build_options(
    directory: Path, state_directory: Path, micropython: str, mac: str | bytes | None = None,
    baud: int = 0, heap: str | int | None = None, faults: dict | None = None, release: str | None = None,
) -> BoardOptions:
    directory = check_directory(directory)
    if mac is None:
        mac_bytes = default_mac(directory)
    elif isinstance(mac, bytes):
        if len(mac) != 6:
            raise InputError(f"--mac: {len(mac)} bytes; a MAC has 6")
        mac_bytes = mac
    else:
        mac_bytes = parse_mac(mac)
    state_directory = check_state_directory(state_directory)
    baud = check_baud(baud)
    heap_bytes = None if heap is None else check_heap(micropython, heap)
    checked_faults = check_faults(faults or {})
    checked_release = check_release(release)
    return BoardOptions(
        directory=directory, state_directory=state_directory, mac=mac_bytes, baud=baud, heap=heap_bytes,
        micropython=micropython, standins=standins_folder(micropython), faults=checked_faults,
        release=checked_release,
    )
