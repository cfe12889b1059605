"""Retry timing, error classification and the connection state machine's decisions
(firmware/iotc/policy.py) on CPython: the rules that keep a fleet out of hot loops."""

import itertools
from typing import NamedTuple

import pytest
from iotc import policy
from iotc.app import PolicyState
from iotc.config import options as Options


def fixed(value):
    return lambda: value


class Decision(NamedTuple):
    stage: str
    delay_ms: int
    reason: str | None
    reprovision: bool


class Rules:
    """The policy functions bound to one state (the device's PolicyState) and one set of options,
    as the device uses them."""

    def __init__(self, options, random16):
        self.state = PolicyState()
        self.state.random16 = random16
        self.options = options

    def __getattr__(self, name):
        decide = getattr(policy, name)
        return lambda *args: Decision(*decide(self.state, self.options, *args))


def answer(kind, status, retry_after=None):
    return (kind, status, retry_after)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (408, "retry"),
        (400, "terminal"),
        (404, "terminal"),
        (412, "terminal"),
        (401, "refused"),
        (403, "refused"),
    ],
)
def test_status_classification(status, verdict):
    assert policy.classify_status(status) == verdict


@pytest.mark.parametrize(
    ("code", "verdict"),
    [(4, "refused"), (5, "refused"), (3, "retry"), (1, "terminal"), (2, "terminal")],
)
def test_connack_classification(code, verdict):
    assert policy.classify_connack(code) == verdict


def test_backoff_doubles_from_the_minimum_up_to_the_cap():
    delays = [policy.backoff_ms(n, 1, 100, 0) for n in range(10)]
    assert delays == [1000, 2000, 4000, 8000, 16000, 32000, 64000, 100000, 100000, 100000]
    assert policy.backoff_ms(10_000, 1, 100, 0) == 100000  # no overflow, no slow loop


def test_jitter_spans_zero_to_the_maximum():
    assert policy.jitter_ms(5, 0) == 0
    assert policy.jitter_ms(5, 65535) == 4999
    assert policy.jitter_ms(0, 65535) == 0


def test_retry_after_is_honoured_and_never_shortened():
    options = Options({"jitter_max": 0})
    assert policy.retry_ms(0, options, 0, retry_after=7) == 7000
    assert policy.retry_ms(5, options, 0, retry_after=7) == 32000  # backoff already longer
    jittered = Options({"jitter_max": 5})
    # the draw 40000 of 65536 spreads over 0..5000 ms as 40000 * 5000 // 65536 = 3051 ms, added
    # to the retry-after (a fleet throttled together must not come back together)
    assert policy.retry_ms(0, jittered, 40000, retry_after=7) == 7000 + 3051
    assert policy.retry_ms(0, jittered, 0, retry_after=7) == 7000


def test_dps_transient_errors_back_off_with_growing_delays():
    rules = Rules(Options({"jitter_max": 0}), fixed(0))
    decisions = [rules.dps_answer(*answer("error", 503)) for _ in range(4)]
    assert [d.stage for d in decisions] == ["dps"] * 4
    assert [d.delay_ms for d in decisions] == [1000, 2000, 4000, 8000]
    assert rules.dps_failed("OSError 104").delay_ms == 16000


def test_dps_429_waits_at_least_retry_after():
    draws = iter([65535, 13107])
    rules = Rules(Options({"jitter_max": 5}), lambda: next(draws))
    decision = rules.dps_answer(*answer("error", 429, retry_after=20))
    assert decision.stage == "dps" and decision.delay_ms == 20000 + 65535 * 5000 // 65536  # 24999
    again = rules.dps_answer(*answer("error", 429, retry_after=20))
    assert again.delay_ms == 20000 + 13107 * 5000 // 65536  # 20999: the jitter is the draw's


@pytest.mark.parametrize(
    "outcome",
    [answer("error", 401), answer("error", 403), answer("error", 404), answer("error", 400),
     answer("error", 412), answer("failed", 200), answer("disabled", 200)],
)  # fmt: skip
def test_dps_terminal_answers_stop_for_the_long_wait(outcome):
    rules = Rules(Options({"terminal_wait": 3600}), fixed(0))
    decision = rules.dps_answer(*outcome)
    assert decision.stage == "stopped" and decision.delay_ms == 3_600_000


def test_dps_credentials_refused_at_connect_stop_but_server_unavailable_retries():
    rules = Rules(Options(), fixed(0))
    assert rules.dps_refused(5).stage == "stopped"
    assert rules.dps_refused(4).stage == "stopped"
    assert rules.dps_refused(3).stage == "dps"


def test_boot_uses_the_cache_and_reprovisions_when_the_identity_changed():
    rules = Rules(Options(), fixed(0))
    assert rules.boot("cached").stage == "hub"
    fresh = rules.boot("no-cache")
    assert (fresh.stage, fresh.delay_ms, fresh.reprovision) == ("dps", 0, False)
    changed = rules.boot("identity-changed")
    assert (changed.stage, changed.reprovision, changed.reason) == ("dps", True, "identity-changed")


def test_hub_refusing_cached_credentials_sends_the_device_back_to_dps_once():
    rules = Rules(Options(), fixed(0))
    first = rules.hub_refused(5)  # cached assignment refused
    assert (first.stage, first.reprovision, first.reason) == ("dps", True, "hub-refused")
    assert rules.dps_answer(*answer("assigned", 200)).stage == "hub"
    second = rules.hub_refused(5)  # refused again with a brand-new assignment: give up for now
    assert second.stage == "stopped"


def test_hub_refusal_after_a_good_session_may_reprovision_again():
    rules = Rules(Options(), fixed(0))
    rules.dps_answer(*answer("assigned", 200))
    assert rules.hub_connected().stage == "online"
    rules.hub_lost(500, "OSError -1")  # the session that had been up ends
    assert rules.hub_refused(4).stage == "dps"


def test_a_renewal_or_a_fault_online_also_ends_a_good_session():
    for end in (lambda r: r.renew(), lambda r: r.fault("error")):
        rules = Rules(Options({"hub_failures_before_dps": 3}), fixed(0))
        rules.state.stage = "online"
        rules.dps_answer(*answer("assigned", 200))
        rules.hub_failed("x")
        rules.hub_failed("x")
        end(rules)
        assert rules.hub_failed("x").stage == "hub"  # the count started again
        assert rules.hub_refused(5).stage == "dps"  # not a fresh assignment any more


def test_n_consecutive_hub_failures_go_back_to_dps():
    rules = Rules(Options({"hub_failures_before_dps": 3, "jitter_max": 0}), fixed(0))
    stages = [rules.hub_failed("OSError 111") for _ in range(3)]
    assert [d.stage for d in stages] == ["hub", "hub", "dps"]
    assert stages[-1].reprovision and stages[-1].reason == "hub-failures"
    assert rules.hub_failed("OSError 111").stage == "hub"  # the count starts again


def test_a_success_resets_the_hub_failure_count():
    rules = Rules(Options({"hub_failures_before_dps": 3}), fixed(0))
    rules.hub_failed("x")
    rules.hub_failed("x")
    rules.hub_connected()
    rules.hub_lost(500, "OSError -1")
    assert rules.hub_failed("x").stage == "hub"


def test_server_unavailable_at_hub_connect_counts_as_a_transient_failure():
    rules = Rules(Options({"hub_failures_before_dps": 2}), fixed(0))
    assert rules.hub_refused(3).stage == "hub"
    assert rules.hub_refused(3).stage == "dps"


def test_sessions_dropped_right_after_connecting_keep_backing_off():
    """Connected, kicked at once, again and again (say, a twin device with the same ID):
    the delays must keep growing instead of reconnecting every second."""
    rules = Rules(Options({"jitter_max": 0}), fixed(0))
    delays = []
    for _ in range(6):
        rules.hub_connected()
        delays.append(rules.hub_lost(500, "OSError -1").delay_ms)
    assert delays == [1000, 2000, 4000, 8000, 16000, 32000]


def test_a_stable_session_that_drops_reconnects_quickly():
    rules = Rules(Options({"jitter_max": 0}), fixed(0))
    for _ in range(5):
        rules.hub_failed("x")
    rules.hub_connected()
    decision = rules.hub_lost(policy.STABLE_MS, "OSError -1")
    assert (decision.stage, decision.delay_ms) == ("hub", 1000)


def test_no_sequence_of_failures_yields_a_hot_loop():
    """Whatever fails, in whatever order, every retry waits at least backoff_min, and the
    delays never exceed backoff_max plus jitter (retry-after aside)."""
    options = Options({"jitter_max": 5})
    failures = [
        lambda r: r.dps_answer(*answer("error", 503)),
        lambda r: r.dps_failed("timeout"),
        lambda r: r.dps_refused(3),
        lambda r: r.hub_failed("OSError 113"),
        lambda r: r.hub_refused(3),
        lambda r: r.hub_lost(10, "OSError -1"),
        lambda r: r.network_failed("wifi", "wifi"),
    ]
    for order in itertools.permutations(failures, 4):
        rules = Rules(options, fixed(12345))
        for fail in order * 3:
            decision = fail(rules)
            assert 1000 <= decision.delay_ms <= 105000


def test_resume_after_terminal_wait_goes_to_dps_afresh():
    rules = Rules(Options(), fixed(0))
    rules.state.attempt = 7
    decision = rules.resume()
    assert (decision.stage, decision.delay_ms, decision.reprovision) == ("dps", 0, True)
    assert rules.state.attempt == 0
