"""Every `iotcprov ...` command in the README's shell blocks parses with the real parser."""

import re
import shlex
from pathlib import Path

import pytest
from iotcprov.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
# Values for the shell variables the README uses in its commands.
SAMPLE_VARIABLES = {"SCOPE": "0ne00ABCDEF", "CODE": "4C6A2F0B9E7D11AA"}
SEPARATORS = {"&&", "||", "|", ";", "&"}
REDIRECTIONS = {">", ">>", "<", "2>", "&>"}


def shell_commands(markdown: str) -> list[str]:
    """The command lines of ```sh blocks, continuation lines joined, comments dropped."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, re.DOTALL):
        lines += [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return lines


def iotcprov_invocations(line: str) -> list[list[str]]:
    """The argument lists of each `iotcprov` command in one shell line."""
    expanded = re.sub(r"\$(\w+)", lambda m: SAMPLE_VARIABLES[m[1]], line)
    lexer = shlex.shlex(expanded, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    found, current, skip_next, redirected = [], [], False, False
    for token in [*lexer, ";"]:
        if skip_next:
            skip_next = False
        elif token in REDIRECTIONS:
            skip_next = redirected = True
        elif token in SEPARATORS:
            if current and current[0] == "iotcprov":
                found.append(current[1:])
            current, redirected = [], False
        elif not redirected:
            current.append(token)
    return found


INVOCATIONS = [args for line in shell_commands(README.read_text()) for args in iotcprov_invocations(line)]


def test_the_readme_shows_commands_of_every_kind():
    used = {args[0] for args in INVOCATIONS}
    assert {"demo", "provision", "deploy", "monitor", "certs", "keys", "emulator", "factory"} <= used


@pytest.mark.parametrize("args", INVOCATIONS, ids=[" ".join(a)[:60] for a in INVOCATIONS])
def test_readme_command_parses(args, capsys):
    try:
        build_parser().parse_args(args)
    except SystemExit as stop:
        pytest.fail(f"iotcprov {' '.join(args)}: {capsys.readouterr().err.strip()} (exit {stop.code})")


def test_a_wrong_option_would_be_caught():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["provision", "--port", "/dev/ttyUSB0", "--scope", "x"])
