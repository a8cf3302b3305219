"""Event delivery: commit order, durable cursors, no skips under concurrent writers, NOTIFY."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from otf_dagster.core.consumer import CHANNEL, Consumer, read_events
from otf_dagster.core.services import list_subscriptions, subscribe, unsubscribe
from otf_dagster.core.store import EVENTS_LOCK_KEY, TaskStore, polls
from otf_dagster.core.store.polls import PollWrite
from otf_dagster.exceptions import StoreError, UnknownTaskType
from otf_dagster.vocab.tasks import EventRecord
from otf_dagster_tests.helpers import MEDIA, PLAIN, start_task

UNSUBSCRIBED = "NBA_GAME_OTHER"


def append(store: TaskStore, task_type: str, n: int, *, task_id: str = "t", start: int = 1) -> None:
    store.append_events(
        [
            (
                f"{task_type.lower()}:{task_id}",
                "run-1",
                task_type,
                EventRecord(start + i, "score_changed", {"i": start + i}),
            )
            for i in range(n)
        ]
    )


def all_seqs(db_url: str, exclude: str = "") -> list[int]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT seq FROM task_events WHERE task_type <> %s ORDER BY seq", (exclude,)
        )
        return [r[0] for r in rows]


# --- subscriptions ---------------------------------------------------------------------------------


def test_subscriptions_add_remove_revive_list(store, media_types):
    assert subscribe(store, "photo-svc", MEDIA) == "created"
    assert subscribe(store, "photo-svc", MEDIA) == "unchanged"
    assert unsubscribe(store, "photo-svc", MEDIA) is True
    assert unsubscribe(store, "photo-svc", MEDIA) is False
    assert list_subscriptions(store, "photo-svc") == []
    [removed] = list_subscriptions(store, "photo-svc", include_deleted=True)
    assert removed["deleted_at"] is not None
    assert subscribe(store, "photo-svc", MEDIA) == "revived"
    assert [(s["owner"], s["task_type"], s["deleted_at"]) for s in list_subscriptions(store)] == [
        ("photo-svc", MEDIA, None)
    ]
    with pytest.raises(UnknownTaskType, match="'NOPE' does not exist"):
        subscribe(store, "photo-svc", "NOPE")
    with pytest.raises(StoreError, match="bad subscriber name"):
        subscribe(store, "no spaces", MEDIA)
    store.delete_task_type(PLAIN)
    with pytest.raises(UnknownTaskType, match="soft-deleted"):
        subscribe(store, "photo-svc", PLAIN)


# --- reading ---------------------------------------------------------------------------------------


def test_a_consumer_reads_only_its_live_subscriptions_and_resumes_from_its_cursor(
    db_url, store, media_types
):
    subscribe(store, "c1", MEDIA)
    append(store, MEDIA, 3)
    append(store, PLAIN, 2)
    append(store, MEDIA, 2, start=4)
    with Consumer(db_url, "c1") as c:
        got = [(e["task_type"], e["task_seq"]) for e in c.iter_events(batch=2)]
        assert got == [(MEDIA, 1), (MEDIA, 2), (MEDIA, 3), (MEDIA, 4), (MEDIA, 5)]
        assert c.committed_position() == all_seqs(db_url)[-1]
    with Consumer(db_url, "c1") as c:
        assert list(c.iter_events()) == []  # nothing new
    subscribe(store, "c1", PLAIN)
    append(store, PLAIN, 1, start=3)
    unsubscribe(store, "c1", MEDIA)
    append(store, MEDIA, 1, start=6)
    with Consumer(db_url, "c1") as c:
        # A new subscription delivers from the cursor on: earlier PLAIN events are not replayed.
        assert [(e["task_type"], e["task_seq"]) for e in c.iter_events()] == [(PLAIN, 3)]


def test_an_event_is_delivered_again_until_acknowledged(db_url, store, media_types):
    subscribe(store, "c1", MEDIA)
    append(store, MEDIA, 5)
    seqs = all_seqs(db_url)
    with Consumer(db_url, "c1") as c:
        for ev in c.iter_events(batch=10):
            if ev["task_seq"] == 3:
                break  # crashed while processing #3: #1 and #2 are done, #3 is not
    with Consumer(db_url, "c1") as c:
        assert c.committed_position() == seqs[1]
        assert [e["task_seq"] for e in c.iter_events(auto_ack=False)] == [3, 4, 5]
        c.ack(seqs[3])
        c.ack(seqs[0])  # a late ack never moves the cursor back
    with Consumer(db_url, "c1") as c:
        assert [e["task_seq"] for e in c.iter_events()] == [5]


def test_a_new_consumer_may_start_at_the_end(db_url, store, media_types):
    subscribe(store, "late", MEDIA)
    append(store, MEDIA, 3)
    with Consumer(db_url, "late", start="end") as c:
        assert list(c.iter_events()) == []
    append(store, MEDIA, 1, start=4)
    with Consumer(db_url, "late", start="end") as c:  # start applies to a new cursor only
        assert [e["task_seq"] for e in c.iter_events()] == [4]


def test_one_durable_consumer_runs_at_a_time(db_url, store, media_types):
    with Consumer(db_url, "solo") as first:
        first.fetch()
        with pytest.raises(StoreError, match="'solo' is already running"):
            Consumer(db_url, "solo").fetch()
    with Consumer(db_url, "solo") as again:  # released when the first closed
        assert again.fetch() == []


def test_non_durable_reads_filter_by_type_and_time(db_url, store, media_types):
    append(store, MEDIA, 2)
    append(store, PLAIN, 2)
    assert [(e["task_type"], e["task_seq"]) for e in read_events(db_url, task_types=[PLAIN])] == [
        (PLAIN, 1),
        (PLAIN, 2),
    ]
    assert len(read_events(db_url)) == 4
    assert len(read_events(db_url, limit=3)) == 3
    future = datetime.now(UTC) + timedelta(hours=1)
    assert read_events(db_url, since=future) == []
    with pytest.raises(StoreError, match="non-durable reads only"):
        Consumer(db_url, "c1", task_types=[MEDIA])


def test_event_dicts_carry_what_consumers_need(db_url, store, media_types):
    append(store, MEDIA, 1)
    [ev] = read_events(db_url)
    assert set(ev) == {
        "seq",
        "time",
        "task_id",
        "task_runner_id",
        "task_type",
        "task_seq",
        "kind",
        "payload",
    }
    assert (ev["task_id"], ev["task_runner_id"], ev["kind"], ev["payload"]) == (
        "nba_game_media:t",
        "run-1",
        "score_changed",
        {"i": 1},
    )


# --- no skips ----------------------------------------------------------------------------------


def _insert_raw(conn: psycopg.Connection, task_type: str, task_seq: int) -> None:
    conn.execute(
        "INSERT INTO task_events (task_id, task_runner_id, task_type, task_seq, kind, payload) "
        "VALUES (%s, 'raw', %s, %s, 'raw_insert', %s)",
        (f"{task_type.lower()}:raw", task_type, task_seq, Jsonb({})),
    )


def test_a_later_writer_waits_for_an_earlier_one_so_seq_order_is_commit_order(db_url, media_types):
    """The interleaving that makes a naive cursor skip: A draws a number, B draws a larger one
    and commits first. Here B - even a plain INSERT that takes no lock itself - waits for A."""
    a = psycopg.connect(db_url)
    b = psycopg.connect(db_url)
    try:
        _insert_raw(a, MEDIA, 1)  # A's transaction is open, holding its seq
        done = threading.Event()

        def writer_b() -> None:
            _insert_raw(b, MEDIA, 2)
            b.commit()
            done.set()

        t = threading.Thread(target=writer_b)
        t.start()
        assert not done.wait(0.5), "B committed while A was still open"
        assert read_events(db_url) == []
        a.commit()
        t.join(10)
        assert done.is_set()
        events = read_events(db_url)
        assert [e["task_seq"] for e in events] == [1, 2]  # A's row has the smaller seq
    finally:
        a.close()
        b.close()


def test_a_plain_sequence_cursor_would_skip_under_the_same_interleaving(db_url):
    """The control: without the lock, 'id > cursor' loses A's row for good."""
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE naive_events (id bigserial, note text)")
    a = psycopg.connect(db_url)
    b = psycopg.connect(db_url)
    reader = psycopg.connect(db_url, autocommit=True)
    try:
        a.execute("INSERT INTO naive_events (note) VALUES ('A')")  # draws id 1, stays open
        b.execute("INSERT INTO naive_events (note) VALUES ('B')")  # draws id 2
        b.commit()
        cursor = 0
        seen = [
            r
            for r in reader.execute(
                "SELECT id, note FROM naive_events WHERE id > %s ORDER BY id", (cursor,)
            )
        ]
        cursor = seen[-1][0]
        a.commit()
        seen += reader.execute(
            "SELECT id, note FROM naive_events WHERE id > %s ORDER BY id", (cursor,)
        ).fetchall()
        assert [note for _, note in seen] == ["B"]  # A was skipped
        assert reader.execute("SELECT count(*) FROM naive_events").fetchone()[0] == 2
    finally:
        for c in (a, b, reader):
            c.close()


def test_the_events_sequence_hands_out_numbers_one_at_a_time(db_url):
    with psycopg.connect(db_url) as conn:
        (cache,) = conn.execute(
            "SELECT cache_size FROM pg_sequences WHERE sequencename = 'task_events_seq'"
        ).fetchone()
    assert cache == 1


def test_plain_inserts_take_the_same_lock_as_the_store(db_url, media_types):
    with psycopg.connect(db_url) as writer, psycopg.connect(db_url, autocommit=True) as other:
        _insert_raw(writer, MEDIA, 1)
        (got,) = other.execute(
            "SELECT pg_try_advisory_xact_lock(%s)", (EVENTS_LOCK_KEY,)
        ).fetchone()
        assert got is False
        writer.rollback()
        (got,) = other.execute(
            "SELECT pg_try_advisory_xact_lock(%s)", (EVENTS_LOCK_KEY,)
        ).fetchone()
        assert got is True


def test_concurrent_writers_and_a_restarting_consumer_miss_nothing(db_url, store, media_types):
    """4 writers (own stores; store.append_events-style COPY, record_poll, plain INSERTs, some
    rolled back) sleep randomly inside their transactions so commits interleave; a consumer
    restarts many times from its durable cursor, sometimes 'crashing' before its ack."""
    rng = random.Random(20261127)
    subscribe(store, "c1", MEDIA)
    subscribe(store, "c1", PLAIN)
    runner_tasks = [start_task(store, PLAIN, f"w{i}").task for i in range(4)]
    errors: list[BaseException] = []
    per_writer = 80

    def writer(w: int) -> None:
        wrng = random.Random(w)
        task = runner_tasks[w]
        next_seq = 1
        try:
            with TaskStore(db_url, application_name=f"writer-{w}") as own:
                for i in range(per_writer):
                    n = wrng.randint(1, 5)
                    events = [
                        EventRecord(next_seq + k, "score_changed", {"w": w, "i": i, "k": k})
                        for k in range(n)
                    ]
                    mode = i % 4
                    if mode == 3:  # the runner's real write path
                        time.sleep(wrng.random() * 0.004)
                        own.record_poll(
                            PollWrite(task.task_id, task.attempt, f"run-{w}", {"i": i}, events)
                        )
                        next_seq += n
                        continue

                    def work(c: psycopg.Connection, events=events, mode=mode, i=i) -> None:
                        time.sleep(wrng.random() * 0.004)
                        if mode == 2:  # a plain INSERT that takes no lock itself
                            for ev in events:
                                c.execute(
                                    "INSERT INTO task_events (task_id, task_runner_id, task_type, task_seq, kind, payload) "
                                    "VALUES (%s, %s, %s, %s, %s, %s)",
                                    (
                                        f"nba_game_media:w{w}",
                                        f"run-{w}",
                                        MEDIA,
                                        ev.task_seq,
                                        ev.kind,
                                        Jsonb(ev.payload),
                                    ),
                                )
                        else:
                            # every other COPY is of a type the consumer does not subscribe to
                            tt = MEDIA if i % 8 == 0 else UNSUBSCRIBED
                            polls.copy_events(
                                c,
                                [(f"{tt.lower()}:w{w}", f"run-{w}", tt, ev) for ev in events],
                            )
                        time.sleep(wrng.random() * 0.008)  # holding its numbers while others wait
                        if i % 13 == 0:
                            raise _Rollback

                    try:
                        own.run(f"writer {w}", work)
                        next_seq += n
                    except _Rollback:
                        pass
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()

    # Beside the restarting consumer, a non-durable follower reads all the time, in tiny batches.
    watched: list[int] = []

    def watcher() -> None:
        with Consumer(db_url) as c:
            for ev in c.iter_events(follow=True, batch=2, poll_interval=0.002, timeout=1.0):
                watched.append(ev["seq"])

    watch = threading.Thread(target=watcher)
    watch.start()

    sessions: list[tuple[int, list[int]]] = []  # (cursor at start, seqs received)

    def one_session(final: bool) -> None:
        with Consumer(db_url, "c1") as c:
            start = c.position
            got: list[int] = []
            budget = None if final else rng.randint(1, 60)
            crash = not final and rng.random() < 0.5
            # Following: woken by each commit, it reads exactly when a later writer has
            # committed and an earlier one may not have - the moment a naive cursor skips.
            stream = c.iter_events(
                batch=rng.choice([1, 3, 7, 50]),
                auto_ack=not crash,
                follow=not final,
                poll_interval=0.005,
                timeout=0.1,
            )
            for ev in stream:
                got.append(ev["seq"])
                if crash and rng.random() < 0.3:
                    c.ack(ev["seq"])  # processed and acknowledged so far...
                if budget is not None and len(got) >= budget:
                    break  # ...then stop: a crash (unacked tail) or a clean restart
            sessions.append((start, got))

    while any(t.is_alive() for t in threads):
        one_session(final=False)
    for t in threads:
        t.join()
    assert errors == []
    one_session(final=True)
    watch.join(30)

    everything = all_seqs(db_url)
    expected = all_seqs(db_url, exclude=UNSUBSCRIBED)
    assert len(expected) < len(everything)
    received = [s for _, got in sessions for s in got]
    assert len(sessions) > 5
    assert sorted(set(received)) == expected  # nothing skipped, nothing invented
    for start, got in sessions:
        assert got == sorted(set(got)), "a session received out of seq order or twice"
        assert not got or got[0] > start  # nothing at or before the durable cursor came back
    # Duplicates only where at-least-once allows: delivered in a session, not acknowledged, so
    # delivered again after the restart. Each session starts right after the previous' last ack.
    for (prev_start, prev), (start, got) in zip(sessions, sessions[1:], strict=False):
        assert start >= prev_start  # the durable cursor never moves back
        redelivered = set(prev) & set(got)
        assert all(s > start for s in redelivered)
    assert len(received) >= len(expected)
    assert watched == everything  # the follower of all types: every event once, in order


class _Rollback(Exception):
    pass


# --- waking up ---------------------------------------------------------------------------------


def test_a_waiting_follower_wakes_on_commit_well_before_its_poll_interval(
    db_url, store, media_types
):
    subscribe(store, "follower", MEDIA)
    received: list[int] = []
    ready = threading.Event()
    woke = [threading.Event() for _ in range(3)]

    def follow() -> None:
        with Consumer(db_url, "follower") as c:
            c.fetch()  # connected
            ready.set()
            # An hour between re-checks and no end but the third event: within the test's
            # bound, only NOTIFY can wake it.
            for ev in c.iter_events(follow=True, poll_interval=3600, timeout=3600):
                received.append(ev["task_seq"])
                woke[len(received) - 1].set()
                if len(received) == 3:
                    break

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    assert ready.wait(10)
    for i in range(3):
        # lets the follower reach its wait: a shorter pause makes the test weaker, never flaky
        time.sleep(0.3)
        append(store, MEDIA, 1, start=i + 1)
        assert woke[i].wait(30), f"the follower did not wake for event {i + 1}"
    t.join(10)
    assert received == [1, 2, 3]


def test_one_notification_per_transaction_not_per_row(db_url, store, media_types):
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        append(store, MEDIA, 100)
        notes = list(listener.notifies(timeout=1.0))
        assert [n.channel for n in notes] == [CHANNEL]
        with psycopg.connect(db_url) as w:
            _insert_raw(w, MEDIA, 200)
            w.rollback()
        assert list(listener.notifies(timeout=0.3)) == []  # a rolled-back insert wakes no one


def test_a_rare_type_consumer_moves_its_cursor_past_other_types(db_url, store, media_types):
    """After a short read the position jumps to the snapshot's largest seq: the next read does
    not rescan other types' events, and nothing of its own type can still appear below it."""
    subscribe(store, "rare", PLAIN)
    append(store, PLAIN, 1)
    append(store, MEDIA, 50)
    with Consumer(db_url, "rare") as c:
        assert [e["task_type"] for e in c.iter_events()] == [PLAIN]
        assert c.committed_position() == all_seqs(db_url)[-1]
    append(store, PLAIN, 1, start=2)
    with Consumer(db_url, "rare") as c:
        assert [e["task_seq"] for e in c.iter_events()] == [2]


class _ReadSizes(Consumer):
    """A real consumer that notes the size of each read it makes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reads: list[int] = []

    def fetch(self, limit: int = 500) -> list[dict]:
        self.reads.append(limit)
        return super().fetch(limit)


def test_a_consumer_far_behind_reads_in_larger_batches(store, db_url, media_types, monkeypatch):
    """From an old position each read grows (one statement plans against every chunk that
    `seq > position` cannot exclude), to CATCH_UP_BATCH when more than that is behind; every
    event is still delivered once, in order, and the cursor ends at the last."""
    import otf_dagster.core.consumer as consumer_module

    monkeypatch.setattr(consumer_module, "CATCH_UP_BATCH", 1000)
    for k in range(4):
        append(store, MEDIA, 1000, task_id=f"g{k}")
    subscribe(store, "catch-up", MEDIA)
    with _ReadSizes(db_url, "catch-up") as consumer:
        seqs = [ev["seq"] for ev in consumer.iter_events(batch=100)]
        assert seqs == all_seqs(db_url)
        assert consumer.committed_position() == seqs[-1]
        # 100 first; 3,900 behind: 1,000 a read; the last one short (900) ends the stream.
        assert consumer.reads == [100, 1000, 1000, 1000, 1000]
        append(store, MEDIA, 150, task_id="live")
        # Near the head: batch, then doubling.
        assert len(list(consumer.iter_events(batch=100))) == 150
        assert consumer.reads[5:] == [100, 200]
