"""`--heap N`: what an application gets, as on an ESP32 with its modules built in (heap.py)."""

import hashlib
import os
import subprocess

import pytest
from iotcprov.errors import InputError
from iotcprov.virtual_board import MicroPythonMissing, find_micropython, frozen
from iotcprov.virtual_board.heap import BOOT_BASELINE, MIN_HEAP, free_at_boot, parse_heap

FREE_AFTER_BOOT = "import gc; gc.collect(); print(gc.mem_free())"
BOOT_PY_FREE = "import gc\ngc.collect()\nprint('boot.py free', gc.mem_free())\n"


@pytest.fixture
def micropython():
    try:
        return find_micropython()
    except MicroPythonMissing as missing:
        pytest.skip(str(missing))


@pytest.mark.parametrize(
    ("text", "size"), [("64K", 65536), ("65536", 65536), ("2m", 2 << 20), ("48wK", 96 << 10)]
)
def test_heap_sizes_are_read_as_the_unix_port_reads_them(text, size):
    assert parse_heap(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lots", "^--heap: 'lots' is not a heap size; give bytes or K/M, e.g. 64K$"),
        ("1.5K", "^--heap: '1.5K' is not a heap size"),
        ("-64K", "^--heap: '-64K' is not a heap size"),
        ("8K", "^--heap: 8K is too small for the REPL and mpremote; give at least 16K$"),
        ("2048M", "^--heap: 2048M is more than the virtual board supports"),
    ],
)
def test_bad_heap_sizes_are_refused_with_the_fix(text, message):
    with pytest.raises(InputError, match=message):
        parse_heap(text)


@pytest.mark.parametrize("heap", ["16K", "64K"])
def test_the_application_gets_the_heap_asked_for_and_no_more(make_board, board_dir, heap):
    (board_dir / "boot.py").write_text(BOOT_PY_FREE)
    board = make_board(heap=heap)
    expected = free_at_boot(parse_heap(heap))
    at_boot = int(board.wait_for_output(r"boot.py free (\d+)").group(1))
    assert expected - 1024 <= at_boot <= expected  # less only boot.py's own code
    after_boot = int(board.run_mpremote("exec", FREE_AFTER_BOOT).stdout)
    assert abs(after_boot - expected) <= 2048
    # The free heap is one run (as at an ESP32's boot): nearly all of it fits one allocation...
    fits = board.run_mpremote("exec", f"b = bytearray({expected - 4096}); print(len(b))").stdout
    assert fits.strip() == str(expected - 4096)
    # ...and the limit is real: more than the application's share is a MemoryError.
    refused = board.run_mpremote("exec", f"b = bytearray({expected + 2048})", check=False)
    assert "MemoryError" in refused.stdout + refused.stderr
    assert board.halted is None


@pytest.mark.parametrize("release", ["1.23", "1.28"])
def test_the_applications_names_find_their_pool_grown_before_boot(make_board, release):
    # The stand-ins' names are interned at boot, where an ESP32 has its frozen modules' in flash;
    # the pools grow before boot, so 400 new names (an application's worth) need no new pool
    # block from the application's heap, whatever the stand-ins used (a pool of 640 entries is
    # 7 KB here).
    board = make_board(heap="64K", release=release)
    cost = board.run_mpremote(
        "exec", "import gc, sys; gc.collect(); a = gc.mem_free()\n"
        "for n in range(400): getattr(sys, 'app_name_%d' % n, None)\n"
        "gc.collect(); print(a - gc.mem_free())",
    ).stdout
    assert int(cost) < 6000  # the names' text only, no 7 KB pool


def test_the_standins_are_loaded_before_boot_as_if_frozen(make_board):
    board = make_board(heap="64K")
    answer = board.run_mpremote(
        "exec",
        "import sys; print(sorted(n for n in ('network', 'ntptime', 'umqtt.simple') if n in sys.modules));"
        "print(sys.modules['network'].__file__)",
    ).stdout.split("\n")
    assert answer[0].strip() == "['network', 'ntptime', 'umqtt.simple']"
    assert answer[1].strip() == "/.vboard/network.mpy"
    # Importing them costs the application nothing.
    cost = board.run_mpremote(
        "exec", "import gc; gc.collect(); a = gc.mem_free(); import network, ntptime, umqtt.simple; "
        "from umqtt.simple import MQTTClient; gc.collect(); print(a - gc.mem_free())",
    ).stdout
    assert int(cost) <= 128  # the new globals' names, nothing more


def test_a_full_heap_prints_its_memory_error_and_keeps_the_repl(make_board, board_dir):
    (board_dir / "main.py").write_text("hog = []\nwhile True:\n    hog.append(bytearray(256))\n")
    board = make_board(heap="32K")
    board.wait_for_output(r"MemoryError: memory allocation failed")
    board.wait_for_output(">>> ")
    assert board.run_mpremote("exec", "print('repl', 6 * 7)").stdout.strip() == "repl 42"
    assert board.halted is None


def test_mpremote_works_at_the_smallest_heap(make_board, board_dir, tmp_path):
    board = make_board(heap=f"{MIN_HEAP // 1024}K")
    data = os.urandom(12 * 1024)  # many of mpremote's chunks
    (tmp_path / "blob.bin").write_bytes(data)
    package = tmp_path / "pkg"
    package.mkdir()
    for index in range(4):
        (package / f"m{index}.py").write_text(f"X = {index}\n" * 200)
    board.run_mpremote("fs", "cp", str(tmp_path / "blob.bin"), ":blob.bin")
    assert hashlib.sha256(data).hexdigest() in board.run_mpremote("fs", "sha256sum", ":blob.bin").stdout
    board.run_mpremote("fs", "cp", ":blob.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data
    board.run_mpremote("fs", "cp", "-r", str(package), ":")
    assert sorted(os.listdir(board_dir / "pkg")) == ["m0.py", "m1.py", "m2.py", "m3.py"]
    assert "blob.bin" in board.run_mpremote("fs", "ls").stdout
    board.run_mpremote("rtc", "--set")
    board.run_mpremote("fs", "rm", "-r", ":pkg")
    assert not (board_dir / "pkg").exists()


def test_compiled_standins_are_cached_by_version_and_content(micropython, tmp_path, monkeypatch):
    monkeypatch.setenv(frozen.CACHE_ENV, str(tmp_path / "cache"))
    folder = frozen.standins_folder(micropython)
    assert folder.parent == tmp_path / "cache" / "vboard-standins"
    assert folder.name.startswith("mpy6.")
    compiled = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.mpy"))
    assert compiled == sorted(name[:-3] + ".mpy" for name in frozen.standin_sources())
    assert "umqtt/simple.mpy" in compiled
    stamp = (folder / "network.mpy").stat().st_mtime_ns
    assert frozen.standins_folder(micropython) == folder  # reused, not built again
    assert (folder / "network.mpy").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p != folder]  # no build leftovers


def test_without_a_writable_cache_the_sources_are_used(micropython, tmp_path, monkeypatch):
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv(frozen.CACHE_ENV, str(tmp_path / "not-a-folder"))
    assert frozen.standins_folder(micropython) == frozen.STANDINS_DIR


def test_boot_baseline_is_what_a_bare_unix_port_has_used(micropython):
    # The figure the semantics rest on: a bare `micropython -X heapsize=N` starts with about this
    # much of N gone (heap tables and the interpreter's own objects).
    out = subprocess.run(
        [micropython, "-X", "heapsize=64K", "-c", "import gc; gc.collect(); print(gc.mem_free())"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert 0 < 64 * 1024 - int(out) <= BOOT_BASELINE
