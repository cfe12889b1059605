"""The VirtualBoard Python API: several boards, power switch, console log, cleanup."""

import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
import serial
from iotcprov.errors import InputError, OperationError
from iotcprov.virtual_board import VirtualBoard

from .processes import children_of


def test_several_boards_run_at_once(make_board, tmp_path):
    boards = []
    for index in range(3):
        folder = tmp_path / f"b{index}"
        folder.mkdir()
        (folder / "main.py").write_text(f"print('I am board {index}')\n")
        boards.append(make_board(directory=folder))
    assert len({board.port for board in boards}) == 3
    assert len({board.mac for board in boards}) == 3
    for index, board in enumerate(boards):
        board.wait_for_output(f"I am board {index}")
        answer = board.run_mpremote("exec", "print(open('main.py').read())").stdout
        assert answer.startswith(f"print('I am board {index}')")


def test_console_is_captured_with_no_client_attached(make_board, board_dir):
    (board_dir / "main.py").write_text("for i in range(2000):\n    print('line', i)\n")
    board = make_board()
    board.wait_for_output("line 1999")
    assert board.output().count("line ") == 2000
    assert board.run_mpremote("exec", "print('then a client')").stdout.strip() == "then a client"


def test_power_off_kills_and_power_on_boots_again(make_board, board_dir):
    (board_dir / "main.py").write_text("print('powered up')\n")
    board = make_board()
    board.wait_for_output("powered up")
    board.power_off()
    assert board.output().count("POWERON_RESET") == 1
    mark = board.output_mark()
    board.power_on()
    board.wait_for_output(r"rst:0x1 \(POWERON_RESET\)[\s\S]*powered up", since=mark)
    assert board.run_mpremote("exec", "import machine; print(machine.reset_cause())").stdout.strip() == "1"


def test_reset_from_the_api_is_a_power_on_boot(make_board, board_dir):
    (board_dir / "main.py").write_text("print('booted')\n")
    board = make_board()
    board.wait_for_output("booted")
    mark = board.output_mark()
    board.reset()
    board.wait_for_output("booted", since=mark)


def test_ctrl_c_right_after_boot_never_kills_the_board(make_board, board_dir):
    # A client that connects at once and interrupts: the unix port must not die of the SIGINT.
    (board_dir / "main.py").write_text("print('main done')\n")
    board = make_board()
    with serial.Serial(board.port, 115200, timeout=10) as port:
        for _ in range(15):
            board.reset()  # returns as the board starts boot.py: interrupt at once
            port.write(b"\x03")
            port.write(b"\r\x03\r\x01")
            assert port.read_until(b"raw REPL; CTRL-B to exit\r\n>").endswith(b">")
            port.write(b"\r\x02")
            port.read_until(b">>> ")
    assert "crashed" not in board.output() and board.halted is None


def test_wait_for_output_times_out_with_the_tail_of_the_log(board):
    with pytest.raises(TimeoutError, match=r"(?s)'never printed'.*POWERON_RESET"):
        board.wait_for_output("never printed", timeout=0.2)


def test_heap_option_limits_the_python_heap(make_board):
    board = make_board(heap="96K")
    free = int(board.run_mpremote("exec", "import gc; gc.collect(); print(gc.mem_free())").stdout)
    assert 40_000 < free < 96 * 1024


def test_a_board_that_cannot_start_fails_fast_with_the_reason(tmp_path, monkeypatch):
    # A MicroPython that exits at once (here `false`, through the documented override).
    monkeypatch.setenv("IOTCPROV_MICROPYTHON", shutil.which("false"))
    board = VirtualBoard(state_directory=tmp_path / "state", boot_timeout=5)
    with pytest.raises(OperationError, match=r"MicroPython exited while starting \(exit code 1\)"):
        board.start()
    board.stop()


@pytest.mark.micropython  # the unix port is looked for first
def test_bad_input_is_refused_before_anything_starts(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="^--dir: .* is not a folder"):
        VirtualBoard(directory=tmp_path / "file")
    with pytest.raises(InputError, match="^--mac: 'AA:BB' is not six hex pairs"):
        VirtualBoard(directory=tmp_path, mac="AA:BB")
    with pytest.raises(InputError, match="^--heap: 'lots' is not a heap size"):
        VirtualBoard(directory=tmp_path, heap="lots")
    with pytest.raises(InputError, match="^--heap: 8K is too small"):
        VirtualBoard(directory=tmp_path, heap="8K")
    with pytest.raises(InputError, match="^--fault: unknown fault 'disk_full'"):
        VirtualBoard(directory=tmp_path, faults={"disk_full": 1})
    assert not list(tmp_path.glob("*/port"))


@pytest.mark.micropython
def test_killing_the_owner_leaves_no_micropython_behind(tmp_path):
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from iotcprov.virtual_board import VirtualBoard
            board = VirtualBoard({str(tmp_path)!r}, state_directory={str(tmp_path / 'state')!r}).start()
            print('started', flush=True)
            time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert owner.stdout.readline().strip() == "started"
        children = children_of(owner.pid)
        assert children, "the board's MicroPython process should be a child of its owner"
        watches = [os.pidfd_open(pid) for pid in children]
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        for watch in watches:  # a pidfd becomes readable when its process has exited
            assert select.select([watch], [], [], 10)[0] == [watch]
            os.close(watch)
    finally:
        owner.kill()
        owner.wait()

