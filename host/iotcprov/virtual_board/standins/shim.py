# Boots the virtual board inside the MicroPython unix port (`micropython -i shim.py`), before its REPL.
# Mounts the board folder as '/', installs the ESP32 stand-ins, then runs boot.py and main.py as an
# ESP32 does. Everything is inside one function that deletes itself, so the REPL starts with clean
# globals, as on a board.


def _vboard_boot(main_globals):
    import json
    import os
    import sys

    import vfs

    config = json.loads(os.getenv("IOTCPROV_VBOARD"))
    os.unsetenv("IOTCPROV_VBOARD")
    vfs.umount("/")
    # The stand-ins are mounted before '/', so lookups of '/.vboard/...' find them first.
    vfs.mount(vfs.VfsPosix(config["standins"]), "/.vboard")
    root = vfs.VfsPosix(config["root"])
    vfs.mount(root, "/")
    os.chdir("/")
    sys.path.clear()
    sys.path.extend(["", ".frozen", "/.vboard", "/lib"])
    sys.argv.clear()

    import _vboard

    _vboard.setup(config, root)
    _vboard.boot(main_globals)


try:
    _vboard_boot(globals())
except KeyboardInterrupt:
    pass  # a Ctrl-C after boot.py and main.py: nothing to interrupt
except BaseException as _error:  # noqa: B036 - whatever else stops the boot, the supervisor must hear of it
    import sys

    sys.print_exception(_error)
    sys.stdout.write("\x1b_vb:failed\x1b\\")
    del sys
del _vboard_boot
