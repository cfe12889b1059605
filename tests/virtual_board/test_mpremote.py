"""The real mpremote, one separate invocation per command (no `resume`), against a virtual board."""

import hashlib
import os

import serial

BOOT_PY = "print('boot.py ran')\n"
MAIN_PY = """
try:
    n = int(open('runs').read()) + 1
except OSError:
    n = 1
open('runs', 'w').write(str(n))
print('main.py run', n)
"""
LOOPING_MAIN_PY = """
import time
n = 0
while True:
    n += 1
    print('tick', n)
    time.sleep_ms(20)
"""


def test_fs_cp_of_64kb_binary_reads_back_identical(board, tmp_path):
    data = os.urandom(64 * 1024)
    source = tmp_path / "blob.bin"
    source.write_bytes(data)

    board.run_mpremote("fs", "cp", str(source), ":blob.bin")

    assert (board.directory / "blob.bin").read_bytes() == data
    answer = board.run_mpremote("fs", "sha256sum", ":blob.bin").stdout
    assert hashlib.sha256(data).hexdigest() in answer


def test_exec_and_run(board, tmp_path):
    answer = board.run_mpremote("exec", "import sys; print(sys.implementation.name, 6 * 7)").stdout
    assert answer.strip() == "micropython 42"
    script = tmp_path / "script.py"
    script.write_text("import os\nprint('files:', sorted(os.listdir('/')))\n")
    (board.directory / "hello.txt").write_text("hi")
    assert board.run_mpremote("run", str(script)).stdout.strip() == "files: ['hello.txt']"


def test_fs_commands_see_the_board_folder(board):
    board.run_mpremote("fs", "mkdir", ":lib")
    board.run_mpremote("exec", "open('lib/x.py', 'w').write('X = 1')")
    assert (board.directory / "lib" / "x.py").read_text() == "X = 1"
    assert "x.py" in board.run_mpremote("fs", "ls", ":lib").stdout
    assert board.run_mpremote("exec", "import x; print(x.X)").stdout.strip() == "1"  # /lib is on sys.path


def test_soft_reset_from_mpremote_runs_boot_py_but_not_main_py(make_board, board_dir):
    (board_dir / "boot.py").write_text(BOOT_PY)
    (board_dir / "main.py").write_text(MAIN_PY)
    board = make_board()
    board.wait_for_output("main.py run 1")
    mark = board.output_mark()

    board.run_mpremote("soft-reset")

    board.wait_for_output(r"MPY: soft reboot\r\nboot.py ran", since=mark)
    assert "main.py run" not in board.output()[mark:]  # raw REPL: boot.py only
    assert (board_dir / "runs").read_text() == "1"


def test_soft_reset_from_the_friendly_repl_runs_boot_py_and_main_py(make_board, board_dir):
    (board_dir / "boot.py").write_text(BOOT_PY)
    (board_dir / "main.py").write_text(MAIN_PY)
    board = make_board()
    board.wait_for_output(">>> ")
    with serial.Serial(board.port, 115200, timeout=10) as port:
        port.write(b"\x04")  # Ctrl-D at the friendly prompt
        seen = port.read_until(b"main.py run 2")
    assert seen.endswith(b"main.py run 2")
    assert b"MPY: soft reboot\r\nboot.py ran" in seen


def test_machine_soft_reset_and_sys_exit_in_main_py_soft_reboot(make_board, board_dir):
    (board_dir / "main.py").write_text(MAIN_PY + "import sys\nif n == 1:\n    sys.exit()\n")
    board = make_board()
    board.wait_for_output(r"main.py run 1\nMPY: soft reboot\r\nmain.py run 2")  # as on a board
    mark = board.output_mark()
    board.run_mpremote("exec", "import machine; machine.soft_reset()", check=False)
    board.wait_for_output("MPY: soft reboot", since=mark)
    assert board.run_mpremote("exec", "print('still here')").stdout.strip() == "still here"


def test_reset_runs_main_py_again(make_board, board_dir):
    (board_dir / "main.py").write_text(MAIN_PY)
    board = make_board()
    board.wait_for_output("main.py run 1")
    mark = board.output_mark()

    board.run_mpremote("reset")

    board.wait_for_output(r"rst:0xc \(SW_CPU_RESET\)[\s\S]*main.py run 2", since=mark)
    cause = board.run_mpremote("exec", "import machine; print(machine.reset_cause())").stdout.strip()
    assert cause == "5"  # machine.SOFT_RESET, as an ESP32 reports after machine.reset()


def test_ctrl_c_stops_a_looping_main_py(make_board, board_dir):
    (board_dir / "main.py").write_text(LOOPING_MAIN_PY)
    board = make_board()
    board.wait_for_output("tick 3")

    answer = board.run_mpremote("exec", "print('got the prompt')").stdout

    assert answer.strip() == "got the prompt"
    board.wait_for_output(r"Traceback \(most recent call last\):\n  File \"main.py\", line \d+")
    assert "KeyboardInterrupt" in board.output()


def test_boot_py_error_skips_main_py_as_on_esp32(make_board, board_dir):
    (board_dir / "boot.py").write_text("raise ValueError('broken boot')\n")
    (board_dir / "main.py").write_text(MAIN_PY)
    board = make_board()
    board.wait_for_output(r"ValueError: broken boot[\s\S]*>>> ")
    assert "main.py run" not in board.output()
