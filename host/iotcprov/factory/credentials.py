"""Per-device credentials made on the host, one device at a time.

`GroupKeySource`: the device key derived from the enrollment group key (HMAC-SHA256 of the ID).
`CaSource`: a new key pair and a leaf certificate (CN = device ID) issued by the CA on the fly.
The group key and the CA key stay in this process: only the per-device credential is handed on,
and only fingerprints and thumbprints are ever described.
"""

import base64
import hashlib
from dataclasses import dataclass

from cryptography import x509
from iotcprov.board.credential_input import sas_from_group_key
from iotcprov.board.identity import SasCredential, X509Credential, sas_fingerprint, x509_fingerprint
from iotcprov.credentials import pki
from iotcprov.credentials.pki_files import Issuer
from iotcprov.errors import InputError
from iotcprov.validation import validate_key


class GroupKeySource:
    auth = "sas"

    def __init__(self, group_key: str) -> None:
        validate_key(group_key, field="--group-key")
        self._group_key = group_key

    def __repr__(self) -> str:
        return "GroupKeySource(<hidden>)"

    def credential_for(self, device_id: str) -> SasCredential:
        return sas_from_group_key(self._group_key, device_id)

    def describe(self) -> dict:
        """For the audit log: which group key, as a fingerprint (never the key)."""
        return {"auth": self.auth, "group_key": sas_fingerprint(self._group_key)}

    def binding(self) -> str:
        """What binds a manifest to this group key: SHA-256 of the key (a fingerprint, never the key)."""
        return "group key sha256:" + hashlib.sha256(base64.b64decode(self._group_key)).hexdigest()

    def check_device_ids(self, device_ids: list[str]) -> None:
        """Every ID can get this kind of credential (SAS: any valid device ID)."""


@dataclass(frozen=True)
class IssuedLeaf:
    credential: X509Credential
    thumbprint: str
    not_after: str


class CaSource:
    auth = "x509"

    def __init__(self, issuer: Issuer, *, key_type: str = "ec", days: int = pki.LEAF_DAYS) -> None:
        if key_type not in pki.KEY_TYPES:
            raise InputError(f"--key-type: {key_type!r}; choose one of {', '.join(pki.KEY_TYPES)}")
        if days < 1:
            raise InputError(f"--days: {days} is not a positive number of days")
        self._issuer = issuer
        self._key_type = key_type
        self._days = days
        # Intermediates travel with the leaf (as PEM, which a board needs for a chain); a CA that is
        # itself the root enrolled in DPS needs no chain, and the leaf stays DER.
        self._chain = tuple(pki.cert_to_der(cert) for cert in issuer.chain_above_leaf())

    def __repr__(self) -> str:
        return f"CaSource({pki.common_name(self._issuer.cert)!r}, key=<hidden>)"

    def issue(self, device_id: str) -> IssuedLeaf:
        key = pki.generate_key(self._key_type)
        cert = pki.make_device_cert(device_id, key, self._issuer.cert, self._issuer.key, days=self._days)
        der = pki.cert_to_der(cert)
        credential = X509Credential(
            cert_der=der, key_der=pki.key_to_der(key), chain_der=self._chain, as_pem=bool(self._chain)
        )
        return IssuedLeaf(credential, x509_fingerprint(der), _not_after(cert))

    def credential_for(self, device_id: str) -> X509Credential:
        return self.issue(device_id).credential

    def check_device_ids(self, device_ids: list[str]) -> None:
        """A leaf's CN is its device ID, and a CN holds at most 64 characters."""
        for device_id in device_ids:
            if len(device_id) > pki.CN_MAX:
                raise InputError(
                    f"--devices: device ID {device_id[:20]!r}... has {len(device_id)} characters; an X.509 "
                    f"device ID (the certificate's CN) holds at most {pki.CN_MAX}"
                )

    def binding(self) -> str:
        """What binds a manifest to this CA: its certificate's SHA-256 thumbprint."""
        return "CA sha256:" + pki.thumbprint_sha256(self._issuer.cert)

    def describe(self) -> dict:
        return {
            "auth": self.auth,
            "ca": pki.common_name(self._issuer.cert),
            "ca_thumbprint": pki.thumbprint_sha256(self._issuer.cert),
            "leaf_key_type": self._key_type,
            "leaf_days": self._days,
        }


def _not_after(cert: x509.Certificate) -> str:
    return cert.not_valid_after_utc.isoformat()


CredentialSource = GroupKeySource | CaSource
