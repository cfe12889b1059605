"""LittleFS images for the board's filesystem partition, built on the host with littlefs-python.

The image has exactly the size of the region the firmware mounts (`vfs_layout`: the firmware's
'vfs' partition, or from v1.26 the end of its partition table to the end of flash) and the
profile's LittleFS v2 parameters: LittleFS refuses to mount an image whose block count differs,
and MicroPython then loops on "The filesystem appears to be corrupted".
"""

from littlefs import LittleFS
from littlefs.context import UserContext

from iotcprov.errors import InputError


def _disk_version(text: str) -> int:
    major, _, minor = str(text).partition(".")
    return (int(major) << 16) | int(minor or 0)


def build_image(profile: dict, size: int, files: dict[str, bytes]) -> bytes:
    """A LittleFS image of `size` bytes (the region the firmware mounts, see
    `vfs_layout.plan_filesystem`) holding `files` ({'/lib/iotc/app.py': bytes, ...})."""
    params = profile["littlefs"]
    if size <= 0 or size % params["block_size"]:
        raise InputError(
            f"--firmware: its filesystem region ({size:#x} bytes) is not whole "
            f"{params['block_size']}-byte LittleFS blocks; flash a MicroPython release .bin"
        )
    fs = LittleFS(
        block_size=params["block_size"],
        block_count=size // params["block_size"],
        read_size=params["read_size"],
        prog_size=params["prog_size"],
        lookahead_size=params["lookahead_size"],
        name_max=params["name_max"],
        disk_version=_disk_version(params.get("disk_version", "2.0")),
    )
    for path in sorted(files):
        folder = path.rsplit("/", 1)[0]
        if folder:
            fs.makedirs(folder, exist_ok=True)
        with fs.open(path, "wb") as handle:
            handle.write(files[path])
    fs.unmount()
    image = bytes(fs.context.buffer)
    assert len(image) == size
    return image


def read_image(profile: dict, image: bytes) -> dict[str, bytes]:
    """Every file in a LittleFS image (for checks and `iotcprov flash --dry-run`-like uses).
    Raises littlefs.LittleFSError when the image does not mount with its own size as block count
    (as MicroPython would refuse it), instead of littlefs-python's format-on-failure."""
    params = profile["littlefs"]
    fs = LittleFS(
        context=UserContext(buffer=bytearray(image)),
        block_size=params["block_size"],
        block_count=len(image) // params["block_size"],
        read_size=params["read_size"],
        prog_size=params["prog_size"],
        lookahead_size=params["lookahead_size"],
        name_max=params["name_max"],
        mount=False,
    )
    fs.mount()
    found = {}
    for root, _dirs, names in fs.walk("/"):
        for name in names:
            path = f"{root.rstrip('/')}/{name}"
            with fs.open(path, "rb") as handle:
                found[path] = handle.read()
    return found
