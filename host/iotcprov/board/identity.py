"""The identity a board receives, built as plain data: {file name: bytes} plus identity.json.

Pure: no board, no file system. `provision` writes what `build_identity` returns into a new
identity folder (docs/design.md, on-board file layout).
"""

import base64
import dataclasses
import datetime
import hashlib
import json
from dataclasses import dataclass, field

from iotcprov.board.firmware_options import check_options
from iotcprov.board.layout import (
    ACTIVE,
    IDENTITY_FILE,
    IDENTITY_FORMAT,
    IDENTITY_PREFIX,
    LEGACY_WIFI,
    WIFI_FILE,
    identity_dir,
)
from iotcprov.credentials import pki
from iotcprov.errors import InputError
from iotcprov.validation import (
    shown,
    valid_host_name,
    validate_device_id,
    validate_id_scope,
    validate_key,
    validate_model_id,
)

GLOBAL_DPS_HOST = "global.azure-devices-provisioning.net"
SSID_MAX_BYTES = 32  # IEEE 802.11
EXPIRY_WARNING_DAYS = 30  # a device certificate expiring sooner is written, with a warning
MQTT_TLS_PORT = 8883


@dataclass(frozen=True)
class SasCredential:
    """A per-device symmetric key (base64 text), already derived when it came from a group key."""

    device_key: str

    def __repr__(self) -> str:  # keep the key out of tracebacks and logs
        return "SasCredential(device_key=<hidden>)"


@dataclass(frozen=True)
class X509Credential:
    """Leaf certificate (DER) with its chain (DER, leaf's issuer first) and private key (PKCS#8 DER).

    as_pem: store cert.pem (leaf + chain) and key.pem instead of DER, so the board sends the chain.
    """

    cert_der: bytes
    key_der: bytes
    chain_der: tuple[bytes, ...] = ()
    as_pem: bool = False

    def __repr__(self) -> str:
        return f"X509Credential(cert={len(self.cert_der)} bytes, key=<hidden>, chain={len(self.chain_der)})"


@dataclass(frozen=True)
class WifiSettings:
    """What the identity folder's wifi.json holds; the password is a secret."""

    ssid: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        size = len(self.ssid.encode("utf-8"))
        if not 1 <= size <= SSID_MAX_BYTES:
            raise InputError(
                f"--wifi-ssid: {size} bytes; a Wi-Fi network name (SSID) is 1 to {SSID_MAX_BYTES} bytes, "
                "so the board could never join this one: give the name the access point broadcasts"
            )

    def file(self) -> bytes:
        """The contents of wifi.json."""
        document = {"ssid": self.ssid, "password": self.password}
        return json.dumps(document, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class IdentityRequest:
    id_scope: str
    device_id: str
    credential: SasCredential | X509Credential
    trust: tuple[bytes, ...]  # DER root certificates
    dps_host: str = GLOBAL_DPS_HOST
    dps_port: int = MQTT_TLS_PORT
    hub_port: int = MQTT_TLS_PORT
    model_id: str | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class IdentityBundle:
    folder: str  # id-XXXXXXXX, named by the contents, so the same identity gets the same folder
    files: dict[str, bytes]  # every file of the folder, identity.json included
    settings: dict  # identity.json as data
    device_id: str
    id_scope: str
    auth: str
    fingerprint: str
    warnings: tuple[str, ...] = ()  # one line each, for the operator (e.g. a certificate expiring soon)

    def __repr__(self) -> str:
        files = sorted(self.files)
        return f"IdentityBundle(folder={self.folder!r}, device_id={self.device_id!r}, files={files})"

    def board_files(self) -> dict[str, bytes]:
        """{board path: bytes} of the identity folder's files."""
        return {f"{identity_dir(self.folder)}/{name}": data for name, data in self.files.items()}

    def with_wifi(self, wifi_file: bytes | None) -> "IdentityBundle":
        """The same identity with `wifi_file` (wifi.json's bytes) in its folder, or without one
        (None). The folder is named by the contents, so other Wi-Fi settings make another folder:
        the `active` rename switches identity and Wi-Fi together, never one without the other."""
        files = {name: data for name, data in self.files.items() if name != WIFI_FILE}
        if wifi_file is not None:
            files[WIFI_FILE] = wifi_file
        return dataclasses.replace(self, folder=identity_folder_name(files), files=files)

    def active_file(self) -> bytes:
        """The contents of the `active` pointer that makes this identity the board's."""
        return (self.folder + "\n").encode("ascii")


def sas_fingerprint(device_key: str) -> str:
    """`sha256:` + the first 16 hex digits of SHA-256 of the decoded key (never the key)."""
    return "sha256:" + hashlib.sha256(base64.b64decode(device_key)).hexdigest()[:16]


def x509_fingerprint(cert_der: bytes) -> str:
    """The certificate's SHA-256 thumbprint, upper-case hex."""
    return hashlib.sha256(cert_der).hexdigest().upper()


def _pem(kind: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    body = "\n".join(lines)
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n".encode("ascii")


def x509_files(credential: X509Credential) -> dict[str, bytes]:
    """The certificate and key files of an X.509 identity, in formats every release parses.

    PEM: the leaf and its chain (sent whole), the key as PKCS#8 PEM. DER (no chain; the unix port
    reads DER only): the key as SEC1 (EC) or PKCS#1 (RSA) DER, never PKCS#8 DER, which MicroPython
    v1.23 refuses: its load_cert_chain hands mbedTLS one byte more than the key, and mbedTLS 3's
    PKCS#8 DER parser rejects the extra byte (docs/compatibility.md)."""
    if credential.as_pem:
        chain = (credential.cert_der, *credential.chain_der)
        return {
            "cert.pem": b"".join(_pem("CERTIFICATE", der) for der in chain),
            "key.pem": _pem("PRIVATE KEY", credential.key_der),
        }
    key = pki.load_private_key(credential.key_der)
    return {"cert.der": credential.cert_der, "key.der": pki.key_to_traditional_der(key)}


def _check_endpoint(request: IdentityRequest) -> None:
    host = request.dps_host
    if not valid_host_name(host):
        raise InputError(
            f"--dps-host: {shown(host)} is not a host name; give e.g. {GLOBAL_DPS_HOST} or HOST:PORT"
        )
    for name, port in (("--dps-host port", request.dps_port), ("--hub-port", request.hub_port)):
        if not 1 <= port <= 65535:
            raise InputError(f"{name}: {port} is not a TCP port (1-65535)")
    if request.model_id is not None:
        validate_model_id(request.model_id)
    if not request.trust:
        raise InputError("--trust: no root certificate; use --trust azure or a CA certificate file")


def _check_certificate(cert_der: bytes, device_id: str, now: datetime.datetime) -> tuple[str, ...]:
    """Refuse a leaf DPS would refuse later (another CN, expired, not yet valid): the board would
    take it and fail at registration. Returns a warning when it expires within 30 days."""
    cert = pki.load_certificate(cert_der)
    name = pki.common_name(cert)
    if name != device_id:
        shown = repr(name) if len(name) <= 64 else f"a {len(name)}-character name"
        raise InputError(
            f"--cert: the certificate's subject CN is {shown}, not the --device-id {device_id!r}; DPS "
            f"registers the device under its CN: give the certificate issued for {device_id} "
            "(iotcprov certs device) or that device's ID"
        )
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < not_before:
        raise InputError(
            f"--cert: the certificate is not valid before {not_before:%Y-%m-%d %H:%M} UTC; check this "
            "computer's clock, or issue one that is valid now (iotcprov certs device)"
        )
    if now > not_after:
        raise InputError(
            f"--cert: the certificate expired on {not_after:%Y-%m-%d %H:%M} UTC; issue a new one "
            "(iotcprov certs device)"
        )
    left = not_after - now
    if left < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        return (
            f"--cert: the certificate expires on {not_after:%Y-%m-%d %H:%M} UTC, in {left.days} days; "
            "the device cannot connect after that: provision it with a new one before then",
        )
    return ()


def build_identity(request: IdentityRequest) -> IdentityBundle:
    """The files of one identity folder and its identity.json. Raises InputError on bad input."""
    validate_id_scope(request.id_scope)
    validate_device_id(request.device_id)
    _check_endpoint(request)
    check_options(request.options)
    files: dict[str, bytes] = {}
    warnings: tuple[str, ...] = ()
    credential = request.credential
    if isinstance(credential, SasCredential):
        validate_key(credential.device_key, field="--device-key")
        auth, fingerprint = "sas", sas_fingerprint(credential.device_key)
        files["device.key"] = credential.device_key.encode("ascii")
        names = {"key": "device.key"}
    else:
        now = datetime.datetime.now(datetime.UTC)
        warnings = _check_certificate(credential.cert_der, request.device_id, now)
        auth, fingerprint = "x509", x509_fingerprint(credential.cert_der)
        x509 = x509_files(credential)
        files.update(x509)
        names = dict(zip(("cert", "key"), x509, strict=True))  # x509_files lists the certificate first
    trust_names = []
    for index, root in enumerate(request.trust):
        name = f"root-{index}.der"
        files[name] = root
        trust_names.append(name)
    settings = {
        "format": IDENTITY_FORMAT,
        "id_scope": request.id_scope,
        "device_id": request.device_id,
        "auth": auth,
        "dps_host": request.dps_host,
        "dps_port": request.dps_port,
        "hub_port": request.hub_port,
        "model_id": request.model_id,
        "fingerprint": fingerprint,
        "trust": trust_names,
        **names,
        "options": dict(request.options),
    }
    files[IDENTITY_FILE] = (json.dumps(settings, separators=(",", ":"), sort_keys=True) + "\n").encode(
        "utf-8"
    )
    return IdentityBundle(
        folder=identity_folder_name(files),
        files=files,
        settings=settings,
        device_id=request.device_id,
        id_scope=request.id_scope,
        auth=auth,
        fingerprint=fingerprint,
        warnings=warnings,
    )


def identity_folder_name(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode("utf-8") + b"\0" + hashlib.sha256(files[name]).digest())
    return IDENTITY_PREFIX + digest.hexdigest()[:8]


def parse_dps_host(text: str) -> tuple[str, int]:
    """`HOST` or `HOST:PORT` (the emulator runs on a local port) -> (host, port; 8883 by default)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, MQTT_TLS_PORT
    if not port.isdigit():
        raise InputError(
            f"--dps-host: the port after ':', {shown(port)}, is not a number; give e.g. localhost:8883"
        )
    return host, int(port)


def identity_tree(bundle: IdentityBundle | None, wifi: WifiSettings | None = None) -> dict[str, bytes]:
    """{board path: bytes} of an identity made active, with its Wi-Fi settings, for a filesystem
    image built on the host. Wi-Fi settings without an identity go where the firmware looks when
    no identity folder holds any."""
    if bundle is None:
        return {} if wifi is None else {LEGACY_WIFI: wifi.file()}
    if wifi is not None:
        bundle = bundle.with_wifi(wifi.file())
    tree = bundle.board_files()
    tree[ACTIVE] = bundle.active_file()
    return tree
