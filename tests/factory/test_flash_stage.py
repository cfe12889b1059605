"""The optional flash stage, against the emulated ESP32 ROM loader (esp32-mock-bootloader): the
image is written (read back through the ROM), then the line waits for MicroPython to answer. The
mock never boots MicroPython, so the board fails at connect, without an ID."""

import base64
import threading

from iotcprov.board.trust import azure_roots
from iotcprov.factory import events as ev
from iotcprov.factory.audit import read_audit
from iotcprov.factory.credentials import GroupKeySource
from iotcprov.factory.devices import DeviceEntry
from iotcprov.factory.job import FactoryJob, FlashStep
from iotcprov.factory.line import PortList, run_line
from iotcprov.factory.manifest import open_manifest

from tests.board.conftest import make_esp_image, rom_loader, run_cli, serial_line  # noqa: F401 - fixtures

GROUP_KEY = base64.b64encode(bytes(range(32))).decode()
FIRMWARE_OFFSET = 0x1000


def test_flash_then_wait_for_micropython(rom_loader, tmp_path):  # noqa: F811
    image = make_esp_image(tmp_path / "micropython.bin", payload_size=3000)
    job = FactoryJob(
        id_scope="0ne00ABCDEF", credentials=GroupKeySource(GROUP_KEY), trust=azure_roots(),
        flash=FlashStep(image, "esp32"), boot_timeout=1.0,
    )  # fmt: skip
    stop = threading.Event()
    seen: list[ev.Event] = []

    def on_event(event: ev.Event) -> None:
        seen.append(event)
        if event.name == ev.FAILED:
            stop.set()  # a socket:// port cannot be seen unplugged: end the run here

    manifest = tmp_path / "m.sqlite"
    summary = run_line(
        job, manifest, [DeviceEntry("f-1")], PortList((rom_loader.url,)), on_event=on_event, stop=stop
    )

    stages = [e.get("stage") for e in seen if e.name == ev.STAGE]
    assert stages == ["flash", "connect"]
    percents = [e.get("percent") for e in seen if e.name == ev.PROGRESS and e.get("stage") == "flash"]
    assert percents and percents[-1] == 100 and percents == sorted(percents)  # the live table's column
    ((port, failure),) = summary.failures
    assert port == rom_loader.url and failure.stage == "connect" and failure.device_id is None
    assert "does not answer as a MicroPython board" in failure.error
    assert rom_loader.read_flash(FIRMWARE_OFFSET, len(image)) == image
    with open_manifest(manifest) as opened:
        assert [(r.status, r.board_id) for r in opened.records()] == [("pending", None)]
    assert [e["stage"] for e in read_audit(tmp_path / "m.audit.jsonl") if e["event"] == "stage"] == stages


def _flash_once(port: str, step: FlashStep, folder) -> list[str]:
    folder.mkdir()
    job = FactoryJob(
        id_scope="0ne00ABCDEF", credentials=GroupKeySource(GROUP_KEY), trust=azure_roots(),
        flash=step, boot_timeout=1.0,
    )  # fmt: skip
    stop = threading.Event()
    seen: list[ev.Event] = []

    def on_event(event: ev.Event) -> None:
        seen.append(event)
        if event.name == ev.FAILED:
            stop.set()

    manifest = folder / "m.sqlite"
    run_line(job, manifest, [DeviceEntry("f-1")], PortList((port,)), on_event=on_event, stop=stop)
    return [e.get("stage") for e in seen if e.name == ev.STAGE]


def test_the_line_flashes_at_the_profiles_speed_or_at_baud(serial_line, rom_loader, tmp_path):  # noqa: F811
    image = make_esp_image(tmp_path / "micropython.bin", payload_size=3000)
    fast = serial_line(115200)
    assert _flash_once(fast.url, FlashStep(image, "esp32"), tmp_path / "a") == ["flash", "connect"]
    assert fast.bauds[:2] == [115200, 921600]  # then the connect stage's attempts, at 115200
    slow = serial_line(115200)
    changed = make_esp_image(tmp_path / "other.bin", payload_size=3000)
    at_rom_speed = FlashStep(changed, "esp32", baud=115200)
    assert _flash_once(slow.url, at_rom_speed, tmp_path / "b") == ["flash", "connect"]
    assert set(slow.bauds) == {115200}
    assert rom_loader.read_flash(FIRMWARE_OFFSET, len(changed)) == changed


def test_baud_without_a_flash_image_is_refused(tmp_path):
    result = run_cli(
        "factory", "run", "--prefix", "x-", "--count", "1", "--id-scope", "0ne00ABCDEF",
        "--ports", "socket://127.0.0.1:9", "--manifest", str(tmp_path / "m.sqlite"), "--baud", "921600",
        env={"IOTCPROV_GROUP_KEY": GROUP_KEY},
    )  # fmt: skip
    assert result.returncode == 2
    assert "--baud: only with --flash-image" in result.stderr
