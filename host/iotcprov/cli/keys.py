"""`iotcprov keys`: derive device keys, generate keys, print SAS tokens."""

import argparse
import csv
import json
import sys

from iotcprov.credentials import keys
from iotcprov.errors import InputError
from iotcprov.secret_input import DEVICE_KEY, GROUP_KEY
from iotcprov.validation import read_device_ids


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="SAS device keys and tokens")
    commands = parser.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", required=True)

    derive = commands.add_parser(
        "derive", help="a device's key from its enrollment group key (as az iot central compute-device-key)"
    )
    GROUP_KEY.add_to(derive)
    derive.add_argument("--device-id", metavar="ID", help="print only this device's key")
    derive.add_argument(
        "--device-ids",
        metavar="FILE",
        help="one device ID per line, or a CSV with a device_id column; prints CSV device_id,device_key",
    )
    derive.add_argument("--json", action="store_true", help="print JSON")
    derive.set_defaults(func=run_derive)

    generate = commands.add_parser("generate", help="a fresh random key (OS CSPRNG), base64")
    generate.add_argument(
        "--bytes",
        type=int,
        default=keys.DEFAULT_KEY_BYTES,
        metavar="N",
        help=f"key size, 16..64 (default {keys.DEFAULT_KEY_BYTES})",
    )
    generate.add_argument("--json", action="store_true", help="print JSON")
    generate.set_defaults(func=run_generate)

    token = commands.add_parser("sas", help="a SAS token for DPS (--id-scope) or IoT Hub (--hub)")
    DEVICE_KEY.add_to(token)
    token.add_argument("--device-id", metavar="ID", required=True, help="the device (registration) ID")
    token.add_argument("--id-scope", metavar="SCOPE", help="DPS token for this ID scope (skn=registration)")
    token.add_argument("--hub", metavar="HOST", help="hub token for this IoT Hub host instead")
    token.add_argument("--ttl", type=int, metavar="SECONDS", help=f"lifetime (default {keys.DEFAULT_TTL})")
    token.add_argument("--expiry", type=int, metavar="UNIX", help="absolute expiry in Unix seconds")
    token.add_argument("--json", action="store_true", help="print JSON with token, resource and expiry")
    token.set_defaults(func=run_sas)


def run_derive(args: argparse.Namespace) -> int:
    if (args.device_id is None) == (args.device_ids is None):
        raise InputError("--device-id: give --device-id ID or --device-ids FILE (one of them)")
    group_key = GROUP_KEY.resolve_key(args)
    if args.device_id is not None:
        (derived,) = keys.derive_device_keys(group_key, [args.device_id])
        if args.json:
            print(json.dumps({"device_id": derived.device_id, "device_key": derived.device_key}))
        else:
            print(derived.device_key)
        return 0
    device_ids = read_device_ids(args.device_ids)
    derived_keys = keys.derive_device_keys(group_key, device_ids, device_id_field="--device-ids")
    if args.json:
        print(json.dumps([{"device_id": d.device_id, "device_key": d.device_key} for d in derived_keys]))
        return 0
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["device_id", "device_key"])
    writer.writerows([d.device_id, d.device_key] for d in derived_keys)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    key = keys.generate_key(args.bytes)
    print(json.dumps({"key": key, "bytes": args.bytes}) if args.json else key)
    return 0


def run_sas(args: argparse.Namespace) -> int:
    issued = keys.issue_token(
        DEVICE_KEY.resolve_key(args),
        args.device_id,
        id_scope=args.id_scope,
        hub_host=args.hub,
        ttl=args.ttl,
        expiry=args.expiry,
    )
    if args.json:
        print(json.dumps({"token": issued.token, "resource": issued.resource, "expiry": issued.expiry}))
    else:
        print(issued.token)
    return 0
