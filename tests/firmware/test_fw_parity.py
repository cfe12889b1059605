"""Parity: the firmware's pure core gives the same answers on the MicroPython unix port as on
CPython. One program (below) runs on both; its JSON results must match exactly."""

import json

from fw_rig import run_micropython

# Runs unchanged on CPython and MicroPython: every core entry point over a set of inputs.
PROGRAM = r"""
import json
from iotc import ConfigError, config, dps, hub, incoming, policy
from iotc.app import PolicyState


def identity_case(doc):
    try:
        i = config.identity(doc, "id-1")
        return ["ok", i.id_scope, i.device_id, i.auth, i.dps_port, i.hub_port, i.model_id, i.trust,
                i.cert, i.key, i.renew_after, list(i.ntp_servers), i.cache_key]
    except ConfigError as e:
        return ["error", e.args[0]]


def answer_fields(a):
    return [a.kind, a.status, a.retry_after, a.operation_id, a.hub, a.device_id, a.error_code, a.message]


def incoming_fields(found):
    if found is None:
        return None
    return [found.kind, found.status, found.rid, found.version, found.name, found.properties]


def decisions():
    state = PolicyState()
    state.random16 = lambda: 30000
    options = config.options({"hub_failures_before_dps": 3})
    steps = []
    for outcome in range(3):
        a = dps.parse_answer(503, b"{}", None)
        steps.append(policy.dps_answer(state, options, a.kind, a.status, a.retry_after))
    steps.append(policy.dps_answer(state, options, "error", 429, 9))
    steps.append(policy.dps_refused(state, options, 5))
    steps += [policy.hub_failed(state, options, "x") for _ in range(3)]
    steps.append(policy.hub_refused(state, options, 5))
    steps.append(policy.hub_lost(state, options, 100, "drop"))
    steps.append(policy.resume(state, options))
    return [list(d) for d in steps]


def evaluate(cases):
    out = {}
    out["identity"] = [identity_case(doc) for doc in cases["identities"]]
    out["regid"] = [config.valid_registration_id(t) for t in cases["regids"]]
    out["dps_user"] = dps.username("0ne00ABCDEF", "dev-1")
    out["dps_topics"] = [dps.register_topic(5), dps.poll_topic(6, "4.a/b c")]
    out["dps_payload"] = [json.loads(dps.register_payload("dev-1", m)) for m in (None, "dtmi:a:b;1")]
    out["dps_response_topics"] = [dps.parse_response_topic(t) for t in cases["dps_topics"]]
    out["dps_answers"] = [
        answer_fields(dps.parse_answer(s, b.encode(), r)) for s, b, r in cases["dps_bodies"]
    ]
    out["hub_user"] = hub.username("h.example.net", "dev-1", "dtmi:com:example:Thermostat;1")
    out["telemetry"] = [hub.telemetry_topic("dev-1", p, c) for p, c in cases["telemetry"]]
    out["incoming"] = [incoming_fields(incoming.parse_topic("dev-1", t)) for t in cases["hub_topics"]]
    out["unquote"] = [incoming.unquote(t) for t in cases["escapes"]]
    out["backoff"] = [policy.backoff_ms(n, 1, 100, 7) for n in range(12)]
    out["jitter"] = [policy.jitter_ms(5, r) for r in (0, 1, 32768, 65535)]
    out["status"] = [policy.classify_status(s) for s in (200, 400, 401, 403, 404, 408, 412, 429, 500, 503)]
    out["connack"] = [policy.classify_connack(c) for c in range(6)]
    out["decisions"] = decisions()
    return out
"""

BASE = {
    "format": 1,
    "id_scope": "0ne00ABCDEF",
    "device_id": "dev-1",
    "auth": "sas",
    "dps_host": "localhost",
    "dps_port": 40001,
    "hub_port": 40002,
    "model_id": "dtmi:com:example:Thermostat;1",
    "fingerprint": "sha256:0123456789abcdef",
    "trust": ["root-0.der"],
    "options": {"token_ttl": 60, "ntp_servers": ["a.example", "b.example"]},
}

CASES = {
    "identities": [
        BASE,
        {**BASE, "auth": "x509", "cert": "cert.der", "key": "key.der"},
        {**BASE, "auth": "x509", "key": "key.der"},
        {**BASE, "device_id": "bad id"},
        {**BASE, "format": 3},
        {**BASE, "hub_port": 70000},
        {**BASE, "options": {"keepalive": 5}},
        {**BASE, "model_id": "urn:x"},
        {**BASE, "trust": "root-0.der"},
        ["not", "a", "dict"],
    ],
    "regids": ["dev-1", "a" * 128, "a" * 129, "x.", "x-", "x:y_z", "", "é"],
    "dps_topics": [
        "$dps/registrations/res/202/?$rid=1&retry-after=3",
        "$dps/registrations/res/429/?$rid=2&retry-after=30",
        "$dps/registrations/res/200/?$rid=3",
        "$dps/registrations/res/x/?$rid=3",
        "$iothub/twin/res/200/?$rid=1",
    ],
    "dps_bodies": [
        [202, '{"operationId":"4.a","status":"assigning"}', 3],
        [200, '{"status":"assigned","registrationState":{"assignedHub":"h.net","deviceId":"dev-1"}}', None],
        [200, '{"status":"disabled","registrationState":{"status":"disabled"}}', None],
        [200, '{"status":"failed","registrationState":{"errorCode":400209,"errorMessage":"m"}}', None],
        [401, '{"errorCode":401002,"message":"Unauthorized"}', None],
        [429, '{"errorCode":429001}', 5],
        [200, "garbage", None],
    ],
    "telemetry": [[None, None], [{"a b": "c/d"}, None], [[["k", "v"]], "thermostat1"], [{"€": "ü"}, "c"]],
    "hub_topics": [
        "devices/dev-1/messages/devicebound/%24.mid=1&method-name=reboot&x=a%20b",
        "$iothub/methods/POST/thermostat*getMaxMin/?$rid=9",
        "$iothub/twin/res/204/?$rid=2&$version=5",
        "$iothub/twin/PATCH/properties/desired/?$version=8",
        "devices/other/messages/devicebound/",
        "nonsense",
    ],
    "escapes": ["a%20b", "%E2%82%AC", "100%", "%zz", "plain"],
}


def cpython_results():
    namespace: dict = {}
    exec(compile(PROGRAM, "parity_program", "exec"), namespace)
    return json.loads(json.dumps(namespace["evaluate"](CASES)))


def test_core_matches_on_micropython(micropython):
    script = PROGRAM + f"\nprint(json.dumps(evaluate(json.loads({json.dumps(CASES)!r}))))\n"
    board = json.loads(run_micropython(micropython, script).strip().splitlines()[-1])
    expected = cpython_results()
    for name in expected:
        assert board[name] == expected[name], name


def test_the_program_checks_something_meaningful():
    results = cpython_results()
    assert results["identity"][0][0] == "ok" and results["identity"][3][0] == "error"
    assert results["dps_answers"][1][0] == "assigned"
    assert [d[0] for d in results["decisions"]][-1] == "dps"
