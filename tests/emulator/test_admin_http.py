"""The admin HTTP API against slow or stalled clients: a partial request does not hold a connection."""

from __future__ import annotations

import socket
import time
import urllib.parse

from iotcprov.emulator.admin_http import READ_TIMEOUT


def _admin_socket(emulator) -> socket.socket:
    url = urllib.parse.urlsplit(emulator.info["admin_url"])
    return socket.create_connection((url.hostname, url.port), timeout=READ_TIMEOUT + 10)


def _read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (socket timeout bounds the wait)."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


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
    assert READ_TIMEOUT - 1 < waited < READ_TIMEOUT + 5
    assert emulator.admin.stats()["devices"] >= 0  # and still serving afterwards
