"""Draw the firmware's connection state machine from its transition table (policy.TABLE in
firmware/iotc/policy.py) as a mermaid diagram, and keep firmware/README.md's copy of it current.

    python tools/fw_state_diagram.py           # print the README block
    python tools/fw_state_diagram.py --write   # replace it in firmware/README.md

tests/firmware/test_fw_diagram.py fails when the README's block differs from the table's.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "firmware" / "README.md"
BEGIN = "<!-- state diagram: generated from policy.TABLE by tools/fw_state_diagram.py --write -->"
END = "<!-- end of state diagram -->"


def edges(table: str) -> list[tuple[str, str, str]]:
    """Every (stage, outcome, next stage) of the table: a line lists an outcome's next stages."""
    found = []
    for line in table.strip().splitlines():
        source, outcome, *targets = line.split()
        found += [(source, outcome, target) for target in targets]
    return found


def load_table() -> str:
    sys.path.insert(0, str(ROOT / "firmware"))
    try:
        from iotc import policy
    finally:
        sys.path.pop(0)
    return policy.TABLE


def block(table: str) -> str:
    """The README block: the diagram, then the edges it cannot draw."""
    arrows: dict[tuple[str, str], list[str]] = {}
    extra = []
    for source, outcome, target in edges(table):
        if source == "*" or source == target == "idle":
            extra.append(f"`{outcome}` from {'any stage' if source == '*' else source} goes to {target}")
            continue
        node = {"idle": "[*]"}
        arrows.setdefault((node.get(source, source), node.get(target, target)), []).append(outcome)
    lines = [BEGIN, "", "```mermaid", "stateDiagram-v2"]
    for (source, target), outcomes in arrows.items():
        lines.append(f"    {source} --> {target} : {', '.join(outcomes)}")
    lines += ["```", ""]
    if extra:
        idle = "`[*]` is idle (not started, or stopped for good)"
        lines += ["Not drawn: " + "; ".join(extra) + ". " + idle + ".", ""]
    lines.append(END)
    return "\n".join(lines)


def replace(text: str, new_block: str) -> str:
    start = text.index(BEGIN)
    end = text.index(END) + len(END)
    return text[:start] + new_block + text[end:]


def current(text: str) -> str:
    return text[text.index(BEGIN) : text.index(END) + len(END)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the block in firmware/README.md")
    args = parser.parse_args()
    new_block = block(load_table())
    if args.write:
        README.write_text(replace(README.read_text(encoding="utf-8"), new_block), encoding="utf-8")
    else:
        print(new_block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
