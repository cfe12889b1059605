"""The CLI reference (docs/cli.md), generated from the argparse definitions:

    python -m iotcprov.cli.reference > docs/cli.md

Usage lines are built here rather than by argparse's formatter, whose wrapping depends on the
terminal width and whose layout changes between Python versions: the same definitions always
give the same text, so tests/test_cli_reference.py can insist that the file matches.
"""

import argparse
from collections.abc import Iterator

from iotcprov.cli import build_parser

HEADER = """\
# CLI reference

Every `iotcprov` command and option, generated from the command definitions by
`python -m iotcprov.cli.reference > docs/cli.md` (a test fails when they differ). `iotcprov COMMAND
--help` says the same on the command line. Conventions (secrets from files or environment
variables, exit codes, `--json`) are in [design.md](design.md#cli-conventions).
"""


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each direct subcommand, in definition order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def walk(parser: argparse.ArgumentParser, summary: str = "") -> Iterator[tuple[argparse.ArgumentParser, str]]:
    """Every parser of the tree, depth first, with its one-line help."""
    yield parser, summary
    for _name, help_text, sub in _subcommands(parser):
        yield from walk(sub, help_text)


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(str(choice) for choice in action.choices) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def _with_args(action: argparse.Action) -> str:
    """`NAME`, `[NAME]`, `NAME [NAME ...]` as the action takes values (nothing for flags)."""
    if action.nargs == 0:
        return ""
    name = _metavar(action)
    if action.nargs == "?":
        return f"[{name}]"
    if action.nargs == "*":
        return f"[{name} ...]"
    if action.nargs == "+":
        return f"{name} [{name} ...]"
    if isinstance(action.nargs, int):
        return " ".join([name] * action.nargs)
    return name


def _documented(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        and not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
    ]


def usage(parser: argparse.ArgumentParser) -> str:
    words = [parser.prog]
    for action in _documented(parser):
        if action.option_strings:
            word = " ".join(filter(None, [action.option_strings[-1], _with_args(action)]))
            words.append(word if action.required else f"[{word}]")
        else:
            words.append(_with_args(action))
    if any(isinstance(action, argparse._SubParsersAction) for action in parser._actions):
        words.append("COMMAND ...")
    return " ".join(words)


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%" in text:
        params = {**vars(action), "prog": "", "default": action.default}
        if action.choices is not None:
            params["choices"] = ", ".join(str(choice) for choice in action.choices)
        text = text % params
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _option_rows(parser: argparse.ArgumentParser) -> list[tuple[str, list[argparse.Action]]]:
    """(group title, its documented actions) in the order `--help` shows them."""
    documented = set(map(id, _documented(parser)))
    rows = []
    for group in parser._action_groups:
        actions = [action for action in group._group_actions if id(action) in documented]
        if not actions:
            continue
        title = group.title or ""
        if title in ("positional arguments",):
            title = "arguments"
        elif title in ("options", "optional arguments"):
            title = "options"
        rows.append((title, actions))
    return rows


def _section(parser: argparse.ArgumentParser, summary: str) -> list[str]:
    depth = parser.prog.count(" ")  # iotcprov 0, iotcprov keys 1, iotcprov keys derive 2, ...
    lines = [f"{'#' * min(max(depth + 1, 2), 4)} `{parser.prog}`", ""]
    if summary:
        lines += [summary[0].upper() + summary[1:] + ("" if summary.endswith(".") else "."), ""]
    if parser.description:
        lines += [parser.description, ""]
    lines += ["```", usage(parser), "```", ""]
    subcommands = list(_subcommands(parser))
    if subcommands:
        lines += ["| command | what it does |", "|---|---|"]
        for _name, help_text, sub in subcommands:
            lines.append(f"| [`{sub.prog}`](#{_anchor(sub.prog)}) | {_cell(help_text)} |")
        lines.append("")
    for title, actions in _option_rows(parser):
        lines += [f"| {title} | |", "|---|---|"]
        for action in actions:
            names = ", ".join(action.option_strings) or _metavar(action)
            value = _with_args(action) if action.option_strings else ""
            flag = f"`{names} {value}`" if value else f"`{names}`"
            text = _help(action)
            if action.required and action.option_strings:
                text = f"required; {text}" if text else "required"
            lines.append(f"| {_cell(flag)} | {_cell(text)} |")
        lines.append("")
    return lines


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """docs/cli.md for `parser` (default: the real `iotcprov` parser)."""
    parser = parser or build_parser()
    lines = [HEADER]
    for sub_parser, summary in walk(parser):
        lines += _section(sub_parser, summary)
    return "\n".join(lines).rstrip("\n") + "\n"


def _anchor(prog: str) -> str:
    """GitHub's heading anchor for "`iotcprov demo`"."""
    return prog.lower().replace(" ", "-")


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
