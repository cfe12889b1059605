"""The factory line's throughput: boards per hour with 1, 2, 4 and 8 virtual boards at the emulated
115200 baud, and how close to linear it scales.

Each round plugs N fresh boards (each its own `iotcprov virtual-board` process, so the host side
of every UART runs beside the line, not inside it), and times `iotcprov.factory` from start to
the last board recorded: connect, deploy (.mpy), claim, provision (SAS), verify. With --online
the boards also restart and register with a local emulator (the firmware's own work, which on
real hardware runs on the boards, here shares the host's cores).

Goal: scaling >= 0.8 x linear up to 4 ports on a 2-core machine.

    python bench/bench_factory.py [--boards 1,2,4,8] [--rounds 2] [--online]
"""

import argparse
import base64
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iotcprov.board.provision import WifiSettings
from iotcprov.board.trust import azure_roots, roots_from_file
from iotcprov.factory.credentials import GroupKeySource
from iotcprov.factory.devices import generate_range
from iotcprov.factory.job import FactoryJob
from iotcprov.factory.line import PortList, run_line

BAUD = 115200
GOAL = 0.8
GROUP_KEY = base64.b64encode(bytes(range(64))).decode()


class BoardProcess:
    """`iotcprov virtual-board` in its own process; the port is its first line of output."""

    def __init__(self, folder: Path) -> None:
        (folder / "fs").mkdir(parents=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "iotcprov", "virtual-board", "--dir", str(folder / "fs"),
             "--state", str(folder / "state"), "--baud", str(BAUD)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.port = self.process.stdout.readline().strip()
        if not self.port:
            raise SystemExit("a virtual board did not start (is the MicroPython unix port installed?)")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def one_round(count: int, work: Path, job: FactoryJob, round_number: int) -> tuple[float, int]:
    """(seconds, boards done) for `count` fresh boards at once."""
    folder = work / f"n{count}-r{round_number}"
    boards = [BoardProcess(folder / f"board-{i}") for i in range(count)]
    try:
        started = time.monotonic()
        summary = run_line(
            job, folder / "line.sqlite", generate_range(f"bench-{count}-{round_number}-", 1, count),
            PortList(tuple(b.port for b in boards)),
        )  # fmt: skip
        seconds = time.monotonic() - started
    finally:
        for board in boards:
            board.stop()
    for port, outcome in summary.failures:
        print(f"  failed: {port} at {outcome.stage}: {outcome.error}")
    return seconds, summary.count("done")


def make_job(online: bool, emulator) -> FactoryJob:
    if not online:
        return FactoryJob(id_scope="0ne00ABCDEF", credentials=GroupKeySource(GROUP_KEY), trust=azure_roots())
    group_key = emulator.admin.create_sas_group("bench")["primary_key"]
    info = emulator.info
    return FactoryJob(
        id_scope=info["id_scope"],
        credentials=GroupKeySource(group_key),
        trust=roots_from_file(info["ca_cert"]),
        dps_host=info["dps"]["host"],
        dps_port=info["dps"]["port"],
        hub_port=info["hub"]["port"],
        wifi=WifiSettings("bench", "bench-pass"),
        main=True,
        online_check=True,
        options={"telemetry_interval": 30},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", default="1,2,4,8", help="station counts to measure")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per station count (median taken)")
    parser.add_argument("--online", action="store_true", help="include the online check (local emulator)")
    args = parser.parse_args()
    counts = [int(n) for n in args.boards.split(",")]
    work = Path(tempfile.mkdtemp(prefix="iotcprov-bench-factory-"))
    emulator_context = None
    try:
        emulator = None
        if args.online:
            from iotcprov.emulator import Emulator

            emulator_context = Emulator.running(work / "emulator")
            emulator = emulator_context.__enter__()
        job = make_job(args.online, emulator)
        steps = "deploy + provision + verify" + (" + online check" if args.online else "")
        print(f"factory line at {BAUD} baud, {steps}; {os.cpu_count()} CPU cores; {args.rounds} rounds each")
        rates: dict[int, float] = {}
        for count in counts:
            results = [one_round(count, work, job, r) for r in range(args.rounds)]
            per_round = [done * 3600.0 / seconds for seconds, done in results]
            rates[count] = statistics.median(per_round)
            seconds = statistics.median(s for s, _ in results)
            print(
                f"{count} board(s): {seconds:6.1f} s per round, {rates[count]:7.0f} boards/hour "
                f"(rounds: {', '.join(f'{r:.0f}' for r in per_round)})",
                flush=True,
            )
        if rates.get(1):
            print("scaling (boards/hour relative to N x the 1-board rate):")
            for count in counts:
                if count == 1:
                    continue
                ratio = rates[count] / (count * rates[1])
                goal = f" (goal >= {GOAL}: {'met' if ratio >= GOAL else 'MISSED'})" if count <= 4 else ""
                print(f"  {count} boards: {ratio:.2f} x linear{goal}")
    finally:
        if emulator_context is not None:
            emulator_context.__exit__(None, None, None)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
