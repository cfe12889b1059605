"""Finding boards: USB serial ports whose VID:PID is a known USB-serial bridge of a board profile.

Built to be testable without USB: the lister is injectable (any callable returning PortRecords),
`new_ports` is a pure "what appeared since the last scan", and the allow-list of bridges is data
(the `usb_ids` of the board profiles).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from iotcprov import resources
from iotcprov.errors import IotcprovError


@dataclass(frozen=True)
class PortRecord:
    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Candidate:
    record: PortRecord
    bridge: str  # e.g. "Silicon Labs CP210x"
    boards: tuple[str, ...]  # profiles that use this bridge
    micropython: str | None = None  # with probing: the version the board reports
    probe_error: str | None = None

    def as_dict(self) -> dict:
        return {
            "port": self.record.device,
            "vid": _hex(self.record.vid),
            "pid": _hex(self.record.pid),
            "serial_number": self.record.serial_number,
            "description": self.record.description,
            "bridge": self.bridge,
            "boards": list(self.boards),
            "micropython": self.micropython,
            "probe_error": self.probe_error,
        }


@dataclass(frozen=True)
class Bridge:
    name: str
    boards: tuple[str, ...] = field(default=())


def _hex(value: int | None) -> str | None:
    return None if value is None else f"{value:04x}"


def known_bridges(profiles: Iterable[dict] | None = None) -> dict[tuple[int, int], Bridge]:
    """{(vid, pid): Bridge} from the profiles' usb_ids (all shipped profiles by default)."""
    if profiles is None:
        profiles = [resources.load_board_profile(name) for name in resources.board_names()]
    bridges: dict[tuple[int, int], Bridge] = {}
    for profile in profiles:
        for usb in profile.get("usb_ids", []):
            key = (int(usb["vid"], 16), int(usb["pid"], 16))
            known = bridges.get(key, Bridge(usb.get("name", "")))
            bridges[key] = Bridge(known.name, (*known.boards, profile["name"]))
    return bridges


def list_serial_ports() -> list[PortRecord]:
    """The host's serial ports as pyserial sees them (USB ports carry VID/PID)."""
    from serial.tools import list_ports

    return [
        PortRecord(info.device, info.vid, info.pid, info.serial_number, info.description or "")
        for info in list_ports.comports()
    ]


def candidate_ports(
    records: Iterable[PortRecord], bridges: dict[tuple[int, int], Bridge] | None = None
) -> list[Candidate]:
    """The ports whose VID:PID is a known bridge, in device order."""
    bridges = known_bridges() if bridges is None else bridges
    found = []
    for record in records:
        bridge = bridges.get((record.vid, record.pid)) if record.vid is not None else None
        if bridge is not None:
            found.append(Candidate(record, bridge.name, bridge.boards))
    return sorted(found, key=lambda c: c.record.device)


def new_ports(previous: Iterable[PortRecord], current: Iterable[PortRecord]) -> list[PortRecord]:
    """Ports in `current` that were not in `previous` (a different board on the same device
    path, told apart by its USB serial number, counts as new)."""
    seen = {(r.device, r.serial_number) for r in previous}
    return [r for r in current if (r.device, r.serial_number) not in seen]


def probe(port: str, connect: Callable | None = None) -> str:
    """The MicroPython version the board on `port` reports (raises InputError if it does not answer)."""
    from iotcprov.board.connection import open_board

    connect = connect or open_board
    with connect(port, soft_reset=False) as session:
        # sys.version is "3.4.0; MicroPython v1.23.0 on ...": the release, not the Python level
        return session.facts().version_text.split("; ", 1)[-1]


def scan(
    lister: Callable[[], list[PortRecord]] = list_serial_ports,
    *,
    probe_boards: bool = False,
    prober: Callable[[str], str] = probe,
) -> list[Candidate]:
    """Candidate boards; with `probe_boards`, each is asked for its MicroPython version."""
    candidates = candidate_ports(lister())
    if not probe_boards:
        return candidates
    probed = []
    for candidate in candidates:
        try:
            probed.append(
                Candidate(
                    candidate.record, candidate.bridge, candidate.boards, prober(candidate.record.device)
                )
            )
        except IotcprovError as error:
            probed.append(Candidate(candidate.record, candidate.bridge, candidate.boards, None, str(error)))
    return probed
