"""The audit log: one JSON object per line, appended and flushed to disk as things happen.

It says who got what and when: run start and end (settings without secrets), each board seen,
each ID claimed, each certificate issued (thumbprint), each stage, each outcome with its reason.
Several processes may append to one log: each event is one `write` of a whole line on a file
opened for appending.
"""

import json
import os
import threading
from pathlib import Path

from iotcprov.errors import InputError, OperationError
from iotcprov.factory.manifest import now_utc

AUDIT_SUFFIX = ".audit.jsonl"


def default_audit_path(manifest: Path) -> Path:
    """`line3.sqlite` -> `line3.audit.jsonl`, beside the manifest."""
    return manifest.with_name(manifest.stem + AUDIT_SUFFIX)


def check_audit_path(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"--audit: {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise InputError(f"--audit: the folder {path.parent} does not exist; create it first")


class AuditLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        check_audit_path(self.path)
        try:
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o644
            )
        except OSError as error:
            raise InputError(f"--audit: cannot open {self.path}: {error.strerror}") from None
        self._lock = threading.Lock()

    def write(self, event: str, **fields: object) -> None:
        record = {"time": now_utc(), "event": event, **{k: v for k, v in fields.items() if v is not None}}
        line = (json.dumps(record, sort_keys=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:  # closed: the run was abandoned (a second Ctrl-C) and the process is leaving
                return
            try:
                os.write(self._fd, line)
                os.fsync(self._fd)
            except OSError as error:
                raise OperationError(f"--audit: cannot write {self.path}: {error.strerror}") from None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_audit(path: str | Path) -> list[dict]:
    """Every event of an audit log (for reports and tests); a torn last line is skipped."""
    events = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events
