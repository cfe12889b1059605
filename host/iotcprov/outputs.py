"""Writing a command's output files all at once, or not at all.

A command first builds every output in memory as `OutputFile`s, checks them with
`check_outputs` (no overwrite without force), and only then calls `write_outputs`, which
writes each file to a temporary name beside its target and renames them into place once
every one of them was written. Secret files are created 0600 by `os.open` itself, so they
are never readable by others, not even for a moment.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from iotcprov.errors import InputError, OperationError

SECRET_MODE = 0o600
PUBLIC_MODE = 0o644


@dataclass(frozen=True)
class OutputFile:
    path: Path
    data: bytes = field(repr=False)  # may be a private key
    secret: bool = False  # private keys: mode 0600

    @property
    def mode(self) -> int:
        return SECRET_MODE if self.secret else PUBLIC_MODE


def check_outputs(files: Sequence[OutputFile], *, force: bool, field: str = "--out") -> None:
    """Refuse duplicates, targets that are folders, and existing files unless `force`."""
    seen: set[Path] = set()
    for item in files:
        target = item.path.absolute()
        if target in seen:
            raise InputError(f"{field}: {item.path} would be written twice; give each output a distinct name")
        seen.add(target)
        if item.path.is_dir():
            raise InputError(f"{field}: {item.path} is a folder; give a file name or another folder")
        for parent in item.path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise InputError(f"{field}: {parent} is a file, not a folder; choose another --out")
                break
    existing = [item.path for item in files if item.path.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise InputError(
            f"{field}: {existing[0]}{more} already exists; use --force to replace it or choose another folder"
        )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_folders(files: Sequence[OutputFile]) -> list[Path]:
    """Create missing parent folders; return the ones created, outermost first."""
    created: list[Path] = []
    for item in files:
        missing = [parent for parent in item.path.parents if not parent.exists()]
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
    return created


def write_outputs(files: Sequence[OutputFile], *, force: bool, field: str = "--out") -> list[Path]:
    """Write every file (temp + rename); on a failure no target is created or changed.

    (A failing rename after others succeeded, e.g. a disk pulled mid-way, is the one case
    that can leave some targets new and some old; each single file is still whole.)
    """
    check_outputs(files, force=force, field=field)
    temps: list[tuple[Path, OutputFile]] = []
    created: list[Path] = []
    done = False
    try:
        created = _make_folders(files)
        for item in files:
            temp = item.path.with_name(f".{item.path.name}.{secrets.token_hex(4)}.tmp")
            _write_new(temp, item.data, item.mode)
            temps.append((temp, item))
        for _, item in temps:
            if not force and item.path.exists():  # appeared since the check: never clobber it
                raise InputError(f"{field}: {item.path} appeared meanwhile; use --force to replace it")
        for temp, item in temps:
            os.replace(temp, item.path)
        done = True
    except OSError as error:
        where = error.filename or "output"
        raise OperationError(f"{field}: cannot write {where}: {error.strerror}") from None
    finally:
        for temp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        if not done:
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()
    return [item.path for item in files]
