"""End to end: the IoT Central device features on virtual boards against the local emulator
(issue 7, "Must show"): writable properties acknowledged with the right `av` (also for a value
set while the board was off), commands (answers, unknown, raising, component), C2D with its
properties and offline commands, the offline buffer across a hub outage (in order, once, oldest
dropped and counted) and the watchdog."""

import json
import re
import time

import pytest
from fw_board import THERMOSTAT, provisioned_board_dir, sas_group_identity

pytest.importorskip("iotcprov.virtual_board", reason="needs the virtual board (Linux x86_64)")
from iotcprov.virtual_board import VirtualBoard  # noqa: E402

pytestmark = pytest.mark.usefixtures("release")  # each test on the oldest and newest release

THERMOSTAT_MODEL = "dtmi:iotcprov:Thermostat;1"


def reported(emu, device_id: str) -> dict:
    return emu.admin.device(device_id)["twin"]["reported"]


def acked(board, name: str, version: int, ac: int = 200, since: int = 0, component: str | None = None):
    where = f" component={component}" if component else ""
    return board.wait_for_output(
        rf"iotc: property acked name={name}{where} av={version} ac={ac}\b", since=since, timeout=20
    )


def temperatures(emu, device_id: str, after: int | None = None) -> list[float]:
    return [json.loads(m["body"])["temperature"] for m in emu.admin.telemetry(device_id, after=after)]


# The heap the thermostat is held to: the 64 KB, as the default device's
# (test_fw_device.py); the application's heap, as on an ESP32 with network, umqtt.simple, ntptime
# and machine built in. bench/bench_firmware.py prints the smallest heap that still completes
# (firmware/README.md, Memory).
LIMITED_HEAP = "64K"


def test_thermostat_properties_and_commands(tmp_path, emu):
    identity = sas_group_identity(emu, "thermo-group", "thermo-1", telemetry_interval=1)
    board_dir = provisioned_board_dir(tmp_path, emu, identity, main=THERMOSTAT, model_id=None)
    with VirtualBoard(directory=board_dir, heap=LIMITED_HEAP) as board:
        board.wait_for_output(r"iotc: telemetry sent n=2\b", timeout=30)
        record = emu.admin.device("thermo-1")
        # identity.json names no model: the application's own is announced
        assert record["hub_model_id"] == record["dps_model_id"] == THERMOSTAT_MODEL
        info = record["twin"]["reported"]
        assert info["firmwareVersion"] == "0.1.0"
        assert re.fullmatch(r"\d+\.\d+\.\d+", info["micropythonVersion"])
        assert info["macAddress"] == board.mac.lower() and info["board"]

        # A desired value: applied (the room heads for it) and acknowledged with its $version.
        version = emu.admin.set_desired("thermo-1", {"targetTemperature": 30})["$version"]
        mark = board.output_mark()
        acked(board, "targetTemperature", version, since=mark)
        assert reported(emu, "thermo-1")["targetTemperature"] == {
            "value": 30, "ac": 200, "ad": "completed", "av": version,
        }  # fmt: skip
        # Under the old target the room (from 18) never passes 21; under 30 it climbs past it.
        last = emu.admin.telemetry("thermo-1")[-1]["id"]
        for _ in range(10):
            board.wait_for_output(r"iotc: telemetry sent n=\d+", since=board.output_mark())
            if temperatures(emu, "thermo-1", after=last)[-1] > 21.5:
                break
        climbing = temperatures(emu, "thermo-1", after=last)
        assert climbing[-1] > 21.5 and climbing == sorted(climbing)

        # Out of range: refused with the handler's code and reason, the old value reported.
        refused = emu.admin.set_desired("thermo-1", {"targetTemperature": 50})["$version"]
        acked(board, "targetTemperature", refused, ac=400, since=mark)
        assert reported(emu, "thermo-1")["targetTemperature"] == {
            "value": 30, "ac": 400, "ad": "must be 5-35", "av": refused,
        }  # fmt: skip

        answer = emu.admin.invoke("thermo-1", "getMaxMinReport", timeout=10)
        assert answer["status"] == 200
        report = answer["payload"]
        assert report["minTemp"] <= report["avgTemp"] <= report["maxTemp"] and report["maxTemp"] > 21.5
        unknown = emu.admin.invoke("thermo-1", "selfDestruct", {"now": True}, timeout=10)
        assert unknown == {"status": 404, "payload": {"error": "unknown command: selfDestruct"}}
        board.wait_for_output(r"iotc: command name=selfDestruct status=404 via=method", since=mark)

        # Set while the board is off: acknowledged after the next boot.
        board.power_off()
        while_off = emu.admin.set_desired("thermo-1", {"targetTemperature": 25})["$version"]
        mark = board.output_mark()
        board.power_on()
        acked(board, "targetTemperature", while_off, since=mark)
        assert reported(emu, "thermo-1")["targetTemperature"]["value"] == 25
        output = board.output()
    assert "Traceback" not in output and "iotc: error" not in output and identity.key not in output
    assert int(re.search(r"iotc: boot .* free=(\d+)", output).group(1)) < 64 * 1024  # the limit held


FEATURES_MAIN = """\
import time

from iotc.app import Device


def component_target(value):
    print("app: thermostat1 target", value)


def broken(value):
    raise RuntimeError("actuator stuck")


def component_report(request):
    return {"component": "thermostat1", "request": request}


def fail(request):
    raise ValueError("no can do")


def hang(request):
    time.sleep(3600)  # hung, not busy: only the watchdog gets the board back


def set_led(request):
    print("app: setLed", request)


def message(body, properties):
    print("app: message", body, properties["kind"])


device = Device(telemetry=lambda: {"alive": 1})
device.on_property("targetTemperature", component_target, component="thermostat1")
device.on_property("broken", broken)
device.on_command("getMaxMinReport", component_report, component="thermostat1")
device.on_command("fail", fail)
device.on_command("hang", hang)
device.on_command("setLed", set_led)
device.on_message(message)
device.run()
"""


def test_components_errors_c2d_and_the_watchdog(tmp_path, emu):
    # A 15 s watchdog (the least that covers 5 s connect and read timeouts) and 20 s tokens, so
    # a DPS registration, two hub connections and token renewals all happen under it.
    identity = sas_group_identity(
        emu, "features-group", "features-1", telemetry_interval=1, watchdog=15, connect_timeout=5,
        response_timeout=5, token_ttl=20,
    )  # fmt: skip
    board_dir = provisioned_board_dir(tmp_path, emu, identity, main=FEATURES_MAIN)
    with VirtualBoard(directory=board_dir) as board:
        board.wait_for_output(r"iotc: watchdog timeout=15")
        started = time.monotonic()
        board.wait_for_output(r"iotc: hub connected", timeout=30)

        version = emu.admin.set_desired(
            "features-1", {"thermostat1": {"__t": "c", "targetTemperature": 30}, "broken": 1}
        )["$version"]
        acked(board, "targetTemperature", version, component="thermostat1")
        acked(board, "broken", version, ac=500)
        twin = reported(emu, "features-1")
        assert twin["thermostat1"] == {
            "__t": "c", "targetTemperature": {"value": 30, "ac": 200, "ad": "completed", "av": version},
        }  # fmt: skip
        assert twin["broken"] == {"value": 1, "ac": 500, "ad": "RuntimeError: actuator stuck", "av": version}
        board.wait_for_output(r"app: thermostat1 target 30")

        answer = emu.admin.invoke("features-1", "thermostat1*getMaxMinReport", {"since": "boot"}, timeout=10)
        assert answer["status"] == 200
        assert answer["payload"] == {"component": "thermostat1", "request": {"since": "boot"}}
        failed = emu.admin.invoke("features-1", "fail", timeout=10)
        assert failed == {"status": 500, "payload": {"error": "ValueError: no can do"}}

        emu.admin.send_c2d("features-1", "hello", {"kind": "greeting"})
        board.wait_for_output(r"app: message b'hello' greeting")
        # a command IoT Central queued while the device was offline: a C2D message
        emu.admin.send_c2d("features-1", '{"on": true}', {"method-name": "setLed"})
        board.wait_for_output(r"app: setLed \{'on': True\}")
        board.wait_for_output(r"iotc: command name=setLed status=200 via=c2d")

        # Normal operation, token renewals included, for longer than the watchdog's timeout.
        board.wait_for_output(r"iotc: token renewed", timeout=30)
        while time.monotonic() - started < 20:
            board.wait_for_output(r"iotc: telemetry sent", since=board.output_mark(), timeout=10)
        assert "task_wdt" not in board.output() and board.output().count("rst:") == 1

        # A handler that hangs: the watchdog resets the board, which comes back by itself.
        mark = board.output_mark()
        assert emu.admin.invoke("features-1", "hang", timeout=3)["status"] == 504
        board.wait_for_output(r"task_wdt: Task watchdog got triggered", since=mark, timeout=25)
        board.wait_for_output(r"iotc: boot .*reset=watchdog", since=mark)
        board.wait_for_output(r"iotc: telemetry sent", since=mark, timeout=30)
        output = board.output()
        assert output.count("rst:") == 2 and "Traceback" not in output

        # Ctrl-C, as deploy and provision start, leaves a usable REPL: the watchdog is stretched
        # rather than left to reset the board under the host's feet.
        assert "repl 42" in board.run_mpremote("exec", "print('repl', 6 * 7)").stdout
        mark = board.output_mark()
        with pytest.raises(TimeoutError):
            board.wait_for_output(r"rst:", since=mark, timeout=20)


COUNTER_MAIN = """\
from iotc.app import Device

count = [0]


def counter():
    count[0] += 1
    return {"n": count[0]}


Device(telemetry=counter).run()
"""


FLUSHED = r"iotc: buffer flushed n=(\d+) dropped=(\d+)"


def sequence(emu, device_id: str) -> list[dict]:
    return [
        dict(json.loads(m["body"]), created=m["properties"].get("iothub-creation-time-utc"))
        for m in emu.admin.telemetry(device_id, limit=200)
    ]


def test_hub_outage_buffers_telemetry_and_sends_it_in_order(tmp_path, emu):
    # Two boards through one outage: a buffer big enough for it, and one of 3 messages.
    options = dict(telemetry_interval=1, backoff_max=2, jitter_max=0, hub_failures_before_dps=100)
    big = sas_group_identity(emu, "outage-group", "outage-big", buffer_size=50, **options)
    small = sas_group_identity(emu, "outage-group-2", "outage-small", buffer_size=3, **options)
    big_dir = provisioned_board_dir(tmp_path, emu, big, "big", main=COUNTER_MAIN)
    small_dir = provisioned_board_dir(tmp_path, emu, small, "small", main=COUNTER_MAIN)
    with VirtualBoard(directory=big_dir) as one, VirtualBoard(directory=small_dir) as two:
        for board in (one, two):
            board.wait_for_output(r"iotc: telemetry sent n=2\b", timeout=30)
        emu.admin.fault("outage", seconds=10)
        for board in (one, two):
            board.wait_for_output(r"iotc: hub disconnected")
        two.wait_for_output(r"iotc: buffer dropped n=1 size=3")
        flushed = [board.wait_for_output(FLUSHED, timeout=40) for board in (one, two)]
        for board in (one, two):  # and afterwards, live telemetry again
            board.wait_for_output(r"iotc: telemetry sent", since=board.output_mark(), timeout=10)
        outputs = [one.output(), two.output()]

    # Enough room: every message once and in order, the buffered ones stamped with their time.
    received = sequence(emu, "outage-big")
    numbers = [m["n"] for m in received]
    assert numbers == list(range(1, len(numbers) + 1))
    buffered = int(flushed[0].group(1))
    assert buffered >= 5 and flushed[0].group(2) == "0"
    stamped = [m for m in received if m["created"]]
    assert len(stamped) == buffered
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamped[0]["created"])
    assert [m["created"] for m in stamped] == sorted(m["created"] for m in stamped)

    # Three places: the newest three of the outage arrive, the older ones are dropped and counted.
    received = [m["n"] for m in sequence(emu, "outage-small")]
    dropped = int(flushed[1].group(2))
    assert flushed[1].group(1) == "3" and dropped >= 2
    assert received == sorted(set(received))  # in order, no duplicates
    gaps = [b - a - 1 for a, b in zip(received, received[1:], strict=False) if b - a > 1]
    assert gaps == [dropped]  # one run of dropped messages: the oldest of the outage
    assert reported(emu, "outage-small")["bufferDropped"] == dropped
    assert "bufferDropped" not in reported(emu, "outage-big")
    for output in outputs:
        assert "Traceback" not in output and "iotc: error" not in output
