"""The host tool on Windows and macOS: no POSIX-only module or call on the paths of its commands.

Each CLI run goes through tests/as_windows.py, which refuses iotcprov's own code the POSIX-only
modules (pty, termios, fcntl, ctypes, ...) and attributes (os.killpg, signal.SIGKILL, select.poll,
...). Only the virtual board (and so the demo) needs Linux; elsewhere it says so in one line.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from iotcprov.cli import build_parser
from iotcprov.cli.reference import walk

from .board.conftest import make_esp_image

AS_WINDOWS = [sys.executable, str(Path(__file__).with_name("as_windows.py"))]
GROUP_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="


def as_windows(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("IOTCPROV_")}
    return subprocess.run(
        [*AS_WINDOWS, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        env=environment,
    )  # fmt: skip


def assert_ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    assert "POSIX-only" not in result.stderr
    return result.stdout


@pytest.mark.smoke
def test_every_command_help_runs_without_posix_modules():
    result = as_windows("--all-help")
    checked = assert_ok(result).splitlines()
    expected = [parser.prog for parser, _summary in walk(build_parser())]
    assert checked == expected
    assert "iotcprov factory run" in checked and "iotcprov emulator fault drop" in checked


def test_the_blocker_refuses_what_windows_lacks():
    # The proof above holds only if the blocker bites: the virtual board itself needs pty.
    result = as_windows("virtual-board", "--baud", "0")
    assert result.returncode != 0
    assert "pty is POSIX-only" in result.stderr


@pytest.mark.parametrize(
    ("command", "exit_code", "message"),
    [
        ("virtual-board", 2, "iotcprov: error: virtual board: needs Linux x86_64 "),
        ("demo", 1, "iotcprov: error: demo: needs Linux x86_64, "),
    ],
)
def test_virtual_board_and_demo_say_what_they_need_elsewhere(command, exit_code, message):
    result = as_windows("--pretend-windows", command)
    assert result.returncode == exit_code
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert "this machine is Windows AMD64" in result.stderr
    assert result.stderr.count("\n") == 1


def test_keys_and_certs_run_without_posix_facilities(tmp_path):
    key = assert_ok(as_windows("keys", "generate")).strip()
    assert len(key) == 88
    derived = assert_ok(as_windows("keys", "derive", "--group-key", GROUP_KEY, "--device-id", "dev-1"))
    token = assert_ok(as_windows("keys", "sas", "--key", derived.strip(), "--device-id", "dev-1",
                                 "--id-scope", "0ne00ABCDEF"))  # fmt: skip
    assert token.startswith("SharedAccessSignature ")
    pki = tmp_path / "pki"
    assert_ok(as_windows("certs", "root", "--out", str(pki), "--no-encrypt"))
    assert_ok(as_windows("certs", "device", "--ca-cert", str(pki / "root.pem"), "--ca-key",
                         str(pki / "root.key.pem"), "--device-id", "dev-1", "--out", str(pki)))  # fmt: skip
    shown = json.loads(assert_ok(as_windows("certs", "show", str(pki / "dev-1.pem"), "--json")))
    assert shown["certificates"][0]["common_name"] == "dev-1"
    assert (pki / "dev-1.key.pem").stat().st_mode & 0o777 == 0o600


def test_emulator_runs_without_posix_facilities(tmp_path):
    data = tmp_path / "emulator"
    server = subprocess.Popen(
        [*AS_WINDOWS, "emulator", "start", "--data", str(data), "--stop-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        info = json.loads(server.stdout.readline() or "null")
        assert info is not None, server.stderr.read() if server.poll() is not None else "no first line"
        assert_ok(as_windows("emulator", "--data", str(data), "group", "create", "--name", "g1", "--sas"))
        groups = json.loads(assert_ok(as_windows("emulator", "--data", str(data), "group", "list")))
        assert [group["name"] for group in groups] == ["g1"]
        assert json.loads(assert_ok(as_windows("emulator", "--data", str(data), "stats")))["devices"] == 0
    finally:
        server.stdin.close()  # --stop-on-stdin-eof: the way Emulator.running stops it on any OS
        code = server.wait(timeout=20)
        stderr = server.stderr.read()
        server.stdout.close()
        server.stderr.close()
    assert code == 0 and "POSIX-only" not in stderr, stderr


def test_board_commands_run_without_posix_facilities(tmp_path):
    virtual_board = pytest.importorskip("iotcprov.virtual_board")
    (tmp_path / "board").mkdir()
    try:
        board = virtual_board.VirtualBoard(tmp_path / "board", state_directory=tmp_path / "state")
    except virtual_board.MicroPythonMissing as missing:
        pytest.skip(str(missing))
    ca = tmp_path / "ca.pem"
    assert_ok(as_windows("certs", "root", "--out", str(tmp_path), "--no-encrypt"))
    (tmp_path / "root.pem").rename(ca)
    with board:
        port = board.port
        provisioned = json.loads(assert_ok(as_windows(
            "provision", "--port", port, "--id-scope", "0ne00ABCDEF", "--device-id", "dev-1",
            "--group-key", GROUP_KEY, "--trust", str(ca), "--json",
        )))  # fmt: skip
        assert provisioned["device_id"] == "dev-1"
        info = json.loads(assert_ok(as_windows("info", "--port", port, "--json")))
        assert info["identity"]["fingerprint"] == provisioned["fingerprint"]
        monitored = as_windows("monitor", "--port", port, "--timeout", "0.5")
        assert monitored.returncode == 0, monitored.stderr
        assert "erased device dev-1" in assert_ok(as_windows("erase-identity", "--port", port, "--yes"))
        deployed = json.loads(assert_ok(as_windows("deploy", "--port", port, "--json")))
        assert deployed["written"]
    image = tmp_path / "micropython.bin"
    make_esp_image(image)
    # esptool connects (nothing listens there): the flash path up to the ROM loader, on any OS
    flashed = as_windows("flash", "--port", "socket://127.0.0.1:9", "--firmware", str(image))
    assert flashed.returncode == 2, flashed.stderr
    assert flashed.stderr.startswith("iotcprov: error: --port: no ESP ROM loader answers"), flashed.stderr


def test_without_the_unix_port_its_tests_skip_saying_why(tmp_path):
    """A machine without MicroPython's unix port (Python 3.14, macOS, ...) skips every test that
    needs it, each with the finder's one-line reason, and fails none (a sample of each kind: a
    firmware e2e rig, the SAS rig, in-process virtual boards, a CLI child process)."""
    tests = Path(__file__).parent
    sample = [
        "tests/firmware/test_fw_device.py", "tests/credentials/sas/test_sas_parity.py",
        "tests/virtual_board/test_api.py", "tests/virtual_board/test_cli.py",
    ]  # fmt: skip
    environment = dict(os.environ, IOTCPROV_MICROPYTHON=str(tmp_path / "no-micropython"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *sample],
        capture_output=True, text=True, cwd=tests.parent, env=environment, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0 and " failed" not in result.stdout, result.stdout[-3000:]
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    reason = f"IOTCPROV_MICROPYTHON: '{tmp_path / 'no-micropython'}' is not an executable"
    assert skips and all(reason in line for line in skips), "\n".join(skips)
