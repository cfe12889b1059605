"""Port discovery with an injected lister: the allow-list is the profiles' data, 'new' is pure."""

import pytest
from iotcprov.board import ports
from iotcprov.board.ports import PortRecord
from iotcprov.errors import InputError

CP210X = PortRecord("/dev/ttyUSB0", 0x10C4, 0xEA60, "0001", "CP2102 USB to UART Bridge")
JTAG = PortRecord("/dev/ttyACM0", 0x303A, 0x1001, "AA:BB", "USB JTAG/serial debug unit")
MOUSE = PortRecord("/dev/ttyACM1", 0x046D, 0xC077, None, "a mouse")
BUILTIN = PortRecord("/dev/ttyS0", None, None, None, "n/a")


def test_bridges_come_from_the_board_profiles():
    bridges = ports.known_bridges()
    assert bridges[(0x10C4, 0xEA60)].name == "Silicon Labs CP210x"
    assert set(bridges[(0x10C4, 0xEA60)].boards) == {
        "esp32", "esp32s2", "esp32s3", "esp32c2", "esp32c3", "esp32c5", "esp32c6", "esp32p4"
    }
    assert set(bridges[(0x303A, 0x1001)].boards) == {"esp32s3", "esp32c3", "esp32c5", "esp32c6", "esp32p4"}
    assert set(bridges[(0x303A, 0x4001)].boards) == {"esp32s2", "esp32s3", "esp32p4"}
    custom = ports.known_bridges([{"name": "mine", "usb_ids": [{"vid": "1234", "pid": "abcd", "name": "X"}]}])
    assert list(custom) == [(0x1234, 0xABCD)] and custom[(0x1234, 0xABCD)].boards == ("mine",)


def test_only_known_bridges_are_candidates():
    found = ports.candidate_ports([MOUSE, JTAG, BUILTIN, CP210X])
    assert [c.record.device for c in found] == ["/dev/ttyACM0", "/dev/ttyUSB0"]
    assert found[1].as_dict()["vid"] == "10c4" and found[1].bridge == "Silicon Labs CP210x"


def test_new_ports_since_last_scan():
    assert ports.new_ports([], [CP210X]) == [CP210X]
    assert ports.new_ports([CP210X], [CP210X, JTAG]) == [JTAG]
    assert ports.new_ports([CP210X, JTAG], [JTAG]) == []
    swapped = PortRecord("/dev/ttyUSB0", 0x10C4, 0xEA60, "0002", "another board, same path")
    assert ports.new_ports([CP210X], [swapped]) == [swapped]


def test_scan_probes_each_candidate_and_keeps_failures():
    def prober(port):
        if port == JTAG.device:
            raise InputError("--port: not MicroPython")
        return "MicroPython v1.24.1"

    found = ports.scan(lambda: [CP210X, JTAG, MOUSE], probe_boards=True, prober=prober)
    assert [(c.record.device, c.micropython, c.probe_error) for c in found] == [
        ("/dev/ttyACM0", None, "--port: not MicroPython"),
        ("/dev/ttyUSB0", "MicroPython v1.24.1", None),
    ]


@pytest.mark.smoke
def test_the_real_lister_runs():
    assert all(isinstance(r, PortRecord) for r in ports.list_serial_ports())


def test_cli_ports_json_lists_candidates():
    import json

    from tests.board.conftest import run_cli

    out = run_cli("ports", "--json")
    assert out.returncode == 0, out.stderr
    assert all(entry["bridge"] for entry in json.loads(out.stdout))
