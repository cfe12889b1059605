"""Deploy sends the files it writes as one zlib stream that the board expands with
`deflate.DeflateIO` (iotcprov.board.bundle), on the real MicroPython unix port behind the virtual
board: the files are byte-identical to what was built and verified by the board's SHA-256; a board
without `deflate` gets them file by file, plain."""

import hashlib

import pytest
from iotcprov.board import bundle, deploy
from iotcprov.board.connection import open_board
from iotcprov.errors import OperationError

from tests.board.conftest import board_files


def built(session) -> dict[str, bytes]:
    return deploy.build_deployment(session.facts().mpy_version, main=True)[0]


def test_compressed_deploy_is_byte_identical(board):
    with open_board(board.port) as session:
        assert session.facts().has_deflate
        files = built(session)
        before = session.bytes_sent
        result = deploy.deploy_session(session, main=True)
        sent = session.bytes_sent - before
    assert sorted(result.written) == sorted(files)
    on_board = board_files(board.directory)
    assert {path: on_board[path] for path in files} == files
    assert bundle.STAGING not in on_board  # expanded, then removed
    assert sent < sum(len(data) for data in files.values())  # compressed: fewer bytes than the files
    packed, _ = bundle.pack(files)
    assert sent < len(packed) * 4 // 3  # and raw: fewer than the stream in base64


def test_raw_bytes_arrive_intact_through_a_throttled_line(make_board):
    board = make_board(baud=115200)
    data = bytes(range(256)) * 40 + b"\x03\x04\r\n\x06" * 50  # Ctrl-C, Ctrl-D, line ends, ACK
    data += b"\x10" * 300 + b"x" + b"\x03" * 300  # escapes of either parity: one ends a chunk
    with open_board(board.port) as session:
        before = session.bytes_sent
        session.send_raw("/raw.bin", data)
        escapes = data.count(b"\x03") + data.count(b"\x10")
        assert session.bytes_sent - before < len(data) + escapes + 700  # the bytes, and the receiver
        assert session.eval("1+1") == 2  # the REPL is usable afterwards
    assert (board.directory / "raw.bin").read_bytes() == data


class HostGone(Exception):
    """The host side of a transfer dies: its process killed, its PC crashed, its cable pulled."""


def test_a_host_gone_mid_transfer_leaves_the_board_answering(make_board):
    """A host that stops half way through a raw transfer leaves the board in the receiver; the next
    connection's Ctrl-C must still reach it (a factory PC killed mid-deploy), without a reset."""
    board = make_board(baud=115200)
    data = bytes(range(256)) * 40

    def gone_half_way(done: int, total: int) -> None:
        if done >= total // 2:
            raise HostGone

    session = open_board(board.port)
    with pytest.raises(HostGone):
        session.send_raw("/raw.bin", data, progress=gone_half_way)
    session.abandon()  # the port closes without a word to the board, as when the process dies
    with open_board(board.port) as again:
        assert again.eval("1+1") == 2
        again.send_raw("/raw.bin", data)
    assert (board.directory / "raw.bin").read_bytes() == data


def test_a_raw_write_the_board_refuses_names_its_error(board):
    with open_board(board.port) as session:
        with pytest.raises(OperationError, match="the board reported OSError"):
            session.send_raw("/no/such/folder/raw.bin", b"data")
        assert session.eval("1+1") == 2


def test_a_changed_file_travels_alone(board):
    deploy.deploy(board.port, main=True)
    (board.directory / "main.py").write_bytes(b"# edited on the board\n")
    result = deploy.deploy(board.port, main=True)
    assert result.written == ["/main.py"]
    assert board_files(board.directory)["/main.py"] == deploy.build_deployment(None, main=True)[0]["/main.py"]


def test_without_deflate_files_go_plain_and_verify(board):
    with open_board(board.port) as session:
        session.exec("deflate=None")  # as a build without the module: the helpers' import failed
        assert not session.facts(refresh=True).has_deflate
        files = built(session)
        before = session.bytes_sent
        result = deploy.deploy_session(session, main=True)
        sent = session.bytes_sent - before
    assert sorted(result.written) == sorted(files)
    on_board = board_files(board.directory)
    assert {path: hashlib.sha256(on_board[path]).digest() for path in files} == {
        path: hashlib.sha256(data).digest() for path, data in files.items()
    }
    assert sent > sum(len(data) for data in files.values())  # base64 of the plain bytes


def test_the_zlib_window_follows_the_boards_free_heap(make_board):
    """A board with room inflates a 32 KB window (a smaller stream); one without gets 4 KB, and
    both expand the firmware byte for byte. The window is in the stream's header: the board
    allocates what the header says."""
    for heap, wbits in ((None, bundle.LARGE_WBITS), ("64k", bundle.SMALL_WBITS)):
        board = make_board(heap=heap)
        with open_board(board.port) as session:
            facts = session.facts()
            assert facts.zlib_wbits == wbits, (heap, facts.free_heap)
            files = built(session)
            deploy.deploy_session(session, main=True)
        on_board = board_files(board.directory)
        assert {path: on_board[path] for path in files} == files
    packed_small, _ = bundle.pack(files, bundle.SMALL_WBITS)
    packed_large, _ = bundle.pack(files, bundle.LARGE_WBITS)
    assert len(packed_large) < len(packed_small)


def test_a_file_expanded_wrong_is_named(board, monkeypatch):
    """The board answers one digest for the whole stream; when it differs from the files sent,
    the session asks for each file's digest to name the one that did not verify."""
    files = {"/x/a.txt": b"alpha" * 50, "/x/b.txt": b"bravo" * 50}
    real_pack = bundle.pack

    def damaged_pack(given, wbits=bundle.SMALL_WBITS):  # the stream carries another b.txt
        return real_pack({**given, "/x/b.txt": b"BRAVO" * 50}, wbits)

    monkeypatch.setattr(bundle, "pack", damaged_pack)
    with open_board(board.port) as session, pytest.raises(OperationError, match=r"/x/b\.txt did not verify"):
        session.write_files(files)
