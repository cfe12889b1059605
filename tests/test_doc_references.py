"""Every reference in the code and the docs points inside the repository: the wire protocol is
docs/protocol.md, the MicroPython release facts docs/compatibility.md; no comment cites a document
that only some developers have (a shared spec folder, "the protocol spec")."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("firmware", "host", "docs", "tests", "bench", "tools")
OUTSIDE = re.compile(r"protocol spec|spec section|spec §|\bspec/|/shared/|azure-device-protocol\.md")
SECTION = re.compile(r"docs/protocol\.md sections? (\d)")


def texts():
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".md") and path != Path(__file__):
                yield path, path.read_text(encoding="utf-8")


def test_no_reference_leaves_the_repository():
    found = [
        f"{path.relative_to(ROOT)}: {m.group(0)}" for path, text in texts() for m in OUTSIDE.finditer(text)
    ]
    assert not found


def test_cited_protocol_sections_exist():
    headings = set(
        re.findall(r"^## (\d)\. ", (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8"), re.M)
    )
    cited = {m.group(1) for _, text in texts() for m in SECTION.finditer(text)}
    assert cited and cited <= headings
