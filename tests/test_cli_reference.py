"""docs/cli.md is generated from the argparse definitions and must match them."""

import subprocess
import sys
from pathlib import Path

import pytest
from iotcprov.cli import build_parser
from iotcprov.cli.reference import render, usage, walk

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
REGENERATE = "python -m iotcprov.cli.reference > docs/cli.md"


def _subparser(parser, *names):
    for prog_parser, _summary in walk(parser):
        if prog_parser.prog == " ".join(["iotcprov", *names]):
            return prog_parser
    raise AssertionError(f"no command {' '.join(names)}")


def test_docs_cli_md_matches_the_command_definitions():
    assert DOCS.read_text() == render(), f"docs/cli.md is out of date; regenerate it: {REGENERATE}"


def test_every_command_and_option_is_in_the_reference():
    text = DOCS.read_text()
    for parser, _summary in walk(build_parser()):
        assert f"`{parser.prog}`" in text
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in text, f"{parser.prog} {option} missing from docs/cli.md"


def test_an_added_option_changes_the_reference():
    parser = build_parser()
    _subparser(parser, "demo").add_argument("--brand-new", metavar="N", help="an option nobody documented")
    text = render(parser)
    assert text != DOCS.read_text()
    assert "| `--brand-new N` | an option nobody documented |" in text


def test_a_changed_default_or_requirement_changes_the_reference():
    parser = build_parser()
    deploy = _subparser(parser, "deploy")
    port = next(action for action in deploy._actions if "--port" in action.option_strings)
    port.required = False
    assert "[--port PORT]" in usage(deploy)
    assert render(parser) != DOCS.read_text()


@pytest.mark.smoke
def test_the_generator_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "iotcprov.cli.reference"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == DOCS.read_text()
