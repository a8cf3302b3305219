"""Box scores over the feed providers: poll a game until it is final, one event per change.

``<provider>.boxscore`` polls the type's URL until the game is final (or postponed /
cancelled), and schedules the type's ``follow_up_type`` some minutes after a final (feeds
correct their stats); ``<provider>.confirm`` makes one poll of a final game and reports what
the feed corrected since the parent task's last snapshot. The handler's state is the last
snapshot (``BoxScore.to_dict()``): a resumed runner diffs against exactly what was committed,
so the event stream of an interrupted game equals that of an uninterrupted one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from otf_dagster.core.models import TASK_TYPE_NAME_RE, TaskType
from otf_dagster.core.urls import placeholders
from otf_dagster.exceptions import InvalidTaskType, RetriableFeedError, UnknownGame
from otf_dagster.feeds import BoxScore, GameStatus, derive_events, make_provider
from otf_dagster.handlers.base import (
    Event,
    FollowUp,
    Markdown,
    Outcome,
    PollContext,
    PollResult,
    param_number,
)
from otf_dagster.views.tables import score_table

ENDED = (GameStatus.FINAL, GameStatus.POSTPONED, GameStatus.CANCELLED)
PARAMS = ("follow_up_type", "follow_up_delay_seconds", "unknown_game_polls")
DEFAULT_UNKNOWN_GAME_POLLS = 3
CLOSE_FINISH_SECONDS = 120.0
CLOSE_FINISH_MARGIN = 5


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
            not isinstance(follow, str) or not TASK_TYPE_NAME_RE.match(follow)
        ):
            raise InvalidTaskType(
                f"{label}: params.follow_up_type {follow!r} is not a task type name "
                "(e.g. NBA_GAME_CONFIRM)"
            )
        param_number(tt.params, "follow_up_delay_seconds", 600, 0, 86400, label)
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

    def poll(self, ctx: PollContext) -> PollResult:
        provider = make_provider(self.provider, client=ctx.client)
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
            if self.mode == "boxscore" and follow and snapshot.status == GameStatus.FINAL:
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
        """Slower before tip-off and in breaks, faster in a close finish (the runner keeps it
        within the type's min/max_poll_interval_seconds)."""
        interval = tt.poll_interval_seconds
        if box.status == GameStatus.SCHEDULED:
            return interval * 3
        if box.status != GameStatus.LIVE:
            return interval
        if box.clock_seconds == 0.0:  # between periods (the feeds keep the old period at 0:00)
            return interval * 2
        regulation = getattr(box, "regulation_periods", None) or 4
        if (
            (box.period or 0) >= regulation
            and box.clock_seconds is not None
            and box.clock_seconds <= CLOSE_FINISH_SECONDS
            and abs(box.home.score - box.away.score) <= CLOSE_FINISH_MARGIN
        ):
            return interval / 2
        return interval


def _display(box: BoxScore) -> dict[str, Any]:
    return {
        "status": str(box.status),
        "score": box.score_line(),
        "period": box.period or 0,
        "clock_seconds": box.clock_seconds if box.clock_seconds is not None else -1.0,
        "box_score": Markdown(score_table(box)),
    }
