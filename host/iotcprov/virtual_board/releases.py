"""The MicroPython releases a virtual board can claim, and what each one changes in its stand-ins.

The interpreter is always the unix port of the installed wheel; what differs per release is what
an ESP32 build of that release has frozen or built in, where it changes what the firmware sees:
the umqtt.simple version (its quirks, docs/compatibility.md) and v1.23's `tls.load_cert_chain`,
which hands mbedTLS one byte more than each buffer (so PKCS#8 DER keys are refused there).
"""

import os
from dataclasses import dataclass

from iotcprov.errors import InputError


@dataclass(frozen=True)
class Release:
    name: str  # "1.23"
    umqtt: tuple[int, int, int]  # the umqtt.simple version its ESP32 builds freeze
    tls_len_plus_one: bool  # load_cert_chain passes each buffer's length + 1 (v1.23 only)

    def standin_config(self) -> dict:
        """What the stand-ins read from the board's configuration."""
        return {"release": self.name, "umqtt": list(self.umqtt), "tls_len_plus_one": self.tls_len_plus_one}


# From each tag's lib/micropython-lib gitlink and micropython/umqtt.simple/manifest.py there, and
# extmod/modtls_mbedtls.c (v1.23 passes key_len + 1; v1.24 gives DER its exact length).
RELEASES: dict[str, Release] = {
    release.name: release
    for release in (
        Release("1.23", (1, 4, 0), True),
        Release("1.24", (1, 4, 0), False),
        Release("1.25", (1, 6, 0), False),
        Release("1.26", (1, 6, 0), False),
        Release("1.27", (1, 7, 0), False),
        Release("1.28", (1, 7, 0), False),
    )
}
OLDEST = "1.23"
NEWEST = "1.28"
RELEASE_ENV = "IOTCPROV_VBOARD_RELEASE"  # the release of boards started without one named


def check_release(name: str | None) -> Release:
    """The release named `name` ("1.23", "v1.23" or "1.23.0"); None: $IOTCPROV_VBOARD_RELEASE,
    else the newest."""
    if name is None:
        name = os.environ.get(RELEASE_ENV) or NEWEST
    text = str(name).strip().lstrip("vV")
    parts = text.split(".")
    if len(parts) == 3 and parts[2].isdigit():
        text = ".".join(parts[:2])
    release = RELEASES.get(text)
    if release is None:
        known = ", ".join(RELEASES)
        raise InputError(
            f"--release: {name!r} is not a MicroPython release the virtual board knows; choose {known}"
        )
    return release
