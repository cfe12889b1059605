"""Flashing MicroPython with esptool (used as a library: one connection for the whole job).

With a filesystem (`fs_files`), a LittleFS image holding those files is written in the same
esptool run as the firmware, where and as large as that firmware will mount it (`vfs_layout`): its
partition table's 'vfs' partition, or for v1.26+ without one, from the end of the table to the end
of the flash the chip reports. Everything is checked before the first write: the board profile,
the image and its partition table, the chip, and that the filesystem fits in the flash.

The session connects at the ROM loader's 115200 baud, then switches esptool's stub to the fastest
rate the profile allows (`flash_baud`) or `baud`; a line that fails at that rate is tried again
from the start at the next lower one (`flash_baud.flash_rates`). Only the sectors whose content
differs from the flash's are written (`flash_diff`), so flashing a board that already holds the
same image costs a few MD5 round trips.
"""

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from iotcprov import resources
from iotcprov.board.deploy import build_deployment
from iotcprov.board.esp_image import check_firmware_image
from iotcprov.board.flash_baud import ROM_BAUD, flash_rates
from iotcprov.board.flash_diff import changed_spans
from iotcprov.board.fsimage import build_image
from iotcprov.board.identity import IdentityBundle, WifiSettings, identity_tree
from iotcprov.board.partitions import parse_offset
from iotcprov.board.quiet import capture_stdout
from iotcprov.board.vfs_layout import FilesystemRegion, VfsPlan, plan_filesystem
from iotcprov.errors import InputError, OperationError

_SIZE_UNITS = {"KB": 1024, "MB": 1024 * 1024}


@dataclass(frozen=True)
class FlashResult:
    chip: str
    flash_size: int
    regions: list[tuple[int, int]]  # (offset, length) the board now holds: firmware, filesystem
    seconds: float
    filesystem: FilesystemRegion | None = None  # where the LittleFS image went, and why there
    baud: int = ROM_BAUD  # the speed the write ran at
    fallbacks: tuple[str, ...] = ()  # "921600: <error>" for each faster rate the line could not hold
    written: tuple[tuple[int, int], ...] = ()  # (offset, length) actually sent: what differed

    @property
    def bytes_written(self) -> int:
        return sum(length for _, length in self.written)

    def as_dict(self) -> dict:
        return {
            "chip": self.chip,
            "flash_size": self.flash_size,
            "seconds": self.seconds,
            "baud": self.baud,
            "fallbacks": list(self.fallbacks),
            "regions": [{"offset": hex(o), "length": n} for o, n in self.regions],
            "written": [{"offset": hex(o), "length": n} for o, n in self.written],
            "bytes_written": self.bytes_written,
            "filesystem": self.filesystem.as_dict() if self.filesystem else None,
        }


def parse_flash_size(text: str) -> int:
    """'4MB' -> 4194304."""
    text = text.strip().upper()
    for unit, factor in _SIZE_UNITS.items():
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * factor
    raise InputError(f"--flash-size: {text!r} is not a size such as 4MB")


def flashable_profile(board: str) -> dict:
    profile = resources.load_board_profile(board)
    if not profile.get("esptool_chip"):
        names = resources.board_names()
        flashable = ", ".join(name for name in names if resources.load_board_profile(name)["esptool_chip"])
        raise InputError(f"--board: {board!r} has no ROM loader to flash; choose one of {flashable}")
    return profile


def read_firmware(path: str | Path, board: str = "esp32", field: str = "--firmware") -> bytes:
    """A MicroPython .bin from a file, checked as an image for the board profile's chip."""
    try:
        image = Path(path).read_bytes()
    except OSError as error:
        raise InputError(f"{field}: cannot read {str(path)!r}: {error.strerror or error}") from None
    check_firmware_image(image, flashable_profile(board)["esptool_chip"], field)
    return image


def filesystem_files(
    *, main: bool = False, identity: IdentityBundle | None = None, wifi: WifiSettings | None = None
) -> dict[str, bytes]:
    """{board path: bytes} for the LittleFS image `flash(fs_files=)` writes: the firmware as .py
    (the chip's bytecode version is unknown before it answers), the identity made active with its
    wifi.json."""
    files = build_deployment(None, main=main)[0]
    files.update(identity_tree(identity, wifi))
    return files


@contextlib.contextmanager
def _quiet_esptool():
    from esptool.logger import log

    log.set_verbosity("silent")
    with capture_stdout():  # this thread's only: boards may be flashed from several threads
        try:
            yield
        finally:
            log.set_verbosity("auto")


def _connect(port: str, chip: str):  # at the ROM loader's speed
    from esptool.cmds import detect_chip
    from esptool.util import FatalError

    try:
        return detect_chip(port, ROM_BAUD, connect_mode="default-reset", connect_attempts=2)
    except (FatalError, OSError, ValueError) as error:
        raise InputError(
            f"--port: no ESP ROM loader answers on {port!r} ({str(error).splitlines()[0][:100]}); "
            "hold BOOT while pressing RESET, or check the port"
        ) from None


def _follow_writes(esp, spans: list[tuple[int, bytes]], progress: Callable[[int, int], None]) -> None:
    """Call progress(done, total) as esptool sends the blocks of `spans` (bytes of flash). esptool's
    own progress output is silenced; its per-block calls on this loader are wrapped instead (an
    instance's attributes: boards flashed from several threads each follow their own). A
    compressed block counts as the bytes it expands to, as esptool counts them."""
    import zlib

    total = sum(len(data) for _, data in spans)
    state = {"finished": 0, "span": 0, "done": 0, "inflate": None}

    def begin(method, compressed: bool):
        def wrapped(size, *args, **kwargs):
            state["finished"] += state["span"]
            state["span"], state["done"] = size, 0
            state["inflate"] = zlib.decompressobj() if compressed else None
            return method(size, *args, **kwargs)

        return wrapped

    def block(method):
        def wrapped(data, *args, **kwargs):
            result = method(data, *args, **kwargs)
            inflate = state["inflate"]
            state["done"] += len(inflate.decompress(data)) if inflate is not None else len(data)
            progress(min(total, state["finished"] + min(state["span"], state["done"])), total)
            return result

        return wrapped

    esp.flash_defl_begin = begin(esp.flash_defl_begin, compressed=True)
    esp.flash_begin = begin(esp.flash_begin, compressed=False)
    esp.flash_defl_block = block(esp.flash_defl_block)
    esp.flash_block = block(esp.flash_block)


class _LineFailed(Exception):
    """The line stopped carrying data after the switch to a faster rate."""

    def __init__(self, baud: int, reason: str) -> None:
        super().__init__(reason)
        self.baud = baud
        self.reason = reason


def flash(
    port: str,
    firmware: bytes,
    board: str = "esp32",
    *,
    erase: bool = False,
    fs_files: dict[str, bytes] | None = None,
    flash_size: int | None = None,
    baud: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FlashResult:
    """Write `firmware` at the profile's firmware offset, and with `fs_files` a LittleFS image in
    the region the firmware mounts (sized from its partition table, and for v1.26+ from the flash
    size: `flash_size`, else as the chip reports), in one esptool session at the fastest rate the
    line holds (`baud`, else the profile's `flash_baud`, stepping down on errors), writing only the
    sectors whose content differs (`flash_diff`) unless `erase`. Returns what was written.
    `progress(done, total)`: bytes of flash written so far of those to write."""
    profile = flashable_profile(board)
    check_firmware_image(firmware, profile["esptool_chip"])
    # The firmware's own layout is checked before the board is touched.
    plan = plan_filesystem(firmware, profile) if fs_files is not None else None
    started = time.monotonic()
    fallbacks: list[str] = []
    for rate in flash_rates(profile, baud):
        try:
            size, regions, written, filesystem = _flash_session(
                port,
                firmware,
                profile,
                rate,
                erase=erase,
                plan=plan,
                fs_files=fs_files,
                flash_size=flash_size,
                progress=progress,
            )
        except _LineFailed as failed:  # never at ROM_BAUD, the last rate
            fallbacks.append(f"{failed.baud}: {failed.reason}")
            continue
        return FlashResult(
            profile["esptool_chip"],
            size,
            [(offset, len(data)) for offset, data in regions],
            time.monotonic() - started,
            filesystem,
            rate,
            tuple(fallbacks),
            tuple((offset, len(data)) for offset, data in written),
        )
    raise AssertionError("flash_rates ends at the ROM speed, which never falls back")


def _flash_session(
    port: str,
    firmware: bytes,
    profile: dict,
    baud: int,
    *,
    erase: bool,
    plan: VfsPlan | None,
    fs_files: dict[str, bytes] | None,
    flash_size: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, list[tuple[int, bytes]], list[tuple[int, bytes]], FilesystemRegion | None]:
    """One esptool session at `baud`: (flash size, [(offset, data)] the board holds after it,
    [(offset, data)] written because the flash differed, filesystem region)."""
    from esptool.cmds import attach_flash, detect_flash_size, erase_flash, reset_chip, run_stub, write_flash
    from esptool.util import FatalError

    chip = profile["esptool_chip"]
    filesystem = None
    switched = False
    with _quiet_esptool():
        esp = _connect(port, chip)
        try:
            if esp.CHIP_NAME.lower().replace("-", "") != chip:
                raise InputError(
                    f"--board: the chip on {port!r} is an {esp.CHIP_NAME}, not {chip}; give the right --board"
                )
            esp = run_stub(esp)
            if baud != ROM_BAUD:
                esp.change_baud(baud)
                switched = True
            attach_flash(esp)
            flash_size_from = "--flash-size"
            if flash_size is None:
                detected = detect_flash_size(esp)
                if not detected and plan is not None and plan.size is None:
                    raise InputError(
                        f"--flash-size: the chip on {port!r} does not report its flash size, and "
                        f"{plan.source} depends on it; give it (e.g. 16MB)"
                    )
                flash_size_from = "the chip" if detected else "the board profile; the chip reports none"
                flash_size = parse_flash_size(detected) if detected else profile["default_flash_size"]
            regions = [(parse_offset(profile["firmware_offset"]), firmware)]
            if plan is not None and fs_files is not None:
                filesystem = plan.region(flash_size, flash_size_from)
                regions.append((filesystem.offset, build_image(profile, filesystem.size, fs_files)))
            if erase:
                erase_flash(esp)
                written = regions
            else:
                written = [
                    span for offset, data in regions for span in changed_spans(esp.flash_md5sum, offset, data)
                ]
            if written:
                if progress is not None:
                    _follow_writes(esp, written, progress)
                write_flash(esp, written, flash_size="keep")  # verified by the stub's MD5 after writing
            reset_chip(esp, "hard-reset")
        except (FatalError, OSError) as error:
            reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            if switched:
                raise _LineFailed(baud, reason) from None
            if not isinstance(error, FatalError):
                raise
            raise OperationError(f"--port {port}: flashing failed: {reason}") from None
        finally:
            with contextlib.suppress(Exception):
                esp._port.close()
    return flash_size, regions, written, filesystem
