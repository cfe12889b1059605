"""The factory's X.509 credential source: a leaf per device of every key type `certs` offers."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from iotcprov.credentials import pki, pki_files
from iotcprov.errors import InputError
from iotcprov.factory.credentials import CaSource


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    pki_files.create_root(folder, key_passphrase=None)
    return pki_files.load_issuer(folder / "root.pem", folder / "root.key.pem", None)


@pytest.mark.parametrize(("key_type", "key_class", "bits"), [("ec", ec, 256), ("rsa2048", rsa, 2048)])
def test_a_leaf_of_each_key_type_for_the_device(issuer, key_type, key_class, bits):
    leaf = CaSource(issuer, key_type=key_type).issue("line-0001")
    cert = x509.load_der_x509_certificate(leaf.credential.cert_der)
    assert pki.common_name(cert) == "line-0001" and cert.issuer == issuer.cert.subject
    public = cert.public_key()
    assert isinstance(public, (key_class.EllipticCurvePublicKey if key_class is ec else rsa.RSAPublicKey))
    assert public.key_size == bits


def test_an_unknown_key_type_names_the_option_and_the_choices(issuer):
    with pytest.raises(InputError, match=r"^--key-type: 'rsa'; choose one of ec, rsa2048, rsa4096$"):
        CaSource(issuer, key_type="rsa")
