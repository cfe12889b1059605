"""Talking to a running emulator: the admin HTTP client, and `Emulator.running` for tests.

`Emulator.running(data_dir, ...)` starts `python -m iotcprov emulator start` as a separate
process, reads its first JSON line, and stops it on exit. `AdminClient` mirrors the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iotcprov.errors import InputError, OperationError

ENDPOINTS_FILE = "emulator.json"
START_TIMEOUT = 60.0


class AdminClient:
    """JSON over HTTP to the admin API; errors become InputError (4xx) or OperationError."""

    def __init__(self, admin_url: str, timeout: float = 30.0) -> None:
        self.base = admin_url.rstrip("/")
        self.timeout = timeout

    @classmethod
    def for_data_dir(cls, data_dir: Path | str) -> AdminClient:
        path = Path(data_dir) / ENDPOINTS_FILE
        try:
            info = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):  # a folder no emulator serves: bad input (exit 2)
            raise InputError(
                f"--data: no emulator is running on {data_dir}; "
                f"start one with: iotcprov emulator start --data {data_dir}"
            ) from None
        return cls(info["admin_url"])

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict | None = None,
        timeout: float | None = None,
    ) -> Any:
        url = self.base + urllib.parse.quote(path)
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", error.reason)
            except ValueError:
                message = str(error.reason)
            if 400 <= error.code < 500:
                raise InputError(message) from None
            raise OperationError(f"emulator: {message}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            raise OperationError(
                f"emulator admin API at {self.base} unreachable: {getattr(error, 'reason', error)}"
            ) from None

    # ------------------------------------------------------------ mirrors of the CLI
    def info(self) -> dict:
        return self.request("GET", "/info")

    def create_sas_group(
        self, name: str, primary_key: str | None = None, secondary_key: str | None = None
    ) -> dict:
        return self.request(
            "POST",
            "/groups",
            {"name": name, "attestation": "sas", "primary_key": primary_key, "secondary_key": secondary_key},
        )

    def create_x509_group(self, name: str, ca_cert_pem: str) -> dict:
        return self.request("POST", "/groups", {"name": name, "attestation": "x509", "ca_cert": ca_cert_pem})

    def verify_group(self, name: str, cert_pem: str) -> dict:
        return self.request("POST", f"/groups/{name}/verify", {"cert": cert_pem})

    def set_group_enabled(self, name: str, enabled: bool) -> dict:
        return self.request("POST", f"/groups/{name}/enabled", {"enabled": enabled})

    def groups(self) -> list[dict]:
        return self.request("GET", "/groups")

    def enroll_sas(self, device_id: str, key: str | None = None, secondary_key: str | None = None) -> dict:
        return self.request(
            "POST",
            "/enrollments",
            {
                "device_id": device_id,
                "attestation": "sas",
                "primary_key": key,
                "secondary_key": secondary_key,
            },
        )

    def enroll_x509(self, device_id: str, cert_pem: str) -> dict:
        return self.request(
            "POST", "/enrollments", {"device_id": device_id, "attestation": "x509", "cert": cert_pem}
        )

    def set_enrollment_enabled(self, device_id: str, enabled: bool) -> dict:
        return self.request("POST", f"/enrollments/{device_id}/enabled", {"enabled": enabled})

    def enrollments(self) -> list[dict]:
        return self.request("GET", "/enrollments")

    def devices(self) -> list[dict]:
        return self.request("GET", "/devices")

    def device(self, device_id: str) -> dict:
        return self.request("GET", f"/devices/{device_id}")

    def telemetry(
        self, device_id: str, wait: float | None = None, after: int | None = None, limit: int | None = None
    ) -> list[dict]:
        return self.request(
            "GET",
            f"/devices/{device_id}/telemetry",
            query={"wait": wait, "after": after, "limit": limit},
            timeout=(wait or 0) + self.timeout,
        )

    def set_desired(self, device_id: str, patch: dict) -> dict:
        return self.request("PATCH", f"/devices/{device_id}/twin/desired", patch)

    def invoke(self, device_id: str, command: str, payload: Any = None, timeout: float = 30) -> dict:
        return self.request(
            "POST",
            f"/devices/{device_id}/methods/{command}",
            {"payload": payload, "timeout": timeout},
            timeout=timeout + self.timeout,
        )

    def send_c2d(self, device_id: str, body: str, properties: dict[str, str] | None = None) -> dict:
        return self.request(
            "POST", f"/devices/{device_id}/c2d", {"body": body, "properties": properties or {}}
        )

    def fault(self, kind: str, **fields: Any) -> dict:
        return self.request(
            "POST", "/faults", {"kind": kind, **{k: v for k, v in fields.items() if v is not None}}
        )

    def faults(self) -> list[dict]:
        return self.request("GET", "/faults")

    def clear_faults(self, fault_id: int | None = None) -> dict:
        return self.request("DELETE", "/faults" if fault_id is None else f"/faults/{fault_id}")

    def events(
        self, after: int | None = None, kind: str | None = None, device: str | None = None
    ) -> list[dict]:
        return self.request("GET", "/events", query={"after": after, "kind": kind, "device": device})

    def stats(self) -> dict:
        return self.request("GET", "/stats")

    def settings(self) -> dict:
        return self.request("GET", "/settings")

    def set_auto_approve(self, on: bool) -> dict:
        return self.request("PATCH", "/settings", {"auto_approve": on})

    def create_api_token(self, token_id: str, role: str | None = None, days: float = 365) -> dict:
        """An IoT Central API token for the emulated application; the answer holds it this once."""
        return self.request("POST", "/tokens", {"id": token_id, "role": role, "days": days})


class Emulator:
    """A running emulator process (see `running`)."""

    def __init__(self, process: subprocess.Popen, info: dict, data_dir: Path) -> None:
        self.process = process
        self.info = info
        self.data_dir = data_dir
        self.admin = AdminClient(info["admin_url"])

    @classmethod
    @contextlib.contextmanager
    def running(
        cls,
        data_dir: Path | str,
        dps: str = "127.0.0.1:0",
        hub: str = "127.0.0.1:0",
        hub_name: str | None = None,
        admin: str = "127.0.0.1:0",
        extra_args: list[str] | None = None,
    ) -> Iterator[Emulator]:
        emulator = cls.start(data_dir, dps, hub, hub_name, admin, extra_args)
        try:
            yield emulator
        finally:
            emulator.stop()

    @classmethod
    def start(
        cls,
        data_dir: Path | str,
        dps: str = "127.0.0.1:0",
        hub: str = "127.0.0.1:0",
        hub_name: str | None = None,
        admin: str = "127.0.0.1:0",
        extra_args: list[str] | None = None,
    ) -> Emulator:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "iotcprov",
            "emulator",
            "start",
            "--data",
            str(data_dir),
            "--dps",
            dps,
            "--hub",
            hub,
            "--admin",
            admin,
        ]
        if hub_name:
            command += ["--hub-name", hub_name]
        command += [*(extra_args or []), "--stop-on-stdin-eof"]
        log = open(data_dir / "emulator.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")] if p
        )
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.PIPE, env=env
        )
        log.close()
        try:
            line = _read_first_line(process, START_TIMEOUT)
        except BaseException:
            _terminate(process)
            raise
        if not line:
            process.wait(5)
            detail = (data_dir / "emulator.log").read_text(errors="replace").strip().splitlines()
            raise OperationError(f"emulator did not start: {detail[-1] if detail else 'no output'}")
        return cls(process, json.loads(line), data_dir)

    def stop(self) -> int | None:
        return _terminate(self.process)


def _read_first_line(process: subprocess.Popen, timeout: float) -> str:
    """The child's first stdout line, read by a thread so this works with pipes on every OS."""
    assert process.stdout is not None
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout).decode().strip()
    except queue.Empty:
        raise OperationError(f"emulator printed no endpoints within {timeout:.0f} s") from None


def _terminate(process: subprocess.Popen) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    for stream in (process.stdin, process.stdout):
        if stream:
            stream.close()
    return process.returncode
