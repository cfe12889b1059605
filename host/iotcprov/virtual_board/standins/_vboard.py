# Shared state of the virtual board's stand-ins: configuration from the supervisor, the state folder
# (faults, clock), and events for the supervisor. Events are escape sequences on the console that
# the supervisor strips before anyone sees them.
import gc
import json
import sys
import time as _time

import vfs

EPOCH_2000_NS = 946684800 * 1000000000
_BLOCK = 4 * 8  # a GC block on the 64-bit unix port: four words
_NS = 1000000000

config = {}
_host = None  # a VfsPosix over the host's '/', for the state folder and the os.rename fix
_root = None  # the VfsPosix mounted as the board's '/'
_faults_key = None
_faults = {}
_clock_offset_ns = None  # board clock minus host clock, once something has set the clock


def setup(cfg, root):
    global config, _host, _root, _clock_offset_ns
    config = cfg
    _root = root
    _host = vfs.VfsPosix()
    clock = read_json("clock.json")
    if clock is not None:
        _clock_offset_ns = clock["offset_ns"]
    import _vb_machine
    import _vb_os
    import _vb_time

    global _real_open
    import builtins

    _real_open = builtins.open
    builtins.open = _open  # for the power_cut_write fault

    sys.modules["os"] = sys.modules["uos"] = _vb_os
    sys.modules["time"] = sys.modules["utime"] = _vb_time
    sys.modules["machine"] = sys.modules["umachine"] = _vb_machine
    if config.get("tls_len_plus_one"):  # the release's tls (v1.23): see _vb_tls
        import _vb_tls

        sys.modules["tls"] = _vb_tls
    # Built in or frozen on an ESP32: loaded now, so that the application's imports cost it nothing.
    import network  # noqa: F401
    import ntptime  # noqa: F401
    import umqtt.simple  # noqa: F401


_ballast = None  # the board's share of the heap beyond what the application gets


def pin_heap(free):
    # Leave the application `free` bytes, in one run at the end of the heap as an ESP32 has them at
    # boot (its modules are in flash), and hold the rest: the holes that loading the stand-ins left
    # between them, and the heap beyond --heap. Held pieces are zeroed bytearrays: no pointers.
    global _ballast
    held = [None] * 256
    gc.collect()
    run = _largest_run(gc.mem_free() // _BLOCK)
    if run * _BLOCK < free + 2 * _BLOCK:
        raise MemoryError("virtual board: the stand-ins left %d bytes, short of --heap" % gc.mem_free())
    held[0] = bytearray(run * _BLOCK)  # the largest run, so that the holes are all that is left
    count, size = 1, run
    while count < len(held) and size:
        try:
            held[count] = bytearray(size * _BLOCK)
            count += 1
        except MemoryError:
            size //= 2
    held[0] = None
    gc.collect()
    spare = gc.mem_free() - free - _BLOCK  # the bytearray object itself takes one block
    if spare > 0:
        held[0] = bytearray(spare - spare % _BLOCK)  # the start of the run; its end is the application's
    _ballast = held


def _largest_run(limit):
    # The largest bytearray that can be allocated now, in blocks (bisection; a failed try collects).
    low, high = 0, limit + 1
    while high - low > 1:
        middle = (low + high) // 2
        try:
            bytearray(middle * _BLOCK)
            low = middle
        except MemoryError:
            high = middle
    return low


def event(name):
    try:
        sys.stdout.write("\x1b_vb:" + name + "\x1b\\")  # one write: a Ctrl-C cannot split it
    except MemoryError:  # the application filled the heap: the same bytes, with no new string
        sys.stdout.write("\x1b_vb:")
        sys.stdout.write(name)
        sys.stdout.write("\x1b\\")


def halt(name):
    # Ask the supervisor to reset the board, then wait for it to do so.
    event(name)
    while True:
        _time.sleep(1)


def _run(name, main_globals):
    # As pyexec_file: True when the file is absent or ran to the end.
    try:
        with open(name) as f:
            source = f.read()
    except OSError:
        return True
    try:
        code = compile(source, name, "exec")
        source = None
        exec(code, main_globals)
        return True
    except SystemExit:
        halt("soft")  # sys.exit() in boot.py/main.py: a soft reset on an ESP32
    except BaseException as e:  # noqa: B036 - a board prints KeyboardInterrupt too and goes on
        print_exception(e)
        return False


def print_exception(e):
    # As a board prints it: without the frames of the virtual board's own files. On a full heap
    # (the application's MemoryError) unfiltered, as printing straight to the console needs none.
    try:
        import io

        buffer = io.StringIO()
        sys.print_exception(e, buffer)
        lines = buffer.getvalue().split("\n")
    except MemoryError:
        buffer = lines = None
        sys.print_exception(e)
        return
    buffer = None
    for line in lines:
        if line and '"/.vboard/' not in line:
            sys.stdout.write(line)
            sys.stdout.write("\n")


def _announce(name):
    # A Ctrl-C that lands here, between the user's scripts, interrupts nothing: say it again.
    while True:
        try:
            event(name)
            return
        except KeyboardInterrupt:
            pass


def grow_name_pools():
    # An ESP32 keeps the names of its frozen modules (umqtt.simple, network, ...) in flash; the
    # stand-ins' names are interned here at boot instead, into the pools (tables that double when
    # full) that the application's names go to next. So that how many names the stand-ins happen
    # to use does not decide where the application must find room for its next pool (one block,
    # 7 KB for the sixth on this 64-bit port), the pools grow now, outside the application's heap,
    # until a pool of 640 entries exists: room for the names of any application of ours. (An
    # ESP32 pays about 7 bytes per name for its pools: a few KB, well inside what this port's
    # doubled object sizes already cost the application.)
    gc.collect()
    before = gc.mem_free()
    for n in range(2000):
        getattr(sys, "_vb%d" % n, None)  # interns the name
        now = gc.mem_free()
        if before - now > 6000:  # the 640-entry pool was just allocated
            return
        before = now


def boot(main_globals):
    if config.get("free_heap") is not None:
        grow_name_pools()
        pin_heap(config["free_heap"])
    _announce("ready")  # from here the supervisor passes client input (and so Ctrl-C) through
    try:
        if _run("boot.py", main_globals) and config["main"]:
            _run("main.py", main_globals)
        gc.collect()
    except KeyboardInterrupt:
        pass
    _announce("booted")  # the supervisor holds input again until the REPL prompt


# --- host files ------------------------------------------------------------------------------


def _state_path(name):
    return config["state"] + "/" + name


def read_json(name):
    try:
        with _host.open(_state_path(name), "r") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def write_json(name, value):
    temp = _state_path(name + ".tmp")
    with _host.open(temp, "w") as f:
        f.write(json.dumps(value))
    _host.rename(temp, _state_path(name))


def host_rename(old, new):
    # VfsPosix with a root folder renames to the wrong path (micropython#7389): use host paths.
    root = config["root"]
    _host.rename(root + old, root + new)


def root_vfs():
    return _root


# --- faults ----------------------------------------------------------------------------------


def faults():
    # Cached by (inode, size, mtime): cheap enough for every time.time().
    global _faults_key, _faults
    try:
        st = _host.stat(_state_path("faults.json"))
    except OSError:
        return {}
    key = (st[1], st[6], st[8])
    if key != _faults_key:
        _faults = read_json("faults.json") or {}
        _faults_key = key
    return _faults


def fault_active(name):
    # A "count" fault (wifi_fail, ntp_fail) fails the next N attempts, or every attempt if "always".
    current = read_json("faults.json") or {}
    limit = current.get(name)
    if not limit:
        return False
    if limit == "always":
        return True
    counts = read_json("fault-counts.json") or {}
    if counts.get("generation") != current.get("generation"):
        counts = {"generation": current.get("generation")}
    used = counts.get(name, 0)
    if used >= limit:
        return False
    counts[name] = used + 1
    write_json("fault-counts.json", counts)
    return True


def _cut_due():
    # power_cut_write=N: True for the Nth file write since the fault set was written.
    current = read_json("faults.json") or {}
    at = current.get("power_cut_write")
    if not at:
        return False
    counts = read_json("fault-counts.json") or {}
    if counts.get("generation") != current.get("generation"):
        counts = {"generation": current.get("generation")}
    seen = counts.get("power_cut_write", 0) + 1
    if seen > at:
        return False
    counts["power_cut_write"] = seen
    write_json("fault-counts.json", counts)
    return seen == at


_real_open = None


def _open(path, mode="r", *args, **kwargs):
    f = _real_open(path, mode, *args, **kwargs)
    if ("w" in mode or "a" in mode or "+" in mode) and faults().get("power_cut_write") and _cut_due():
        return _CutFile(f)
    return f


class _CutFile:
    # A file whose first write is cut half way by a power failure.
    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        self._f.close()  # what reached the flash before the power failed
        halt("power_cut")  # the supervisor kills the board: nothing after this runs

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


# --- clock -----------------------------------------------------------------------------------


def host_now_ns():
    return _time.time_ns()


def now_ns():
    host = _time.time_ns()
    if _clock_offset_ns is not None:
        return host + _clock_offset_ns
    if faults().get("clock_unset"):
        return EPOCH_2000_NS + host - config["power_on_ns"]
    return host


def set_now_ns(board_ns):
    global _clock_offset_ns
    _clock_offset_ns = board_ns - _time.time_ns()
    write_json("clock.json", {"offset_ns": _clock_offset_ns})


def clock_from_host():
    # What a successful NTP sync does: the board clock becomes true time.
    set_now_ns(_time.time_ns())


def seconds_from_utc(year, month, day, hour=0, minute=0, second=0):
    # Days from the civil date (proleptic Gregorian), as an ESP32's mktime: the tuple is UTC.
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second
