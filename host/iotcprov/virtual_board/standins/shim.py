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


_vboard_boot(globals())
del _vboard_boot
