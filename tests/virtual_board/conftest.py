"""Fixtures for virtual-board tests: boards in pytest's tmp_path, unthrottled."""

import pytest
from iotcprov.virtual_board import MicroPythonMissing, VirtualBoard


@pytest.fixture
def board_dir(tmp_path):
    path = tmp_path / "board"
    path.mkdir()
    return path


@pytest.fixture
def make_board(tmp_path, board_dir):
    """Start a board (keyword arguments as VirtualBoard); stopped at the end of the test."""
    boards = []

    def start(**kwargs):
        kwargs.setdefault("directory", board_dir)
        kwargs.setdefault("state_directory", tmp_path / f"state-{len(boards)}")
        try:
            board = VirtualBoard(**kwargs)
        except MicroPythonMissing as missing:
            pytest.skip(str(missing))
        boards.append(board)
        return board.start()

    yield start
    for board in boards:
        board.stop()


@pytest.fixture
def board(make_board):
    return make_board()
