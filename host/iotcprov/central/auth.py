"""Credentials for IoT Central's API: an API token (file or environment) or Microsoft Entra ID.

An API token is sent exactly as IoT Central issued it (`SharedAccessSignature sr=...`). It is read
from a file or `IOTCPROV_CENTRAL_TOKEN`, never from the command line (shell history, process
lists). Entra ID bearer tokens come from azure-identity (`az login`, a service principal's
environment variables, a managed identity), an optional extra: `pip install 'iotcprov[entra]'`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotcprov.errors import InputError, OperationError

TOKEN_ENV = "IOTCPROV_CENTRAL_TOKEN"
ENTRA_SCOPE = "https://apps.azureiotcentral.com/.default"
_TOKEN_PREFIX = "SharedAccessSignature "


@dataclass(frozen=True)
class ApiToken:
    token: str = field(repr=False)
    source: str = ""

    def header(self) -> str:
        return self.token


@dataclass
class EntraToken:
    """A bearer token from azure-identity's DefaultAzureCredential, renewed before it expires."""

    credential: Any = field(default=None, repr=False)
    _token: Any = field(default=None, init=False, repr=False)

    def header(self) -> str:
        if self._token is None or self._token.expires_on - 300 < time.time():
            if self.credential is None:
                self.credential = _default_credential()
            try:
                self._token = self.credential.get_token(ENTRA_SCOPE)
            except Exception as error:  # azure-identity raises its own ClientAuthenticationError
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise OperationError(
                    f"--entra: no Microsoft Entra token for IoT Central ({first[:200]}); "
                    "run `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET"
                ) from None
        return f"Bearer {self._token.token}"


def _default_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise InputError(
            "--entra: azure-identity is not installed; install it with: pip install 'iotcprov[entra]' "
            f"(or use an API token: --token-file FILE or {TOKEN_ENV})"
        ) from None
    return DefaultAzureCredential()


def check_token(text: str, source: str) -> ApiToken:
    token = text.strip()
    if not token.startswith(_TOKEN_PREFIX) or "sig=" not in token:
        raise InputError(
            f"{source}: not an IoT Central API token; it starts 'SharedAccessSignature sr=' as the "
            "application showed it when it was made (whole, on one line)"
        )
    return ApiToken(token, source)


def resolve_auth(
    token_file: str | None,
    entra: bool,
    environ: Mapping[str, str] | None = None,
    field_name: str = "--token-file",
) -> ApiToken | EntraToken:
    """Exactly one of: the token file, $IOTCPROV_CENTRAL_TOKEN, or Entra ID (`entra`)."""
    environ = os.environ if environ is None else environ
    sources = [name for name, given in ((field_name, token_file is not None), ("--entra", entra)) if given]
    if not sources and environ.get(TOKEN_ENV):
        sources = [TOKEN_ENV]
    if len(sources) > 1:
        raise InputError(f"{field_name}: give one credential, not both {sources[0]} and {sources[1]}")
    if not sources:
        raise InputError(
            f"{field_name}: no IoT Central credential; give {field_name} FILE (an API token), "
            f"set {TOKEN_ENV}, or use --entra (Microsoft Entra ID, e.g. after az login)"
        )
    if sources == ["--entra"]:
        return EntraToken()
    if sources == [TOKEN_ENV]:
        return check_token(environ[TOKEN_ENV], TOKEN_ENV)
    assert token_file is not None
    try:
        text = Path(token_file).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"{field_name}: cannot read {token_file!r}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InputError(f"{field_name}: {token_file!r} is not text; it should hold the API token") from None
    return check_token(text, field_name)
