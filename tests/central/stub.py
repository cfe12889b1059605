"""A recording HTTPS stub of IoT Central: each request is kept (method, path, query, headers,
JSON body) and answered from a queue of (status, JSON body, headers) the test sets up."""

from __future__ import annotations

import json
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from iotcprov.credentials import pki


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: object


@dataclass
class Stub:
    url: str
    ca_file: Path
    requests: list[Recorded] = field(default_factory=list)
    answers: list[tuple[int, object, dict]] = field(default_factory=list)

    def answer(self, status: int, body: object = None, headers: dict | None = None) -> Stub:
        self.answers.append((status, body, headers or {}))
        return self


def start_stub(folder: Path) -> tuple[Stub, ThreadingHTTPServer]:
    ca_key, server_key = pki.generate_key("ec"), pki.generate_key("ec")
    ca = pki.make_root_ca("stub CA", ca_key)
    server_cert = pki.make_server_cert(
        ca, ca_key, server_key, dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    )
    (folder / "ca.pem").write_bytes(pki.cert_to_pem(ca))
    (folder / "server.pem").write_bytes(pki.cert_to_pem(server_cert))
    (folder / "server.key").write_bytes(pki.key_to_pem(server_key))
    stub = Stub("", folder / "ca.pem")

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            stub.requests.append(
                Recorded(
                    self.command,
                    url.path,
                    dict(urllib.parse.parse_qsl(url.query)),
                    dict(self.headers.items()),
                    json.loads(raw) if raw else None,
                )  # fmt: skip
            )
            status, body, headers = stub.answers.pop(0) if stub.answers else (500, None, {})
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    stub.url = f"https://localhost:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return stub, server
