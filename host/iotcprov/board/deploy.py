"""Copy the firmware package onto a board, skipping what is already there.

Files go to /lib/iotc as .mpy when `mpy-cross` can emit the board's bytecode version, else as
.py. A file whose SHA-256 (computed on the board) already matches is not sent again; the others
travel as one zlib stream the board expands (`bundle`, when it has `deflate`); files in
/lib/iotc that are no longer part of the firmware are removed (a stale .py would shadow its .mpy).
`deployed.json` beside them records the version and format for `iotcprov info`.
"""

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iotcprov import resources
from iotcprov.board.bytecode import compile_sources, compiler_for
from iotcprov.board.connection import BoardSession, Progress, open_board, run_counted
from iotcprov.board.layout import FIRMWARE_DIR, MAIN
from iotcprov.errors import InputError, OperationError

DEPLOYED = FIRMWARE_DIR + "/deployed.json"
PACKAGE = "iotc"
_VERSION = re.compile(rb"""^VERSION\s*=\s*["']([^"']+)["']""", re.MULTILINE)


@dataclass(frozen=True)
class DeployResult:
    version: str | None
    bytecode: str  # "mpy 6.3" or "py"
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    has_main: bool = True  # /main.py is on the board: something starts the firmware at boot
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def check_firmware_folder(firmware: Path | None, field: str = "--source") -> None:
    """A firmware folder given instead of the packaged one must hold the iotc package."""
    if firmware is not None and not (Path(firmware) / PACKAGE / "__init__.py").is_file():
        raise InputError(f"{field}: {str(firmware)!r} has no {PACKAGE}/__init__.py; give the firmware folder")


def firmware_sources(firmware: Path | None = None) -> dict[str, bytes]:
    """{'iotc/app.py': source, ...} of the firmware package, subpackages included."""
    check_firmware_folder(firmware)
    root = Path(firmware) if firmware else resources.firmware_dir()
    package = root / PACKAGE
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(package.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def firmware_version(sources: dict[str, bytes]) -> str | None:
    match = _VERSION.search(sources.get(f"{PACKAGE}/__init__.py", b""))
    return match[1].decode("ascii") if match else None


def build_deployment(
    mpy_version: tuple[int, int] | None,
    *,
    main: bool = False,
    firmware: Path | None = None,
    compile: bool = True,
    line_numbers: bool = True,
) -> tuple[dict[str, bytes], str, str | None]:
    """({board path: bytes}, bytecode label, version) for a board of `mpy_version`; without
    `line_numbers`, bytecode whose tracebacks have none (`bytecode.compile_sources`)."""
    sources = firmware_sources(firmware)
    version = firmware_version(sources)
    compiler = compiler_for(mpy_version) if compile else None
    if compiler:
        package_files = compile_sources(compiler, sources, line_numbers)
        label = f"mpy {mpy_version[0]}.{mpy_version[1]}"  # type: ignore[index]
    else:
        package_files, label = sources, "py"
    files = {f"/lib/{name}": data for name, data in package_files.items()}
    files[DEPLOYED] = (json.dumps({"version": version, "bytecode": label}, sort_keys=True) + "\n").encode()
    if main:
        root = Path(firmware) if firmware else resources.firmware_dir()
        try:
            files[MAIN] = (root / "main.py").read_bytes()
        except OSError:
            raise OperationError(f"--main: no example main.py in {root}; reinstall iotcprov") from None
    return files, label, version


def read_deployed(session: BoardSession) -> dict | None:
    """deployed.json on the board ({"version", "bytecode"}), or None when absent or unreadable."""
    text = session.read_text(DEPLOYED)
    try:
        deployed = json.loads(text) if text else None
    except ValueError:
        return None
    return deployed if isinstance(deployed, dict) else None


def _stale_files(session: BoardSession, files: dict[str, bytes]) -> list[str]:
    """Files under FIRMWARE_DIR on the board that `files` (all on the board by now) does not have.
    A flat firmware folder holding as many entries as `files` puts there has none: a count comes
    back in a few bytes, a listing in about 30 a file."""
    ours = [path for path in files if path.startswith(FIRMWARE_DIR + "/")]
    flat = all("/" not in path[len(FIRMWARE_DIR) + 1 :] for path in ours)
    if flat and session.eval(f"len(os.listdir({FIRMWARE_DIR!r}))") == len(ours):
        return []
    return sorted(set(_board_files(session, FIRMWARE_DIR)) - set(files))


def _board_files(session: BoardSession, folder: str) -> list[str]:
    """Every file under `folder` on the board (recursively)."""
    found, pending = [], [folder]
    while pending:
        current = pending.pop()
        for name, is_dir in session.list_dir(current) or []:
            (pending if is_dir else found).append(f"{current}/{name}")
    return found


def deploy_session(
    session: BoardSession,
    *,
    main: bool = False,
    firmware: Path | None = None,
    compile: bool = True,
    line_numbers: bool = True,
    prepared: tuple[dict[str, bytes], str, str | None] | None = None,
    progress: Progress | None = None,
) -> DeployResult:
    """Deploy over an open session. `prepared`: what build_deployment returned for this board's
    bytecode version, so that a line of boards compiles the firmware once. `progress(done,
    total)`: bytes of the transfer the board has taken."""
    started = time.monotonic()
    sent, received = session.bytes_sent, session.bytes_received
    if prepared is None:
        mpy_version = session.facts().mpy_version
        prepared = build_deployment(
            mpy_version, main=main, firmware=firmware, compile=compile, line_numbers=line_numbers
        )
    files, label, version = prepared
    on_board = session.hash_files(sorted(files))
    written, skipped = [], []
    for path in sorted(files):
        same = on_board[path] == hashlib.sha256(files[path]).hexdigest()
        (skipped if same else written).append(path)
    session.write_files({path: files[path] for path in written}, progress)  # one compressed stream if it can
    removed = _stale_files(session, files)
    for path in removed:
        session.remove_tree(path)
    has_main = MAIN in files or any(name == MAIN[1:] for name, _ in session.list_dir("/") or [])
    return DeployResult(
        version=version,
        bytecode=label,
        written=written,
        skipped=skipped,
        removed=removed,
        has_main=has_main,
        bytes_sent=session.bytes_sent - sent,
        bytes_received=session.bytes_received - received,
        seconds=time.monotonic() - started,
    )


def deploy(
    port: str,
    *,
    main: bool = False,
    firmware: Path | None = None,
    compile: bool = True,
    line_numbers: bool = True,
    connect: Callable[[str], BoardSession] = open_board,
    progress: Progress | None = None,
) -> DeployResult:
    """Open `port` and deploy the firmware (see the module docstring); counts include connecting."""
    check_firmware_folder(firmware)  # before the board is touched
    return run_counted(
        port,
        lambda session: deploy_session(
            session,
            main=main,
            firmware=firmware,
            compile=compile,
            line_numbers=line_numbers,
            progress=progress,
        ),
        connect,
    )
