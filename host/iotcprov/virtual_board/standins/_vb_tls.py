# `tls` as MicroPython v1.23 has it: SSLContext.load_cert_chain hands mbedTLS each bytes buffer
# with one byte more than its length (the NUL after the object's data: v1.23's
# extmod/modtls_mbedtls.c passes key_len + 1, cert_len + 1 and cacert_len + 1, for PEM's sake).
# mbedTLS 3's PKCS#8 DER parser refuses that trailing byte ("invalid key"); PEM, SEC1 DER and DER
# certificates are read as before. The real module's mbedTLS judges the buffers here, so the board
# refuses what v1.23 refuses. Fixed in v1.24 (the DER length is then exact).
import tls as _tls
from tls import *  # noqa: F401,F403 - everything else is the real module's


def _with_nul(data):
    if isinstance(data, (bytes, bytearray)):
        return bytes(data) + b"\x00"
    return data


class SSLContext(_tls.SSLContext):
    def load_cert_chain(self, cert, key):
        super().load_cert_chain(_with_nul(cert), _with_nul(key))

    def load_verify_locations(self, cadata):
        super().load_verify_locations(_with_nul(cadata))
