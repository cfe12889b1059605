"""CA passphrases typed at a real terminal (a pty): confirmation, no echo, mismatch refused."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from iotcprov.credentials import pki, pki_files

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="drives a Linux pty")


class Terminal:
    """The CLI run with a pty as its controlling terminal, so getpass talks to it."""

    def __init__(self, cwd: Path, *args: str) -> None:
        import fcntl
        import termios

        env = {k: v for k, v in os.environ.items() if k != pki_files.PASSPHRASE_ENV}
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iotcprov", *args], cwd=cwd, env=env,
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )  # fmt: skip
        os.close(slave)
        self.seen = b""

    def expect(self, text: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} in {self.seen!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                assert chunk, f"terminal closed before {text!r}; saw {self.seen!r}"
                self.seen += chunk

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def finish(self) -> int:
        code = self.proc.wait(60)
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        os.close(self.master)
        return code


def test_new_ca_key_passphrase_is_asked_twice_without_echo(tmp_path: Path):
    term = Terminal(tmp_path, "certs", "root", "--out", "ca")
    term.expect(b"new passphrase for ca/root.key.pem: ")
    term.type("typed-at-terminal")
    term.expect(b"repeat the passphrase: ")
    term.type("typed-at-terminal")
    assert term.finish() == 0
    assert b"typed-at-terminal" not in term.seen  # getpass turned echo off
    key = pki.load_private_key((tmp_path / "ca/root.key.pem").read_bytes(), b"typed-at-terminal")
    assert pki.key_matches_cert(key, pki.load_certificate((tmp_path / "ca/root.pem").read_bytes()))

    # the encrypted key is then asked for once when it signs
    term = Terminal(tmp_path, "certs", "device", "--ca-cert", "ca/root.pem", "--ca-key", "ca/root.key.pem",
                    "--device-id", "tty-1", "--out", "dev")  # fmt: skip
    term.expect(b"passphrase of CA key ca/root.key.pem: ")
    term.type("typed-at-terminal")
    assert term.finish() == 0
    assert (tmp_path / "dev/tty-1.pem").exists()


def test_mismatched_confirmation_writes_nothing(tmp_path: Path):
    term = Terminal(tmp_path, "certs", "root", "--out", "ca")
    term.expect(b"new passphrase for ca/root.key.pem: ")
    term.type("first-passphrase")
    term.expect(b"repeat the passphrase: ")
    term.type("other-passphrase")
    assert term.finish() == 2
    assert b"iotcprov: error: CA passphrase: the two entries differ" in term.seen
    assert list(tmp_path.iterdir()) == []
