"""The device loop on CPython (fw_loop.py: fake Wi-Fi, NTP, clock, watchdog, DPS and hub), driven
through the transition table of firmware/iotc/policy.py: each scenario walks the edges it names,
and together they walk every edge of the table. Fast: sleeps only move the fake clock."""

import pytest
from fw_loop import HUB, UNSET, Rig, World, provision
from iotc import policy


def table_edges() -> set[tuple[str, str, str]]:
    edges = set()
    for line in policy.TABLE.strip().splitlines():
        source, outcome, *targets = line.split()
        edges |= {(source, outcome, target) for target in targets}
    return edges


def rig_for(tmp_path, monkeypatch, options=None, cached=False, world=None) -> Rig:
    world = world or World()
    return Rig(monkeypatch, provision(tmp_path / "iotc-data", options, cached), world)


ONLINE = ("hub", "hub_connected", "online")


def boot_to_online(rig: Rig) -> None:
    rig.start()
    rig.until_stage("online")


# Each scenario: what it does to the world, and the edges it must walk.


def first_boot(rig: Rig):
    """Fresh board: Wi-Fi, clock, DPS, hub, online; telemetry goes out; the watchdog is fed."""
    boot_to_online(rig)
    rig.until(lambda: rig.device.sent >= 2)
    assert rig.world.wdt[0] == 60_000 and rig.world.feeds > 0
    assert [host for host, _ in rig.world.connects] == ["dps.test", HUB]
    return {
        ("idle", "start", "wifi"),
        ("wifi", "joined", "clock"),
        ("clock", "boot", "dps"),
        ("dps", "dps_answer", "hub"),
        ONLINE,
    }


def cached_boot(rig: Rig):
    """A cached assignment goes straight to the hub."""
    boot_to_online(rig)
    assert [host for host, _ in rig.world.connects] == [HUB]
    return {("clock", "boot", "hub"), ONLINE}


def wifi_and_ntp_retry(rig: Rig):
    """No access point, then no NTP answer with the clock unset: each stage backs off and
    retries until it works."""
    world = rig.world
    world.ap = world.ntp = False
    world.unix = UNSET
    rig.start()
    rig.until_edge(("wifi", "network_failed", "wifi"))
    world.ap = True
    rig.until_edge(("clock", "network_failed", "clock"))
    world.ntp = True
    rig.until_stage("online")
    return {("wifi", "network_failed", "wifi"), ("clock", "network_failed", "clock")}


def link_lost_at_boot(rig: Rig):
    """The link drops while the clock is set: DPS waits for Wi-Fi first."""
    world = rig.world

    def lose_link():
        world.on_ntp = None
        world.wifi = False

    world.on_ntp = lose_link
    boot_to_online(rig)
    return {("clock", "boot", "wifi")}


def dps_transient(rig: Rig):
    """503, CONNACK 3 and a socket error at DPS are retried; with the link gone they wait for
    Wi-Fi first."""
    world = rig.world
    world.answers = [(503, {"errorCode": 503000, "message": "busy"})]
    world.dps = [("connack", 3), ("oserror", 104)]
    rig.start()
    rig.until_stage("online")
    world.answers = [(503, {"errorCode": 503000, "message": "busy"})]
    world.dps = ["ok", ("connack", 3), ("oserror", 104)]
    world.hub = [("connack", 5)]  # cached assignment refused: DPS again
    world.drop = ("oserror", -1)
    for edge in (
        ("dps", "dps_answer", "wifi"),
        ("dps", "dps_refused", "wifi"),
        ("dps", "dps_failed", "wifi"),
    ):
        rig.until(lambda: rig.device.stage == "dps" and rig.device._wake <= world.ms)
        world.wifi = False  # gone while DPS answers
        rig.until_edge(edge)
    rig.until_stage("online")
    return {
        ("dps", "dps_answer", "dps"),
        ("dps", "dps_refused", "dps"),
        ("dps", "dps_failed", "dps"),
        ("hub", "hub_refused", "dps"),
        ("online", "hub_lost", "hub"),
        ("dps", "dps_answer", "wifi"),
        ("dps", "dps_refused", "wifi"),
        ("dps", "dps_failed", "wifi"),
    }


def dps_terminal(rig: Rig):
    """A disabled enrollment stops for terminal_wait, then starts over at DPS (twice, the second
    time with the link gone); a CONNACK 5 stops too."""
    world = rig.world
    disabled = (200, {"operationId": "op", "status": "disabled", "registrationState": {"status": "disabled"}})
    world.answers = [disabled]
    rig.start()
    rig.until_edge(("dps", "dps_answer", "stopped"))
    world.dps = [("connack", 5)]
    rig.until_edge(("stopped", "resume", "dps"))
    rig.until_edge(("dps", "dps_refused", "stopped"))
    world.wifi = False
    rig.until_edge(("stopped", "resume", "wifi"))
    rig.until_stage("online")
    return {
        ("dps", "dps_answer", "stopped"),
        ("stopped", "resume", "dps"),
        ("dps", "dps_refused", "stopped"),
        ("stopped", "resume", "wifi"),
    }


def dps_stops_for_good(rig: Rig):
    """terminal_wait 0: a refusal ends the device (stage None), as run() returns."""
    world = rig.world
    world.answers = [(404, {"errorCode": 404000, "message": "no enrollment"})]
    rig.start()
    rig.until(lambda: rig.device.stage is None)
    rig.start()
    world.dps = [("connack", 5)]
    rig.until(lambda: rig.device.stage is None)
    return {("dps", "dps_answer", "idle"), ("dps", "dps_refused", "idle")}


def hub_stops_for_good(rig: Rig):
    """The hub refusing a brand-new assignment: terminal_wait 0 stops for good."""
    rig.world.hub = [("connack", 5)]
    rig.start()
    rig.until(lambda: rig.device.stage is None)
    return {("hub", "hub_refused", "idle")}


def hub_troubles(rig: Rig):
    """At the hub: CONNACK 3 and socket errors retried, the failure count sending the device
    back to DPS, a refused fresh assignment stopping, and each retry waiting for Wi-Fi when the
    link is gone."""
    world = rig.world
    world.hub = [("connack", 3), ("oserror", 113), ("oserror", 113), ("oserror", 113)]
    rig.start()
    rig.until_edge(("hub", "hub_failed", "dps"))  # hub_failures_before_dps = 3
    world.hub = [("connack", 5)]
    rig.until_edge(("hub", "hub_refused", "stopped"))  # refused right after a fresh registration
    rig.until_stage("online")
    for failure, edge in (
        (("connack", 3), ("hub", "hub_refused", "wifi")),
        (("oserror", 113), ("hub", "hub_failed", "wifi")),
    ):
        world.drop = ("oserror", -1)
        rig.until_stage("hub")
        world.hub = [failure]
        rig.until(lambda: rig.device._wake <= world.ms)
        world.wifi = False
        world.hub.append("ok")
        rig.until_edge(edge)
        rig.until_stage("online")
    return {
        ("hub", "hub_refused", "hub"),
        ("hub", "hub_failed", "hub"),
        ("hub", "hub_failed", "dps"),
        ("hub", "hub_refused", "stopped"),
        ("hub", "hub_refused", "wifi"),
        ("hub", "hub_failed", "wifi"),
    }


def online_life(rig: Rig):
    """Token renewal, a dropped session, and both again with the link gone."""
    world = rig.world
    boot_to_online(rig)
    rig.until_edge(("online", "renew", "hub"))  # token_ttl 20 s: renewed ~4 s early
    rig.until_stage("online")
    world.drop = ("oserror", -1)
    rig.until_edge(("online", "hub_lost", "hub"))
    rig.until_stage("online")
    world.wifi = False  # the session goes on until the token is renewed
    rig.until_edge(("online", "renew", "wifi"))
    rig.until_stage("online")
    world.wifi = False
    world.drop = ("oserror", -1)
    rig.until_edge(("online", "hub_lost", "wifi"))
    rig.until_stage("online")
    return {
        ("online", "renew", "hub"),
        ("online", "hub_lost", "hub"),
        ("online", "renew", "wifi"),
        ("online", "hub_lost", "wifi"),
    }


def clock_lost(rig: Rig):
    """The clock reads unset when a token must be signed (DPS, then the hub): set it first."""
    world = rig.world
    world.on_ntp = lambda: setattr(world, "unix", UNSET)  # NTP "sets" it, then it reads unset
    rig.start()
    rig.until(lambda: rig.device.stage == "dps")
    rig.until_edge(("dps", "clock_unset", "clock"))
    world.on_ntp = None
    rig.until_stage("online")
    world.drop = ("oserror", -1)
    rig.until_stage("hub")
    world.unix = UNSET
    world.ntp = True
    rig.until_edge(("hub", "clock_unset", "clock"))
    rig.until_stage("online")
    return {("dps", "clock_unset", "clock"), ("hub", "clock_unset", "clock")}


def faults(rig: Rig):
    """A ValueError of the firmware (not a transport error) in each stage: reported as a fault,
    and the stage retried later; with the link gone, Wi-Fi first."""
    world = rig.world
    world.time_fault = True  # the clock stage reads the time
    world.sleep_fault = "wifi"
    world.ap = False  # the join waits (and sleeps)
    rig.start()
    rig.until_edge(("wifi", "fault", "wifi"))
    world.ap = True
    rig.until_edge(("clock", "fault", "clock"))
    world.dps = [("fault",)]
    rig.until_edge(("dps", "fault", "dps"))
    world.hub = [("fault",)]
    rig.until_edge(("hub", "fault", "hub"))
    rig.until_stage("online")
    world.drop = ("fault",)
    rig.until_edge(("online", "fault", "hub"))
    rig.until_stage("online")
    world.wifi = False
    world.drop = ("fault",)
    rig.until_edge(("online", "fault", "wifi"))
    rig.until_stage("hub")
    world.hub = [("oserror", 113)]
    rig.until(lambda: rig.device.stage == "hub" and rig.device._wake <= world.ms)
    world.wifi = False
    world.hub = [("fault",)]
    rig.until_edge(("hub", "fault", "wifi"))
    world.dps = [("connack", 5)]  # ... -> hub_failures -> DPS refused -> stopped
    world.hub = [("oserror", 113)] * 3
    rig.until_stage("stopped")
    world.sleep_fault = "stopped"
    rig.until_edge(("stopped", "fault", "dps"))
    world.dps = [("connack", 5)]
    rig.until_stage("stopped")
    world.sleep_fault = "stopped"
    world.wifi = False
    rig.until_edge(("stopped", "fault", "wifi"))
    world.dps = [("fault",)]
    rig.until(lambda: rig.device.stage == "dps")
    world.wifi = False
    world.dps = [("fault",)]
    rig.until_edge(("dps", "fault", "wifi"))
    assert rig.faults >= 9
    return {
        ("wifi", "fault", "wifi"),
        ("clock", "fault", "clock"),
        ("dps", "fault", "dps"),
        ("hub", "fault", "hub"),
        ("online", "fault", "hub"),
        ("online", "fault", "wifi"),
        ("hub", "fault", "wifi"),
        ("stopped", "fault", "dps"),
        ("stopped", "fault", "wifi"),
        ("dps", "fault", "wifi"),
    }


def stop_and_idle_fault(rig: Rig):
    """stop() from any stage ends the device; a fault with no stage leaves it stopped."""
    boot_to_online(rig)
    rig.device.stop()
    assert rig.device.stage is None and rig.world.wdt[-1] == 7 * 86400 * 1000
    rig.device._recover(ValueError("after stop"))
    assert rig.device.stage is None
    return {("*", "stop", "idle"), ("idle", "fault", "idle")}


OPTIONS = {"hub_failures_before_dps": 3, "terminal_wait": 30, "token_ttl": 20, "token_margin": 5}
SCENARIOS = [
    (first_boot, {}, False),
    (cached_boot, {}, True),
    (wifi_and_ntp_retry, {}, False),
    (link_lost_at_boot, {}, False),
    (dps_transient, {}, False),
    (dps_terminal, OPTIONS, False),
    (dps_stops_for_good, {"terminal_wait": 0}, False),
    (hub_stops_for_good, {"terminal_wait": 0}, False),
    (hub_troubles, OPTIONS, False),
    (online_life, OPTIONS, False),
    (clock_lost, OPTIONS, False),
    (faults, OPTIONS, False),
    (stop_and_idle_fault, {}, False),
]


def run_scenario(scenario, options, cached, tmp_path, monkeypatch):
    rig = rig_for(tmp_path, monkeypatch, options, cached)
    expected = scenario(rig)
    walked = set(rig.edges) | {("*", "stop", "idle") for edge in rig.edges if edge[1] == "stop"}
    if ("idle", "fault", "idle") in expected:
        walked.add(("idle", "fault", "idle"))  # _recover with no stage records nothing
    return expected, walked


@pytest.mark.parametrize(("scenario", "options", "cached"), SCENARIOS, ids=[s[0].__name__ for s in SCENARIOS])
def test_scenario_walks_its_edges(scenario, options, cached, tmp_path, monkeypatch, capsys):
    expected, walked = run_scenario(scenario, options, cached, tmp_path, monkeypatch)
    assert expected <= walked, sorted(expected - walked)
    assert walked - {("*", "stop", "idle")} <= table_edges() | {e for e in walked if e[1] == "stop"}
    assert "Traceback" not in capsys.readouterr().out


def test_the_scenarios_cover_every_edge_of_the_table(tmp_path):
    covered = set()
    for number, (scenario, options, cached) in enumerate(SCENARIOS):
        with pytest.MonkeyPatch.context() as monkeypatch:
            expected, walked = run_scenario(scenario, options, cached, tmp_path / str(number), monkeypatch)
        assert expected <= walked, (scenario.__name__, sorted(expected - walked))
        covered |= expected
    assert covered == table_edges(), (sorted(table_edges() - covered), sorted(covered - table_edges()))
