"""Fixtures for the dashboard tests: an emulator, and for the browser tests (marked `browser`)
headless Chromium driven by Playwright.

The browser is Debian's `chromium` (Playwright's own download is not needed): a test marked
`browser` skips, saying why, where `chromium` is not on PATH or Playwright is not installed.
Each browser test saves screenshots under build/screenshots/ (git-ignored) for a reviewer.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
FIRMWARE_TESTS = Path(__file__).resolve().parents[1] / "firmware"
if str(FIRMWARE_TESTS) not in sys.path:  # fw_board: the thermostat board's files (tests/firmware)
    sys.path.insert(0, str(FIRMWARE_TESTS))


def browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install -e '.[test]')"
    if shutil.which("chromium") is None:
        return "chromium is not on PATH (Debian: apt-get install chromium)"
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker("browser") is not None:
        reason = browser_missing()
        if reason is not None:
            pytest.skip(f"browser test: {reason}")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.screenshot_as = lambda name: shoot(page, request.node.name, name)
    yield page
    context.close()
    assert not errors, f"the page reported errors: {errors}"


def shoot(page, test: str, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{test}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    from iotcprov.emulator import Emulator

    with Emulator.running(tmp_path_factory.mktemp("emulator")) as emulator:
        yield emulator
