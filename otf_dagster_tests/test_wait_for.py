"""The one wait_for the end-to-end tests share: its value, a dead process failing at once,
the logs on a timeout."""

from __future__ import annotations

import pytest

from otf_dagster_tests.helpers import wait_for


def test_wait_for_returns_the_value_once_it_holds():
    answers = iter([0, None, {"ok": 1}])
    assert wait_for(lambda: next(answers), "the answer", every=0) == {"ok": 1}


def test_a_dead_process_fails_before_the_deadline():
    def alive() -> None:
        raise AssertionError("daemon died")

    with pytest.raises(AssertionError, match="daemon died"):
        wait_for(lambda: False, "never", seconds=3600, alive=alive)


def test_a_timeout_names_what_and_shows_the_logs():
    with pytest.raises(pytest.fail.Exception, match=r"waiting for the slate\nlog tail"):
        wait_for(lambda: False, "the slate", seconds=0, diagnostics=lambda: "log tail")
