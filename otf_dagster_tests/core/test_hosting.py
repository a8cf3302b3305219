"""The hosting rules both modes share: the next poll follows the runner's plan and never
passes the deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from otf_dagster.core.hosting import next_poll_in

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)


def test_the_next_poll_follows_the_runners_plan():
    assert next_poll_in(10.0, NOW + timedelta(seconds=4), NOW, 3600) == 4.0
    assert next_poll_in(10.0, None, NOW, 3600) == 10.0
    assert next_poll_in(10.0, NOW - timedelta(seconds=2), NOW, 3600) == 0.0  # late: at once


def test_the_deadline_cuts_a_wait_short():
    assert next_poll_in(30.0, NOW + timedelta(seconds=30), NOW, 5.0) == 5.0
    assert next_poll_in(30.0, None, NOW, -1.0) == 0.0  # past it: the poll ends the task
