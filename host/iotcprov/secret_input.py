"""Secrets from an option, a file or an environment variable, so they stay out of shell history.

Every command that takes a key uses this: `--group-key KEY`, `--group-key-file PATH` (`-` reads
stdin) or `IOTCPROV_GROUP_KEY`. Exactly one source must be given; two are refused rather than
silently ranked, so a stale exported variable can never stand in for the key the user meant.
Errors name the source and never contain the secret.

CA key passphrases come from `IOTCPROV_CA_PASSPHRASE` or are typed at the terminal
(`ca_passphrase`, `new_ca_passphrase`), never from the command line.
"""

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from iotcprov.errors import InputError
from iotcprov.validation import validate_key

STDIN_PATH = "-"
KEY_TEXT = "the key as base64 text"
CA_PASSPHRASE_ENV = "IOTCPROV_CA_PASSPHRASE"


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
    strip: bool = True,
) -> tuple[str, str]:
    """(secret text, name of the source it came from). strip=False (free text such as a password,
    where spaces count): only a file's final line ending goes."""
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
    if strip:
        text = text.strip()
    elif source == file_field:
        text = text.removesuffix("\n").removesuffix("\r")
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
    strip: bool = True,
) -> str:
    """The secret from exactly one of `value`, the file at `file`, or `env_var`; whitespace stripped
    (strip=False: kept as given, but for a file's final line ending).

    `field` is the option name (e.g. "--group-key"); its file option is `field` + "-file".
    `holds` says in error messages what the secret should be.
    """
    return _resolve(value, file, env_var, field, environ, holds, strip)[0]


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
    is_key: bool = True  # a base64 key (False: free text, such as a password, kept as given)

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

    def on_command_line(self, args: argparse.Namespace) -> bool:
        """Was `flag` or `flag`-file given?"""
        return getattr(args, self.dest) is not None or getattr(args, self.file_dest) is not None

    def given(self, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> bool:
        """Was the secret given at all: on the command line or by its environment variable?"""
        environ = os.environ if environ is None else environ
        return self.on_command_line(args) or bool(environ.get(self.env_var))

    def resolve(self, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str:
        """The secret text from parsed `args` or the environment."""
        holds = KEY_TEXT if self.is_key else f"the {self.what}"
        return resolve_secret(
            getattr(args, self.dest), getattr(args, self.file_dest), self.env_var, self.flag, environ, holds,
            strip=self.is_key,  # a password's spaces are part of it
        )

    def resolve_key(self, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str:
        """The key from parsed `args` or the environment, validated as base64 of 16..64 bytes."""
        return resolve_key(
            getattr(args, self.dest), getattr(args, self.file_dest), self.env_var, self.flag, environ
        )


GROUP_KEY = SecretOption("--group-key", "IOTCPROV_GROUP_KEY", "enrollment group key")
DEVICE_KEY = SecretOption("--key", "IOTCPROV_DEVICE_KEY", "device key")


def _prompt(label: str) -> bytes:
    if not sys.stdin.isatty():
        raise InputError(
            f"CA passphrase: set {CA_PASSPHRASE_ENV}; there is no terminal to prompt for the {label}"
        )
    return getpass.getpass(f"{label}: ").encode()


def ca_passphrase(key_file: Path) -> Callable[[], bytes]:
    """The passphrase of an existing CA key, fetched only when called (when the key turns out to be
    encrypted): $IOTCPROV_CA_PASSPHRASE, else typed at the terminal."""

    def get() -> bytes:
        return os.environ.get(CA_PASSPHRASE_ENV, "").encode() or _prompt(f"passphrase of CA key {key_file}")

    return get


def new_ca_passphrase(key_file: Path, check: Callable[[bytes], object]) -> Callable[[], bytes]:
    """A passphrase for a new CA key: $IOTCPROV_CA_PASSPHRASE, else typed twice at the terminal;
    `check` refuses a weak one (InputError) before it is asked for again."""

    def get() -> bytes:
        from_env = os.environ.get(CA_PASSPHRASE_ENV, "").encode()
        if from_env:
            return from_env
        first = _prompt(f"new passphrase for {key_file}")
        check(first)
        if _prompt("repeat the passphrase") != first:
            raise InputError("CA passphrase: the two entries differ; run the command again")
        return first

    return get
