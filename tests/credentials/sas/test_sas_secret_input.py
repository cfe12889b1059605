"""iotcprov.secret_input: a key from exactly one of option, file or environment variable."""

import argparse
import base64
import os

import pytest
from iotcprov.errors import InputError
from iotcprov.secret_input import GROUP_KEY, SecretOption, resolve_key, resolve_secret

KEY = base64.b64encode(bytes(range(16, 48))).decode()
ENV = "IOTCPROV_TEST_SECRET"


def error_of(call) -> str:
    with pytest.raises(InputError) as caught:
        call()
    message = str(caught.value)
    assert KEY not in message and "\n" not in message
    return message


def test_value_file_and_env_each_work(tmp_path):
    key_file = tmp_path / "group.key"
    key_file.write_text(f"{KEY}\n", encoding="utf-8")
    assert resolve_secret(KEY, None, ENV, "--group-key", environ={}) == KEY
    assert resolve_secret(None, str(key_file), ENV, "--group-key", environ={}) == KEY
    assert resolve_secret(None, None, ENV, "--group-key", environ={ENV: f" {KEY} "}) == KEY


def test_no_source_names_all_three():
    message = error_of(lambda: resolve_secret(None, None, ENV, "--group-key", environ={}))
    assert message == f"--group-key: missing; give --group-key, --group-key-file PATH, or set {ENV}"


@pytest.mark.parametrize(
    ("value", "use_file", "environ", "expected"),
    [
        (KEY, True, {}, "given by both --group-key and --group-key-file"),
        (KEY, False, {ENV: KEY}, f"given by both --group-key and {ENV}"),
        (None, True, {ENV: KEY}, f"given by both --group-key-file and {ENV}"),
    ],
)
def test_two_sources_are_refused(tmp_path, value, use_file, environ, expected):
    key_file = tmp_path / "group.key"
    key_file.write_text(KEY, encoding="utf-8")
    file = str(key_file) if use_file else None
    assert expected in error_of(lambda: resolve_secret(value, file, ENV, "--group-key", environ=environ))


def test_empty_env_var_counts_as_unset():
    assert resolve_secret(KEY, None, ENV, "--key", environ={ENV: ""}) == KEY


def test_errors_name_the_source_the_key_came_from(tmp_path):
    bad_file = tmp_path / "bad.key"
    bad_file.write_text("not base64!\n", encoding="utf-8")
    assert error_of(lambda: resolve_key(None, str(bad_file), ENV, "--key", environ={})).startswith(
        "--key-file: not valid base64"
    )
    short = base64.b64encode(bytes(8)).decode()
    assert error_of(lambda: resolve_key(None, None, ENV, "--key", environ={ENV: short})).startswith(
        f"{ENV}: decodes to 8 bytes"
    )
    empty = tmp_path / "empty.key"
    empty.write_text("\n", encoding="utf-8")
    assert error_of(lambda: resolve_key(None, str(empty), ENV, "--key", environ={})) == (
        "--key-file: empty; it must hold the key as base64 text"
    )
    assert "cannot read" in error_of(
        lambda: resolve_key(None, str(tmp_path / "nope"), ENV, "--key", environ={})
    )


def test_argparse_helper_adds_the_pair():
    parser = argparse.ArgumentParser()
    GROUP_KEY.add_to(parser)
    args = parser.parse_args(["--group-key", KEY])
    assert GROUP_KEY.resolve_key(args, environ={}) == KEY
    args = parser.parse_args([])
    assert GROUP_KEY.resolve_key(args, environ={"IOTCPROV_GROUP_KEY": KEY}) == KEY
    custom = SecretOption("--device-key", "IOTCPROV_DEVICE_KEY", "device key")
    assert (custom.file_flag, custom.dest, custom.file_dest) == (
        "--device-key-file",
        "device_key",
        "device_key_file",
    )


def test_default_environ_is_the_process_environment(monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    assert os.environ[ENV] == KEY
    assert resolve_secret(None, None, ENV, "--key") == KEY


def test_a_password_keeps_its_spaces_and_loses_only_the_files_line_ending(tmp_path):
    """A Wi-Fi password may begin or end with a space: the one the access point knows is kept."""
    option = SecretOption("--wifi-password", ENV, "Wi-Fi password", is_key=False)
    parser = argparse.ArgumentParser()
    option.add_to(parser)
    for written, expected in ((" pass phrase \n", " pass phrase "), ("pw \r\n", "pw "), ("pw  ", "pw  ")):
        password_file = tmp_path / "wifi.txt"
        password_file.write_bytes(written.encode())
        args = parser.parse_args(["--wifi-password-file", str(password_file)])
        assert option.resolve(args, environ={}) == expected
    assert option.resolve(parser.parse_args(["--wifi-password", " x "]), environ={}) == " x "
    assert option.resolve(parser.parse_args([]), environ={ENV: "y "}) == "y "


def test_a_key_file_with_two_lines_says_so(tmp_path):
    key_file = tmp_path / "group.key"
    key_file.write_text(f"{KEY}\n{KEY}\n")  # primary and secondary pasted together
    message = error_of(lambda: resolve_key(None, str(key_file), ENV, "--group-key", environ={}))
    assert message == (
        "--group-key-file: holds 2 lines; give one key, alone on one line, as IoT Central shows it"
    )
