"""`iotcprov virtual-board` as a separate process."""

import os
import select
import signal
import subprocess
import sys

import pytest

from .processes import children_of

IOTCPROV = [sys.executable, "-m", "iotcprov"]


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*IOTCPROV, "virtual-board", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.micropython
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_first_line_is_the_port_and_a_signal_stops_cleanly(tmp_path, stop_signal):
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    (board_dir / "main.py").write_text("print('cli board up')\n")
    cli = start_cli("--dir", str(board_dir), "--baud", "0", "--state", str(tmp_path / "state"))
    try:
        port = cli.stdout.readline().strip()
        assert os.path.islink(port) and os.readlink(port).startswith("/dev/pts/")
        answer = subprocess.run(
            [sys.executable, "-m", "mpremote", "connect", port, "exec", "print(open('main.py').read())"],
            capture_output=True, text=True, timeout=60,
        )
        assert answer.stdout.startswith("print('cli board up')")
        children = [os.pidfd_open(pid) for pid in children_of(cli.pid)]
        assert children
        cli.send_signal(stop_signal)
        assert cli.wait(timeout=20) == 0
        assert not os.path.lexists(port)
        for pidfd in children:
            assert select.select([pidfd], [], [], 10)[0] == [pidfd]
        assert b"cli board up" in (tmp_path / "state" / "console.log").read_bytes()
    finally:
        cli.kill()
        cli.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dir", "/nonexistent/board"], "iotcprov: error: --dir: '/nonexistent/board' does not exist"),
        (["--dir", __file__], "iotcprov: error: --dir: "),
        (["--mac", "12:34:56"], "iotcprov: error: --mac: '12:34:56' is not six hex pairs"),
        (["--heap", "12Q"], "iotcprov: error: --heap: '12Q' is not a heap size"),
        (["--heap", "4K"], "iotcprov: error: --heap: 4K is too small for the REPL and mpremote"),
        (["--fault", "wifi_fail=often"], "iotcprov: error: --fault wifi_fail: 'often' is not a count"),
    ],
)
@pytest.mark.micropython  # the unix port is looked for first
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = subprocess.run([*IOTCPROV, "virtual-board", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


def test_missing_micropython_is_one_line_and_exit_code_2():
    env = dict(os.environ, IOTCPROV_MICROPYTHON="/nonexistent/micropython")
    result = subprocess.run(
        [*IOTCPROV, "virtual-board"], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 2
    assert result.stderr.startswith("iotcprov: error: IOTCPROV_MICROPYTHON: '/nonexistent/micropython'")
    assert result.stderr.count("\n") == 1
