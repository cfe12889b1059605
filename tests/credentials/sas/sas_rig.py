"""Test rig for the SAS tests: the MicroPython unix port with firmware/ on its path, and the
firmware modules loaded on CPython. Imported by conftest.py and the tests (unique module name)."""

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from types import ModuleType

from iotcprov import resources

HERE = Path(__file__).resolve().parent
FIRMWARE_DIR = resources.firmware_dir()


def find_micropython() -> str:
    """The unix port as the virtual board finds it ($IOTCPROV_MICROPYTHON, beside this Python, on
    PATH). Raises MicroPythonMissing where there is none: tests/conftest.py turns that into the
    same one-line skip for every test that needs it."""
    from iotcprov.virtual_board.micropython import find_micropython as find

    return find()


def micropython_env() -> dict[str, str]:
    # .frozen keeps the port's frozen modules importable; firmware/ provides the `iotc` package.
    return {**os.environ, "MICROPYPATH": f".frozen{os.pathsep}{FIRMWARE_DIR}"}


def run_script(executable: str, script: str, timeout: float = 30) -> object:
    """Run `script` on the unix port; return the JSON it printed on its last line."""
    done = subprocess.run(
        [executable, "-c", script], env=micropython_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr or done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


class MicroPythonSas:
    """One long-running MicroPython process answering SAS requests, one JSON line each way."""

    def __init__(self, executable: str) -> None:
        self.process = subprocess.Popen(
            [executable, str(HERE / "micropython_sas_server.py")],
            env=micropython_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            encoding="utf-8",
            bufsize=1,
        )

    def ask(self, request: dict) -> dict:
        assert self.process.stdin and self.process.stdout
        # Raw UTF-8, not \u escapes: MicroPython's json decodes surrogate-pair escapes one half at a time.
        self.process.stdin.write(json.dumps(request, ensure_ascii=False) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"MicroPython exited with code {self.process.poll()}"
        answer = json.loads(line)
        assert "error" not in answer, answer["error"]
        return answer

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            if self.process.stdout:
                self.process.stdout.close()


def load_firmware_module(name: str) -> ModuleType:
    """Import firmware/iotc/<name>.py on CPython under a private name (the pure core must import)."""
    path = FIRMWARE_DIR / "iotc" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_firmware_iotc_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
