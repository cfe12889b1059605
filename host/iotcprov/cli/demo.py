"""`iotcprov demo`: the whole flow offline, printed as a timeline. The work is iotcprov.demo.

A terminal gets a coloured timeline (rich); a pipe gets plain lines; --json gets JSON lines
(one per event, then the summary).
"""

import argparse
import contextlib
import json
import signal
import sys
from pathlib import Path

from iotcprov.demo import (
    BOARD,
    CLOUD,
    HOST,
    DemoEvent,
    DemoOptions,
    DemoSummary,
    check_platform,
    run_demo,
    serve_kept,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole flow offline (emulator + virtual board)",
        description=(
            "Start the local DPS + IoT Hub emulator and a virtual ESP32, enroll, provision and deploy "
            "the board as a real one, boot it, and follow it through DPS registration, the hub "
            "connection, telemetry, a writable property and a command. Everything started is stopped "
            "at the end. Needs Linux x86_64 (the MicroPython unix port)."
        ),
    )
    parser.add_argument(
        "--x509",
        action="store_true",
        help="an X.509 enrollment group with a generated test CA and device certificate (default: SAS)",
    )
    parser.add_argument(
        "--central",
        action="store_true",
        help="enroll through IoT Central's REST API as the emulator serves it (an API token, devices, "
        "groups, proof of possession) instead of its admin API",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the work folder here (a new or empty folder): emulator data, board files, console log; "
        "at a terminal, then serve the emulator's dashboard on it until Ctrl-C",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines: each event, then the summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_platform()  # before the header: elsewhere than Linux x86_64 the one line says what is needed
    if args.json:
        printer: _Printer = _JsonPrinter()
    elif sys.stdout.isatty():
        printer = _RichPrinter()
    else:
        printer = _PlainPrinter()
    printer.header(args.x509)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop everything on SIGTERM too
    try:
        options = DemoOptions(x509=args.x509, central=args.central, keep=args.keep)
        summary = run_demo(options, on_event=printer.event)
    finally:
        signal.signal(signal.SIGTERM, previous)
    printer.summary(summary)
    if args.keep and summary.emulator_data and not args.json and sys.stdin.isatty():
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the serving, not an error
            serve_kept(summary.emulator_data, on_ready=_print_serving)
    return 0


def _print_serving(info: dict) -> None:
    print(
        f"\nthe kept emulator serves its dashboard at {info['dashboard_url']} until Ctrl-C\n"
        f"operator token (for control actions on the dashboard): {info['dashboard_token']}",
        flush=True,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _summary_rows(summary: DemoSummary) -> list[tuple[str, str]]:
    how = {"sas": "SAS", "x509": "X.509"}.get(summary.attestation, summary.attestation)
    prop, command, times = summary.property, summary.command, summary.timings
    first = json.dumps(summary.first_telemetry)
    rows = [
        ("device", f"{summary.device_id}  ({how} enrollment group '{summary.enrollment_group}')"),
        ("credential", summary.fingerprint),
        ("DPS", f"{summary.dps}  ID scope {summary.id_scope}"),
        ("IoT Hub", f"{summary.hub}  ({summary.hub_endpoint})"),
        ("model", summary.model_id or "none announced"),
        ("firmware", f"{summary.firmware} as {summary.bytecode}"),
        ("telemetry", f"{summary.telemetry_messages} messages received; first {first}"),
        ("property", f"{prop.get('name')} = {prop.get('value')} acknowledged "
                     f"(ac {prop.get('ac')}, av {prop.get('av')})"),
        ("command", f"{command.get('name')} -> {command.get('status')} {json.dumps(command.get('payload'))}"),
        ("timings", f"provision {times.get('provision', 0):.1f} s, deploy {times.get('deploy', 0):.1f} s; "
                    f"after reset: registered {times.get('boot_to_registration', 0):.1f} s, "
                    f"hub {times.get('boot_to_hub', 0):.1f} s, "
                    f"telemetry {times.get('boot_to_telemetry', 0):.1f} s; "
                    f"total {summary.total_seconds:.1f} s"),
    ]  # fmt: skip
    if summary.dashboard_url:
        served = "served while the demo ran; --keep serves it after"
        rows.append(("dashboard", f"{summary.dashboard_url}  ({served})"))
    if summary.work_dir:
        rows.append(("kept", f"{summary.work_dir}  (the emulator's records: "
                             f"iotcprov emulator start --data {summary.emulator_data})"))  # fmt: skip
    return rows


NEXT = "Next: the README's quickstarts take a real ESP32 and an IoT Central application the same way."


class _Printer:
    def header(self, x509: bool) -> None: ...

    def event(self, event: DemoEvent) -> None: ...

    def summary(self, summary: DemoSummary) -> None: ...


class _JsonPrinter(_Printer):
    def event(self, event: DemoEvent) -> None:
        print(json.dumps({"type": "event", **event.as_dict()}), flush=True)

    def summary(self, summary: DemoSummary) -> None:
        print(json.dumps({"type": "summary", **summary.as_dict()}), flush=True)


class _PlainPrinter(_Printer):
    def header(self, x509: bool) -> None:
        kind = "X.509" if x509 else "SAS"
        print(f"iotcprov demo: {kind} enrollment, virtual ESP32, local DPS + IoT Hub emulator", flush=True)

    def event(self, event: DemoEvent) -> None:
        mark = "ok" if event.milestone else "  "
        text = event.text if event.source != BOARD else "| " + event.text
        print(f"{event.seconds:6.1f}s  {event.source:<5}  {mark}  {event.step:<12}  {text}", flush=True)

    def summary(self, summary: DemoSummary) -> None:
        print(f"\ndemo completed in {summary.total_seconds:.1f} s")
        for name, value in _summary_rows(summary):
            print(f"  {name:<11} {value}")
        print("\n" + NEXT)


class _RichPrinter(_Printer):
    STYLES = {HOST: "cyan", CLOUD: "magenta", BOARD: "green"}

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False)

    def header(self, x509: bool) -> None:
        kind = "X.509" if x509 else "SAS"
        self.console.rule(f"[bold]iotcprov demo[/]: {kind} enrollment, virtual ESP32, local DPS + IoT Hub")

    def event(self, event: DemoEvent) -> None:
        from rich.table import Table
        from rich.text import Text

        # One grid per event with fixed columns, so a long line wraps under its own text.
        row = Table.grid(padding=(0, 1))
        row.add_column(width=7, justify="right", style="dim")
        row.add_column(width=5, style=self.STYLES.get(event.source, ""))
        row.add_column(width=1, style="bold green")
        row.add_column(width=12, style="bold" if event.milestone else "")
        row.add_column(overflow="fold")
        if event.source == BOARD:
            status = event.data.get("status")
            failed = status and ("fail" in status or "error" in status or status == "stopped")
            text = Text("│ " + event.text, style="red" if failed else ("green" if status else "dim"))
        else:
            text = Text(event.text, style="bold" if event.milestone else "")
        step = "" if event.source == BOARD else event.step  # the board's lines speak for themselves
        row.add_row(f"{event.seconds:.1f}s", event.source, "✓" if event.milestone else "", step, text)
        self.console.print(row)

    def summary(self, summary: DemoSummary) -> None:
        from rich.panel import Panel
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for name, value in _summary_rows(summary):
            table.add_row(name, value)
        self.console.print(
            Panel(table, title=f"[bold green]demo completed in {summary.total_seconds:.1f} s", expand=False)
        )
        self.console.print(NEXT)
