"""`iotcprov certs ...`: a test PKI for IoT Central X.509 enrollments (parsing and printing only)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from iotcprov.credentials import pki, pki_files
from iotcprov.secret_input import CA_PASSPHRASE_ENV as ENV
from iotcprov.secret_input import ca_passphrase, new_ca_passphrase


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "certs",
        help="make a test X.509 PKI: root, intermediate, verification, device and self-signed certificates",
        description="A test PKI for IoT Central X.509 enrollments. For testing only: see docs/certs.md.",
    )
    commands = parser.add_subparsers(dest="certs_command", metavar="COMMAND", required=True)

    root = commands.add_parser("root", help="a new root CA: DIR/root.pem, DIR/root.key.pem")
    _out_dir(root)
    root.add_argument("--name", default=pki_files.DEFAULT_ROOT_NAME, help="subject CN (default: %(default)s)")
    _key_options(root, f"validity in days (default {pki.ROOT_DAYS})")
    _new_ca_key_options(root)
    root.set_defaults(func=run_root)

    inter = commands.add_parser(
        "intermediate", help="an intermediate CA: DIR/intermediate.pem, .key.pem, DIR/chain.pem"
    )
    _ca_options(inter)
    _out_dir(inter)
    inter.add_argument(
        "--name", default=pki_files.DEFAULT_INTERMEDIATE_NAME, help="subject CN (default: %(default)s)"
    )
    _key_options(inter, f"validity in days (default {pki.INTERMEDIATE_DAYS})")
    _new_ca_key_options(inter)
    inter.set_defaults(func=run_intermediate)

    verification = commands.add_parser(
        "verification", help="proof of possession: a certificate with CN = the code IoT Central shows"
    )
    _ca_options(verification)
    verification.add_argument("--code", required=True, help="the verification code from IoT Central")
    verification.add_argument(
        "--out", required=True, type=Path, metavar="FILE", help="certificate to write (PEM)"
    )
    verification.add_argument("--force", action="store_true", help="replace an existing file")
    verification.set_defaults(func=run_verification)

    device = commands.add_parser(
        "device", help="device leaves (CN = device ID): ID.pem, ID.key.pem, ID.chain.pem, ID.der, ID.key.der"
    )
    _ca_options(device)
    _device_ids(device)
    _out_dir(device)
    _key_options(device, f"validity in days (default {pki.LEAF_DAYS})")
    device.set_defaults(func=run_device)

    own = commands.add_parser(
        "self-signed", help="self-signed device certificates for individual enrollments (same file names)"
    )
    _device_ids(own)
    _out_dir(own)
    _key_options(own, f"validity in days (default {pki.LEAF_DAYS})")
    own.set_defaults(func=run_self_signed)

    show = commands.add_parser("show", help="subject, issuer, validity and thumbprints of a certificate file")
    show.add_argument("file", type=Path, metavar="FILE", help="a PEM (may hold a chain) or DER certificate")
    show.add_argument("--json", action="store_true", help="print one JSON document")
    show.set_defaults(func=run_show)


# ---------------------------------------------------------------- option groups


def _out_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="output folder (created if missing)"
    )
    parser.add_argument("--force", action="store_true", help="replace existing files")


def _key_options(parser: argparse.ArgumentParser, days_help: str) -> None:
    parser.add_argument("--key-type", choices=pki.KEY_TYPES, default="ec", help="default: ec (P-256)")
    parser.add_argument("--days", type=int, help=days_help)


def _new_ca_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-encrypt",
        action="store_true",
        help=f"write the CA key unencrypted (otherwise the passphrase comes from {ENV} or a prompt)",
    )


def _ca_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ca-cert", required=True, type=Path, metavar="FILE", help="issuing CA certificate")
    parser.add_argument(
        "--ca-key",
        required=True,
        type=Path,
        metavar="FILE",
        help=f"its private key (passphrase: {ENV} or prompt)",
    )


def _device_ids(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--device-id", action="append", metavar="ID", help="a device ID, the certificate's CN (may repeat)"
    )
    group.add_argument(
        "--device-ids",
        type=Path,
        metavar="FILE",
        help="a file: one device ID per line, or CSV with a device_id column",
    )


# ---------------------------------------------------------------- passphrases


def _new_passphrase(args: argparse.Namespace, key_file: Path) -> Callable[[], bytes] | None:
    return None if args.no_encrypt else new_ca_passphrase(key_file, pki_files.check_new_passphrase)


# ---------------------------------------------------------------- handlers


def _device_id_list(args: argparse.Namespace) -> list[str]:
    return pki_files.read_device_ids(args.device_ids) if args.device_ids else args.device_id


def _print_result(title: str, result: pki_files.IssueResult) -> None:
    secret = set(result.secret_files)
    for issued in result.issued:
        cert = issued.cert
        print(
            f"{title} {pki.common_name(cert)!r}: {pki.key_type_name(cert.public_key())}, "
            f"valid until {cert.not_valid_after_utc:%Y-%m-%d}, issuer {pki.issuer_common_name(cert)!r}"
        )
        print(f"  SHA-1   {pki.thumbprint_sha1(cert)}")
        print(f"  SHA-256 {pki.thumbprint_sha256(cert)}")
        for path in issued.files:
            note = ""
            if path in secret:
                note = "  private key, mode 0600" + (", encrypted" if result.key_encrypted else "")
            print(f"  {path}{note}")


def _print_notice(extra: str = "") -> None:
    if extra:
        print(extra)
    print(f"Note: {pki_files.TEST_NOTICE}")


def _warn_unencrypted(args: argparse.Namespace, key_file: Path) -> None:
    if args.no_encrypt:
        print(
            f"iotcprov: warning: {key_file} is NOT encrypted (--no-encrypt): anyone who can read it can "
            "issue certificates your enrollment group trusts",
            file=sys.stderr,
        )


def run_root(args: argparse.Namespace) -> int:
    key_file = args.out / "root.key.pem"
    result = pki_files.create_root(
        args.out, name=args.name, key_type=args.key_type, days=args.days,
        key_passphrase=_new_passphrase(args, key_file), force=args.force,
    )  # fmt: skip
    _print_result("Root CA", result)
    _warn_unencrypted(args, key_file)
    _print_notice(
        "Next: upload root.pem to an IoT Central X.509 enrollment group, then prove possession with "
        "`iotcprov certs verification --code CODE ...`."
    )
    return 0


def run_intermediate(args: argparse.Namespace) -> int:
    key_file = args.out / "intermediate.key.pem"
    result = pki_files.create_intermediate(
        args.out, ca_cert=args.ca_cert, ca_key=args.ca_key, ca_passphrase=ca_passphrase(args.ca_key),
        name=args.name, key_type=args.key_type, days=args.days,
        key_passphrase=_new_passphrase(args, key_file), force=args.force,
    )  # fmt: skip
    _print_result("Intermediate CA", result)
    _warn_unencrypted(args, key_file)
    _print_notice("Issue devices with --ca-cert chain.pem so that their ID.chain.pem includes it.")
    return 0


def run_verification(args: argparse.Namespace) -> int:
    result = pki_files.create_verification(
        args.out, ca_cert=args.ca_cert, ca_key=args.ca_key, code=args.code,
        ca_passphrase=ca_passphrase(args.ca_key), force=args.force,
    )  # fmt: skip
    _print_result("Verification certificate", result)
    _print_notice(f"Upload {args.out} in IoT Central's verification dialog to mark the CA verified.")
    return 0


def run_device(args: argparse.Namespace) -> int:
    result = pki_files.create_device_certs(
        args.out, ca_cert=args.ca_cert, ca_key=args.ca_key, device_ids=_device_id_list(args),
        ca_passphrase=ca_passphrase(args.ca_key), key_type=args.key_type, days=args.days,
        force=args.force,
    )  # fmt: skip
    _print_result("Device certificate", result)
    _print_notice(f"{len(result.issued)} device certificate(s); device keys are unencrypted for the board.")
    return 0


def run_self_signed(args: argparse.Namespace) -> int:
    result = pki_files.create_self_signed(
        args.out, device_ids=_device_id_list(args), key_type=args.key_type, days=args.days, force=args.force
    )
    _print_result("Self-signed device certificate", result)
    _print_notice("For an individual enrollment, upload ID.pem as its primary certificate.")
    return 0


def run_show(args: argparse.Namespace) -> int:
    infos = pki_files.show(args.file)
    if args.json:
        print(
            json.dumps({"file": str(args.file), "certificates": [info.as_dict() for info in infos]}, indent=2)
        )
        return 0
    for number, info in enumerate(infos):
        if len(infos) > 1:
            print(f"[{number}]")
        rows = [
            ("subject", info.subject), ("issuer", info.issuer), ("serial", info.serial),
            ("not before", info.not_before), ("not after", info.not_after), ("key type", info.key_type),
            ("signature", info.signature_hash), ("SHA-1", info.thumbprint_sha1),
            ("SHA-256", info.thumbprint_sha256),
            ("CA", "yes" if info.is_ca else "no"), ("self-signed", "yes" if info.self_signed else "no"),
        ]  # fmt: skip
        for label, value in rows:
            print(f"  {label + ':':<13}{value}")
    return 0
