"""End to end on the releases the field runs: the firmware on virtual boards claiming MicroPython
v1.23 (the oldest) and v1.28 (the newest), whose stand-ins have the real modules' quirks
(umqtt.simple 1.4.0 / 1.7.0, v1.23's TLS key handling, the ESP32 Wi-Fi status; see
docs/compatibility.md). Each test failed before the firmware and the host allowed for them."""

import json
import socket
import threading

import pytest
from fw_board import FOLDER, provisioned_board_dir, sas_group_identity, x509_group_identity

pytest.importorskip("iotcprov.virtual_board", reason="needs the virtual board (Linux x86_64)")
from iotcprov.virtual_board import VirtualBoard  # noqa: E402

pytestmark = pytest.mark.usefixtures("release")  # each test on the oldest and newest release

LOST = "iotc: hub disconnected"


TEXT_MAIN = """\
from iotc.app import Device

device = Device(telemetry=lambda: {"label": "caf\\u00e9 \\u2615"})
device.on_property("label", lambda value: None)
device.on_command("echo", lambda request: request)
device.run()
"""


def test_non_ascii_text_goes_out_whole_and_keeps_the_link(tmp_path, emu, release):
    # umqtt.simple counts a str in characters and sends its UTF-8 bytes: telemetry, a property
    # acknowledgement and a 404 naming a command with non-ASCII letters would break the stream.
    device_id = "text-" + release.replace(".", "")
    identity = sas_group_identity(emu, "text-group-" + release, device_id, telemetry_interval=1)
    board_dir = provisioned_board_dir(tmp_path, emu, identity, main=TEXT_MAIN)
    with VirtualBoard(directory=board_dir) as board:
        board.wait_for_output(r"iotc: telemetry sent n=2\b", timeout=30)
        bodies = [json.loads(m["body"]) for m in emu.admin.telemetry(device_id)]
        assert bodies and all(body == {"label": "café ☕"} for body in bodies)

        version = emu.admin.set_desired(device_id, {"label": "thé"})["$version"]
        board.wait_for_output(rf"iotc: property acked name=label av={version} ac=200\b", timeout=20)
        assert emu.admin.device(device_id)["twin"]["reported"]["label"]["value"] == "thé"

        answer = emu.admin.invoke(device_id, "echo", {"text": "grüße"}, timeout=10)
        assert answer == {"status": 200, "payload": {"text": "grüße"}}
        answer = emu.admin.invoke(device_id, "grüßen", timeout=10)
        assert answer == {"status": 404, "payload": {"error": "unknown command: grüßen"}}
        mark = board.output_mark()
        board.wait_for_output(r"iotc: telemetry sent", since=mark, timeout=10)
        assert LOST not in board.output()


WRAP_MAIN = """\
from iotc.app import Device


def near_the_end(device):  # as after ~65,000 QoS 1 messages on one connection
    device.link.pid = 65530


device = Device(telemetry=lambda: {"n": 1})
device.on_connected = near_the_end
device.run()
"""


def test_packet_ids_wrap_after_65535(tmp_path, emu, release):
    # umqtt.simple never wraps its packet id: id 65536 goes out as 0, its PUBACK never matches.
    device_id = "wrap-" + release.replace(".", "")
    options = {"telemetry_interval": 1, "telemetry_qos": 1}
    identity = sas_group_identity(emu, "wrap-group-" + release, device_id, **options)
    board_dir = provisioned_board_dir(tmp_path, emu, identity, main=WRAP_MAIN)
    with VirtualBoard(directory=board_dir) as board:
        board.wait_for_output(r"iotc: telemetry sent n=8\b", timeout=40)  # ids 65531 .. 65535, 1, 2, 3
        output = board.output()
        assert LOST not in output and output.count("iotc: hub connected") == 1
    assert len(emu.admin.telemetry(device_id)) >= 8


LONG_ID_MAIN = """\
from iotc.app import Device

device = Device(telemetry=lambda: {"n": 1})
device.on_message(lambda body, properties: print("app: message", body))
device.run()
"""


def test_a_128_character_device_id_subscribes_to_its_messages(tmp_path, emu, release):
    # IoT Central allows 128-character IDs; the C2D topic of one is a SUBSCRIBE of over 128
    # bytes, which umqtt.simple up to 1.7.0 sends with a one-byte (wrong) length.
    device_id = ("long-" + release.replace(".", "") + "-" + "x" * 128)[:128]
    identity = sas_group_identity(emu, "long-group-" + release, device_id, telemetry_interval=1)
    board_dir = provisioned_board_dir(tmp_path, emu, identity, main=LONG_ID_MAIN)
    with VirtualBoard(directory=board_dir) as board:
        board.wait_for_output(r"iotc: hub connected", timeout=30)
        emu.admin.send_c2d(device_id, "hello")
        board.wait_for_output(r"app: message b'hello'", timeout=20)
        assert "iotc: hub failed" not in board.output()


class SilentServer:
    """Accepts TCP connections and never says a word: a stalled TLS handshake."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def __enter__(self) -> "SilentServer":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()
        self.thread.join(timeout=5)


def test_a_stalled_connect_is_bounded_by_connect_timeout(tmp_path, emu, release):
    # umqtt.simple 1.4.0 (v1.23, v1.24) has no connect timeout: a server that accepts and stays
    # silent would hold the board until the watchdog reset it.
    device_id = "stall-" + release.replace(".", "")
    options = {"connect_timeout": 2, "backoff_min": 1, "backoff_max": 2, "jitter_max": 0}
    identity = sas_group_identity(emu, "stall-group-" + release, device_id, **options)
    board_dir = provisioned_board_dir(tmp_path, emu, identity)
    settings = board_dir / "iotc-data" / FOLDER / "identity.json"
    with SilentServer() as silent:
        document = json.loads(settings.read_text())
        settings.write_text(json.dumps({**document, "dps_port": silent.port}))
        with VirtualBoard(directory=board_dir) as board:
            timed_out = r"iotc: dps failed reason=OSError 110"  # ETIMEDOUT
            board.wait_for_output(timed_out, timeout=20)
            board.wait_for_output(r"iotc: backoff stage=dps", timeout=10)
            board.wait_for_output(timed_out, since=board.output_mark(), timeout=20)
            assert len(silent.accepted) >= 2  # it came back after the backoff


def test_an_x509_key_without_a_chain_loads_on_every_release(tmp_path, emu, release):
    # MicroPython v1.23 hands mbedTLS one byte more than the key; its PKCS#8 DER parser refuses
    # that, so the host writes the key as SEC1 DER, which every release reads.
    device_id = "x509-key-" + release.replace(".", "")
    identity = x509_group_identity(emu, "x509-key-group-" + release, device_id)
    board_dir = provisioned_board_dir(tmp_path, emu, identity)
    with VirtualBoard(directory=board_dir) as board:
        board.wait_for_output(r"iotc: telemetry sent n=1\b", timeout=30)
        assert "config error" not in board.output()


def test_one_missed_scan_does_not_end_the_wifi_join(tmp_path, emu, release):
    # An ESP32 reports STAT_NO_AP_FOUND while its driver is still retrying: the join waits for
    # wifi_timeout instead of giving up at the first missed scan.
    device_id = "scan-" + release.replace(".", "")
    identity = sas_group_identity(emu, "scan-group-" + release, device_id, wifi_timeout=10)
    board_dir = provisioned_board_dir(tmp_path, emu, identity)
    with VirtualBoard(directory=board_dir, faults={"wifi_no_ap": 3}) as board:  # 1.5 s of misses
        board.wait_for_output(r"iotc: wifi connected", timeout=20)
        output = board.output()
        assert "iotc: wifi failed" not in output and "backoff stage=wifi" not in output
