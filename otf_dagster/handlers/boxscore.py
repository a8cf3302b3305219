"""Box scores over the feed providers: poll a game until it is final, one event per change.

``<provider>.boxscore`` polls the type's URL until the game is final (or postponed /
cancelled), and schedules the type's ``follow_up_type`` some minutes after a final (feeds
correct their stats); ``<provider>.confirm`` makes one poll of a final game and reports what
the feed corrected since the parent task's last snapshot. The handler's state is the last
snapshot (``BoxScore.to_dict()``): a resumed runner diffs against exactly what was committed,
so the event stream of an interrupted game equals that of an uninterrupted one.

A game already final when it was ingested (a backfill task, ``Task.lane``) is polled once: its
first poll diffs the final box score against an empty one, so it writes the game's final
state and every event the feed still gives (periods, scores, the sport's plays), then ends
FINISHED, with no confirmation after it.

A suspended game (ESPN's "post" that is not final) is not done: the runner goes on polling,
slowly, until the game resumes and ends, or the type's deadline passes (a league whose games
resume another day wants a deadline that long).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from otf_dagster.exceptions import ConfigError, InvalidTaskType, RetriableFeedError, UnknownGame
from otf_dagster.feeds import BoxScore, GameStatus, derive_events, make_provider
from otf_dagster.feeds.leagues import LEAGUES_FILE_ENV, load_leagues
from otf_dagster.handlers.base import (
    Event,
    FollowUp,
    Markdown,
    Outcome,
    PollContext,
    PollResult,
    param_number,
)
from otf_dagster.handlers.headers import check_header, expand_headers
from otf_dagster.views.tables import score_table
from otf_dagster.vocab.tasks import TASK_TYPE_NAME_RE, TaskType
from otf_dagster.vocab.urls import placeholders

ENDED = (GameStatus.FINAL, GameStatus.POSTPONED, GameStatus.CANCELLED)
PARAMS = ("league", "follow_up_type", "follow_up_delay_seconds", "unknown_game_polls", "headers")
DEFAULT_UNKNOWN_GAME_POLLS = 3
CLOSE_FINISH_SECONDS = 120.0  # countdown sports: the last two minutes
CLOSE_FINISH_MINUTE = 80  # soccer: from the 80th minute
CLOSE_MARGIN = {"basketball": 5, "football": 8}  # points; other sports: one goal or run
BREAKS = ("halftime", "end_period")


class BoxScoreHandler:
    def __init__(self, provider: str, mode: str) -> None:
        self.provider = provider
        self.mode = mode  # "boxscore" | "confirm"
        self.name = f"{provider}.{mode}"
        self.default_feed = provider  # the feed polled when the type names no base_url
        feed = {"nba_cdn": "the NBA CDN", "espn": "ESPN's site API"}[provider]
        self.description = (
            f"one last poll of a final game ({feed}) reporting stats the feed corrected"
            if mode == "confirm"
            else f"a game's box score ({feed}) until it is final"
        )

    # --- when a type is applied --------------------------------------------------------------

    def check(self, tt: TaskType) -> None:
        label = f"task type {tt.name!r}"
        if "key" not in placeholders(tt.url_template):
            raise InvalidTaskType(
                f"{label}: url_template {tt.url_template!r} has no {{key}}: a box score is "
                "polled per game, e.g. /static/json/liveData/boxscore/boxscore_{key}.json"
            )
        unknown = sorted(set(tt.params) - set(PARAMS))
        if unknown:
            raise InvalidTaskType(
                f"{label}: handler {self.name} has no param(s) {unknown}; its params: "
                f"{', '.join(PARAMS)}"
            )
        follow = tt.params.get("follow_up_type")
        if follow is not None and (
            not isinstance(follow, str) or not TASK_TYPE_NAME_RE.fullmatch(follow)
        ):
            raise InvalidTaskType(
                f"{label}: params.follow_up_type {follow!r} is not a task type name "
                "(e.g. NBA_GAME_CONFIRM)"
            )
        param_number(tt.params, "follow_up_delay_seconds", 600, 0, 86400, label)
        if "league" in tt.params:
            if self.provider != "espn":
                raise InvalidTaskType(
                    f"{label}: params.league is for ESPN's handlers; {self.name} polls the NBA only"
                )
            try:
                load_leagues(os.environ.get(LEAGUES_FILE_ENV) or None).get(tt.params["league"])
            except ConfigError as exc:
                raise InvalidTaskType(f"{label}: params.league: {exc}") from None
        headers = tt.params.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise InvalidTaskType(
                f"{label}: params.headers must map names to values, got {headers!r}"
            )
        for header, value in headers.items():
            check_header(header, value, label)
        polls = tt.params.get("unknown_game_polls", DEFAULT_UNKNOWN_GAME_POLLS)
        if isinstance(polls, bool) or not isinstance(polls, int) or not 1 <= polls <= 100:
            raise InvalidTaskType(
                f"{label}: params.unknown_game_polls must be a whole number from 1 to 100, "
                f"got {polls!r}"
            )

    def references(self, tt: TaskType) -> list[str]:
        follow = tt.params.get("follow_up_type")
        return [follow] if follow else []

    # --- each poll ---------------------------------------------------------------------------

    def label(self, params: Mapping[str, Any]) -> str | None:
        """A game's "AWAY @ HOME" (the schedule writes both teams into its params), or the
        ``matchup`` a spawn rule gave it."""
        named = params.get("matchup")
        if isinstance(named, str) and named:
            return named
        away, home = params.get("away"), params.get("home")
        if isinstance(away, str) and isinstance(home, str) and away and home:
            return f"{away} @ {home}"
        return None

    def poll(self, ctx: PollContext) -> PollResult:
        provider = make_provider(
            self.provider,
            client=ctx.client,
            leagues=load_leagues(os.environ.get(LEAGUES_FILE_ENV) or None),
            headers=expand_headers(ctx.task_type.params.get("headers") or {}),
        )
        previous = self._previous(ctx)
        try:
            snapshot = provider.boxscore(ctx.task.external_key, url=ctx.url)
        except UnknownGame as exc:
            raise self._unknown(ctx, previous, exc) from exc
        events = [Event(e.kind, e.payload) for e in derive_events(previous, snapshot)]
        result = PollResult(
            events=events,
            state=snapshot.to_dict(),
            display=_display(snapshot),
            next_poll_seconds=self._next_delay(ctx.task_type, snapshot),
        )
        if self.mode == "confirm" or snapshot.status in ENDED:
            result.outcome = Outcome.DONE
            result.reason = f"game {snapshot.status}"
            result.detail = {
                "final": snapshot.score_line(),
                "status": str(snapshot.status),
                "polls": ctx.polls,
            }
            follow = ctx.task_type.params.get("follow_up_type")
            # A backfilled game was final long before it was polled: the feed has made its
            # corrections, and a confirmation would only double the backfill's requests.
            if (
                self.mode == "boxscore"
                and follow
                and snapshot.status == GameStatus.FINAL
                and not ctx.task.backfill
            ):
                delay = float(ctx.task_type.params.get("follow_up_delay_seconds", 600))
                result.follow_ups.append(
                    FollowUp(follow, ctx.task.external_key, ctx.now + timedelta(seconds=delay))
                )
        return result

    def _previous(self, ctx: PollContext) -> BoxScore | None:
        if ctx.state:
            return BoxScore.from_dict(ctx.state)
        if self.mode == "confirm":  # a confirmation diffs against its parent's final snapshot
            parent = ctx.parent_state()
            if parent:
                return BoxScore.from_dict(parent)
        return None

    def _unknown(self, ctx: PollContext, previous: BoxScore | None, exc: UnknownGame) -> Exception:
        """A 404 for a game the feed has served is a passing error; a game never seen is
        unknown only after ``unknown_game_polls`` polls in a row say so."""
        if previous is not None:
            return RetriableFeedError(
                f"{exc} (the feed served this game before: counted as a passing error)"
            )
        limit = int(ctx.task_type.params.get("unknown_game_polls", DEFAULT_UNKNOWN_GAME_POLLS))
        if ctx.consecutive_errors + 1 >= limit:
            return UnknownGame(f"{exc} ({limit} poll(s) in a row)")
        return RetriableFeedError(
            f"{exc} (poll {ctx.consecutive_errors + 1} of {limit} before the game counts as unknown)"
        )

    @staticmethod
    def _next_delay(tt: TaskType, box: BoxScore) -> float:
        """Slower before the start, in breaks and while a game is suspended or delayed, faster
        in a close finish (the runner keeps it within min/max_poll_interval_seconds)."""
        interval = tt.poll_interval_seconds
        if box.status in (GameStatus.SCHEDULED, GameStatus.SUSPENDED):
            return interval * 3
        if box.status != GameStatus.LIVE:
            return interval
        countdown = box.format.clock == "countdown"
        if box.status_detail in BREAKS or (countdown and box.clock_seconds == 0.0):
            return interval * 2  # (between periods the feeds keep the old period at 0:00)
        return interval / 2 if _close_finish(box) else interval


def _close_finish(box: BoxScore) -> bool:
    margin = abs(box.home.score - box.away.score)
    if margin > CLOSE_MARGIN.get(box.sport, 1):
        return False
    period, clock = box.period or 0, box.clock_seconds
    if box.format.clock == "countdown":
        return (
            period >= box.format.regulation and clock is not None and clock <= CLOSE_FINISH_SECONDS
        )
    if box.format.clock == "minutes":  # soccer: the clock counts the match's seconds up
        return clock is not None and clock >= CLOSE_FINISH_MINUTE * 60
    return period >= box.format.regulation  # baseball: the last inning and beyond


def _display(box: BoxScore) -> dict[str, Any]:
    return {
        "league": box.league,
        "status": str(box.status),
        "score": box.score_line(),
        "period": box.period or 0,
        "period_label": box.format.label(box.period) if box.period else "",
        "clock": box.display_clock or "",
        "clock_seconds": box.clock_seconds if box.clock_seconds is not None else -1.0,
        "box_score": Markdown(score_table(box)),
    }
