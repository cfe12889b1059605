"""Secrets from an option, a file or an environment variable, so they stay out of shell history.

Every command that takes a key uses this: `--group-key KEY`, `--group-key-file PATH` (`-` reads
stdin) or `IOTCPROV_GROUP_KEY`. Exactly one source must be given; two are refused rather than
silently ranked, so a stale exported variable can never stand in for the key the user meant.
Errors name the source and never contain the secret.
"""

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from iotcprov.errors import InputError
from iotcprov.validation import validate_key

STDIN_PATH = "-"
KEY_TEXT = "the key as base64 text"


def _read_secret_file(path: str, field: str, holds: str) -> str:
    if path == STDIN_PATH:
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"{field}: cannot read {path!r}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InputError(f"{field}: {path!r} is not text; it should hold {holds}") from None


def _resolve(
    value: str | None,
    file: str | None,
    env_var: str,
    field: str,
    environ: Mapping[str, str] | None,
    holds: str = KEY_TEXT,
) -> tuple[str, str]:
    """(secret text, name of the source it came from)."""
    environ = os.environ if environ is None else environ
    file_field = f"{field}-file"
    sources = []
    if value is not None:
        sources.append(field)
    if file is not None:
        sources.append(file_field)
    if environ.get(env_var):
        sources.append(env_var)
    if not sources:
        raise InputError(f"{field}: missing; give {field}, {file_field} PATH, or set {env_var}")
    if len(sources) > 1:
        raise InputError(f"{field}: given by both {sources[0]} and {sources[1]}; give exactly one source")
    source = sources[0]
    if source == field:
        text = value or ""
    elif source == file_field:
        text = _read_secret_file(file or "", file_field, holds)
    else:
        text = environ[env_var]
    text = text.strip()
    if not text:
        raise InputError(f"{source}: empty; it must hold {holds}")
    return text, source


def resolve_secret(
    value: str | None,
    file: str | None,
    env_var: str,
    field: str,
    environ: Mapping[str, str] | None = None,
    holds: str = KEY_TEXT,
) -> str:
    """The secret from exactly one of `value`, the file at `file`, or `env_var`; whitespace stripped.

    `field` is the option name (e.g. "--group-key"); its file option is `field` + "-file".
    `holds` says in error messages what the secret should be.
    """
    return _resolve(value, file, env_var, field, environ, holds)[0]


def resolve_key(
    value: str | None, file: str | None, env_var: str, field: str, environ: Mapping[str, str] | None = None
) -> str:
    """Like resolve_secret, then checked as a base64 key of 16..64 bytes; errors name the source."""
    text, source = _resolve(value, file, env_var, field, environ)
    validate_key(text, field=source)
    return text


@dataclass(frozen=True)
class SecretOption:
    """An option trio: `flag`, `flag`-file and the environment variable `env_var`."""

    flag: str
    env_var: str
    what: str
    is_key: bool = True  # a base64 key (False: free text, such as a password)

    @property
    def file_flag(self) -> str:
        return f"{self.flag}-file"

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def file_dest(self) -> str:
        return f"{self.dest}_file"

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add `flag KEY` and `flag-file PATH` to `parser` (neither required: the env var may serve)."""
        parser.add_argument(
            self.flag,
            dest=self.dest,
            metavar="KEY" if self.is_key else "TEXT",
            help=f"{self.what}{' as base64' if self.is_key else ''} (or use {self.file_flag} or "
            f"{self.env_var} to keep it out of shell history)",
        )
        parser.add_argument(
            self.file_flag,
            dest=self.file_dest,
            metavar="PATH",
            help=f"read the {self.what} from this file ('-' for stdin)",
        )

    def resolve(self, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str:
        """The secret text from parsed `args` or the environment."""
        holds = KEY_TEXT if self.is_key else f"the {self.what}"
        return resolve_secret(
            getattr(args, self.dest), getattr(args, self.file_dest), self.env_var, self.flag, environ, holds
        )

    def resolve_key(self, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str:
        """The key from parsed `args` or the environment, validated as base64 of 16..64 bytes."""
        return resolve_key(
            getattr(args, self.dest), getattr(args, self.file_dest), self.env_var, self.flag, environ
        )


GROUP_KEY = SecretOption("--group-key", "IOTCPROV_GROUP_KEY", "enrollment group key")
DEVICE_KEY = SecretOption("--key", "IOTCPROV_DEVICE_KEY", "device key")
