"""`iotcprov emulator ...`: start the local DPS + IoT Hub emulator and control it (parse and print only)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iotcprov.board.identity import sas_fingerprint
from iotcprov.errors import InputError
from iotcprov.secret_input import DEVICE_KEY, SecretOption

if TYPE_CHECKING:
    from iotcprov.emulator.client import AdminClient

Handler = Callable[[argparse.Namespace], int]


def _print(value: Any) -> None:
    print(json.dumps(value, indent=None))


def _read_file(path: str, field: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise InputError(f"{field}: cannot read {path}: {error.strerror}") from None


# Keys are generated unless one comes from the option, its file, or the environment variable.
PRIMARY_KEY = SecretOption("--primary-key", "IOTCPROV_GROUP_KEY", "primary group key")
SECONDARY_KEY = SecretOption("--secondary-key", "IOTCPROV_GROUP_SECONDARY_KEY", "secondary group key")


def _optional_key(option: SecretOption, args: argparse.Namespace) -> str | None:
    return option.resolve_key(args) if option.given(args) else None


def _without_given_keys(result: dict, given: dict[str, str | None]) -> dict:
    """The emulator's answer with each key the user gave replaced by its fingerprint: print only
    the keys the emulator generated (the user has theirs already; a terminal or log need not)."""
    result = dict(result)
    for name, key in given.items():
        if key is not None and name in result:
            del result[name]
            result[name + "_fingerprint"] = sas_fingerprint(key)
    return result


def _json_arg(text: str | None, field: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise InputError(f"{field}: not valid JSON; quote it, e.g. '{{\"interval\": 5}}'") from None


def _client(args: argparse.Namespace) -> AdminClient:
    from iotcprov.emulator.client import AdminClient

    if not getattr(args, "data", None):
        raise InputError("--data: give the emulator's data folder (as passed to `emulator start`)")
    return AdminClient.for_data_dir(args.data)


def _add(commands: argparse._SubParsersAction, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    return _data_option(commands.add_parser(name, **kwargs))


def _data_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    # --data is accepted before or after the command words; SUPPRESS keeps an earlier value
    parser.add_argument("--data", metavar="DIR", default=argparse.SUPPRESS, help="the emulator's data folder")
    return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("emulator", help="local DPS + IoT Hub emulator (start, enroll, inspect)")
    parser.add_argument("--data", metavar="DIR", help="the emulator's data folder")
    commands = parser.add_subparsers(dest="emulator_command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, func: Handler | None) -> argparse.ArgumentParser:
        sub = _add(commands, name, help=help_text)
        sub.set_defaults(func=func)
        return sub

    start = command("start", "run the emulator until SIGINT/SIGTERM (prints one JSON line first)", _start)
    start.add_argument(
        "--dps", default="localhost:0", metavar="HOST:PORT", help="DPS endpoint (default localhost:0)"
    )
    start.add_argument(
        "--hub", default="localhost:0", metavar="HOST:PORT", help="hub endpoint (default localhost:0)"
    )
    start.add_argument("--admin", default="127.0.0.1:0", metavar="HOST:PORT", help="admin HTTP API endpoint")
    start.add_argument(
        "--central",
        default="localhost:0",
        metavar="HOST:PORT",
        help="HTTPS endpoint of the IoT Central API (default localhost:0)",
    )
    start.add_argument(
        "--no-auto-approve",
        action="store_true",
        help="IoT Central's automatic approval off: a device not created through the API first waits "
        "for approval (PATCH /api/devices/ID {\"enabled\": true}, or `iotcprov central devices approve`)",
    )
    start.add_argument("--hub-name", default="localhost", help="host name DPS assigns devices to")
    start.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="extra DNS name or IP address for the server certificate (repeatable)",
    )
    start.add_argument(
        "--retry-after", type=int, default=1, help="seconds the DPS 'assigning' answers ask for"
    )
    start.add_argument("--polls", type=int, default=0, help="'assigning' answers to polls before the result")
    start.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="also stop when standard input closes (used by Emulator.running)",
    )
    start.add_argument(
        "--dps-rate",
        type=int,
        default=None,
        metavar="PER_MINUTE",
        help="answer 429 above this many registrations per minute",
    )
    start.add_argument(
        "--max-handshakes",
        type=int,
        default=None,
        metavar="N",
        help="TLS handshakes in progress at once; further connections are closed (default 1000)",
    )
    start.add_argument(
        "--no-dashboard",
        dest="dashboard",
        action="store_false",
        help="serve no web dashboard (default: at dashboard_url, operator mode with dashboard_token)",
    )

    group = command("group", "enrollment groups", None)
    group_commands = group.add_subparsers(dest="group_command", metavar="ACTION", required=True)
    create = _add(group_commands, "create", help="create a SAS or X.509 enrollment group")
    create.add_argument("--name", required=True, help="enrollment group name")
    kind = create.add_mutually_exclusive_group(required=True)
    kind.add_argument("--sas", action="store_true", help="symmetric-key group (keys generated unless given)")
    kind.add_argument("--x509", action="store_true", help="X.509 group holding --ca-cert")
    create.add_argument("--ca-cert", metavar="FILE", help="root or intermediate CA certificate (PEM)")
    PRIMARY_KEY.add_to(create)
    SECONDARY_KEY.add_to(create)
    create.set_defaults(func=_group_create)
    verify = _add(group_commands, "verify", help="proof of possession: upload the signed verification cert")
    verify.add_argument("--name", required=True, help="enrollment group name")
    verify.add_argument(
        "--cert", required=True, metavar="FILE", help="the signed verification certificate (PEM)"
    )
    verify.set_defaults(func=_group_verify)
    for action in ("enable", "disable"):
        toggle = _add(group_commands, action, help=f"{action} an enrollment group")
        toggle.add_argument("--name", required=True, help="enrollment group name")
        toggle.set_defaults(func=_group_toggle, enabled=action == "enable")
    _add(group_commands, "list", help="list enrollment groups (no keys)").set_defaults(func=_group_list)

    enroll = command("enroll", "individual enrollment (SAS keys or an X.509 certificate)", _enroll)
    enroll.add_argument("--device-id", required=True, help="device (registration) ID")
    how = enroll.add_mutually_exclusive_group(required=True)
    how.add_argument("--sas", action="store_true", help="symmetric key (generated unless --key given)")
    how.add_argument("--cert", metavar="FILE", help="the device's certificate (CN = device ID)")
    DEVICE_KEY.add_to(enroll)
    for action in ("enable", "disable"):
        toggle = command(f"enrollment-{action}", f"{action} an individual enrollment", _enrollment_toggle)
        toggle.add_argument("--device-id", required=True, help="device ID")
        toggle.set_defaults(enabled=action == "enable")

    command("devices", "all registered devices as JSON", _devices)
    device = command("device", "one device: assignment, connection, model ID, twin", _device)
    device.add_argument("--device-id", required=True, help="device ID")

    telemetry = command("telemetry", "a device's last telemetry messages", _telemetry)
    telemetry.add_argument("--device-id", required=True, help="device ID")
    telemetry.add_argument("--wait", type=float, metavar="N", help="wait up to N seconds for at least one")

    desired = command("desired", "patch desired properties (pushed to a connected device)", _desired)
    desired.add_argument("--device-id", required=True, help="device ID")
    desired.add_argument("--patch", required=True, metavar="JSON", help="desired patch, a JSON object")

    invoke = command("invoke", "call a direct method (IoT Central command)", _invoke)
    invoke.add_argument("--device-id", required=True, help="device ID")
    invoke.add_argument("--command", required=True, dest="method_name", help="command (direct method) name")
    invoke.add_argument(
        "--payload", metavar="JSON", help="the command's request payload, JSON (default: none)"
    )
    invoke.add_argument(
        "--timeout", type=float, default=30, metavar="S", help="seconds to wait for the answer (default: 30)"
    )

    c2d = command("c2d", "send a cloud-to-device message", _c2d)
    c2d.add_argument("--device-id", required=True, help="device ID")
    c2d.add_argument("--body", required=True, help="the message body (text)")
    c2d.add_argument(
        "--property", action="append", default=[], metavar="K=V", help="an application property (repeatable)"
    )

    events = command("events", "the event log (refusals with reasons, connections, registrations)", _events)
    events.add_argument("--kind", help="only events of this kind, e.g. 'connect refused'")
    events.add_argument("--device-id", help="only for this device")
    events.add_argument("--after", type=int, metavar="ID", help="only events after this event ID")
    command("stats", "counters: TLS handshakes, registrations, connections, telemetry", _stats)

    token = command("token", "IoT Central API tokens for the emulated application", None)
    token_commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    token_create = _add(token_commands, "create", help="issue an API token (printed this once)")
    token_create.add_argument("--id", default="iotcprov", help="the token's ID (default: iotcprov)")
    token_create.add_argument(
        "--role", choices=["administrator", "builder", "operator"], default="administrator", help="its role"
    )
    token_create.add_argument("--days", type=float, default=365, help="days it stays valid (default: 365)")
    token_create.add_argument(
        "--out", metavar="FILE", help="write the token to FILE (mode 0600) instead of printing it"
    )
    token_create.set_defaults(func=_token_create)
    settings = command("settings", "application settings: automatic approval of new devices", _settings)
    settings.add_argument("--auto-approve", choices=["on", "off"], help="turn automatic approval on or off")

    fault = command("fault", "inject faults (see docs/emulator.md)", None)
    fault_commands = fault.add_subparsers(dest="fault_command", metavar="KIND", required=True)

    def fault_command(name: str, help_text: str, endpoint: bool = True) -> argparse.ArgumentParser:
        sub = _add(fault_commands, name, help=help_text)
        if endpoint:
            sub.add_argument(
                "--endpoint", choices=["dps", "hub"], required=True, help="which service misbehaves"
            )
        sub.add_argument("--device-id", help="only for this device")
        sub.set_defaults(func=_fault, fault_kind=name)
        return sub

    sub = fault_command("dps-status", "next N DPS answers carry this status", endpoint=False)
    sub.add_argument("--status", type=int, required=True, help="HTTP-style status, e.g. 429 or 503")
    sub.add_argument(
        "--retry-after",
        type=int,
        default=1,
        metavar="S",
        help="the retry-after it carries, seconds (default: 1)",
    )
    sub.add_argument("--count", type=int, default=1, help="how many times (default: 1)")
    sub = fault_command("drop", "close the next N connections after some packets")
    sub.add_argument(
        "--after-packets", type=int, required=True, metavar="N", help="packets received before the drop"
    )
    sub.add_argument("--count", type=int, default=1, help="how many times (default: 1)")
    sub = fault_command("refuse-connect", "answer the next N CONNECTs with a return code")
    sub.add_argument(
        "--return-code", type=int, default=5, help="CONNACK return code (default: 5, not authorized)"
    )
    sub.add_argument("--count", type=int, default=1, help="how many times (default: 1)")
    sub = fault_command("delay", "delay answers by some seconds")
    sub.add_argument("--seconds", type=float, required=True, help="delay, seconds")
    sub.add_argument("--count", type=int, help="this many answers (default: until cleared)")
    sub = fault_command(
        "session-limit", "hub sessions end at min(token expiry, connect + N s)", endpoint=False
    )
    sub.add_argument("--seconds", type=float, required=True, metavar="N", help="session length, seconds")
    sub = fault_command("outage", "drop hub connections and refuse reconnects for S seconds", endpoint=False)
    sub.add_argument("--seconds", type=float, required=True, metavar="S", help="outage length, seconds")
    sub = fault_command("dps-rate", "answer 429 above N registrations per minute", endpoint=False)
    sub.add_argument(
        "--per-minute", type=int, required=True, metavar="N", help="registrations allowed per minute"
    )
    _add(fault_commands, "list", help="active faults").set_defaults(func=_fault_list)
    clear = _add(fault_commands, "clear", help="remove all faults (or one by --id)")
    clear.add_argument("--id", type=int, help="the fault's ID, as `fault list` shows")
    clear.set_defaults(func=_fault_clear)


# ---------------------------------------------------------------- handlers


def _start(args: argparse.Namespace) -> int:
    from iotcprov.emulator.runner import serve

    if not getattr(args, "data", None):
        raise InputError("--data: give a folder for the emulator's state, e.g. --data ./emulator-data")
    serve(
        Path(args.data),
        args.dps,
        args.hub,
        args.admin,
        args.hub_name,
        args.san,
        args.retry_after,
        args.polls,
        args.dps_rate,
        args.max_handshakes,
        stop_on_stdin_eof=args.stop_on_stdin_eof,
        central=args.central,
        dashboard=args.dashboard,
        auto_approve=not args.no_auto_approve,
    )
    return 0


def _group_create(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.sas:
        if args.ca_cert:
            raise InputError("--ca-cert: only with --x509")
        given = {
            "primary_key": _optional_key(PRIMARY_KEY, args),
            "secondary_key": _optional_key(SECONDARY_KEY, args),
        }
        created = client.create_sas_group(args.name, given["primary_key"], given["secondary_key"])
        _print(_without_given_keys(created, given))
    else:
        if not args.ca_cert:
            raise InputError("--ca-cert: an X.509 group needs its CA certificate (PEM file)")
        _print(client.create_x509_group(args.name, _read_file(args.ca_cert, "--ca-cert")))
    return 0


def _group_verify(args: argparse.Namespace) -> int:
    _print(_client(args).verify_group(args.name, _read_file(args.cert, "--cert")))
    return 0


def _group_toggle(args: argparse.Namespace) -> int:
    _print(_client(args).set_group_enabled(args.name, args.enabled))
    return 0


def _group_list(args: argparse.Namespace) -> int:
    _print(_client(args).groups())
    return 0


def _enroll(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.sas:
        key = _optional_key(DEVICE_KEY, args)
        _print(_without_given_keys(client.enroll_sas(args.device_id, key), {"primary_key": key}))
    else:
        if DEVICE_KEY.on_command_line(args):
            raise InputError("--key: only with --sas")
        _print(client.enroll_x509(args.device_id, _read_file(args.cert, "--cert")))
    return 0


def _enrollment_toggle(args: argparse.Namespace) -> int:
    _print(_client(args).set_enrollment_enabled(args.device_id, args.enabled))
    return 0


def _devices(args: argparse.Namespace) -> int:
    _print(_client(args).devices())
    return 0


def _device(args: argparse.Namespace) -> int:
    _print(_client(args).device(args.device_id))
    return 0


def _telemetry(args: argparse.Namespace) -> int:
    _print(_client(args).telemetry(args.device_id, wait=args.wait))
    return 0


def _desired(args: argparse.Namespace) -> int:
    patch = _json_arg(args.patch, "--patch")
    if not isinstance(patch, dict):
        raise InputError("--patch: give a JSON object, e.g. '{\"interval\": 5}'")
    _print(_client(args).set_desired(args.device_id, patch))
    return 0


def _invoke(args: argparse.Namespace) -> int:
    result = _client(args).invoke(
        args.device_id, args.method_name, _json_arg(args.payload, "--payload"), args.timeout
    )
    _print(result)
    return 0 if 200 <= int(result.get("status", 500)) < 300 else 1


def _c2d(args: argparse.Namespace) -> int:
    properties = {}
    for item in args.property:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--property: {item!r} is not K=V")
        properties[key] = value
    _print(_client(args).send_c2d(args.device_id, args.body, properties))
    return 0


def _events(args: argparse.Namespace) -> int:
    _print(_client(args).events(args.after, args.kind, args.device_id))
    return 0


def _stats(args: argparse.Namespace) -> int:
    _print(_client(args).stats())
    return 0


def _token_create(args: argparse.Namespace) -> int:
    from iotcprov.outputs import OutputFile, write_outputs

    issued = _client(args).create_api_token(args.id, args.role, args.days)
    if args.out:
        write_outputs([OutputFile(Path(args.out), issued["token"].encode(), secret=True)], force=True)
        _print({**{k: v for k, v in issued.items() if k != "token"}, "file": args.out})
    else:
        _print(issued)
    return 0


def _settings(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.auto_approve is not None:
        _print(client.set_auto_approve(args.auto_approve == "on"))
    else:
        _print(client.settings())
    return 0


def _fault(args: argparse.Namespace) -> int:
    from iotcprov.emulator.faults import PARAMETERS

    fields = {name: getattr(args, name, None) for name in (*PARAMETERS, "count")}
    _print(
        _client(args).fault(
            args.fault_kind, endpoint=getattr(args, "endpoint", None), device=args.device_id, **fields
        )
    )
    return 0


def _fault_list(args: argparse.Namespace) -> int:
    _print(_client(args).faults())
    return 0


def _fault_clear(args: argparse.Namespace) -> int:
    _print(_client(args).clear_faults(args.id))
    return 0
