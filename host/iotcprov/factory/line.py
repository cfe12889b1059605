"""A factory line: stations (one worker thread per port) provisioning boards until the IDs run out.

Stations come from a fixed port list or from watching for boards being plugged in (the VID:PID
allow-list of the board profiles; the port lister is injectable). A fixed port works board after
board: it processes the board present, waits for it to be unplugged, then for the next one.
The run ends when no ID is left to hand out and every station is idle, or when `stop` is set
(stations finish the board in hand first). Every board present when the run starts is
processed, so boards interrupted by an earlier run resume with their own IDs.
"""

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from iotcprov.board.deploy import build_deployment
from iotcprov.board.ports import (
    Bridge,
    PortRecord,
    candidate_ports,
    known_bridges,
    list_serial_ports,
    new_ports,
)
from iotcprov.errors import InputError, OperationError
from iotcprov.factory import events as ev
from iotcprov.factory.audit import AuditLog, check_audit_path, default_audit_path
from iotcprov.factory.devices import DeviceEntry
from iotcprov.factory.job import FactoryJob
from iotcprov.factory.manifest import (
    CLAIMED,
    DEFAULT_CLAIM_TIMEOUT,
    DEFAULT_MANIFEST,
    DONE,
    FAILED,
    Counts,
    Manifest,
    Released,
    default_station,
    is_postgres,
    open_existing,
    open_manifest,
)
from iotcprov.factory.station import BoardOutcome, BoardWork

POLL_S = 0.25  # how often a station looks for its board coming or going (no portable event exists)
WATCH_POLL_S = 0.5


@dataclass(frozen=True)
class PortList:
    """Stations at fixed ports."""

    ports: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.ports:
            raise InputError("--ports: no port given; give e.g. --ports /dev/ttyUSB0,/dev/ttyUSB1")
        seen = set()
        for port in self.ports:
            if not port.strip():
                raise InputError("--ports: an empty port name; separate ports with single commas")
            if port in seen:
                raise InputError(f"--ports: {port} is given twice; give each port once")
            seen.add(port)


@dataclass(frozen=True)
class Watch:
    """A station for every allowed USB serial port that appears (VID:PID from the board profiles)."""

    lister: Callable[[], list[PortRecord]] = list_serial_ports
    bridges: dict[tuple[int, int], Bridge] | None = None
    interval: float = WATCH_POLL_S


@dataclass
class RunSummary:
    run_id: str
    manifest: str  # a path, or a DSN with its password redacted
    audit: Path
    before: Counts
    after: Counts
    outcomes: list[tuple[str, BoardOutcome]] = field(default_factory=list)  # (port, outcome)
    interrupted: bool = False
    station: str = ""
    released: list[Released] = field(default_factory=list)  # stale claims given up at this run
    held_here: int = 0  # unfinished IDs (claimed, failed) whose last station is this one

    def count(self, result: str) -> int:
        return sum(1 for _, outcome in self.outcomes if outcome.result == result)

    @property
    def failures(self) -> list[tuple[str, BoardOutcome]]:
        return [(port, o) for port, o in self.outcomes if o.result == ev.FAILED]

    @property
    def complete(self) -> bool:
        """Every ID in the manifest is done."""
        return self.after.total > 0 and self.after.done == self.after.total

    @property
    def station_complete(self) -> bool:
        """No ID left to hand out, and none unfinished at this station (others may be finishing
        theirs: a station of a multi-station line is through when its own boards are)."""
        return self.after.total > 0 and self.after.pending == 0 and self.held_here == 0

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "station": self.station,
            "manifest": self.manifest,
            "audit": str(self.audit),
            "done": self.count(DONE),
            "skipped": self.count(ev.SKIPPED),
            "failed": self.count(ev.FAILED),
            "no_ids": self.count(ev.NO_IDS),
            "interrupted": self.interrupted,
            "complete": self.complete,
            "station_complete": self.station_complete,
            "manifest_counts": self.after.__dict__,
            "released": [r.as_fields() for r in self.released],
            "failures": [
                {"port": port, "board": o.board_id, "device": o.device_id, "stage": o.stage, "error": o.error}
                for port, o in self.failures
            ],
        }


def audit_path_for(manifest_location: str | Path) -> Path:
    """Beside a SQLite manifest; in the current folder for a database (one log per station PC)."""
    if is_postgres(manifest_location):
        return default_audit_path(Path(DEFAULT_MANIFEST))
    return default_audit_path(Path(manifest_location))


def release_station(
    manifest_location: str, station: str, audit_path: str | Path | None = None
) -> tuple[list[Released], str]:
    """`factory release`: give up every claim `station` holds (a station that stopped mid-board),
    each written to the audit log. Returns the released claims and the manifest's location as
    messages may show it (a DSN's password redacted)."""
    with open_existing(manifest_location, station=default_station()) as manifest:
        released = manifest.release(station=station)
        if released:
            audit = AuditLog(audit_path or audit_path_for(manifest_location))
            try:
                for item in released:
                    audit.write(
                        ev.RELEASED, station=manifest.station, reason=f"factory release --station {station}",
                        **item.as_fields(),
                    )  # fmt: skip
            finally:
                audit.close()
    return released, manifest.location


def port_present(port: str, lister: Callable[[], list[PortRecord]] = list_serial_ports) -> bool:
    """Is the port there? A path (Linux, macOS) exists; a COM port is listed; a URL always is."""
    if "://" in port:
        return True
    if os.path.exists(port):
        return True
    if os.name == "nt" or not port.startswith("/"):
        return any(record.device == port for record in lister())
    return False


class FactoryLine:
    def __init__(
        self,
        job: FactoryJob,
        manifest_path: str | Path,
        devices: Sequence[DeviceEntry] | None,
        stations: PortList | Watch,
        *,
        station: str | None = None,
        claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
        on_event: ev.EventSink | None = None,
        audit_path: str | Path | None = None,
        stop: threading.Event | None = None,
        connect: Callable | None = None,
        presence: Callable[[str], bool] = port_present,
    ) -> None:
        job.check()
        if claim_timeout <= 0:
            raise InputError(f"--claim-timeout: {claim_timeout} is not a positive number of seconds")
        self.job = job
        self.claim_timeout = claim_timeout
        self.stations = stations
        self.stop = stop or threading.Event()
        self._on_event = on_event
        self._presence = presence
        self._connect = connect
        # Everything that can be refused is refused before the manifest or the audit log is created.
        no_ids = "--devices: the manifest holds no device IDs yet; give --devices CSV or --prefix/--count"
        if not devices and not is_postgres(manifest_path) and not Path(manifest_path).exists():
            raise InputError(no_ids)
        if devices:
            job.credentials.check_device_ids([entry.device_id for entry in devices])
        audit_path = Path(audit_path or audit_path_for(manifest_path))
        check_audit_path(audit_path)
        self.manifest: Manifest = open_manifest(manifest_path, station=station)
        try:
            self.manifest.bind_settings(
                id_scope=job.id_scope, auth=job.auth, credential=job.credentials.binding()
            )
            if devices:
                self.manifest.add_devices(devices)
            elif self.manifest.counts().total == 0:
                raise InputError(no_ids)
            self.audit = AuditLog(audit_path)
        except BaseException:
            self.manifest.close()
            raise
        if job.labels is not None:
            job.labels.mkdir(parents=True, exist_ok=True)
        self._deployments: dict = {}
        self._deploy_lock = threading.Lock()
        self._outcomes: list[tuple[str, BoardOutcome]] = []
        self._outcomes_lock = threading.Lock()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._fatal: BaseException | None = None
        self._released: list[Released] = []
        self.run_id = ""

    # --- events --------------------------------------------------------------------------------------

    def emit(self, name: str, port: str | None = None, **fields) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        if name not in ev.NOT_AUDITED:
            stamped = {"run": self.run_id, "station": self.manifest.station, "port": port, **fields}
            self.audit.write(name, **stamped)
        if self._on_event is not None:
            self._on_event(ev.Event(name, port, fields))

    # --- the run ---------------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        before = self.manifest.counts()
        settings = {
            "id_scope": self.job.id_scope,
            "dps": f"{self.job.dps_host}:{self.job.dps_port}",
            "hub_port": self.job.hub_port,
            "model_id": self.job.model_id,
            "stations": list(self.stations.ports) if isinstance(self.stations, PortList) else "watch",
            "flash": self.job.flash is not None,
            "deploy": self.job.deploy,
            "online_check": self.job.online_check,
            "reprovision": self.job.reprovision,
            "replace": self.job.replace,
            "wifi_ssid": self.job.wifi.ssid if self.job.wifi else None,
            **self.job.credentials.describe(),
        }
        self.run_id = self.manifest.start_run(settings)
        self.emit(ev.RUN_STARTED, manifest=self.manifest.location, counts=before.__dict__, **settings)
        work = BoardWork(
            self.job, self.manifest, self.run_id, self.emit, self.stop, self._prepare_deployment,
            **({"connect": self._connect} if self._connect else {}),
            claim_timeout=self.claim_timeout, on_released=self._on_released,
        )  # fmt: skip
        work.release_stale()
        interrupted = False
        try:
            if isinstance(self.stations, PortList):
                self._run_ports(work)
            else:
                self._run_watch(work)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            after = self.manifest.counts()
            station = self.manifest.station
            held_here = sum(
                1 for status in (CLAIMED, FAILED) for _ in self.manifest.records(status, station=station)
            )
            summary = RunSummary(
                self.run_id, self.manifest.location, self.audit.path, before, after, list(self._outcomes),
                interrupted or self.stop.is_set(), station, list(self._released), held_here,
            )  # fmt: skip
            outcome = {key: value for key, value in summary.as_dict().items() if key not in ("failures",)}
            self.manifest.end_run(self.run_id, outcome)
            self.emit(ev.RUN_ENDED, **outcome)
        if self._fatal is not None:
            raise self._fatal
        return summary

    def _on_released(self, released: Released) -> None:
        with self._outcomes_lock:
            self._released.append(released)

    def close(self) -> None:
        self.audit.close()
        self.manifest.close()

    def __enter__(self) -> "FactoryLine":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _prepare_deployment(self, mpy_version):
        """The firmware files for a bytecode version, compiled once per run."""
        with self._deploy_lock:
            if mpy_version not in self._deployments:
                self._deployments[mpy_version] = build_deployment(
                    mpy_version,
                    main=self.job.main,
                    firmware=self.job.firmware_dir,
                    compile=self.job.compile,
                    line_numbers=self.job.line_numbers,
                )
            return self._deployments[mpy_version]

    # --- stations ----------------------------------------------------------------------------------------

    def _work_left(self) -> bool:
        return not self.stop.is_set() and self._fatal is None and self.manifest.pending_left() > 0

    def _process(self, work: BoardWork, port: str) -> BoardOutcome:
        with self._busy_lock:
            self._busy += 1
        try:
            outcome = work.process(port)
        finally:
            with self._busy_lock:
                self._busy -= 1
        with self._outcomes_lock:
            self._outcomes.append((port, outcome))
        return outcome

    def _wait_until(self, condition: Callable[[], bool], keep_waiting: Callable[[], bool]) -> bool:
        """True once `condition` holds; False as soon as `keep_waiting` says there is no point."""
        while True:
            if condition():
                return True
            if not keep_waiting():
                return False
            self.stop.wait(POLL_S)

    def _station(self, work: BoardWork, port: str) -> None:
        """A fixed port, board after board."""
        try:
            present = lambda: self._presence(port)  # noqa: E731
            if not present():
                self.emit(ev.WAITING, port)
                if not self._wait_until(present, self._work_left):
                    return
            while True:
                self._process(work, port)
                if self._work_left() and present():  # said once per board: the wait is otherwise silent
                    self.emit(ev.SWAP, port, reason=_swap_reason(port))
                if not self._wait_until(lambda: not present(), self._work_left):
                    return
                self.emit(ev.REMOVED, port)
                if not self._work_left():
                    return
                self.emit(ev.WAITING, port)
                if not self._wait_until(present, self._work_left):
                    return
        except BaseException as error:  # the manifest or the audit log failed: stop the line
            self._fatal = self._fatal or error
            self.stop.set()
        finally:
            self.emit(ev.STATION_ENDED, port)

    def _run_ports(self, work: BoardWork) -> None:
        assert isinstance(self.stations, PortList)
        threads = [
            _Worker(target=self._station, args=(work, port), name=f"station {port}", daemon=True)
            for port in self.stations.ports
        ]
        for thread in threads:
            thread.start()
        self._join_stations(threads)

    def _join_stations(self, threads: list["_Worker"]) -> None:
        """Wait for the stations; the first Ctrl-C lets them finish the boards in hand, a second
        one leaves at once (the manifest stays consistent either way)."""
        try:
            _join_all(threads)
        except KeyboardInterrupt:
            self.stop.set()
            self.emit(ev.STOPPING)
            _join_all(threads)

    def _one_board(self, work: BoardWork, port: str, active: dict) -> None:
        try:
            self._process(work, port)
        except BaseException as error:
            self._fatal = self._fatal or error
            self.stop.set()
        finally:
            self.emit(ev.STATION_ENDED, port)
            with self._busy_lock:
                active.pop(port, None)

    def _run_watch(self, work: BoardWork) -> None:
        assert isinstance(self.stations, Watch)
        active: dict[str, _Worker] = {}
        try:
            self._watch(work, active)
        except KeyboardInterrupt:
            self.stop.set()
            self.emit(ev.STOPPING)
        with self._busy_lock:
            running = list(active.values())
        _join_all(running)

    def _watch(self, work: BoardWork, active: dict[str, "_Worker"]) -> None:
        watch = self.stations
        assert isinstance(watch, Watch)
        bridges = known_bridges() if watch.bridges is None else watch.bridges
        previous: list[PortRecord] = []
        first, waiting = True, False
        while not self.stop.is_set():
            try:
                current = [candidate.record for candidate in candidate_ports(watch.lister(), bridges)]
            except OSError as error:
                raise OperationError(f"--watch: cannot list serial ports ({error})") from None
            for device in sorted({r.device for r in previous} - {r.device for r in current}):
                self.emit(ev.REMOVED, device)
            for record in new_ports(previous, current):
                if not first and not self._work_left():
                    break
                with self._busy_lock:
                    if record.device in active:
                        continue
                    thread = _Worker(
                        target=self._one_board, args=(work, record.device, active),
                        name=f"station {record.device}", daemon=True,
                    )  # fmt: skip
                    active[record.device] = thread
                waiting = False
                thread.start()
            previous, first = current, False
            with self._busy_lock:
                idle = not active
            if idle and not self._work_left():
                return
            if idle and not waiting:
                self.emit(ev.WAITING, None)
                waiting = True
            self.stop.wait(watch.interval)


def _swap_reason(port: str) -> str:
    if "://" in port:
        return f"waiting for a new board on {port}: a network port cannot be seen unplugged (Ctrl-C ends)"
    return f"waiting for a new board on {port}: unplug the finished board, plug in the next"


class _Worker(threading.Thread):
    """A station's thread, with an event set when it ends: what the main thread waits on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.finished.set()


def _join_all(threads: list[_Worker]) -> None:
    """Wait for every thread; short waits so Ctrl-C reaches the main thread. Not Thread.join: a
    KeyboardInterrupt landing inside join() marks the thread as ended while it still runs (CPython
    releases its state lock), and the run would end abandoning the board in hand."""
    for thread in threads:
        while not thread.finished.wait(0.5):
            pass


def run_line(
    job: FactoryJob,
    manifest_path: str | Path,
    devices: Sequence[DeviceEntry] | None,
    stations: PortList | Watch,
    **kwargs,
) -> RunSummary:
    """Open the manifest and audit log, run the line, close them. See FactoryLine for kwargs."""
    with FactoryLine(job, manifest_path, devices, stations, **kwargs) as line:
        return line.run()
