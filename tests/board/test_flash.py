"""`flash` against an emulated ESP32 ROM loader (esp32-mock-bootloader over socket://).

The MicroPython image and the one-pass LittleFS image are read back at their offsets, and the
filesystem image mounts on a virtual board (VfsLfs2 over a block device) with its files readable.
The firmware files carry real partition tables (tests/board/firmware_images.py): the image is as
large as the region that firmware mounts, which littlefs-python checks by block count.
"""

import json

import pytest
from iotcprov import resources
from iotcprov.board import flash
from iotcprov.board.credential_input import sas_from_group_key
from iotcprov.board.deploy import build_deployment
from iotcprov.board.esp_image import check_firmware_image
from iotcprov.board.fsimage import build_image, read_image
from iotcprov.board.identity import IdentityRequest, build_identity, identity_tree
from iotcprov.board.trust import azure_roots
from iotcprov.errors import InputError

from tests.board.conftest import make_esp_image, run_cli, run_cli_on_terminal
from tests.board.firmware_images import GENERIC_4MIB, GENERIC_16MIB, PLUS_4MIB, make_micropython_bin

PROFILE = resources.load_board_profile("esp32")
FW_OFFSET, VFS_OFFSET, BLOCK = 0x1000, 0x200000, 4096
FS_FILES = {
    "/lib/iotc/app.py": b"print('app')\n" * 300,
    "/main.py": b"import iotc.app\n",
    "/iotc-data/active": b"id-0000abcd\n",
}

# Runs on the virtual board: mount a LittleFS image file as /fs and list what it holds.
MOUNT_ON_BOARD = """
import vfs, os, json
class Disk:
    def __init__(self, path, block):
        self.f = open(path, 'r+b'); self.block = block
        self.count = os.stat(path)[6] // block
    def readblocks(self, n, buf, off=0):
        self.f.seek(n * self.block + off); self.f.readinto(buf)
    def writeblocks(self, n, buf, off=None):
        self.f.seek(n * self.block + (off or 0)); self.f.write(buf)
    def ioctl(self, op, arg):
        if op == 4: return self.count
        if op == 5: return self.block
        if op == 6: return 0
        return 0
vfs.mount(vfs.VfsLfs2(Disk('/fs.img', 4096), readsize=32, progsize=32, lookahead=32), '/fs')
found = {}
def walk(p):
    for e in os.ilistdir(p):
        q = p + '/' + e[0]
        if e[1] & 0x4000: walk(q)
        else:
            with open(q, 'rb') as f: found[q[3:]] = f.read().decode()
walk('/fs')
vfs.umount('/fs')
print(json.dumps(found))
"""


@pytest.mark.smoke
def test_image_check_accepts_esp_images_and_refuses_others(tmp_path):
    check_firmware_image(make_esp_image(tmp_path / "fw.bin"), "esp32")
    with pytest.raises(InputError, match="^--firmware: not an ESP firmware image"):
        check_firmware_image(b"\x7fELF" + bytes(100), "esp32")
    with pytest.raises(InputError, match="^--firmware: the image is built for esp32c3, not esp32"):
        check_firmware_image(make_esp_image(tmp_path / "c3.bin", chip="esp32c3"), "esp32")


@pytest.mark.smoke
def test_filesystem_image_has_the_size_asked_for():
    image = build_image(PROFILE, 2 << 20, FS_FILES)
    assert len(image) == 2 << 20
    assert read_image(PROFILE, image) == FS_FILES
    with pytest.raises(InputError, match="^--firmware: its filesystem region"):
        build_image(PROFILE, (2 << 20) + 512, FS_FILES)


def _used_ranges(image: bytes, gap: int = 16) -> list[tuple[int, int]]:
    """(offset, length) spans covering every block that is not erased (close ones merged)."""
    erased = b"\xff" * BLOCK
    used = [n for n in range(len(image) // BLOCK) if image[n * BLOCK : (n + 1) * BLOCK] != erased]
    spans: list[list[int]] = []
    for block in used:
        if spans and block - spans[-1][1] <= gap:
            spans[-1][1] = block
        else:
            spans.append([block, block])
    return [(first * BLOCK, (last - first + 1) * BLOCK) for first, last in spans]


def _read_back(rom_loader, offset: int, expected: bytes) -> bytes:
    """The image at `offset` as the flash holds it (only its used blocks are read: the ROM read is slow)."""
    read_back = bytearray(b"\xff" * len(expected))
    for start, length in _used_ranges(expected):
        read_back[start : start + length] = rom_loader.read_flash(offset + start, length)
    return bytes(read_back)


@pytest.mark.smoke
def test_one_pass_flash_reads_back_and_mounts(rom_loader, tmp_path, make_board):
    firmware = make_micropython_bin(tmp_path / "fw.bin", GENERIC_4MIB)
    result = flash.flash(rom_loader.url, firmware, "esp32", fs_files=FS_FILES)
    assert result.flash_size == 4 << 20
    assert result.regions == [(FW_OFFSET, len(firmware)), (VFS_OFFSET, 2 << 20)]
    assert result.as_dict()["filesystem"]["source"] == "the firmware's 'vfs' partition (0x200000 + 0x200000)"

    assert rom_loader.read_flash(FW_OFFSET, len(firmware)) == firmware
    expected = build_image(PROFILE, 2 << 20, FS_FILES)  # the builder is deterministic
    image = tmp_path / "fs.img"
    image.write_bytes(expected)
    verified = rom_loader.esptool("verify-flash", hex(VFS_OFFSET), str(image))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    read_back = _read_back(rom_loader, VFS_OFFSET, expected)
    assert read_back == expected

    board = make_board()
    (board.directory / "fs.img").write_bytes(read_back)
    listed = board.run_mpremote("exec", MOUNT_ON_BOARD).stdout
    assert json.loads(listed.strip().splitlines()[-1]) == {k: v.decode() for k, v in FS_FILES.items()}


def test_a_16mb_module_gets_the_firmware_tables_2mib_not_14mib(rom_loader, tmp_path, monkeypatch):
    # The emulated loader is a 4 MB chip; this one reports 16 MB, as a WROOM-32E-N16 would.
    monkeypatch.setattr("esptool.cmds.detect_flash_size", lambda esp: "16MB")
    firmware = make_micropython_bin(tmp_path / "fw.bin", GENERIC_4MIB, "v1.24.1")
    result = flash.flash(rom_loader.url, firmware, "esp32", fs_files=FS_FILES)
    assert result.flash_size == 16 << 20
    assert result.regions == [(FW_OFFSET, len(firmware)), (VFS_OFFSET, 2 << 20)]
    # LittleFS mounts it only with the partition's 512 blocks, as MicroPython will.
    written = _read_back(rom_loader, VFS_OFFSET, build_image(PROFILE, 2 << 20, FS_FILES))
    assert read_image(PROFILE, written) == FS_FILES


def test_a_v126_firmware_gets_the_flash_after_its_table(rom_loader, tmp_path):
    firmware = tmp_path / "fw.bin"
    make_micropython_bin(firmware, PLUS_4MIB, "v1.26.1")
    out = run_cli("flash", "--port", rom_loader.url, "--firmware", str(firmware), "--fs")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout + out.stderr and "\r" not in out.stdout + out.stderr  # piped: plain
    lines = out.stdout.splitlines()
    assert f"{(4 << 20) - 0x200000} bytes at 0x200000" in lines[0]  # to the end of the 4 MB flash
    assert lines[1] == "filesystem sized as MicroPython v1.26.1's 'vfs' (0x200000 to the end of flash)"
    files = build_deployment(None)[0]
    written = _read_back(rom_loader, 0x200000, build_image(PROFILE, 2 << 20, files))
    assert read_image(PROFILE, written) == files


@pytest.mark.smoke
def test_cli_flash_with_identity_in_the_image(rom_loader, tmp_path):
    firmware = tmp_path / "fw.bin"
    make_micropython_bin(firmware, GENERIC_4MIB)
    out = run_cli(
        "flash",
        "--port",
        rom_loader.url,
        "--firmware",
        str(firmware),
        "--fs",
        "--json",
        "--id-scope",
        "0ne00ABCDEF",
        "--device-id",
        "dev-9",
        "--group-key",
        "A" * 44,
        "--trust",
        "azure",
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["regions"][1] == {"offset": "0x200000", "length": 2 << 20}
    assert answer["filesystem"]["size"] == 2 << 20
    assert answer["filesystem"]["source"] == "the firmware's 'vfs' partition (0x200000 + 0x200000)"
    assert "A" * 44 not in out.stdout + out.stderr
    # The same inputs give the same image: rebuild it here and let the loader compare its flash.
    bundle = build_identity(
        IdentityRequest("0ne00ABCDEF", "dev-9", sas_from_group_key("A" * 44, "dev-9"), azure_roots())
    )
    files = build_deployment(None)[0] | identity_tree(bundle)
    assert read_image(PROFILE, build_image(PROFILE, 2 << 20, files))["/iotc-data/active"] == b"%s\n" % (
        bundle.folder.encode()
    )
    expected = tmp_path / "expected.img"
    expected.write_bytes(build_image(PROFILE, 2 << 20, files))
    verified = rom_loader.esptool("verify-flash", hex(VFS_OFFSET), str(expected))
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--board", "esp8266"], "--board: unknown board 'esp8266'"),
        (["--board", "virtual"], "--board: 'virtual' has no ROM loader"),
        (["--not-esp"], "--firmware: not an ESP firmware image"),
    ],
)
def test_bad_input_exits_2_and_leaves_the_flash_untouched(rom_loader, tmp_path, args, message):
    firmware = tmp_path / "fw.bin"
    if "--not-esp" in args:
        firmware.write_bytes(b"MZ this is not firmware" * 100)
        args = []
    else:
        make_esp_image(firmware)
    out = run_cli("flash", "--port", rom_loader.url, "--firmware", str(firmware), "--fs", *args)
    assert out.returncode == 2 and out.stderr.startswith(f"iotcprov: error: {message}"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert rom_loader.read_flash(FW_OFFSET, BLOCK) == b"\xff" * BLOCK


NO_TABLE = "--firmware: no usable ESP-IDF partition table at 0x7000 in the file"
NO_VFS = "--firmware: its partition table has no 'vfs' partition, and MicroPython v1.25.0 then mounts no"
TOO_BIG = "--firmware: the firmware's 'vfs' partition (0x200000 + 0xe00000) ends at 16 MB, but the flash is 4"


@pytest.mark.parametrize(
    ("rows", "message"), [(None, NO_TABLE), (PLUS_4MIB, NO_VFS), (GENERIC_16MIB, TOO_BIG)]
)
def test_fs_refuses_firmware_it_cannot_size_for_and_writes_nothing(rom_loader, tmp_path, rows, message):
    firmware = tmp_path / "fw.bin"
    make_micropython_bin(firmware, rows, "v1.25.0")
    out = run_cli("flash", "--port", rom_loader.url, "--firmware", str(firmware), "--fs")
    assert out.returncode == 2 and out.stderr.startswith(f"iotcprov: error: {message}"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert rom_loader.read_flash(FW_OFFSET, BLOCK) == b"\xff" * BLOCK


def test_wrong_chip_is_refused_before_writing(rom_loader, tmp_path):
    firmware = tmp_path / "c3.bin"
    make_esp_image(firmware, chip="esp32c3")
    out = run_cli("flash", "--port", rom_loader.url, "--firmware", str(firmware), "--board", "esp32c3")
    assert out.returncode == 2 and "--board: the chip on" in out.stderr, out.stderr
    assert rom_loader.read_flash(0x0, BLOCK) == b"\xff" * BLOCK


def test_flash_reports_progress_and_draws_a_bar_on_a_terminal(rom_loader, tmp_path):
    firmware = make_micropython_bin(tmp_path / "fw.bin", GENERIC_4MIB)
    seen: list[tuple[int, int]] = []
    result = flash.flash(
        rom_loader.url, firmware, "esp32", progress=lambda done, total: seen.append((done, total))
    )
    assert seen and {total for _, total in seen} == {result.bytes_written}
    dones = [done for done, _ in seen]
    assert dones == sorted(dones) and dones[-1] == result.bytes_written

    other = tmp_path / "other.bin"
    other.write_bytes(
        make_micropython_bin(tmp_path / "fw2.bin", GENERIC_4MIB)[:-4096] + bytes(range(256)) * 16
    )
    code, stdout, terminal = run_cli_on_terminal("flash", "--port", rom_loader.url, "--firmware", str(other))
    assert code == 0, stdout + terminal
    assert "flash " in terminal and "100%" in terminal and "\x1b[" in terminal, terminal
    assert stdout.startswith("flashed esp32") and "\x1b" not in stdout and "\r" not in stdout
