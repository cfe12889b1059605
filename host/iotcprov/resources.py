"""Where the firmware files and board profiles are, installed or in a source checkout."""

import json
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_DIR = _PACKAGE_DIR.parent.parent  # host/iotcprov -> repository root


def _data_dir(name: str) -> Path:
    packaged = _PACKAGE_DIR / name  # a wheel install carries iotcprov/firmware, iotcprov/boards
    if packaged.is_dir():
        return packaged
    return _CHECKOUT_DIR / name  # editable install: the repository's own folders


def firmware_dir() -> Path:
    """The folder holding the board firmware (the `iotc` package and the example main.py)."""
    return _data_dir("firmware")


def boards_dir() -> Path:
    """The folder holding the board profiles (one JSON file per board)."""
    return _data_dir("boards")


def board_names() -> list[str]:
    return sorted(p.stem for p in boards_dir().glob("*.json"))


def load_board_profile(name: str) -> dict:
    """The profile of board `name` (one of `board_names()`: esp32, esp32s3, esp32c3, ..., virtual)."""
    from iotcprov.errors import InputError

    path = boards_dir() / f"{name}.json"
    if not path.is_file():
        raise InputError(f"--board: unknown board {name!r}; choose one of {', '.join(board_names())}")
    return json.loads(path.read_text(encoding="utf-8"))
