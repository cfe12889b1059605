"""The supervisor's byte-stream helpers, without a board: event filtering and UART pacing."""

from hypothesis import given
from hypothesis import strategies as st
from iotcprov.virtual_board.stream import EventFilter, Pacer

EVENT = b"\x1b_vb:feed\x1b\\"


def test_events_are_cut_out_in_order():
    parts = EventFilter().feed(b"before" + EVENT + b"after")
    assert parts == [("text", b"before"), ("event", "feed"), ("text", b"after")]


@given(st.binary(max_size=200), st.binary(max_size=200), st.lists(st.integers(1, 50), max_size=20))
def test_events_split_across_reads_are_found(before, after, cuts):
    stream = before.replace(b"\x1b", b"") + EVENT + after.replace(b"\x1b", b"")
    feeder, parts, position = EventFilter(), [], 0
    for size in cuts + [len(stream)]:
        parts += feeder.feed(stream[position : position + size])
        position += size
    text = b"".join(value for kind, value in parts if kind == "text")
    assert [value for kind, value in parts if kind == "event"] == ["feed"]
    assert text == stream.replace(EVENT, b"")


def test_a_foreign_escape_sequence_passes_through():
    parts = EventFilter().feed(b"\x1b_vb:" + b"x" * 100)
    assert b"".join(value for kind, value in parts if kind == "text") == b"\x1b_vb:" + b"x" * 100


def test_pacer_holds_the_line_rate():
    pacer = Pacer(115200)  # 11520 bytes per second
    now, sent = 0.0, 0
    while sent < 11520:
        budget = pacer.budget(now)
        if budget:
            pacer.spend(budget, now)
            sent += budget
        else:
            now += pacer.delay(now)
    assert 0.99 <= now <= 1.0


def test_unthrottled_pacer_never_waits():
    pacer = Pacer(0)
    pacer.spend(10**6, 0.0)
    assert pacer.budget(0.0) > 0 and pacer.delay(0.0) == 0.0
