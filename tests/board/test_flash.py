"""`flash` against an emulated ESP32 ROM loader (esp32-mock-bootloader over socket://).

The MicroPython image and the one-pass LittleFS image are read back at their offsets, and the
filesystem image mounts on a virtual board (VfsLfs2 over a block device) with its files readable.
"""

import json

import pytest
from iotcprov import resources
from iotcprov.board import flash
from iotcprov.board.credential_input import sas_from_group_key
from iotcprov.board.deploy import build_deployment
from iotcprov.board.esp_image import check_firmware_image
from iotcprov.board.fsimage import build_image, filesystem_size, read_image
from iotcprov.board.identity import IdentityRequest, build_identity, identity_tree
from iotcprov.board.trust import azure_roots
from iotcprov.errors import InputError

from tests.board.conftest import make_esp_image, run_cli

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
def test_filesystem_image_is_exactly_the_vfs_partition():
    assert filesystem_size(PROFILE, 4 << 20) == 2 << 20
    image = build_image(PROFILE, 4 << 20, FS_FILES)
    assert len(image) == (4 << 20) - VFS_OFFSET
    assert read_image(PROFILE, image) == FS_FILES
    with pytest.raises(InputError, match="^--flash-size"):
        filesystem_size(PROFILE, 1 << 20)


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


@pytest.mark.smoke
def test_one_pass_flash_reads_back_and_mounts(rom_loader, tmp_path, make_board):
    firmware = make_esp_image(tmp_path / "fw.bin")
    result = flash.flash(rom_loader.url, firmware, "esp32", fs_files=FS_FILES)
    assert result.flash_size == 4 << 20
    assert result.regions == [(FW_OFFSET, len(firmware)), (VFS_OFFSET, 2 << 20)]

    assert rom_loader.read_flash(FW_OFFSET, len(firmware)) == firmware
    expected = build_image(PROFILE, 4 << 20, FS_FILES)  # the builder is deterministic
    image = tmp_path / "fs.img"
    image.write_bytes(expected)
    verified = rom_loader.esptool("verify-flash", hex(VFS_OFFSET), str(image))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    read_back = bytearray(b"\xff" * len(expected))
    for offset, length in _used_ranges(expected):
        read_back[offset : offset + length] = rom_loader.read_flash(VFS_OFFSET + offset, length)
    assert bytes(read_back) == expected

    board = make_board()
    (board.directory / "fs.img").write_bytes(bytes(read_back))
    listed = board.run_mpremote("exec", MOUNT_ON_BOARD).stdout
    assert json.loads(listed.strip().splitlines()[-1]) == {k: v.decode() for k, v in FS_FILES.items()}


@pytest.mark.smoke
def test_cli_flash_with_identity_in_the_image(rom_loader, tmp_path):
    firmware = tmp_path / "fw.bin"
    make_esp_image(firmware)
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
    assert json.loads(out.stdout)["regions"][1] == {"offset": "0x200000", "length": 2 << 20}
    assert "A" * 44 not in out.stdout + out.stderr
    # The same inputs give the same image: rebuild it here and let the loader compare its flash.
    bundle = build_identity(
        IdentityRequest("0ne00ABCDEF", "dev-9", sas_from_group_key("A" * 44, "dev-9"), azure_roots())
    )
    files = build_deployment(None)[0] | identity_tree(bundle)
    assert read_image(PROFILE, build_image(PROFILE, 4 << 20, files))["/iotc-data/active"] == b"%s\n" % (
        bundle.folder.encode()
    )
    expected = tmp_path / "expected.img"
    expected.write_bytes(build_image(PROFILE, 4 << 20, files))
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


def test_wrong_chip_is_refused_before_writing(rom_loader, tmp_path):
    firmware = tmp_path / "c3.bin"
    make_esp_image(firmware, chip="esp32c3")
    out = run_cli("flash", "--port", rom_loader.url, "--firmware", str(firmware), "--board", "esp32c3")
    assert out.returncode == 2 and "--board: the chip on" in out.stderr, out.stderr
    assert rom_loader.read_flash(0x0, BLOCK) == b"\xff" * BLOCK
