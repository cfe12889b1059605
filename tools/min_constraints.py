"""Pin every runtime dependency of pyproject.toml to its declared floor, for `make test-min`.

    python tools/min_constraints.py            # pip constraints on stdout: `name>=X` becomes `name==X`
    python tools/min_constraints.py --check    # in the installed venv: is each pin what is installed?

The floors in pyproject.toml are the only source: the test installs exactly them, so a floor that
the code has outgrown fails the test instead of a user's install. Every runtime dependency must
declare a `>=` floor. Environment markers are kept, so a platform-only dependency stays one.
"""

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?$")


def floors(pyproject: Path = PYPROJECT) -> list[tuple[str, str, str]]:
    """[(name, floor version, marker or '')] for each runtime dependency, in pyproject order."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    found = []
    for text in dependencies:
        match = _REQUIREMENT.match(text)
        if not match:
            raise SystemExit(f"min_constraints: cannot read the dependency {text!r}")
        name, _extras, specifiers, marker = match.groups()
        lower = [s.strip()[2:].strip() for s in specifiers.split(",") if s.strip().startswith(">=")]
        if len(lower) != 1:
            raise SystemExit(f"min_constraints: {name} must declare exactly one '>=' floor: {text!r}")
        found.append((name, lower[0], (marker or "").lstrip(";").strip()))
    return found


def constraints() -> str:
    lines = [f"# pinned to the floors of {PYPROJECT.name} by tools/min_constraints.py"]
    for name, version, marker in floors():
        lines.append(f"{name}=={version}" + (f" ; {marker}" if marker else ""))
    return "\n".join(lines) + "\n"


def check() -> int:
    """Run by the venv's Python: every dependency that applies here is installed at its floor."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.markers import Marker
    from packaging.version import Version

    wrong = 0
    for name, floor, marker in floors():
        if marker and not Marker(marker).evaluate():
            print(f"  {name}: not for this platform ({marker})")
            continue
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        ok = installed is not None and Version(installed) == Version(floor)
        wrong += not ok
        print(f"  {name} {installed or 'missing'}" + ("" if ok else f"  <- the floor is {floor}"))
    return 1 if wrong else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(check())
    if sys.argv[1:]:
        raise SystemExit(__doc__)
    sys.stdout.write(constraints())
