"""Helpers for factory tests: stations of virtual boards that a test "technician" swaps.

A station is a fixed port: the state folder of the virtual board plugged into it, whose `port`
link appears when a board is plugged in and disappears when it is unplugged, like /dev/ttyUSB0.
Every board gets its own filesystem folder (and so its own MAC); folders are kept after a board
is unplugged, so a test can read what each board ended up holding.
"""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from iotcprov.board.ports import PortRecord

# A USB bridge of the esp32 profile (Silicon Labs CP210x): what --watch looks for.
CP210X = (0x10C4, 0xEA60)
PLAIN_LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<port>\S+) (?P<event>[a-z-]+|stage=\S+)(?: (?P<rest>.*))?$")


class Stations:
    def __init__(self, tmp_path: Path, count: int, **board_options) -> None:
        self._virtual_board = pytest.importorskip("iotcprov.virtual_board")
        self.tmp = tmp_path
        self.state_dirs = [tmp_path / f"station-{index}" for index in range(count)]
        self.board_options = board_options
        self.plugged: dict[int, object] = {}  # station index -> VirtualBoard
        self.used: list[object] = []  # every board ever plugged, in order
        self._lock = threading.Lock()

    @property
    def ports(self) -> list[str]:
        return [str(state / "port") for state in self.state_dirs]

    def station_of(self, port: str) -> int:
        return self.ports.index(port)

    def plug(self, index: int, board=None):
        """Plug a new board (or `board` again, e.g. after it was pulled) into station `index`."""
        with self._lock:
            if board is None:
                directory = self.tmp / f"board-{len(self.used)}"
                directory.mkdir()
                try:
                    board = self._virtual_board.VirtualBoard(
                        directory=directory, state_directory=self.state_dirs[index], **self.board_options
                    )
                except self._virtual_board.MicroPythonMissing as missing:
                    pytest.skip(str(missing))
                self.used.append(board)
            self.plugged[index] = board
        board.start()
        return board

    def unplug(self, index: int):
        with self._lock:
            board = self.plugged.pop(index, None)
        if board is not None:
            board.stop()
        return board

    def records(self) -> list[PortRecord]:
        """What pyserial would list: a CP210x per plugged board (serial number: its MAC), plus a
        port of an unknown bridge that --watch must leave alone."""
        with self._lock:
            plugged = list(self.plugged.items())
        found = [
            PortRecord(self.ports[i], *CP210X, serial_number=b.mac, description="CP2102") for i, b in plugged
        ]
        return found + [PortRecord("/dev/ttyACM-not-a-board", 0x2341, 0x0043, "x", "Arduino Uno")]

    def stop_all(self) -> None:
        for index in list(self.plugged):
            self.unplug(index)


@pytest.fixture
def stations_factory(tmp_path):
    made = []

    def make(count: int, **options) -> Stations:
        stations = Stations(tmp_path, count, **options)
        made.append(stations)
        return stations

    yield make
    for stations in made:
        stations.stop_all()


def board_identity(board) -> dict | None:
    """identity.json of the board's active identity, read from its folder on the host."""
    root = Path(board.directory) / "iotc-data"
    try:
        folder = (root / "active").read_text().strip()
        return json.loads((root / folder / "identity.json").read_text())
    except (OSError, ValueError):
        return None


def board_bytes(board) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(Path(board.directory).rglob("*")) if p.is_file())


def cli_env(**extra: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("IOTCPROV_")}
    environment.update(extra)
    return environment


def _sigint_as_at_a_terminal() -> None:
    # A test run started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler; a technician's terminal delivers Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class FactoryProcess:
    """`iotcprov factory run ...` as a subprocess, its plain output read line by line."""

    def __init__(self, args: list[str], env: dict, events: queue.Queue | None = None, name: str = "") -> None:
        """`events` may be shared by several processes: each ends with ("exit", None, name)."""
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "iotcprov", "factory", "run", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
            preexec_fn=_sigint_as_at_a_terminal,
        )  # fmt: skip
        self.lines: list[str] = []
        self.events: queue.Queue = events if events is not None else queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read(self) -> None:
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            match = PLAIN_LINE.match(line)
            if match:
                self.events.put((match["event"], match["port"], match["rest"] or ""))
        self.events.put(("exit", None, self.name))

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        self.stderr = self.process.stderr.read()
        self.process.stderr.close()
        self.process.stdout.close()
        return code

    def output(self) -> str:
        return "\n".join(self.lines) + "\n" + self.stderr


def field(rest: str, name: str) -> str | None:
    match = re.search(rf"(?:^| ){name}=(\S+)", rest)
    return match[1] if match else None


# --- manifest back-ends: the same tests run against SQLite and a real PostgreSQL ------------------------


class PostgresServer:
    """A PostgreSQL server this test session started; each test gets a database of its own."""

    def __init__(self, uri: str, stop) -> None:
        self.uri = uri  # postgresql://user:@/postgres?host=/socket/dir
        self.stop = stop

    def database_uri(self, name: str) -> str:
        return self.uri.replace("/postgres?", f"/{name}?", 1)

    def new_database(self) -> str:
        import uuid

        import psycopg

        name = "m_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.uri, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.database_uri(name)


def _start_postgres(folder: Path) -> PostgresServer:
    """pgserver (PyPI: a bundled PostgreSQL), else a system `postgres` when not root; else skip."""
    pytest.importorskip("psycopg", reason="PostgreSQL manifest tests need psycopg: pip install -e '.[test]'")
    problems = []
    try:
        import pgserver

        # pgserver runs the server as an unprivileged user when we are root: its data folder must
        # be reachable by it (pytest's own tmp folders are 0700)
        data = Path(tempfile.mkdtemp(prefix="iotcprov-pg-"))
        data.chmod(0o755)
        server = pgserver.get_server(data, cleanup_mode="stop")

        def stop() -> None:
            server.cleanup()
            shutil.rmtree(data, ignore_errors=True)

        return PostgresServer(server.get_uri(), stop)
    except Exception as error:  # any reason pgserver cannot start here: try a system postgres
        problems.append(
            f"pgserver: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        )
    if shutil.which("pg_ctl") and shutil.which("initdb") and os.geteuid() != 0:
        data, sockets = folder / "sysdata", folder / "sockets"
        sockets.mkdir()
        subprocess.run(
            ["initdb", "-D", str(data), "-U", "postgres", "-A", "trust"], check=True, capture_output=True
        )
        subprocess.run(
            ["pg_ctl", "-D", str(data), "-w", "-o", f"-k {sockets} -c listen_addresses=''", "start"],
            check=True, capture_output=True,
        )  # fmt: skip
        stop = lambda: subprocess.run(["pg_ctl", "-D", str(data), "-m", "fast", "stop"], capture_output=True)  # noqa: E731
        return PostgresServer(f"postgresql://postgres:@/postgres?host={sockets}", stop)
    problems.append("no system postgres usable (pg_ctl/initdb missing, or running as root)")
    pytest.skip("no PostgreSQL could start for the manifest tests: " + "; ".join(problems))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    server = _start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def manifest_location(request, tmp_path) -> str:
    """Where a new, empty manifest goes: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "line.sqlite")
    return request.getfixturevalue("postgres_server").new_database()
