"""The factory line's dashboard in headless Chromium: a virtual board at a port goes through the
stages and its tile shows it finishing, the counts and the recent boards follow."""

from __future__ import annotations

import base64
import threading

import pytest
from iotcprov.board.trust import azure_roots
from iotcprov.dashboard.factory import FactoryDashboard
from iotcprov.factory import events as ev
from iotcprov.factory.credentials import GroupKeySource
from iotcprov.factory.devices import DeviceEntry
from iotcprov.factory.job import FactoryJob
from iotcprov.factory.line import PortList, run_line

from tests.factory.conftest import stations_factory  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser

GROUP_KEY = base64.b64encode(bytes(range(9, 73))).decode()


def test_the_factory_view_shows_a_board_finishing(page, stations_factory, tmp_path):  # noqa: F811
    stations = stations_factory(1)
    board = stations.plug(0)
    manifest = tmp_path / "line.sqlite"
    job = FactoryJob(id_scope="0ne00DASH01", credentials=GroupKeySource(GROUP_KEY), trust=azure_roots())
    stop = threading.Event()
    with FactoryDashboard("iotcprov factory · test line", manifest=manifest) as dashboard:
        page.goto(dashboard.url)
        page.wait_for_selector("#live[data-state=live]")

        def on_event(event: ev.Event) -> None:
            dashboard.on_event(event)
            if event.name in (ev.DONE, ev.FAILED):
                stop.set()

        seen_working: list[str] = []
        line = threading.Thread(
            target=run_line,
            args=(job, manifest, [DeviceEntry("dash-line-1")], PortList((board.port,))),
            kwargs={"on_event": on_event, "stop": stop},
        )
        line.start()
        tile = page.locator(f'.tile[data-port="{board.port}"]')
        tile.wait_for(timeout=30_000)
        seen_working.append(tile.get_attribute("data-state"))
        page.screenshot_as("factory-working")
        line.join(120)
        assert not line.is_alive()
        page.wait_for_selector(f'.tile[data-port="{board.port}"][data-result="done"]', timeout=10_000)
        assert "dash-line-1" in tile.inner_text()
        assert page.inner_text('[data-count="done"]') == "1"
        page.locator('#recent tr[data-device="dash-line-1"] td.done').wait_for()
        page.screenshot_as("factory-done")
    assert GROUP_KEY not in page.content()
