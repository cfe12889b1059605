"""Device leaves issued per second by the test PKI, EC P-256 and RSA-2048.

"Issued" = a new device key + a leaf signed by an EC P-256 intermediate + the five encodings
`certs device` writes (no disk I/O). Also prints signing alone, with a key made beforehand.
Run: .venv/bin/python bench/bench_pki.py
"""

from __future__ import annotations

import time

from iotcprov.credentials import pki

TARGET = "target: a factory batch of 1000 EC devices in well under a minute"


def issuer() -> tuple[object, object]:
    root_key = pki.generate_key()
    root = pki.make_root_ca("Bench Root", root_key)
    key = pki.generate_key()
    return pki.make_intermediate_ca("Bench Intermediate", key, root, root_key), key


def issue_one(key_type: str, ca_cert, ca_key) -> int:
    key = pki.generate_key(key_type)
    cert = pki.make_device_cert("bench-device-0001", key, ca_cert, ca_key)
    encodings = (pki.cert_to_pem(cert), pki.key_to_pem(key), pki.certs_to_pem([cert, ca_cert]),
                 pki.cert_to_der(cert), pki.key_to_der(key))  # fmt: skip
    return sum(map(len, encodings))


def rate(label: str, count: int, action) -> None:
    start = time.perf_counter()
    for _ in range(count):
        action()
    elapsed = time.perf_counter() - start
    print(f"{label:<34} {count / elapsed:8.1f} /s   ({count} in {elapsed:.2f} s)")


def main() -> None:
    ca_cert, ca_key = issuer()
    print(TARGET)
    for key_type, count in (("ec", 2000), ("rsa2048", 30)):
        label = f"leaves issued, {key_type} (key + cert)"
        rate(label, count, lambda kt=key_type: issue_one(kt, ca_cert, ca_key))
        device_key = pki.generate_key(key_type)
        rate(
            f"leaf signing only, {key_type} key",
            2000,
            lambda k=device_key: pki.make_device_cert("bench-device-0001", k, ca_cert, ca_key),
        )


if __name__ == "__main__":
    main()
