"""HTTPS and JSON for IoT Central's data-plane REST API (docs/central.md): one request at a time.

The application is `https://SUBDOMAIN.azureiotcentral.com` or any URL (the emulator's
`central_url`); every call goes to `{base}/api{path}?api-version=2022-07-31`. Answers 429 and 503
are retried with backoff, honouring Retry-After; other errors become one line that says what to
fix (InputError for what the caller can correct, OperationError for the service or the network).
The Authorization header is never logged, shown in a repr, or put in a message.
"""

from __future__ import annotations

import email.utils
import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from iotcprov import __version__
from iotcprov.errors import InputError, OperationError
from iotcprov.validation import valid_host_name

API_VERSION = "2022-07-31"
BASE_DOMAIN = "azureiotcentral.com"
APP_ENV = "IOTCPROV_CENTRAL_APP"
RETRIED = (429, 503)
ATTEMPTS = 5
MAX_DELAY = 30.0


class Auth(Protocol):
    def header(self) -> str:
        """The Authorization header's value."""
        ...


@dataclass(frozen=True)
class App:
    """An IoT Central application: where its API is, and the CA to trust (None: the system's)."""

    base_url: str  # https://host[:port], no trailing slash
    trust: Path | None = None

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).netloc

    @classmethod
    def parse(cls, text: str, field_name: str = "--app", trust: Path | None = None) -> App:
        """A subdomain (`myapp`) or the application's URL (`https://myapp.azureiotcentral.com`)."""
        text = (text or "").strip()
        if "://" not in text:
            if not text or "." in text or not valid_host_name(text):
                raise InputError(
                    f"{field_name}: {text!r} is not an application subdomain; give the part before "
                    f".{BASE_DOMAIN} (as in https://myapp.{BASE_DOMAIN}), or its URL with --app-url"
                )
            return cls(f"https://{text.lower()}.{BASE_DOMAIN}", trust)
        url = urllib.parse.urlsplit(text)
        if url.scheme != "https" or not url.hostname or url.path.strip("/") not in ("", "api"):
            raise InputError(
                f"{field_name}: {text!r} is not an application URL; give https://HOST[:PORT], e.g. "
                f"https://myapp.{BASE_DOMAIN} or the emulator's central_url"
            )
        return cls(f"https://{url.netloc}", trust)


@dataclass(frozen=True)
class ServiceError:
    """What an error answer said: status, the error code and the message (request ID dropped)."""

    status: int
    code: str
    message: str
    request_id: str | None = None


@dataclass
class CentralClient:
    app: App
    auth: Auth = field(repr=False)
    timeout: float = 30.0
    attempts: int = ATTEMPTS
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    _context: ssl.SSLContext | None = field(default=None, init=False, repr=False)

    # ------------------------------------------------------------ requests
    def url(self, path: str, query: dict[str, str] | None = None) -> str:
        params = {"api-version": API_VERSION, **(query or {})}
        return f"{self.app.base_url}/api{urllib.parse.quote(path)}?{urllib.parse.urlencode(params)}"

    def request(self, method: str, path: str, body: Any = None, *, what: str | None = None) -> Any:
        """The JSON answer (None for an empty one, e.g. 204). `what` names the thing the path is
        about in error messages ("device 'dev-1'")."""
        return self._send(method, self.url(path), body, what)

    def get_or_none(self, path: str, *, what: str | None = None) -> Any:
        """GET, with None instead of an error when the thing does not exist (404)."""
        try:
            return self._send("GET", self.url(path), None, what, missing_ok=True)
        except _Missing:
            return None

    def list(self, path: str, *, what: str | None = None) -> list[dict]:
        """Every item of a list, following `nextLink` (an absolute URL, followed as given)."""
        items: list[dict] = []
        url: str | None = self.url(path)
        while url:
            page = self._send("GET", url, None, what) or {}
            items.extend(page.get("value") or [])
            url = page.get("nextLink")
            if url and urllib.parse.urlsplit(url).netloc != self.app.host:
                raise OperationError(
                    f"IoT Central {self.app.host}: nextLink points at another host; not followed"
                )
        return items

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            context = ssl.create_default_context()
            if self.app.trust is not None:
                try:
                    context.load_verify_locations(cafile=str(self.app.trust))
                except (OSError, ssl.SSLError) as error:
                    raise InputError(
                        f"--trust: cannot use {self.app.trust} as a CA certificate: "
                        f"{getattr(error, 'strerror', None) or error}"
                    ) from None
            self._context = context
        return self._context

    def _send(self, method: str, url: str, body: Any, what: str | None, missing_ok: bool = False) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(url, data=data, method=method)
            request.add_header("Authorization", self.auth.header())
            request.add_header("Accept", "application/json")
            request.add_header("User-Agent", f"iotcprov/{__version__}")
            if data is not None:
                request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(
                    request, timeout=self.timeout, context=self._ssl_context()
                ) as answer:
                    raw = answer.read()
                    return json.loads(raw) if raw.strip() else None
            except urllib.error.HTTPError as error:
                problem = _service_error(error)
                if problem.status in RETRIED and attempt < self.attempts:
                    self.sleep(_delay(error.headers.get("Retry-After"), attempt))
                    continue
                if problem.status == 404 and missing_ok:
                    raise _Missing from None
                raise self._error(problem, method, what, attempt) from None
            except (urllib.error.URLError, OSError, ValueError) as error:
                raise self._network_error(error) from None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ errors
    def _error(self, problem: ServiceError, method: str, what: str | None, attempts: int) -> Exception:
        host = self.app.host
        said = f" ({problem.code}: {problem.message})" if problem.message else f" ({problem.code})"
        subject = what or "the resource"
        if problem.status == 401:
            return InputError(
                f"IoT Central {host}: the token was refused (401{said}); it may be expired, revoked or "
                "for another application: make an API token for this application and give it with "
                "--token-file or IOTCPROV_CENTRAL_TOKEN"
            )
        if problem.status == 403:
            return InputError(
                f"IoT Central {host}: the token's role may not {method} this (403{said}); use a token "
                "with the Administrator role, or ask an administrator to grant the role"
            )
        if problem.status == 404:
            return InputError(
                f"IoT Central {host}: {subject} does not exist (404{said}); check the ID, and --app"
            )
        if problem.status == 409:
            return InputError(f"IoT Central {host}: {subject} conflicts with what exists (409{said})")
        if problem.status == 412:
            return InputError(
                f"IoT Central {host}: {subject} changed since it was read (412{said}); run the command again"
            )
        if problem.status in (400, 422):
            return InputError(
                f"IoT Central {host}: the request for {subject} was refused ({problem.status}{said})"
            )
        if problem.status == 429:
            return OperationError(
                f"IoT Central {host}: still throttled after {attempts} tries (429{said}); the application "
                "allows 20 requests per second across all its callers: wait and run the command again"
            )
        return OperationError(
            f"IoT Central {host}: the service failed ({problem.status}{said}); try again later"
        )

    def _network_error(self, error: Exception) -> Exception:
        reason = getattr(error, "reason", error)
        host = self.app.host
        if isinstance(reason, ssl.SSLCertVerificationError):
            return OperationError(
                f"IoT Central {host}: its TLS certificate is not trusted ({reason.verify_message}); "
                "for the emulator give --trust with its ca_cert file"
            )
        if isinstance(reason, socket.gaierror):
            return InputError(
                f"IoT Central {host}: no such host; check --app (the application's subdomain) or --app-url"
            )
        if isinstance(error, ValueError):
            return OperationError(
                f"IoT Central {host}: the answer is not JSON; is --app-url an IoT Central application?"
            )
        return OperationError(f"IoT Central {host}: unreachable ({reason}); check --app-url and the network")


class _Missing(Exception):
    pass


def _service_error(error: urllib.error.HTTPError) -> ServiceError:
    try:
        body = json.loads(error.read() or b"{}")
    except ValueError:
        body = {}
    detail = body.get("error") if isinstance(body, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    code = str(detail.get("code") or error.headers.get("x-ms-error-code") or error.reason or error.code)
    message = str(detail.get("message") or "")
    message = re.sub(r"\s*Request ID: .*$", "", message).strip().rstrip(".")
    return ServiceError(error.code, code, message[:300], detail.get("requestId"))


def _delay(retry_after: str | None, attempt: int) -> float:
    """Retry-After as seconds or an HTTP date, else exponential backoff (1, 2, 4, ... s)."""
    if retry_after:
        try:
            return min(max(float(retry_after), 0.0), MAX_DELAY)
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(retry_after)
                return min(max(moment.timestamp() - time.time(), 0.0), MAX_DELAY)
            except (TypeError, ValueError):
                pass
    return min(2.0 ** (attempt - 1), MAX_DELAY)
