"""Soak: the firmware on a virtual board against the local emulator for a long run (issue 7):
60 s SAS tokens (a reconnect about every 48 s) and one telemetry message per second, with a
writable property and a command registered, so every reconnection also reads the twin.

Prints: messages made and received, lost (expected 0) and duplicated, reconnections, and the
board's gc.mem_free() after gc.collect(), sampled in every message: first, last, lowest, the
least-squares slope, and the median of the first and last thirds (no downward trend expected).

Needs Linux x86_64 (the MicroPython unix port). Run:
    .venv/bin/python bench/bench_soak.py [--minutes 15] [--heap 128K]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "firmware"))

from fw_board import install_firmware, sas_group_identity, write_identity  # noqa: E402
from iotcprov.emulator import Emulator  # noqa: E402
from iotcprov.virtual_board import VirtualBoard  # noqa: E402

SOAK_MAIN = """\
import gc

from iotc.app import Device

count = [0]
target = [21]


def sample():
    count[0] += 1
    gc.collect()
    return {"n": count[0], "free": gc.mem_free()}


def set_target(value):
    target[0] = value


device = Device(telemetry=sample)
device.on_property("targetTemperature", set_target)
device.on_command("ping", lambda request: {"pong": count[0]})
device.run()
"""
DEVICE = "soak-1"
POLL_SECONDS = 30  # the emulator keeps the last 200 messages per device: collect well before


def collect(emu, after: int | None, into: list[dict]) -> int | None:
    for message in emu.admin.telemetry(DEVICE, after=after):
        into.append(json.loads(message["body"]) | {"at": message["time"]})
        after = message["id"]
    return after


def slope_per_hour(samples: list[dict]) -> float:
    """Least-squares slope of free heap over time, in bytes per hour."""
    times = [s["at"] for s in samples]
    frees = [s["free"] for s in samples]
    mean_t, mean_f = statistics.fmean(times), statistics.fmean(frees)
    spread = sum((t - mean_t) ** 2 for t in times)
    if not spread:
        return 0.0
    return sum((t - mean_t) * (f - mean_f) for t, f in zip(times, frees, strict=True)) / spread * 3600


def soak(minutes: float, heap: str | None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="iotcprov-soak-"))
    with Emulator.running(work / "emulator") as emu:
        identity = sas_group_identity(
            emu, "soak-group", DEVICE, telemetry_interval=1, token_ttl=60, jitter_max=1
        )
        board_dir = work / "board"
        board_dir.mkdir()
        install_firmware(board_dir, main=SOAK_MAIN)
        write_identity(board_dir, emu, identity)
        received: list[dict] = []
        after = None
        with VirtualBoard(directory=board_dir, heap=heap) as board:
            board.wait_for_output(r"iotc: telemetry sent", timeout=60)
            started = time.monotonic()
            end = started + minutes * 60
            changes = 0
            while time.monotonic() < end:
                time.sleep(min(POLL_SECONDS, max(end - time.monotonic(), 0)))
                after = collect(emu, after, received)
                changes += 1
                emu.admin.set_desired(DEVICE, {"targetTemperature": 20 + changes % 5})
            board.wait_for_output(r"iotc: telemetry sent", since=board.output_mark(), timeout=30)
            output = board.output()
        time.sleep(2)  # what was in flight when the run ended
        collect(emu, after, received)
    numbers = [m["n"] for m in received]
    made = max(numbers)
    warm = [m for m in received if m["at"] - received[0]["at"] >= 60]  # after the first minute
    third = max(len(warm) // 3, 1)
    return {
        "minutes": (time.monotonic() - started) / 60,
        "heap": heap or "unix default",
        "made": made,
        "received": len(numbers),
        "lost": made - len(set(numbers)),
        "duplicates": len(numbers) - len(set(numbers)),
        "out_of_order": sum(1 for a, b in zip(numbers, numbers[1:], strict=False) if b < a),
        "renewals": output.count("iotc: token renewed"),
        "disconnects": output.count("iotc: hub disconnected"),
        "errors": output.count("iotc: error"),
        "acks": output.count("iotc: property acked"),
        "free_first": warm[0]["free"],
        "free_last": warm[-1]["free"],
        "free_min": min(m["free"] for m in warm),
        "median_first_third": statistics.median(m["free"] for m in warm[:third]),
        "median_last_third": statistics.median(m["free"] for m in warm[-third:]),
        "slope_per_hour": slope_per_hour(warm),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15, help="length of the run (default 15)")
    parser.add_argument("--heap", default="128K", help="MicroPython heap, e.g. 112K (default 128K)")
    args = parser.parse_args()
    r = soak(args.minutes, args.heap)
    flat = r["median_last_third"] >= r["median_first_third"] - 512
    print(f"soak: {r['minutes']:.1f} min, heap {r['heap']}, 60 s tokens, 1 message/s")
    print(f"messages made               {r['made']:8d}")
    print(f"messages received           {r['received']:8d}")
    print(f"lost                        {r['lost']:8d}   (target 0)")
    print(f"duplicated / out of order   {r['duplicates']:8d} / {r['out_of_order']}")
    print(f"token renewals              {r['renewals']:8d}")
    print(f"hub disconnects / errors    {r['disconnects']:8d} / {r['errors']}")
    print(f"property acks               {r['acks']:8d}")
    print(f"free heap first / last      {r['free_first']:8d} / {r['free_last']} bytes (after gc.collect)")
    print(f"free heap lowest            {r['free_min']:8d} bytes")
    print(
        f"median first / last third   {r['median_first_third']:8.0f} / {r['median_last_third']:.0f} bytes"
        f"   -> {'no downward trend' if flat else 'DOWNWARD TREND'}"
    )
    print(f"slope                       {r['slope_per_hour']:8.0f} bytes/hour")


if __name__ == "__main__":
    main()
