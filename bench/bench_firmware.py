"""Firmware figures on the virtual board against the local emulator (issue 6):

- boot to first accepted telemetry, without and with a cached DPS assignment: wall time, TLS
  handshakes (counted by the emulator) and MQTT packets (counted by the firmware's link);
- the smallest --heap with which the full flow (DPS + hub + 10 telemetry messages) completes
  without a MemoryError, found by bisection to 1 KB and confirmed by repeated runs. Goal: <= 48 KB.
  The same for the thermostat example (firmware/main.py): DPS + hub, the twin read, a writable
  property acknowledged (and one refused), a command answered and an unknown one refused
  (issue 7's features; the end-to-end tests hold both to 64 KB).
  `--heap N` is the heap the application gets, as on an ESP32 whose network, umqtt.simple,
  ntptime and machine are built in: gc.mem_free() is N - 2 KB at boot, the virtual board's own
  stand-ins held outside it (host/iotcprov/virtual_board/README.md, Heap). The unix port is
  64-bit, so the figure is conservative for a 32-bit ESP32.

Needs Linux x86_64 (the MicroPython unix port). Run: .venv/bin/python bench/bench_firmware.py
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "firmware"))

from fw_board import THERMOSTAT, install_firmware, sas_group_identity, write_identity  # noqa: E402
from iotcprov.emulator import Emulator  # noqa: E402
from iotcprov.errors import OperationError  # noqa: E402
from iotcprov.virtual_board import VirtualBoard  # noqa: E402

GOAL_KB = 48
THERMOSTAT_GOAL_KB = 64
BENCH_MAIN = """\
import time
t0 = time.ticks_ms()
import iotc.app
from iotc.link import Link
device = iotc.app.Device()
if device.start():
    while device.sent == 0 and device.stage is not None:
        device.step()
    print("bench: first-telemetry ms=%d packets_out=%d packets_in=%d"
          % (time.ticks_diff(time.ticks_ms(), t0), Link.packets_out, Link.packets_in))
    device.run()
"""
FIRST = r"bench: first-telemetry ms=(\d+) packets_out=(\d+) packets_in=(\d+)"


def boot_to_first_telemetry(emu, work: Path) -> list[dict]:
    identity = sas_group_identity(emu, "bench-group", "bench-dev")
    board_dir = work / "board"
    board_dir.mkdir()
    install_firmware(board_dir)
    write_identity(board_dir, emu, identity)
    (board_dir / "main.py").write_text(BENCH_MAIN)
    rows = []
    board = VirtualBoard(directory=board_dir)
    for label in ("no cache (DPS + hub)", "cached assignment (hub only)"):
        before = emu.admin.stats()["tls_handshakes"]
        started = time.monotonic()
        if label.startswith("no cache"):
            board.start()
            mark = 0
        else:
            mark = board.output_mark()
            board.reset()
        found = board.wait_for_output(FIRST, timeout=60, since=mark)
        wall = time.monotonic() - started
        after = emu.admin.stats()["tls_handshakes"]
        rows.append({
            "case": label, "wall_s": wall, "device_ms": int(found.group(1)),
            "tls": (after["dps"] - before["dps"]) + (after["hub"] - before["hub"]),
            "packets_out": int(found.group(2)), "packets_in": int(found.group(3)),
        })  # fmt: skip
    board.stop()
    return rows


def full_flow_completes(emu, work: Path, heap_kb: int, attempt: int, app: str) -> bool:
    """From a fresh board with the given heap: DPS + hub + 10 telemetry messages (the default
    device), or the thermostat's features (twin read, acknowledgements, commands)."""
    device_id = f"heap-dev-{attempt}"
    identity = sas_group_identity(emu, f"heap-group-{attempt}", device_id, telemetry_interval=1)
    board_dir = work / f"heap-{attempt}"
    board_dir.mkdir()
    thermostat = app == "thermostat"
    install_firmware(board_dir, main=THERMOSTAT if thermostat else "import iotc.app\niotc.app.main()\n")
    write_identity(board_dir, emu, identity, model_id=None if thermostat else "dtmi:iotcprov:DefaultDevice;1")
    failed = r"|Error|iotc: config error|iotc: error"
    try:
        with VirtualBoard(directory=board_dir, heap=f"{heap_kb}K") as board:
            if not thermostat:
                board.wait_for_output(r"iotc: telemetry sent n=10\b" + failed, timeout=60)
                output = board.output()
                return "telemetry sent n=10" in output and "Error" not in output
            board.wait_for_output(r"iotc: telemetry sent n=2\b" + failed, timeout=60)
            for target, ac in ((30, 200), (50, 400)):  # accepted, then refused by the handler
                if "Error" in board.output():
                    return False
                version = emu.admin.set_desired(device_id, {"targetTemperature": target})["$version"]
                acked = rf"iotc: property acked name=targetTemperature av={version} ac={ac}\b"
                board.wait_for_output(acked + failed, timeout=30)
            names = ("getMaxMinReport", "x")  # answered, then unknown (404)
            answers = [emu.admin.invoke(device_id, name, timeout=10)["status"] for name in names]
            board.wait_for_output(r"iotc: command name=x status=404" + failed, timeout=30)
            output = board.output()
    except (OperationError, TimeoutError):
        return False
    return answers == [200, 404] and "Error" not in output and "iotc: error" not in output


def smallest_heap(emu, work: Path, low_kb: int, high_kb: int, confirm: int, app: str, attempts) -> int | None:
    """Bisection to 1 KB, then `confirm` more runs at the result (a step up for each failure:
    how the heap fragments varies a little from run to run)."""

    def completes(heap_kb: int) -> bool:
        ok = full_flow_completes(emu, work, heap_kb, next(attempts), app)
        print(f"  heap {heap_kb:4d} KB: {'completes' if ok else 'fails'}", flush=True)
        return ok

    if not completes(high_kb):
        return None
    if completes(low_kb):
        return low_kb
    while high_kb - low_kb > 1:
        middle = (low_kb + high_kb) // 2
        if completes(middle):
            high_kb = middle
        else:
            low_kb = middle
    runs = 0
    while runs < confirm:
        if completes(high_kb):
            runs += 1
        else:
            high_kb, runs = high_kb + 1, 0
    return high_kb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--low", type=int, default=16, help="heap bisection lower bound, KB (16 at least)")
    parser.add_argument("--high", type=int, default=128, help="heap bisection upper bound, KB (completes)")
    parser.add_argument("--confirm", type=int, default=3, help="runs that must complete at the result")
    parser.add_argument("--skip-heap", action="store_true", help="only the boot-to-telemetry figures")
    parser.add_argument(
        "--app", choices=("both", "default", "thermostat"), default="both", help="whose smallest heap to find"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-firmware-") as temp:
        work = Path(temp)
        with Emulator.running(work / "emulator") as emu:
            print("boot to first accepted telemetry (virtual board, default heap)")
            print(f"  {'case':32} {'wall s':>7} {'device ms':>10} {'TLS':>4} {'MQTT out/in':>12}")
            for row in boot_to_first_telemetry(emu, work):
                packets = f"{row['packets_out']}/{row['packets_in']}"
                figures = f"{row['wall_s']:7.2f} {row['device_ms']:10d} {row['tls']:4d} {packets:>12}"
                print(f"  {row['case']:32} {figures}")
            attempts = iter(range(10_000))
            flows = [] if args.skip_heap else [
                ("default", "the default device: DPS + hub + 10 telemetry", GOAL_KB),
                ("thermostat", "the thermostat: DPS + hub, twin, 2 acks, 2 commands", THERMOSTAT_GOAL_KB),
            ]  # fmt: skip
            for app, title, goal in flows:
                if args.app not in ("both", app):
                    continue
                print(f"smallest heap for {title} (bisection {args.low}..{args.high} KB)")
                smallest = smallest_heap(emu, work, args.low, args.high, args.confirm, app, attempts)
                if smallest is None:
                    print(f"  does not complete even with {args.high} KB")
                else:
                    verdict = "meets" if smallest <= goal else "misses"
                    print(
                        f"  smallest heap: {smallest} KB, {args.confirm} runs in a row "
                        f"({verdict} the goal of <= {goal} KB)"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
