"""The enrollment an IoT Central user would set up, made in the emulator, and the per-device
credential that goes to the board.

SAS: an enrollment group with generated keys; the device key is derived from the group key on the
host (as `az iot central device compute-device-key` does) and only the derived key continues.
X.509: a test CA, an enrollment group holding it, proof of possession with the verification code,
and a device leaf issued under the CA; the leaf and its key are written as files (key 0600) and
read back exactly as `iotcprov provision --cert --key` reads them. The CA key never leaves memory.
"""

from dataclasses import dataclass
from pathlib import Path

from iotcprov.board import credential_input
from iotcprov.board.identity import SasCredential, X509Credential
from iotcprov.credentials import pki
from iotcprov.errors import OperationError
from iotcprov.outputs import OutputFile, write_outputs

SAS_GROUP = "demo-sas-devices"
X509_GROUP = "demo-x509-devices"
CENTRAL_SAS_GROUP = "SAS-IoT-Devices"  # the application's default SAS group
CA_NAME = "iotcprov demo CA (test only)"


@dataclass(frozen=True)
class Enrollment:
    group: str
    attestation: str  # "sas" or "x509"
    credential: SasCredential | X509Credential  # what the board receives
    ca_thumbprint: str | None = None  # X.509: the group's CA (SHA-256), as IoT Central shows it
    files: tuple[Path, ...] = ()  # X.509: the certificate files written for provisioning

    def __repr__(self) -> str:
        return f"Enrollment(group={self.group!r}, attestation={self.attestation!r})"


def sas_group(admin, device_id: str) -> Enrollment:
    """A SAS enrollment group; the device key derived from its primary key on the host."""
    created = admin.create_sas_group(SAS_GROUP)
    credential = credential_input.sas_from_group_key(created["primary_key"], device_id)
    return Enrollment(SAS_GROUP, "sas", credential)


def x509_group(admin, device_id: str, folder: Path, on_progress=lambda text, **data: None) -> Enrollment:
    """A verified X.509 enrollment group and a device leaf under its CA, written into `folder`."""
    ca_key = pki.generate_key("ec")
    ca = pki.make_root_ca(CA_NAME, ca_key)
    thumbprint = pki.thumbprint_sha256(ca)
    created = admin.create_x509_group(X509_GROUP, pki.cert_to_pem(ca).decode())
    on_progress(
        f"X.509 enrollment group '{X509_GROUP}' created with a new test CA; verification code issued",
        group=X509_GROUP, ca_thumbprint=thumbprint,
    )  # fmt: skip
    proof = pki.make_verification_cert(created["verification_code"], ca, ca_key)
    verified = admin.verify_group(X509_GROUP, pki.cert_to_pem(proof).decode())
    if not verified.get("verified"):
        raise OperationError(f"the emulator did not verify the CA of group {X509_GROUP!r}")
    on_progress("proof of possession accepted: the group's CA is verified", group=X509_GROUP)
    return _device_leaf(ca, ca_key, device_id, folder, on_progress)


def _device_leaf(ca, ca_key, device_id: str, folder: Path, on_progress) -> Enrollment:
    """A device leaf under `ca`, written into `folder` and read back as provisioning reads it."""
    thumbprint = pki.thumbprint_sha256(ca)
    leaf_key = pki.generate_key("ec")
    leaf = pki.make_device_cert(device_id, leaf_key, ca, ca_key, days=30)
    cert_path, key_path = folder / f"{device_id}.pem", folder / f"{device_id}.key.pem"
    write_outputs(
        [
            OutputFile(folder / "ca.pem", pki.cert_to_pem(ca)),
            OutputFile(cert_path, pki.cert_to_pem(leaf)),
            OutputFile(key_path, pki.key_to_pem(leaf_key), secret=True),
        ],
        force=False,
        field="--keep",
    )
    credential = credential_input.x509_from_files(cert_path, key_path, passphrase="")  # not encrypted
    on_progress(
        f"device certificate issued: CN={device_id}, thumbprint {pki.thumbprint_sha256(leaf)[:16]}...",
        device_id=device_id, thumbprint=pki.thumbprint_sha256(leaf),
    )  # fmt: skip
    return Enrollment(X509_GROUP, "x509", credential, thumbprint, (folder / "ca.pem", cert_path, key_path))


# --- the same through IoT Central's REST API (demo --central) ---------------------------------------


def central_sas(client, device_id: str, on_progress=lambda text, **data: None) -> Enrollment:
    """The device created in the application; its own keys from its credentials (no group key on
    the host at all)."""
    from iotcprov.central import service

    service.create_device(client, device_id)
    on_progress(f"PUT /api/devices/{device_id}: device created in the application", device_id=device_id)
    found = service.credentials(client, device_id)
    on_progress("GET .../credentials: the ID scope and the device's own keys", device_id=device_id)
    return Enrollment(CENTRAL_SAS_GROUP, "sas", SasCredential(found["symmetricKey"]["primaryKey"]))


def central_x509(client, device_id: str, folder: Path, on_progress=lambda text, **data: None) -> Enrollment:
    """An X.509 enrollment group made through the API, its CA verified by proof of possession
    (generateVerificationCode, a certificate for the code, verify), the device created, and a leaf."""
    from iotcprov.central import service
    from iotcprov.credentials.pki_files import Issuer

    ca_key = pki.generate_key("ec")
    ca = pki.make_root_ca(CA_NAME, ca_key)
    service.create_group(client, X509_GROUP, None, True, ca)
    on_progress(
        f"PUT /api/enrollmentGroups/{X509_GROUP} and its certificate: X.509 group with a new test CA",
        group=X509_GROUP, ca_thumbprint=pki.thumbprint_sha256(ca),
    )  # fmt: skip
    verified = service.verify_group(client, X509_GROUP, Issuer(ca, [], ca_key))
    if not verified.verified:
        raise OperationError(f"the application did not verify the CA of group {X509_GROUP!r}")
    on_progress("generateVerificationCode, verify: the group's CA is verified", group=X509_GROUP)
    service.create_device(client, device_id)
    on_progress(f"PUT /api/devices/{device_id}: device created in the application", device_id=device_id)
    return _device_leaf(ca, ca_key, device_id, folder, on_progress)
