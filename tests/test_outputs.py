"""iotcprov.outputs: a command's files are all written, or none."""

import os
import stat
from pathlib import Path

import pytest
from iotcprov.errors import InputError, OperationError
from iotcprov.outputs import OutputFile, write_outputs


def listing(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_writes_all_files_with_secret_ones_0600(tmp_path: Path):
    folder = tmp_path / "a"
    files = [OutputFile(folder / "cert.pem", b"cert"), OutputFile(folder / "key.pem", b"k", secret=True)]
    previous = os.umask(0o022)  # a permissive umask must not loosen the key's mode
    try:
        assert write_outputs(files, force=False) == [item.path for item in files]
    finally:
        os.umask(previous)
    assert (tmp_path / "a/key.pem").read_bytes() == b"k"
    assert stat.S_IMODE((tmp_path / "a/key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a/cert.pem").stat().st_mode) == 0o644
    assert listing(tmp_path) == ["a", "a/cert.pem", "a/key.pem"]  # no temporaries left


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path: Path):
    files = [
        OutputFile(tmp_path / "new/sub/first.pem", b"1"),
        OutputFile(tmp_path / "new/sub" / ("x" * 300), b"2"),  # name too long: fails at the OS
    ]
    with pytest.raises(OperationError, match="--out: cannot write"):
        write_outputs(files, force=False)
    assert listing(tmp_path) == []  # neither the first file, its temporary, nor the new folders


def test_existing_targets_need_force(tmp_path: Path):
    (tmp_path / "k.pem").write_bytes(b"old")
    files = [OutputFile(tmp_path / "c.pem", b"new c"), OutputFile(tmp_path / "k.pem", b"new k", secret=True)]
    with pytest.raises(InputError, match="k.pem already exists; use --force"):
        write_outputs(files, force=False)
    assert listing(tmp_path) == ["k.pem"] and (tmp_path / "k.pem").read_bytes() == b"old"
    write_outputs(files, force=True)
    assert (tmp_path / "k.pem").read_bytes() == b"new k"


def test_duplicates_and_folders_are_refused(tmp_path: Path):
    with pytest.raises(InputError, match="written twice"):
        write_outputs([OutputFile(tmp_path / "a", b""), OutputFile(tmp_path / "a", b"")], force=True)
    (tmp_path / "blocker").write_bytes(b"")
    with pytest.raises(InputError, match="is a file, not a folder"):
        write_outputs([OutputFile(tmp_path / "blocker/x.pem", b"")], force=True)
    with pytest.raises(InputError, match="is a folder"):
        write_outputs([OutputFile(tmp_path, b"")], force=True)
