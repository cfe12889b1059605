"""Parity: the IoT Central payload rules (pnp.py), creation-time stamps (clock.iso_utc,
hub.telemetry_topic) and the feature options give the same answers on the MicroPython unix port
as on CPython. One program runs on both; its JSON results must match exactly."""

import json

from fw_rig import run_micropython

PROGRAM = r"""
import json
from iotc import ConfigError, clock, config, hub, pnp


def attempt(function, *args):
    try:
        return ["ok", function(*args)]
    except (ValueError, ConfigError) as e:
        return ["error", type(e).__name__, str(e.args[0])]


def options_case(doc):
    result = attempt(config.options, doc)
    if result[0] == "ok":
        return ["ok", result[1].buffer_size, result[1].watchdog]
    return result


def evaluate(cases):
    out = {}
    out["payload"] = [attempt(pnp.parse_payload, b.encode()) for b in cases["payloads"]]
    out["items"] = [
        sorted([list(i) for i in pnp.desired_items(d, k)], key=json.dumps) for d, k in cases["desired"]
    ]
    out["version"] = [pnp.desired_version(d, f) for d, f in cases["versions"]]
    out["acked"] = [pnp.acked_version(cases["reported"], c, n) for c, n in cases["acked"]]
    out["property"] = [attempt(pnp.property_result, tuple(r) if isinstance(r, list) else r, v)
                       for r, v in cases["property_results"]]
    out["command"] = [attempt(pnp.command_result, tuple(r) if isinstance(r, list) else r)
                      for r in cases["command_results"]]
    patch = {}
    for properties, component in cases["merges"]:
        pnp.merge(patch, properties, component)
    out["merge"] = patch
    out["ack"] = pnp.ack(21.5, 200, "completed", 3)
    out["errors"] = [pnp.error_payload(ValueError(t)) for t in cases["errors"]]
    out["iso"] = [clock.iso_utc(t) for t in cases["times"]]
    out["topics"] = [hub.telemetry_topic("dev-1", p, c, t) for p, c, t in cases["topics"]]
    out["options"] = [options_case(doc) for doc in cases["options"]]
    return out
"""

CASES = {
    "payloads": ['{"delay": 5}', "null", "", "2.5", "not json", "[1, 2]"],
    "desired": [
        [{"targetTemperature": 22, "$version": 4}, []],
        [{"t1": {"__t": "c", "x": 1, "y": None}, "t2": {"x": 2}, "o": {"a": 1}, "$version": 5}, ["t2"]],
        [None, []],
    ],
    "versions": [[{"$version": 9}, 4], [{"a": 1}, 4], [{"$version": True}, None]],
    "reported": {"p": {"value": 1, "av": 5}, "c": {"__t": "c", "p": {"av": 6}}, "q": 3},
    "acked": [[None, "p"], ["c", "p"], ["d", "p"], [None, "q"], [None, "missing"]],
    "property_results": [[None, 22], [[21, 400, "no"], 50], [[21, 400], 50], [21.5, 21], [[1, "ok"], 1]],
    "command_results": [{"a": 1}, None, [409, {"error": "busy"}], [True, {}], [42, {}]],
    "merges": [[{"a": 1}, None], [{"b": 2}, "comp"], [{"c": 3}, "comp"], [{"a": 4}, None]],
    "errors": ["sensor not ready", "", "x" * 300],
    "times": [1745235016, 1735689600, 4102444799],
    "topics": [
        [None, None, None],
        [{"n": "1"}, "thermostat1", "2025-04-21T11:30:16Z"],
        [[["a b", "c/d"]], None, "2030-01-01T00:00:00Z"],
    ],
    "options": [
        {},
        {"buffer_size": 0, "watchdog": 40},
        {"buffer_size": 501},
        {"watchdog": 39},
        {"watchdog": 15, "connect_timeout": 5, "response_timeout": 5},
        {"watchdog": True},
    ],
}


def cpython_results():
    namespace: dict = {}
    exec(compile(PROGRAM, "pnp_parity_program", "exec"), namespace)
    return json.loads(json.dumps(namespace["evaluate"](json.loads(json.dumps(CASES)))))


def test_pnp_core_matches_on_micropython(micropython):
    script = PROGRAM + f"\nprint(json.dumps(evaluate(json.loads({json.dumps(CASES)!r}))))\n"
    board = json.loads(run_micropython(micropython, script).strip().splitlines()[-1])
    expected = cpython_results()
    for name in expected:
        assert board[name] == expected[name], name


def test_the_program_checks_something_meaningful():
    results = cpython_results()
    assert ["comp", "b", 2] not in results["items"][1] and ["t1", "x", 1] in results["items"][1]
    assert results["acked"] == [5, 6, None, None, None]
    assert results["property"][4][0] == "error" and results["command"][3][0] == "error"
    assert results["merge"] == {"a": 4, "comp": {"__t": "c", "b": 2, "c": 3}}
    assert results["options"][0] == ["ok", 20, 0] and results["options"][3][0] == "error"
    assert results["options"][4] == ["ok", 20, 15]
    assert results["iso"][0] == "2025-04-21T11:30:16Z"
