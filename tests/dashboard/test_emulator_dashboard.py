"""The emulator's dashboard over HTTP, without a browser: where it is served, what the start line
says, the operator token's guard, `--no-dashboard`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from iotcprov.emulator import Emulator
from iotcprov.emulator.client import ENDPOINTS_FILE


def fetch(url: str, body: dict | None = None, token: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Dashboard-Token"] = token
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_start_line_gives_the_url_and_token_which_nothing_else_shows(emu):
    url, token = emu.info["dashboard_url"], emu.info["dashboard_token"]
    assert url == emu.info["admin_url"] + "/dashboard/"
    status, page = fetch(url)
    assert status == 200 and "<title>Devices" in page
    info = emu.admin.info()
    assert info["dashboard_url"] == url and "dashboard_token" not in info
    assert token not in (emu.data_dir / ENDPOINTS_FILE).read_text()


def test_pages_and_scripts_are_served_with_a_strict_policy(emu):
    base = emu.info["dashboard_url"]
    for path in ("", "device?id=x", "groups", "faults", "events", "static/chart.js", "static/dashboard.css"):
        with urllib.request.urlopen(base + path) as response:
            assert response.status == 200, path
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    status, body = fetch(base + "data/device?id=never-registered")
    assert status == 200 and json.loads(body)["device"] is None


@pytest.mark.parametrize(
    "path, title, script, current",
    [
        ("", "Devices", "devices.js", "./"),
        ("groups", "Groups and enrollments", "groups.js", "groups"),
        ("device?id=x", "Device", "device.js", None),
    ],
)
def test_each_page_sits_in_the_shared_frame_with_itself_marked(emu, path, title, script, current):
    with urllib.request.urlopen(emu.info["dashboard_url"] + path) as response:
        page = response.read().decode()
    assert page.startswith("<!doctype html>")
    assert not [slot for slot in ("title", "script", "nav", "main") if f"<!-- {slot} -->" in page]
    assert f"<title>{title} · iotcprov emulator</title>" in page
    assert f'<script type="module" src="static/{script}"></script>' in page
    marked = [line for line in page.splitlines() if 'aria-current="page"' in line]
    assert len(marked) == (1 if current else 0)
    assert not current or f'<a href="{current}" aria-current="page">' in marked[0]
    assert page.count('<main id="main">') == 1 and page.rstrip().endswith("</html>")


@pytest.mark.parametrize("token", [None, "", "wrong"])
def test_control_actions_need_the_operator_token(emu, token):
    if not any(g["name"] == "guarded" for g in emu.admin.groups()):
        emu.admin.create_sas_group("guarded")
    change = {"name": "guarded", "enabled": False}
    status, body = fetch(emu.info["dashboard_url"] + "ops/group-enabled", change, token)
    assert status == 403 and "operator" in json.loads(body)["error"]
    assert [g["enabled"] for g in emu.admin.groups() if g["name"] == "guarded"] == [True]


def test_the_operator_token_unlocks_control_actions(emu):
    emu.admin.create_sas_group("unlocked")
    url, token = emu.info["dashboard_url"], emu.info["dashboard_token"]
    status, body = fetch(url + "ops/group-enabled", {"name": "unlocked", "enabled": False}, token)
    assert status == 200 and json.loads(body) == {"name": "unlocked", "attestation": "sas", "enabled": False}
    fault = {"kind": "delay", "endpoint": "hub", "seconds": 1, "count": 1}
    status, body = fetch(url + "ops/fault", fault, token)
    assert status == 200 and json.loads(body)["kind"] == "delay"
    status, body = fetch(url + "ops/desired", {"device": "nobody", "patch": {"a": 1}}, token)
    assert status == 404


def test_no_dashboard(tmp_path):
    with Emulator.running(tmp_path, extra_args=["--no-dashboard"]) as emulator:
        assert "dashboard_url" not in emulator.info and "dashboard_token" not in emulator.info
        status, _ = fetch(emulator.info["admin_url"] + "/dashboard/")
        assert status == 404
