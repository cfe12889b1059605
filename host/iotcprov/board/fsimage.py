"""LittleFS images for the board's filesystem partition, built on the host with littlefs-python.

The image covers the whole vfs partition: exactly (flash size - vfs offset) bytes, with the
profile's LittleFS v2 parameters. A wrong size makes MicroPython fail to mount it.
"""

from littlefs import LittleFS

from iotcprov.errors import InputError


def parse_offset(value: str | int) -> int:
    return value if isinstance(value, int) else int(value, 0)


def _disk_version(text: str) -> int:
    major, _, minor = str(text).partition(".")
    return (int(major) << 16) | int(minor or 0)


def filesystem_size(profile: dict, flash_size: int) -> int:
    """Bytes of the vfs partition: from the vfs offset to the end of flash."""
    size = flash_size - parse_offset(profile["vfs_offset"])
    block = profile["littlefs"]["block_size"]
    if size <= 0 or size % block:
        raise InputError(
            f"--flash-size: {flash_size} bytes leaves no whole filesystem after {profile['vfs_offset']}; "
            "give the board's real flash size (e.g. 4MB)"
        )
    return size


def build_image(profile: dict, flash_size: int, files: dict[str, bytes]) -> bytes:
    """A LittleFS image holding `files` ({'/lib/iotc/app.py': bytes, ...}) for the vfs partition."""
    params = profile["littlefs"]
    size = filesystem_size(profile, flash_size)
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
    """Every file in a LittleFS image (for checks and `iotcprov flash --dry-run`-like uses)."""
    params = profile["littlefs"]
    from littlefs.context import UserContext

    fs = LittleFS(
        context=UserContext(buffer=bytearray(image)),
        block_size=params["block_size"],
        block_count=len(image) // params["block_size"],
        read_size=params["read_size"],
        prog_size=params["prog_size"],
        lookahead_size=params["lookahead_size"],
        name_max=params["name_max"],
    )
    found = {}
    for root, _dirs, names in fs.walk("/"):
        for name in names:
            path = f"{root.rstrip('/')}/{name}"
            with fs.open(path, "rb") as handle:
                found[path] = handle.read()
    return found
