"""Fixtures for IoT Central API tests: an emulator serving the API and a token for it, CLI options."""

from __future__ import annotations

import pytest

from tests.board.conftest import board, make_board, run_cli  # noqa: F401 - fixtures


@pytest.fixture
def central(tmp_path):
    """A running emulator (its own process); `central.token_file` holds an API token for it."""
    from iotcprov.emulator import Emulator

    with Emulator.running(tmp_path / "emulator") as emu:
        emu.token_file = tmp_path / "central.token"
        out = run_cli(
            "emulator", "--data", str(emu.data_dir), "token", "create", "--out", str(emu.token_file)
        )
        assert out.returncode == 0, out.stderr
        yield emu


def app_args(emu) -> list[str]:
    """`central ...` options naming the emulator's application, its CA and the token file."""
    return [
        "--app-url", emu.info["central_url"], "--trust", emu.info["ca_cert"],
        "--token-file", str(emu.token_file),
    ]  # fmt: skip


def central_cli(emu, *args: str, env: dict | None = None):
    """`iotcprov central ARGS... --app-url ... --json` against the emulator."""
    return run_cli("central", *args, *app_args(emu), env=env)
