"""The one I/O layer: asyncio TCP endpoints with stdlib TLS around the sans-I/O sessions.

DPS and hub each listen on their own HOST:PORT (both may use 8883 on different loopback
addresses). TLS is 1.2 or newer; client certificates are requested but not required, so SAS
devices connect without one. OpenSSL checks certificate signatures against the enrollment CAs and
individual certificates loaded as trust anchors (partial chains allowed, dates left to the
emulator's own check so an expired leaf is refused with a logged reason); which enrollment a
certificate belongs to is decided by `auth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import os
import socket
import ssl
import time
from asyncio import sslproto
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from iotcprov.dashboard.emulator import new_token
from iotcprov.emulator import certs
from iotcprov.emulator import mqtt_codec as mqtt
from iotcprov.emulator.auth import PeerCertificate
from iotcprov.emulator.client import ENDPOINTS_FILE
from iotcprov.emulator.control import Control
from iotcprov.emulator.dps import DpsSession, DpsState
from iotcprov.emulator.hub import HubRegistry, HubSession
from iotcprov.emulator.instance_lock import InstanceLock
from iotcprov.emulator.session import Action, Close, Config, Context, MqttSession, Send
from iotcprov.emulator.store import Store
from iotcprov.emulator.web import Listener, build_app
from iotcprov.errors import InputError, OperationError

X509_V_FLAG_NO_CHECK_TIME = 0x200000  # OpenSSL: dates are checked by auth, with a reason logged
TLS_HANDSHAKE_TIMEOUT = 15.0
MAX_HANDSHAKES = 1000  # TLS handshakes in progress at once (~70 KB each); more are closed at once
TLS_READ_BUFFER = 16 * 1024  # bytes asyncio allocates per TLS connection (its own default: 256 KiB)


def _limit_tls_read_buffer() -> None:
    """Give each TLS connection a 16 KiB read buffer instead of asyncio's 256 KiB.

    asyncio's SSLProtocol allocates `max_size` bytes when a connection starts, before the
    handshake. Thousands of aborted handshakes left glibc's heap so fragmented by these blocks
    that the process stayed at 260 MB after 5,000 of them (700 MB with idle ones), never given
    back. A TLS record is at most 16 KiB and SSLProtocol reads in a loop, so nothing is lost. It
    is a class attribute, so this applies to the whole (emulator) process.
    """
    sslproto.SSLProtocol.max_size = min(sslproto.SSLProtocol.max_size, TLS_READ_BUFFER)


@dataclass
class Endpoint:
    """A listening address: `host` is what clients are told, `address` what is bound."""

    host: str
    port: int

    @property
    def address(self) -> str:
        return "127.0.0.1" if self.host == "localhost" else self.host

    @classmethod
    def parse(cls, text: str, field: str) -> Endpoint:
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise InputError(
                f"{field}: {text!r} is not HOST:PORT (e.g. 127.0.0.2:8883, port 0 picks a free one)"
            )
        return cls(host.strip("[]"), int(port))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class EmulatorServer:
    def __init__(
        self,
        data_dir: Path,
        dps: Endpoint,
        hub: Endpoint,
        admin: Endpoint,
        extra_names: list[str] | None = None,
        config: Config | None = None,
        max_handshakes: int = MAX_HANDSHAKES,
        central: Endpoint | None = None,
        dashboard: bool = True,
    ) -> None:
        self.data_dir = data_dir
        # unlocks the dashboard's operator mode; printed in the start line only (docs/dashboard.md)
        self.dashboard_token = new_token() if dashboard else None
        self.dps, self.hub, self.admin = dps, hub, admin
        self.central = central or Endpoint("localhost", 0)
        self.extra_names = extra_names or []
        self.store = Store(data_dir)
        self.context = Context(self.store, config or Config())
        self.dps_state = DpsState()
        self.registry = HubRegistry()
        self.ssl_context: ssl.SSLContext | None = None
        self._server_cert: tuple[Path, Path] | None = None
        self.servers: list[asyncio.base_events.Server] = []
        self.info: dict = {}
        self.control: Control | None = None
        self.web: Listener | None = None
        self.stopped = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self.max_handshakes = max_handshakes
        self._handshaking = 0
        self.lock = InstanceLock(data_dir)

    # ------------------------------------------------------------ TLS
    def _make_ssl_context(self) -> ssl.SSLContext:
        dns = ["localhost"]
        ips = ["127.0.0.1", "::1"]
        names = [self.dps.host, self.hub.host, self.central.host, self.context.config.hub_name]
        for name in [*names, *self.extra_names]:
            (ips if _is_ip(name) else dns).append(name)
        self._server_cert = certs.write_server_cert(self.data_dir, dns, ips)
        context = self._https_context()
        context.verify_mode = ssl.CERT_OPTIONAL
        context.verify_flags = ssl.VerifyFlags(
            int(context.verify_flags) | int(ssl.VERIFY_X509_PARTIAL_CHAIN) | X509_V_FLAG_NO_CHECK_TIME
        )
        for group in self.store.groups("x509"):
            context.load_verify_locations(cadata=group["ca_pem"])
        for row in self.store.individuals():
            if row["cert_pem"]:
                context.load_verify_locations(cadata=row["cert_pem"])
        return context

    def _https_context(self) -> ssl.SSLContext:
        """TLS 1.2+ with the server certificate, no client certificate asked (HTTPS, browsers)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(*self._server_cert)
        return context

    def trust(self, pem: str) -> None:
        """Add a trust anchor for client certificates (new enrollments) to live TLS."""
        assert self.ssl_context is not None
        self.ssl_context.load_verify_locations(cadata=pem)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> dict:
        if not self.lock.acquire():
            raise OperationError(
                f"--data: another emulator already serves {self.data_dir}; "
                "stop it first or use another folder"
            )
        try:
            return await self._start()
        except BaseException:
            self.lock.release()
            raise

    async def _start(self) -> dict:
        endpoints_file = self.data_dir / ENDPOINTS_FILE
        # a process killed with its devices connected left them marked connected
        stale = self.store.reset_connections("emulator stopped without closing the connection", time.time())
        if stale:
            self.context.event("admin", "connections reset", None, f"{stale} devices", time.time())
        self.ssl_context = self._make_ssl_context()
        _limit_tls_read_buffer()
        dps_server = await self._listen(self.dps, "--dps", lambda r, w: self._connection("dps", r, w))
        hub_server = await self._listen(self.hub, "--hub", lambda r, w: self._connection("hub", r, w))
        self.dps.port = dps_server.sockets[0].getsockname()[1]
        self.hub.port = hub_server.sockets[0].getsockname()[1]
        self.info = {
            "id_scope": self.store.id_scope(),
            "dps": {"host": self.dps.host, "port": self.dps.port, "address": self.dps.address},
            "hub": {
                "host": self.hub.host,
                "port": self.hub.port,
                "address": self.hub.address,
                "name": self.context.config.hub_name,
            },
            "ca_cert": str((self.data_dir / certs.CA_CERT_FILE).resolve()),
            "admin_url": "",
            "pid": os.getpid(),
        }
        self.control = Control(self.context, self.registry, self.info, self.trust, lambda: len(self._tasks))
        self.web = Listener(build_app(self.control, self.dashboard_token))
        await self.web.setup()
        admin_server = await self._listen(self.admin, "--admin", protocol=self.web.protocol_factory())
        self.admin.port = admin_server.sockets[0].getsockname()[1]
        self.info["admin_url"] = f"http://{self.admin.address}:{self.admin.port}"
        if self.dashboard_token is not None:
            self.info["dashboard_url"] = self.info["admin_url"] + "/dashboard/"
        # the same application over HTTPS, as IoT Central's API is served (clients check the CA)
        central_server = await self._listen(
            self.central, "--central", protocol=self.web.protocol_factory(), ssl_context=self._https_context()
        )
        self.central.port = central_server.sockets[0].getsockname()[1]
        self.info["central_url"] = f"https://{self.central.host}:{self.central.port}"
        self.servers = [dps_server, hub_server, admin_server, central_server]
        temporary = endpoints_file.with_name(ENDPOINTS_FILE + ".tmp")
        temporary.write_text(json.dumps(self.info))
        os.replace(temporary, endpoints_file)
        self.context.event("admin", "started", None, None, time.time())
        return self.info

    async def _listen(
        self, endpoint: Endpoint, field: str, handler=None, protocol=None, ssl_context=None
    ) -> asyncio.base_events.Server:
        """A stream `handler` (MQTT: TLS is started per connection so handshake failures can be
        logged as refusals) or an asyncio `protocol` factory (HTTP, TLS by `ssl_context`)."""
        try:
            if protocol is not None:
                return await asyncio.get_running_loop().create_server(
                    protocol, endpoint.address, endpoint.port, backlog=1024, ssl=ssl_context
                )
            return await asyncio.start_server(
                handler, endpoint.address, endpoint.port, backlog=1024, limit=2**20
            )
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise OperationError(
                    f"{field}: {endpoint.address}:{endpoint.port} is in use; pick another address or port 0"
                ) from None
            if error.errno in (
                errno.EADDRNOTAVAIL,
                socket.EAI_NONAME if hasattr(socket, "EAI_NONAME") else -1,
            ):
                raise InputError(f"{field}: cannot bind {endpoint.address}; use a local address") from None
            raise OperationError(
                f"{field}: cannot listen on {endpoint.address}:{endpoint.port}: {error.strerror}"
            ) from None

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        self.registry.kick_all("emulator stopping")
        for task in list(self._tasks):
            task.cancel()
        if self.web is not None:  # closes HTTP connections, long polls and event streams included
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.web.cleanup(), 2)
        for server in self.servers:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(server.wait_closed(), 2)
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / ENDPOINTS_FILE).unlink()
        self.store.close()
        self.lock.release()

    # ------------------------------------------------------------ connections
    async def _connection(
        self, endpoint: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(endpoint, reader, writer)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        except Exception as error:  # a bug must cost one connection, not the server
            self.context.event(endpoint, "internal error", None, type(error).__name__, time.time())
        finally:
            if task is not None:
                self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.transport.abort()

    async def _serve(self, endpoint: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        store, now = self.store, time.time()
        if self._handshaking >= self.max_handshakes:
            # counted, not logged: a flood of events would cost more than the connections
            store.bump(f"{endpoint}.tls_busy")
            return
        self._handshaking += 1
        try:
            await writer.start_tls(self.ssl_context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as error:
            store.bump(f"{endpoint}.tls_failures")
            reason = getattr(error, "reason", None) or type(error).__name__
            verify = getattr(error, "verify_message", None)
            self.context.event(
                endpoint, "tls refused", None, f"{reason}{': ' + verify if verify else ''}", now
            )
            return
        finally:
            self._handshaking -= 1
        store.bump(f"{endpoint}.tls_handshakes")
        peer = _peer_certificate(writer.get_extra_info("ssl_object"))
        session: MqttSession
        if endpoint == "dps":
            session = DpsSession(self.context, self.dps_state, peer, now)
        else:
            session = HubSession(self.context, self.registry, peer, now)
        await _pump(session, reader, writer)


_ENCODING_DER = getattr(ssl, "ENCODING_DER", 2)  # _ssl.ENCODING_DER; public in ssl from 3.13


def _peer_certificate(ssl_object: ssl.SSLObject | None) -> PeerCertificate | None:
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    leaf = x509.load_der_x509_certificate(der)
    chain = [leaf]
    get_chain = getattr(ssl_object, "get_verified_chain", None)  # public from Python 3.13
    if get_chain is None:  # 3.10-3.12 have the same method, not yet public, on the inner object
        get_chain = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if get_chain is not None:
        try:
            chain = [
                x509.load_der_x509_certificate(c if isinstance(c, bytes) else c.public_bytes(_ENCODING_DER))
                for c in get_chain()
            ]
        except (ValueError, AttributeError, ssl.SSLError):
            chain = [leaf]
    return PeerCertificate(leaf, chain)


async def _pump(session: MqttSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Feed bytes to the parser and the session, carry out its actions, honour its deadlines."""
    loop = asyncio.get_running_loop()
    parser = mqtt.Parser()
    state = {"reason": None, "latest_send": 0.0}

    def write_now(data: bytes) -> None:
        if not writer.transport.is_closing():
            writer.write(data)

    def close_now(reason: str) -> None:
        if state["reason"] is None:
            state["reason"] = reason
        if not writer.transport.is_closing():
            writer.close()

    def execute(actions: list[Action]) -> None:
        current = loop.time()
        for action in actions:
            if state["reason"] is not None:
                return
            if isinstance(action, Send):
                data = mqtt.encode(action.packet)
                if action.delay > 0:
                    state["latest_send"] = max(state["latest_send"], current + action.delay)
                    loop.call_at(current + action.delay, write_now, data)
                else:
                    write_now(data)
            elif isinstance(action, Close):
                wait = state["latest_send"] - current
                if wait > 0:
                    loop.call_at(state["latest_send"] + 0.01, close_now, action.reason)
                    state["reason"] = action.reason
                else:
                    close_now(action.reason)

    session.sink = execute
    try:
        while state["reason"] is None:
            deadline = session.deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                execute(session.on_timer(time.time()))
                continue
            if not data:
                state["reason"] = state["reason"] or "connection closed by the client"
                break
            now = time.time()
            try:
                packets = parser.feed(data)
            except mqtt.MqttProtocolError as error:
                session.event("protocol error", str(error), now)
                execute(session.protocol_error(error, now))
                break
            for packet in packets:
                execute(session.handle(packet, now))
                if state["reason"] is not None:
                    break
            if writer.transport.get_write_buffer_size() > 1 << 20:
                await writer.drain()
    finally:
        session.on_closed(state["reason"] or "connection lost", time.time())
        if state["latest_send"] > loop.time():
            await asyncio.sleep(state["latest_send"] - loop.time() + 0.02)
        if not writer.transport.is_closing():
            writer.close()
