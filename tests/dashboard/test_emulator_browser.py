"""The emulator's dashboard in headless Chromium, against a running emulator and a virtual board
running the thermostat example (firmware/main.py): the device appears within 2 s of registering,
its temperature chart gains points, a desired property shows the device's acknowledgement,
`getMaxMinReport` shows its answer, and a disabled group's refusal shows in the event log."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization
from fw_board import THERMOSTAT, provisioned_board_dir, sas_group_identity, sas_identity
from iotcprov.credentials import pki, sas

pytest.importorskip("iotcprov.virtual_board", reason="needs the virtual board (Linux x86_64)")
from iotcprov.virtual_board import VirtualBoard  # noqa: E402

pytestmark = pytest.mark.browser

DEVICE = "dash-thermo-1"


@pytest.fixture(scope="module")
def thermostat(tmp_path_factory, emu):
    """The thermostat board, sending telemetry every second; started by the first test."""
    holder: dict = {}

    def start():
        if "board" not in holder:
            group = emu.admin.create_sas_group("dash-group")
            holder["secrets"] = [group["primary_key"], group["secondary_key"]]
            key = sas.derive_device_key(group["primary_key"], DEVICE)
            identity = sas_identity(key, DEVICE, telemetry_interval=1)
            holder["secrets"].append(identity.key)
            board_dir = provisioned_board_dir(
                tmp_path_factory.mktemp("board"), emu, identity, main=THERMOSTAT, model_id=None
            )
            holder["board"] = VirtualBoard(directory=board_dir).__enter__()
        return holder["board"]

    start.secrets = lambda: holder["secrets"]
    yield start
    if "board" in holder:
        holder["board"].__exit__(None, None, None)


def enter_operator_mode(page, emu) -> None:
    page.fill("#token", emu.info["dashboard_token"])
    page.click("#operator button")
    page.wait_for_selector("body.operator")


def registered_at(emu, device_id: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = emu.admin.events(kind="registered", device=device_id)
        if events:
            return events[0]["time"]
        time.sleep(0.05)
    raise AssertionError(f"{device_id} did not register within {timeout} s")


def test_device_appears_within_2_s_of_registering_and_its_chart_grows(page, emu, thermostat):
    page.goto(emu.info["dashboard_url"])
    page.wait_for_selector("#live[data-state=live]")
    page.screenshot_as("devices-empty")
    thermostat()
    registered = registered_at(emu, DEVICE)
    page.wait_for_selector(f'tr[data-device="{DEVICE}"]', timeout=5000)
    seen = time.time()
    assert seen - registered < 2.0, f"the row appeared {seen - registered:.2f} s after the registration"
    page.screenshot_as("devices")

    page.click(f'tr[data-device="{DEVICE}"] a')
    page.wait_for_selector('figure[data-field="temperature"]', timeout=30_000)
    chart = page.locator('figure[data-field="temperature"]')
    first = int(chart.get_attribute("data-points"))
    deadline = time.monotonic() + 15
    while int(chart.get_attribute("data-points")) < first + 2:  # two more messages, live
        assert time.monotonic() < deadline, "the chart gained no points"
        page.wait_for_timeout(200)
    assert "points" in chart.locator("canvas").get_attribute("aria-label")
    page.check('input[name="zoom"][value="300"]')
    page.screenshot_as("device-chart")


def test_setting_a_desired_property_shows_the_acknowledgement(page, emu, thermostat):
    thermostat()
    registered_at(emu, DEVICE)
    page.goto(emu.info["dashboard_url"] + f"device?id={DEVICE}")
    assert not page.is_visible("#desired-form")  # read-only until the operator token is given
    enter_operator_mode(page, emu)
    page.fill("#desired-form input[name=name]", "targetTemperature")
    page.fill("#desired-form input[name=value]", "28")
    page.click("#desired-form button")
    page.wait_for_selector("#desired-answer p")
    ack = page.locator('tr[data-property="targetTemperature"] .ack')
    ack.get_by_text("acknowledged").wait_for(timeout=20_000)
    assert "ac 200" in ack.inner_text()
    page.screenshot_as("desired-acknowledged")


def test_invoking_get_max_min_report_shows_the_answer(page, emu, thermostat):
    thermostat()
    registered_at(emu, DEVICE)
    page.goto(emu.info["dashboard_url"] + f"device?id={DEVICE}")
    enter_operator_mode(page, emu)
    page.wait_for_selector('#facts .badge.ok:has-text("connected")', timeout=30_000)
    page.fill("#invoke-form input[name=command]", "getMaxMinReport")
    page.click("#invoke-form button")
    page.wait_for_selector("#invoke-answer .status", timeout=30_000)
    assert page.inner_text("#invoke-answer .status") == "200"
    payload = page.inner_text("#invoke-answer .payload")
    assert "maxTemp" in payload and "minTemp" in payload
    page.screenshot_as("command-answer")


def test_a_disabled_group_shows_the_refusal_in_the_event_log(page, emu, tmp_path):
    identity = sas_group_identity(emu, "dash-closed", "dash-refused-1", telemetry_interval=1)
    page.goto(emu.info["dashboard_url"] + "groups")
    enter_operator_mode(page, emu)
    page.click('tr[data-group="dash-closed"] button')
    page.wait_for_selector('tr[data-group="dash-closed"] .badge.bad:has-text("disabled")')
    page.screenshot_as("group-disabled")

    page.goto(emu.info["dashboard_url"] + "device?id=dash-refused-1")
    page.wait_for_selector("#live[data-state=live]")
    board_dir = provisioned_board_dir(tmp_path, emu, identity, main=THERMOSTAT, model_id=None)
    with VirtualBoard(directory=board_dir):
        row = page.locator('#log tr[data-kind="register disabled"]').first
        row.wait_for(timeout=60_000)
        assert "group enrollment dash-closed is disabled" in row.inner_text()
    page.screenshot_as("refusal-in-event-log")
    page.goto(emu.info["dashboard_url"] + "events")
    page.locator('#log tr[data-kind="register disabled"]').first.wait_for()
    page.screenshot_as("events")


SECRET_MARKS = ("SharedAccessSignature", "PRIVATE KEY", "primary_key", "secondary_key", "verification_code")


def capture_stream(url: str, seconds: float, into: list[str]) -> threading.Thread:
    def read():
        try:
            with urllib.request.urlopen(url, timeout=seconds + 5) as response:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    line = response.readline()
                    if not line:
                        break
                    into.append(line.decode())
        except OSError as error:
            into.append(f"stream error: {error}")

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_no_secret_on_any_page_or_stream(page, emu, thermostat, tmp_path):
    """Every page as the browser renders it, every JSON answer and every event stream while the
    device sends, acknowledges and is refused: no key, token or password anywhere."""
    board = thermostat()
    registered_at(emu, DEVICE)
    secrets = [*thermostat.secrets(), emu.info["dashboard_token"], "not-a-secret"]  # the Wi-Fi password
    ca_key = pki.generate_key("ec")  # an X.509 group's verification code shows nowhere either
    ca_pem = pki.make_root_ca("dash CA", ca_key).public_bytes(serialization.Encoding.PEM).decode()
    secrets.append(emu.admin.create_x509_group("dash-x509", ca_pem)["verification_code"])
    base = emu.info["dashboard_url"]
    streamed: list[str] = []
    threads = [
        capture_stream(base + f"stream?view={view}&after=0", 6, streamed)
        for view in ("devices", "events")
    ] + [capture_stream(base + f"stream?view=device&device={DEVICE}&after=0", 6, streamed)]
    emu.admin.set_desired(DEVICE, {"targetTemperature": 22})
    emu.admin.invoke(DEVICE, "getMaxMinReport", timeout=10)
    board.wait_for_output(r"iotc: telemetry sent n=\d+", since=board.output_mark())
    texts: dict[str, str] = {}
    for path in ("", "groups", "faults", "events", f"device?id={DEVICE}"):
        page.goto(base + path)
        page.wait_for_selector("#live[data-state=live]")
        page.wait_for_timeout(500)
        texts[f"page {path or 'devices'}"] = page.content()
    page.goto(base + f"device?id={DEVICE}")
    enter_operator_mode(page, emu)
    texts["operator page"] = page.content()
    for path in ("data/devices", f"data/device?id={DEVICE}", "data/groups", "data/faults", "data/events"):
        with urllib.request.urlopen(base + path) as response:
            texts[path] = response.read().decode()
    for name in ("common.js", "devices.js", "device.js", "groups.js", "faults.js", "events.js", "chart.js"):
        with urllib.request.urlopen(base + "static/" + name) as response:
            texts[name] = response.read().decode()
    for thread in threads:
        thread.join(15)
    texts["streams"] = "".join(streamed)
    assert "event: devices" in texts["streams"] and "event: telemetry" in texts["streams"]
    assert json.loads(texts["data/devices"])["devices"]
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret shows in {where}"
        for mark in SECRET_MARKS:
            assert mark not in text, f"{mark!r} shows in {where}"


def test_pages_are_labelled_and_usable_from_the_keyboard(page, emu, thermostat):
    thermostat()
    registered_at(emu, DEVICE)
    page.goto(emu.info["dashboard_url"])
    page.keyboard.press("Tab")
    assert page.locator(":focus").inner_text() == "Skip to content"
    page.get_by_label("Search").fill(DEVICE)  # every control is found by its label
    page.get_by_label("Connection").select_option("connected")
    page.locator(f'tr[data-device="{DEVICE}"] a').focus()
    page.keyboard.press("Enter")  # to the device page, by keyboard
    page.wait_for_selector('figure[data-field="temperature"]')
    page.get_by_label("Last 5 min").check()
    page.get_by_label("Operator token").fill(emu.info["dashboard_token"])
    page.get_by_label("Operator token").press("Enter")
    page.wait_for_selector("body.operator")
    for label in ("Component (optional)", "Property", "Value (JSON)", "Command", "Payload (JSON, optional)",
                  "Timeout (s)", "Body", "Properties (name=value, one per line)"):  # fmt: skip
        assert page.get_by_label(label, exact=True).is_visible(), label
    page.get_by_label("Command", exact=True).fill("getMaxMinReport")
    page.get_by_label("Command", exact=True).press("Enter")  # submits the form
    page.wait_for_selector("#invoke-answer .status", timeout=30_000)
    assert page.locator("canvas").first.get_attribute("aria-label").startswith("temperature: ")
