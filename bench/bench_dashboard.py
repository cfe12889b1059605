"""The emulator dashboard with 1,000 registered devices: seconds for the devices list's JSON, and
for the devices page in headless Chromium from navigation until the first page of rows and the
count of 1,000 are on screen; then for a search that narrows the list.

Goal: the page loads in under 1 s. Printed, not asserted. The devices are written into the
emulator's store before it starts (as DPS records a registration), so the figure is the
dashboard's, not DPS's. Without Chromium (Debian: apt-get install chromium) and Playwright only
the JSON figure is printed.

    python bench/bench_dashboard.py [--devices N]
"""

import argparse
import json
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from iotcprov.emulator import Emulator
from iotcprov.emulator.store import Store

GOAL_S = 1.0
RUNS = 5


def register(data_dir: Path, count: int) -> None:
    store = Store(data_dir)
    now = time.time()
    store.db.execute("BEGIN")
    for n in range(count):
        device_id = f"bench-{n:05d}"
        store.record_registration(
            device_id,
            {
                "enrollment_kind": "group", "enrollment_name": "bench-group", "attestation": "sas",
                "assigned_hub": "localhost", "status": "assigned",
                "dps_model_id": "dtmi:iotcprov:Thermostat;1",
            },
            now - n,
        )  # fmt: skip
    store.db.execute("COMMIT")
    store.close()


def json_seconds(url: str) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        with urllib.request.urlopen(url) as response:
            json.loads(response.read())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def page_seconds(url: str, count: int) -> tuple[float, float] | None:
    if shutil.which("chromium") is None:
        print("page: skipped, chromium is not on PATH (Debian: apt-get install chromium)")
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("page: skipped, Playwright is not installed (pip install -e '.[test]')")
        return None
    loads, searches = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for _ in range(RUNS):
            started = time.perf_counter()
            page.goto(url)
            page.locator("#counts", has_text=f"{count} devices").wait_for()
            page.locator("#devices tbody tr").nth(99 if count >= 100 else count - 1).wait_for()
            loads.append(time.perf_counter() - started)
            started = time.perf_counter()
            page.fill("#search", "bench-0099")
            page.locator("#counts", has_text="match").wait_for()
            searches.append(time.perf_counter() - started)
        browser.close()
    return statistics.median(loads), statistics.median(searches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "emulator"
        register(data_dir, args.devices)
        with Emulator.running(data_dir) as emulator:
            url = emulator.info["dashboard_url"]
            print(f"devices registered: {args.devices}")
            seconds = json_seconds(url + "data/devices")
            print(f"devices JSON (data/devices): {seconds:.3f} s (median of {RUNS})")
            figures = page_seconds(url, args.devices)
            if figures is not None:
                load, search = figures
                verdict = "meets" if load < GOAL_S else "misses"
                print(f"devices page in Chromium, navigation to 100 rows and the count shown: {load:.3f} s "
                      f"(median of {RUNS}; {verdict} the {GOAL_S:g} s goal)")  # fmt: skip
                print(f"search narrowing {args.devices} devices to one: {search:.3f} s")


if __name__ == "__main__":
    main()
