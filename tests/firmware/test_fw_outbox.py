"""The offline buffer's bookkeeping (firmware/iotc/outbox.py) on CPython: bounded, oldest dropped
first, drops counted and reported as a trail of status lines, messages stamped with the time
they were made; and read-only properties merged into one patch. The sending side runs end to
end in test_fw_central.py."""

import json
import re
from types import SimpleNamespace

from iotc import outbox


def offline_device(size: int) -> SimpleNamespace:
    """The attributes outbox uses, as Device holds them before a session is open."""
    return SimpleNamespace(
        settings=SimpleNamespace(buffer_size=size), buffer=[], dropped=0, stage="hub", reported={}
    )


def test_full_buffer_drops_the_oldest_and_counts(capsys):
    device = offline_device(3)
    for n in range(1, 11):
        outbox.keep(device, json.dumps({"n": n}), None, None)
    assert [body for body, *_ in device.buffer] == ['{"n": 8}', '{"n": 9}', '{"n": 10}']
    assert device.dropped == 7
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"iotc: buffer dropped n={n} size=3" for n in (1, 2, 4)]  # 1, 2, 4, ...: not 7 lines


def test_buffer_of_zero_keeps_nothing(capsys):
    device = offline_device(0)
    outbox.keep(device, "{}", None, None)
    assert device.buffer == [] and device.dropped == 1
    assert "buffer dropped n=1 size=0" in capsys.readouterr().out


def test_kept_messages_remember_their_properties_and_creation_time():
    device = offline_device(5)
    outbox.keep(device, '{"t": 1}', {"alert": "high"}, "thermostat1")
    body, properties, component, created = device.buffer[0]
    assert (body, properties, component) == ('{"t": 1}', {"alert": "high"}, "thermostat1")
    # this machine's clock is set, so the message carries the time it was made
    from iotc import clock

    assert abs(created - clock.unix_time()) <= 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", clock.iso_utc(created))


def test_report_offline_merges_into_one_patch():
    device = offline_device(5)
    assert outbox.report(device, {"firmwareVersion": "0.1.0", "serial": "A"}, None) is False
    assert outbox.report(device, {"serial": "B"}, None) is False
    assert outbox.report(device, {"mode": "eco"}, "thermostat1") is False
    assert device.reported == {
        "firmwareVersion": "0.1.0",
        "serial": "B",
        "thermostat1": {"__t": "c", "mode": "eco"},
    }
