"""Parity: the firmware's iotc.sas on the MicroPython unix port gives byte-identical device keys
and DPS + hub tokens to the host's iotcprov.credentials.sas (CPython hmac, base64, urllib)."""

import base64
import hashlib
import hmac
import string
import urllib.parse

from hypothesis import given, settings
from hypothesis import strategies as st
from iotcprov import validation
from iotcprov.credentials import sas
from iotcprov.errors import InputError

PARITY_CASES = 600  # the issue asks for at least 500

keys = st.binary(min_size=16, max_size=64).map(lambda raw: base64.b64encode(raw).decode())
device_ids = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=128)
expiries = st.integers(min_value=0, max_value=2**34)
id_scopes = st.from_regex(r"0ne[0-9A-Za-z]{8}", fullmatch=True)
host_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
hub_hosts = st.lists(host_labels, min_size=2, max_size=4).map(".".join)


def test_device_keys_and_tokens_match_on_micropython(micropython_sas):
    checked = []

    @settings(max_examples=PARITY_CASES, deadline=None, database=None)
    @given(key=keys, device_id=device_ids, expiry=expiries, id_scope=id_scopes, hub=hub_hosts)
    def check(key, device_id, expiry, id_scope, hub):
        request = {"key": key, "device_id": device_id, "expiry": expiry, "id_scope": id_scope, "hub": hub}
        board = micropython_sas.ask({"op": "sas", **request})
        assert board["derived"] == sas.derive_device_key(key, device_id)
        assert board["dps"] == sas.dps_token(key, id_scope, device_id, expiry)
        assert board["hub"] == sas.hub_token(key, hub, device_id, expiry)
        checked.append(device_id)

    check()
    assert len(checked) >= 500


def test_hmac_matches_cpython_for_any_key_length(micropython_sas):
    # Keys longer than the 64-byte block are hashed first (RFC 2104); parity above stops at 64.
    @settings(max_examples=150, deadline=None, database=None)
    @given(key=st.binary(max_size=200), msg=st.binary(max_size=300))
    def check(key, msg):
        board = micropython_sas.ask({"op": "hmac", "key": key.hex(), "msg": msg.hex()})
        assert board["mac"] == hmac.new(key, msg, hashlib.sha256).hexdigest()

    check()


def test_quote_matches_urllib_for_any_text(micropython_sas):
    @settings(max_examples=150, deadline=None, database=None)
    @given(text=st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=80))
    def check(text):
        board = micropython_sas.ask({"op": "quote", "text": text})
        assert board["quoted"] == urllib.parse.quote(text, safe="")

    check()


def host_accepts(key: str) -> bytes | None:
    try:
        return validation.validate_key(key)
    except InputError:
        return None


base64_texts = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=$ -_\né", max_size=96
)
mutated_keys = st.tuples(keys, st.integers(0, 87), st.sampled_from("A/+=$_-. \né")).map(
    lambda t: t[0][: t[1] % len(t[0])] + t[2] + t[0][t[1] % len(t[0]) + 1 :]
)


def test_board_accepts_exactly_the_keys_the_host_validates(micropython_sas):
    # MicroPython's a2b_base64 skips stray characters; the board must still agree with the host.
    @settings(max_examples=300, deadline=None, database=None)
    @given(key=st.one_of(keys, mutated_keys, base64_texts))
    def check(key):
        board = micropython_sas.ask({"op": "decode_key", "key": key})
        host = host_accepts(key)
        if host is None:
            assert "refused" in board
        else:
            assert board.get("raw") == host.hex()

    check()
