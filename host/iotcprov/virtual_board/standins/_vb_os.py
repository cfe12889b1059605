# `os` of the virtual board: the unix port's os with a working rename on the board's folder.
import os as _os

import _vboard
import vfs as _vfs

for _name in dir(_os):
    if _name[:2] != "__":
        globals()[_name] = getattr(_os, _name)
del _name


def _absolute(path):
    if path[:1] != "/":
        cwd = _os.getcwd()
        path = cwd + ("" if cwd.endswith("/") else "/") + path
    parts = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def _on_board_root(path):
    # True when the longest mount point containing `path` is the board folder mounted at '/'.
    best, best_len = None, -1
    for fs, point in _vfs.mount():
        prefix = point.rstrip("/")
        if (path == point or path.startswith(prefix + "/")) and len(prefix) > best_len:
            best, best_len = fs, len(prefix)
    return best is _vboard.root_vfs()


def rename(old, new):
    old, new = _absolute(old), _absolute(new)
    if _on_board_root(old) and _on_board_root(new):
        _vboard.host_rename(old, new)
    else:
        _os.rename(old, new)


def ilistdir(path=""):
    # As LittleFS on an ESP32: (name, type, inode, size). The stand-ins' mount point is not part
    # of the board's filesystem: leave it out of '/'.
    folder = _absolute(path or _os.getcwd())
    prefix = folder if folder.endswith("/") else folder + "/"
    for entry in _os.ilistdir(folder):
        if folder == "/" and entry[0] == ".vboard":
            continue
        if len(entry) == 3:
            size = _os.stat(prefix + entry[0])[6] if entry[1] == 0x8000 else 0
            entry = (entry[0], entry[1], entry[2], size)
        yield entry


def listdir(path=""):
    return [entry[0] for entry in ilistdir(path)]
