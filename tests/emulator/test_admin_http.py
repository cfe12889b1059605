"""The admin HTTP API against slow or stalled clients: a partial request does not hold a connection."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from iotcprov.emulator.admin_http import READ_TIMEOUT
from iotcprov.errors import InputError

from tests.emulator.helpers import provision_sas


def _admin_socket(emulator) -> socket.socket:
    url = urllib.parse.urlsplit(emulator.info["admin_url"])
    return socket.create_connection((url.hostname, url.port), timeout=READ_TIMEOUT + 10)


def _read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (socket timeout bounds the wait)."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


@pytest.mark.smoke  # aiohttp at its floor keeps the deadline
def test_partial_request_is_closed_and_others_are_served(emulator):
    stalled = _admin_socket(emulator)
    try:
        stalled.sendall(b"GET /info HTTP/1.1\r\nHost: emulator\r\n")  # headers never finished
        started = time.monotonic()
        assert emulator.admin.info()["id_scope"]  # served while the partial request waits
        answer = _read_to_close(stalled)
        waited = time.monotonic() - started
    finally:
        stalled.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert waited > READ_TIMEOUT - 1  # the 408 came from the read timeout, not at once
    assert emulator.admin.stats()["devices"] >= 0  # and still serving afterwards


def test_deeply_nested_bodies_are_answered_400(emulator):
    nested = json.loads("[" * 40 + "]" * 40)
    with pytest.raises(InputError, match="nested deeper"):
        emulator.admin.request("POST", "/faults", {"kind": "outage", "seconds": nested})
    deep = "[" * 100_000 + "]" * 100_000  # past the interpreter's recursion limit
    body = ('{"a": ' + deep + "}").encode()
    sock = _admin_socket(emulator)
    try:
        head = b"PATCH /devices/x/twin/desired HTTP/1.1\r\nHost: emulator\r\nConnection: close\r\n"
        head += b"Content-Type: application/json\r\n"
        head += b"Content-Length: %d\r\n\r\n" % len(body)
        sock.sendall(head + body)
        answer = _read_to_close(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 400 ") and b"nested deeper" in answer


def test_desired_patch_deeper_than_a_twin_allows_is_refused(emulator):
    enrollment = emulator.admin.enroll_sas("admin-deep")
    provision_sas(emulator, "admin-deep", enrollment["primary_key"])
    patch: dict = {"leaf": 1}
    for _ in range(10):
        patch = {"n": patch}
    assert emulator.admin.set_desired("admin-deep", patch)["$version"] == 2  # 10 levels below the root
    with pytest.raises(InputError, match="at most 10 levels"):
        emulator.admin.set_desired("admin-deep", {"n": patch})


@pytest.mark.smoke
def test_the_application_is_served_over_https_with_the_emulators_ca(emulator):
    """`central_url` serves the same application over TLS; a client trusting `ca_cert` connects."""
    import ssl

    url = emulator.info["central_url"]
    assert url.startswith("https://localhost:")
    trusted = ssl.create_default_context(cafile=emulator.info["ca_cert"])
    with urllib.request.urlopen(url + "/info", context=trusted, timeout=10) as answer:
        assert json.loads(answer.read())["id_scope"] == emulator.info["id_scope"]
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(url + "/info", context=ssl.create_default_context(), timeout=10)


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain", "Origin": "https://evil.example"},  # a page's simple fetch
        {"Content-Type": "application/x-www-form-urlencoded"},  # a form, Origin stripped
        {"Content-Type": "application/json", "Origin": "https://evil.example"},  # if CORS ever let it
    ],
)
def test_requests_a_web_page_could_send_change_nothing(emulator, headers):
    """The admin API has no credentials, and a page in the user's browser can reach 127.0.0.1: a
    request that a page of another site could make without the browser asking first is refused."""
    url = emulator.info["admin_url"] + "/faults"
    body = json.dumps({"kind": "outage", "seconds": 60}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    assert emulator.admin.faults() == []  # nothing was added
