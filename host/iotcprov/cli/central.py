"""`iotcprov central ...`: IoT Central's REST API (devices, enrollment groups, templates, status).

Parsing and printing only; the work is in iotcprov.central. Keys the service returns are printed
only when asked for by name (`--show-key primary`), otherwise as fingerprints.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from iotcprov.board.identity import sas_fingerprint
from iotcprov.central import service
from iotcprov.central.auth import TOKEN_ENV, resolve_auth
from iotcprov.central.client import APP_ENV, App, CentralClient
from iotcprov.credentials import pki_files
from iotcprov.errors import InputError
from iotcprov.secret_input import SecretOption, ca_passphrase

PRIMARY_KEY = SecretOption("--primary-key", "IOTCPROV_CENTRAL_PRIMARY_KEY", "device's primary key")
SECONDARY_KEY = SecretOption("--secondary-key", "IOTCPROV_CENTRAL_SECONDARY_KEY", "device's secondary key")
KEY_NAMES = {"primary": "primaryKey", "secondary": "secondaryKey"}


def add_app_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """--app / --app-url, --token-file / --entra, --trust (with `prefix`, e.g. "central-")."""
    group = parser.add_argument_group("IoT Central application")
    group.add_argument(
        f"--{prefix}app", dest="central_app", metavar="SUBDOMAIN",
        help=f"the application's subdomain, as in https://SUBDOMAIN.azureiotcentral.com (or {APP_ENV})",
    )  # fmt: skip
    group.add_argument(
        f"--{prefix}app-url", dest="central_app_url", metavar="URL",
        help="the application's URL instead, e.g. the emulator's central_url",
    )  # fmt: skip
    group.add_argument(
        f"--{prefix}token-file", dest="central_token_file", metavar="FILE",
        help=f"a file holding an API token (or set {TOKEN_ENV}; never on the command line)",
    )  # fmt: skip
    group.add_argument(
        f"--{prefix}entra", dest="central_entra", action="store_true",
        help="authenticate with Microsoft Entra ID (az login, service principal, managed identity; "
        "needs pip install 'iotcprov[entra]')",
    )  # fmt: skip
    if not prefix:
        group.add_argument(
            "--trust", dest="central_trust", metavar="FILE", type=Path,
            help="a CA certificate to trust for the application's HTTPS (the emulator's ca_cert)",
        )  # fmt: skip


def app_from(args: argparse.Namespace, field_prefix: str = "--", trust: Path | None = None) -> App:
    app, url = getattr(args, "central_app", None), getattr(args, "central_app_url", None)
    trust = trust or getattr(args, "central_trust", None)
    if app and url:
        raise InputError(f"{field_prefix}app: give {field_prefix}app or {field_prefix}app-url, not both")
    if url:
        return App.parse(url, f"{field_prefix}app-url", trust)
    if app:
        return App.parse(app, f"{field_prefix}app", trust)
    if os.environ.get(APP_ENV):
        return App.parse(os.environ[APP_ENV], APP_ENV, trust)
    raise InputError(
        f"{field_prefix}app: which IoT Central application? give {field_prefix}app SUBDOMAIN, "
        f"{field_prefix}app-url URL, or set {APP_ENV}"
    )


def client_from(
    args: argparse.Namespace, field_prefix: str = "--", trust: Path | None = None
) -> CentralClient:
    app = app_from(args, field_prefix, trust)
    auth = resolve_auth(
        getattr(args, "central_token_file", None),
        bool(getattr(args, "central_entra", False)),
        field_name=f"{field_prefix}token-file",
    )
    return CentralClient(app, auth)


# ---------------------------------------------------------------- registration


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "central", help="IoT Central's REST API: devices, enrollment groups, templates, status"
    )
    groups = parser.add_subparsers(dest="central_command", metavar="COMMAND", required=True)

    def command(
        commands: argparse._SubParsersAction, name: str, help_text: str, func: Any
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        add_app_options(sub)
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(func=func)
        return sub

    devices = groups.add_parser("devices", help="devices: list, show, create, delete, credentials, enroll")
    device_commands = devices.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    command(device_commands, "list", "every device in the application", run_devices_list)
    sub = command(device_commands, "show", "one device", run_devices_show)
    sub.add_argument("--device-id", required=True, metavar="ID", help="the device ID")
    sub = command(
        device_commands, "create", "create a device (approved; real, never simulated)", run_devices_create
    )
    sub.add_argument("--device-id", required=True, metavar="ID", help="the device ID")
    sub.add_argument("--name", metavar="TEXT", help="display name (default: the device ID)")
    sub.add_argument("--template", metavar="DTMI", help="the device template's ID (default: assigned later)")
    sub = command(
        device_commands,
        "approve",
        "approve a device waiting for approval (enabled: true)",
        run_devices_approve,
    )
    sub.add_argument("--device-id", required=True, metavar="ID", help="the device ID")
    sub = command(device_commands, "delete", "delete a device", run_devices_delete)
    sub.add_argument("--device-id", required=True, metavar="ID", help="the device ID")
    sub = command(
        device_commands,
        "credentials",
        "the ID scope and the device's keys (fingerprints unless --show-key)",
        run_devices_credentials,
    )
    sub.add_argument("--device-id", required=True, metavar="ID", help="the device ID")
    sub.add_argument(
        "--show-key", choices=list(KEY_NAMES), metavar="primary|secondary",
        help="print this key itself (only the key, or with --json the whole answer)",
    )  # fmt: skip
    sub = command(
        device_commands,
        "enroll",
        "individual enrollment: the device's own keys or certificate",
        run_devices_enroll,
    )
    sub.add_argument("--device-id", required=True, metavar="ID", help="the device ID")
    how = sub.add_mutually_exclusive_group(required=True)
    how.add_argument("--sas", action="store_true", help="symmetric keys (generated unless given)")
    how.add_argument("--cert", metavar="FILE", help="the device's certificate (subject CN = the device ID)")
    how.add_argument(
        "--tpm", action="store_true", help="refused: an ESP32 has no TPM (docs/certs.md)"
    )
    PRIMARY_KEY.add_to(sub)
    SECONDARY_KEY.add_to(sub)

    group = groups.add_parser("groups", help="enrollment groups: list, show, create, verify")
    group_commands = group.add_subparsers(dest="groups_command", metavar="ACTION", required=True)
    command(group_commands, "list", "every enrollment group (keys as fingerprints)", run_groups_list)
    sub = command(group_commands, "show", "one enrollment group (keys as fingerprints)", run_groups_show)
    sub.add_argument("--group", required=True, metavar="ID", help="the group's ID")
    sub = command(group_commands, "create", "create a SAS or X.509 enrollment group", run_groups_create)
    sub.add_argument("--group", required=True, metavar="ID", help="the group's ID: letters, digits and '-'")
    sub.add_argument("--name", metavar="TEXT", help="display name (default: the ID)")
    kind = sub.add_mutually_exclusive_group(required=True)
    kind.add_argument("--sas", action="store_true", help="symmetric keys (IoT Central generates them)")
    kind.add_argument("--x509", action="store_true", help="X.509: devices with certificates from --ca-cert")
    sub.add_argument("--ca-cert", metavar="FILE", type=Path, help="X.509: the CA to upload (unverified)")
    sub = command(
        group_commands, "verify", "proof of possession of the group's CA, end to end", run_groups_verify
    )
    sub.add_argument("--group", required=True, metavar="ID", help="the group's ID")
    sub.add_argument("--ca-cert", required=True, type=Path, metavar="FILE", help="the group's CA certificate")
    sub.add_argument(
        "--ca-key", required=True, type=Path, metavar="FILE",
        help="its private key (encrypted: passphrase from IOTCPROV_CA_PASSPHRASE or asked)",
    )  # fmt: skip

    templates = groups.add_parser("templates", help="device templates: list")
    template_commands = templates.add_subparsers(dest="templates_command", metavar="ACTION", required=True)
    command(template_commands, "list", "the published device templates", run_templates_list)

    sub = command(groups, "status", "a device: provisioned, enabled or waiting, last telemetry", run_status)
    sub.add_argument("--device-id", required=True, metavar="ID", help="the device ID")
    sub.add_argument(
        "--telemetry", action="append", metavar="NAME",
        help="telemetry field to show (repeatable; default: those its template declares)",
    )  # fmt: skip


# ---------------------------------------------------------------- printing


def _print(args: argparse.Namespace, value: Any, text: str | None = None) -> None:
    print(json.dumps(value) if args.json or text is None else text)


def _hide_keys(document: Any) -> Any:
    """Each primaryKey/secondaryKey replaced by primaryKeyFingerprint (a keys-free view)."""
    if isinstance(document, list):
        return [_hide_keys(item) for item in document]
    if not isinstance(document, dict):
        return document
    shown: dict[str, Any] = {}
    for name, value in document.items():
        if name in ("primaryKey", "secondaryKey") and isinstance(value, str):
            shown[name + "Fingerprint"] = sas_fingerprint(value)
        else:
            shown[name] = _hide_keys(value)
    return shown


def _device_line(device: dict) -> str:
    return (
        f"{device.get('id')}\t{service.state_of(device)}\t{device.get('template') or 'unassigned'}"
        f"\t{device.get('displayName', '')}"
    )


def _group_line(group: dict) -> str:
    attestation = group.get("attestation") or {}
    line = (
        f"{group.get('id')}\t{attestation.get('type')}\t{'enabled' if group.get('enabled') else 'disabled'}"
    )
    primary = ((attestation.get("x509") or {}).get("signingCertificates") or {}).get("primary")
    if attestation.get("type") == "x509":
        if primary:
            state = "verified" if primary.get("verified") else "unverified"
            line += f"\tCA {primary.get('info', {}).get('sha1Thumbprint')} {state}"
        else:
            line += "\tno CA certificate yet"
    return line


# ---------------------------------------------------------------- handlers


def run_devices_list(args: argparse.Namespace) -> int:
    devices = service.list_devices(client_from(args))
    _print(args, devices, "\n".join(_device_line(d) for d in devices) or "no devices")
    return 0


def run_devices_show(args: argparse.Namespace) -> int:
    device = service.get_device(client_from(args), args.device_id)
    _print(args, device, _device_line(device))
    return 0


def run_devices_create(args: argparse.Namespace) -> int:
    device = service.create_device(client_from(args), args.device_id, args.name, args.template)
    _print(args, device, f"created: {_device_line(device)}")
    return 0


def run_devices_approve(args: argparse.Namespace) -> int:
    device = service.set_enabled(client_from(args), args.device_id, True)
    _print(args, device, f"approved: {_device_line(device)}")
    return 0


def run_devices_delete(args: argparse.Namespace) -> int:
    service.delete_device(client_from(args), args.device_id)
    _print(args, {"deleted": args.device_id}, f"deleted: {args.device_id}")
    return 0


def run_devices_credentials(args: argparse.Namespace) -> int:
    found = service.credentials(client_from(args), args.device_id)
    if args.show_key:
        key = (found.get("symmetricKey") or {}).get(KEY_NAMES[args.show_key])
        if not key:
            raise InputError(
                f"--show-key: device {args.device_id!r} has no symmetric keys (X.509 attestation)"
            )
        _print(args, found, key)
        return 0
    hidden = _hide_keys(found)
    lines = [f"ID scope: {found.get('idScope')}"]
    for name, value in (hidden.get("symmetricKey") or {}).items():
        lines.append(f"{name}: {value}")
    if "x509" in found:
        lines.append(f"x509: {json.dumps(found['x509'])}")
    _print(args, hidden, "\n".join(lines))
    return 0


def run_devices_enroll(args: argparse.Namespace) -> int:
    if args.tpm:
        raise InputError(
            "--tpm: not supported: an ESP32 has no TPM, and DPS takes TPM attestation over HTTP or AMQP "
            "only, while the firmware speaks MQTT (docs/certs.md); use --sas or --cert"
        )
    client = client_from(args)
    if args.sas:
        primary = PRIMARY_KEY.resolve_key(args) if PRIMARY_KEY.given(args) else None
        secondary = SECONDARY_KEY.resolve_key(args) if SECONDARY_KEY.given(args) else None
        answer = service.enroll_sas(client, args.device_id, primary, secondary)  # generates a missing key
    else:
        if PRIMARY_KEY.on_command_line(args) or SECONDARY_KEY.on_command_line(args):
            raise InputError("--primary-key: only with --sas")
        (cert, *_rest) = pki_files.load_certificate_file(Path(args.cert), "--cert")
        answer = service.enroll_x509(client, args.device_id, cert)
    hidden = _hide_keys(answer)
    _print(args, hidden, f"enrolled {args.device_id}: {json.dumps(hidden)}")
    return 0


def run_groups_list(args: argparse.Namespace) -> int:
    groups = _hide_keys(service.list_groups(client_from(args)))
    _print(args, groups, "\n".join(_group_line(g) for g in groups) or "no enrollment groups")
    return 0


def run_groups_show(args: argparse.Namespace) -> int:
    group = _hide_keys(service.get_group(client_from(args), args.group))
    _print(args, group, _group_line(group))
    return 0


def run_groups_create(args: argparse.Namespace) -> int:
    ca = None
    if args.ca_cert is not None:
        if not args.x509:
            raise InputError("--ca-cert: only with --x509")
        ca = pki_files.load_certificate_file(args.ca_cert, "--ca-cert")[0]
    group = _hide_keys(service.create_group(client_from(args), args.group, args.name, args.x509, ca))
    _print(args, group, f"created: {_group_line(group)}")
    return 0


def run_groups_verify(args: argparse.Namespace) -> int:
    issuer = pki_files.load_issuer(args.ca_cert, args.ca_key, ca_passphrase(args.ca_key))
    result = service.verify_group(client_from(args), args.group, issuer)
    state = "verified" if result.verified else "NOT verified"
    _print(args, result.as_dict(), f"{args.group}: CA {result.thumbprint} {state}")
    return 0 if result.verified else 1


def run_templates_list(args: argparse.Namespace) -> int:
    templates = service.list_templates(client_from(args))
    lines = [f"{t.get('@id')}\t{t.get('displayName', '')}" for t in templates]
    _print(args, templates, "\n".join(lines) or "no published device templates")
    return 0


def run_status(args: argparse.Namespace) -> int:
    report = service.status(client_from(args), args.device_id, args.telemetry)
    lines = [
        f"device: {report['device_id']}",
        f"status: {report['status']}",
        f"template: {report['template'] or 'unassigned'}",
    ]
    for name, last in report["telemetry"].items():
        lines.append(
            f"{name}: {json.dumps(last['value'])} at {last['timestamp']}" if last else f"{name}: no value yet"
        )
    _print(args, report, "\n".join(lines))
    return 0
