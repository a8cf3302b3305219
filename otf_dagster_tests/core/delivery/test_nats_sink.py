"""NatsSink against a real nats-server: restarts, relay restarts, a deleted stream, no server."""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from collections.abc import Sequence

import pytest

from otf_dagster.core.delivery.nats_sink import (
    NatsSink,
    decode_token,
    encode_token,
    event_subject,
    next_window,
    stream_name,
    validate_prefix,
)
from otf_dagster.core.delivery.sink import EventBody
from otf_dagster.exceptions import ConfigError
from otf_dagster.local import nats as embedded_nats
from otf_dagster_tests.core.delivery.nats_helpers import delete_stream, make_events, read_stream

BATCH = 50


def relay(sink: NatsSink, events: Sequence[EventBody], start: int, stop: int) -> int:
    """What the relay does: send past the position, advance by what was accepted only."""
    position, failures = start, 0
    while position < stop:
        outcome = sink.send(events[position : min(position + BATCH, stop)])
        position += outcome.accepted
        if outcome.accepted == 0:
            failures += 1
            assert failures < 20, outcome.error  # the server is back: it must go on
    return position


def check_stream(url: str, prefix: str, events: Sequence[EventBody]) -> None:
    """The stream holds each id once, every one sent, and each task's events in order."""
    got = read_stream(url, stream_name(prefix), prefix)
    ids = [msg_id for _, msg_id, _ in got]
    assert len(ids) == len(set(ids)), "an id is stored twice"
    assert set(ids) == {e.id for e in events}
    per_subject: dict[str, list[int]] = defaultdict(list)
    for subject, msg_id, data in got:
        assert data["id"] == msg_id
        assert subject == event_subject(prefix, data["task_type"], data["task_id"])
        per_subject[subject].append(data["task_seq"])
    assert len(per_subject) == 10
    for seqs in per_subject.values():
        assert seqs == list(range(1, 201))


def test_ten_tasks_across_a_server_restart_and_a_relay_restart(own_nats_server):
    server, prefix = own_nats_server, "otf.restart"
    events = make_events(10, 200)
    sink = NatsSink(prefix, server.url, timeout=1.0)
    position = relay(sink, events, 0, 600)

    server.stop()
    began = time.monotonic()
    down = sink.send(events[position : position + BATCH])
    assert time.monotonic() - began < 2.0  # bounded by the sink's timeout, never hung
    assert down.accepted == 0 and down.error and "\n" not in down.error
    server = embedded_nats.start(server.folder)  # same folder, same port
    assert server.url == own_nats_server.url
    position = relay(sink, events, position, 1300)

    # The relay dies after the sink accepted its last batch but before it saved its position:
    # the next relay re-sends that batch with the same ids.
    sink.close()
    sink = NatsSink(prefix, server.url, timeout=1.0)
    again = sink.send(events[position - BATCH : position])
    assert again.accepted == BATCH and again.error is None
    relay(sink, events, position, len(events))
    sink.close()
    check_stream(server.url, prefix, events)


def test_a_deleted_stream_is_created_again_and_nothing_is_lost_from_then(nats_server):
    prefix = "otf.deleted"
    events = make_events(10, 200)
    sink = NatsSink(prefix, nats_server.url, timeout=2.0)
    position = relay(sink, events, 0, 1000)
    delete_stream(nats_server.url, stream_name(prefix))
    relay(sink, events, position, len(events))
    sink.close()
    got = read_stream(nats_server.url, stream_name(prefix), prefix)
    assert [msg_id for _, msg_id, _ in got] == [e.id for e in events[position:]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nats_down_at_start_fails_within_the_timeout_then_goes_on(tmp_path):
    port = free_port()
    sink = NatsSink("otf.late", f"nats://127.0.0.1:{port}", timeout=1.0)
    events = make_events(2, 3)
    began = time.monotonic()
    outcome = sink.send(events)
    assert time.monotonic() - began < 2.0
    assert outcome.accepted == 0
    assert outcome.error and f"127.0.0.1:{port}" in outcome.error and "\n" not in outcome.error
    (tmp_path / "nats").mkdir()
    (tmp_path / "nats" / embedded_nats.PORT_FILE).write_text(f"{port}\n")
    server = embedded_nats.start(tmp_path / "nats")
    try:
        assert server.port == port
        assert sink.send(events).accepted == len(events)
        sink.close()
        assert len(read_stream(server.url, stream_name("otf.late"), "otf.late")) == len(events)
    finally:
        server.stop()


def test_a_task_id_with_dots_stays_one_subject_token(nats_server):
    assert encode_token("nba.game 1*>%") == "nba%2Egame%201%2A%3E%25"
    for value in ("nba.game 1*>%", "a\u2003b.c", "%2E", "plain"):
        assert decode_token(encode_token(value)) == value
    [event] = make_events(1, 1, task_type="nba.game.box")
    sink = NatsSink("otf.enc", nats_server.url)
    assert sink.send([event]).accepted == 1
    sink.close()
    [(subject, _, data)] = read_stream(nats_server.url, stream_name("otf.enc"), "otf.enc")
    assert subject == "otf.enc.nba%2Egame%2Ebox.task%2E0"
    _, _, task_type, task_id = subject.split(".")
    assert (decode_token(task_type), decode_token(task_id)) == (data["task_type"], data["task_id"])


@pytest.mark.parametrize(
    "prefix", ["", "otf.*", "otf.>", "a b", "otf..x", ".otf", "otf.", "$JS.x", "reports.x"]
)
def test_a_bad_prefix_is_refused_in_one_line(prefix):
    with pytest.raises(ConfigError) as refused:
        validate_prefix(prefix)
    assert repr(prefix) in str(refused.value) and "\n" not in str(refused.value)


def test_distinct_prefixes_get_distinct_streams():
    assert validate_prefix("otf.events") == "otf.events"
    assert stream_name("a.b") != stream_name("a_b")


def test_a_window_of_pipelined_publishes_never_holds_two_events_of_one_task():
    """A lost ack followed by a later acked event of the same task would store that task's
    events out of order on the re-send; the window stops before a task's second event."""
    events = make_events(10, 5) + make_events(1, 3)
    start, windows = 0, []
    while start < len(events):
        window = next_window("otf.w", events, start, limit=7)
        subjects = [subject for subject, _ in window]
        assert window and len(subjects) == len(set(subjects)) and len(window) <= 7
        windows.append([event for _, event in window])
        start += len(window)
    assert [event for window in windows for event in window] == events
    assert [len(w) for w in windows] == [7] * 7 + [2, 1, 1]  # the last task alone: one by one
