"""firmware/README.md's state diagram is the one tools/fw_state_diagram.py draws from the
firmware's transition table (policy.TABLE): change the table, run
`python tools/fw_state_diagram.py --write`."""

import importlib.util
from pathlib import Path

import pytest
from iotc import policy
from iotc.app import PolicyState

TOOL = Path(__file__).resolve().parents[2] / "tools" / "fw_state_diagram.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("fw_state_diagram", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_diagram_matches_the_table():
    tool = load_tool()
    readme = tool.README.read_text(encoding="utf-8")
    assert tool.current(readme) == tool.block(policy.TABLE), "run: python tools/fw_state_diagram.py --write"


def test_every_table_line_is_an_edge_to_a_known_stage():
    stages = {"idle", "wifi", "clock", "dps", "hub", "online", "stopped"}
    edges = load_tool().edges(policy.TABLE)
    assert len(edges) == len(set(edges))
    for source, outcome, target in edges:
        assert source in stages | {"*"} and target in stages
        assert callable(getattr(policy, outcome)), outcome


def test_a_changed_table_is_noticed():
    tool = load_tool()
    readme = tool.README.read_text(encoding="utf-8")
    assert tool.current(readme) != tool.block(policy.TABLE + "online renew dps\n")


def test_the_firmware_refuses_an_edge_the_table_lacks():
    state = PolicyState()
    options = type("Options", (), {"terminal_wait": 0})()
    assert policy.decide(state, options, "dps", "stop").stage == "idle"  # "*": any stage
    with pytest.raises(ValueError, match="no edge online joined clock"):
        policy.decide(state, options, "online", "joined")
