"""Turn two consecutive box scores into the events that happened between them.

Pure and deterministic: the runner stores the last BoxScore as a checkpoint and appends
``derive_events(checkpoint, new)``; ``apply_events`` is the inverse used to check that the event
stream loses nothing a consumer needs (status, period, scores, per-period scores).

Points are attributed to periods by the per-period scores, so one poll spanning several
periods yields, in order, period_started k / score_changed (period k) / period_ended k for each.
A period counts as ended when a later one has started, the game is final, or the clock of a
live game reads 0.0 (between periods the feeds keep the old period at 0:00).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from otf_dagster.feeds.models import (
    CANCELLED,
    GAME_FINAL,
    GAME_STARTED,
    LEAD_CHANGED,
    PERIOD_ENDED,
    PERIOD_STARTED,
    POSTPONED,
    RESCHEDULED,
    SCORE_CHANGED,
    STATS_CORRECTED,
    BoxScore,
    GameEvent,
    GameStatus,
    TeamLine,
)

_OFF = (GameStatus.SCHEDULED, GameStatus.POSTPONED, GameStatus.CANCELLED)


def empty_like(box: BoxScore) -> BoxScore:
    """The same game before tip-off: what ``derive_events(None, box)`` diffs against."""
    return BoxScore(
        game_id=box.game_id,
        provider=box.provider,
        status=GameStatus.SCHEDULED,
        period=None,
        clock_seconds=None,
        home=TeamLine(tricode=box.home.tricode, score=0),
        away=TeamLine(tricode=box.away.tricode, score=0),
    )


def _leader(box: BoxScore, home_score: int, away_score: int) -> str | None:
    if home_score == away_score:
        return None
    return box.home.tricode if home_score > away_score else box.away.tricode


def _at(periods: tuple[int, ...], k: int) -> int:
    return periods[k - 1] if 0 < k <= len(periods) else 0


def _current_period(box: BoxScore) -> int:
    if box.status in _OFF:
        return 0
    if box.period is not None:
        return box.period
    return max(len(box.home.periods), len(box.away.periods))


def _ended(box: BoxScore, period: int) -> bool:
    """Whether ``box`` shows ``period`` as over."""
    if period < 1:
        return False
    current = _current_period(box)
    if box.status is GameStatus.FINAL:
        return period <= current
    if box.status is not GameStatus.LIVE:
        return False
    return period < current or (period == current and box.clock_seconds == 0.0)


def derive_events(prev: BoxScore | None, new: BoxScore) -> list[GameEvent]:
    """What happened between ``prev`` (None: nothing seen yet) and ``new``; [] when nothing."""
    if prev is None:
        if new.status is GameStatus.SCHEDULED:
            return []
        prev = empty_like(new)
    if prev == new:
        return []
    if prev.status is GameStatus.FINAL:
        return _corrections(prev, new)
    if new.status in (GameStatus.POSTPONED, GameStatus.CANCELLED):
        if prev.status is new.status:
            return []
        kind = POSTPONED if new.status is GameStatus.POSTPONED else CANCELLED
        return [GameEvent(kind, _status_payload(prev, new))]
    if new.status is GameStatus.SCHEDULED:
        if prev.status in (GameStatus.POSTPONED, GameStatus.CANCELLED):
            return [GameEvent(RESCHEDULED, _status_payload(prev, new))]
        return []
    return _play(prev, new)


def _status_payload(prev: BoxScore, new: BoxScore) -> dict[str, Any]:
    return {
        "status": new.status.value,
        "previous_status": prev.status.value,
        "home_score": new.home.score,
        "away_score": new.away.score,
    }


def _play(prev: BoxScore, new: BoxScore) -> list[GameEvent]:
    """``new`` is live or final, ``prev`` is not final."""
    events: list[GameEvent] = []
    if prev.status is not GameStatus.LIVE:
        events.append(GameEvent(GAME_STARTED, {"home": new.home.tricode, "away": new.away.tricode}))
    p0 = _current_period(prev)
    p1 = max(_current_period(new), p0)

    # points per (period, side); what periods do not explain goes to the current period
    diffs: dict[int, list[int]] = {}
    for k in range(1, p1 + 1):
        diffs[k] = [
            _at(new.home.periods, k) - _at(prev.home.periods, k),
            _at(new.away.periods, k) - _at(prev.away.periods, k),
        ]
    total = [new.home.score - prev.home.score, new.away.score - prev.away.score]
    for side in (0, 1):
        residual = total[side] - sum(d[side] for d in diffs.values())
        if residual:
            diffs.setdefault(p1, [0, 0])[side] += residual

    running = [prev.home.score, prev.away.score]
    leader = _leader(prev, *running)
    for k in sorted(diffs):
        if k > p0 and k >= 1:
            events.append(GameEvent(PERIOD_STARTED, {"period": k}))
        for side, line in ((0, new.home), (1, new.away)):
            points = diffs[k][side]
            if not points:
                continue
            running[side] += points
            events.append(
                GameEvent(
                    SCORE_CHANGED,
                    {
                        "team": line.tricode,
                        "side": "home" if side == 0 else "away",
                        "points": points,
                        "home_score": running[0],
                        "away_score": running[1],
                        "period": k or None,
                        "clock_seconds": new.clock_seconds if k == p1 else 0.0,
                    },
                )
            )
        now_leading = _leader(new, *running)
        if now_leading != leader:
            leader = now_leading
            events.append(
                GameEvent(
                    LEAD_CHANGED,
                    {"leader": leader, "home_score": running[0], "away_score": running[1]},
                )
            )
        if k >= 1 and _ended(new, k) and not _ended(prev, k):
            events.append(
                GameEvent(
                    PERIOD_ENDED,
                    {
                        "period": k,
                        "home_points": _at(new.home.periods, k),
                        "away_points": _at(new.away.periods, k),
                    },
                )
            )
    if new.status is GameStatus.FINAL:
        events.append(
            GameEvent(
                GAME_FINAL,
                {
                    "home": new.home.tricode,
                    "away": new.away.tricode,
                    "home_score": new.home.score,
                    "away_score": new.away.score,
                    "period": new.period,
                    "periods": {"home": list(new.home.periods), "away": list(new.away.periods)},
                },
            )
        )
    return events


def _changed(before: Any, after: Any) -> dict[str, Any]:
    return {"before": before, "after": after}


def _corrections(prev: BoxScore, new: BoxScore) -> list[GameEvent]:
    """After a game is final, any difference is a correction: one event listing all of them."""
    changes: dict[str, Any] = {}
    if prev.status is not new.status:
        changes["status"] = _changed(prev.status.value, new.status.value)
    for name in ("period", "clock_seconds"):
        if getattr(prev, name) != getattr(new, name):
            changes[name] = _changed(getattr(prev, name), getattr(new, name))
    for side in ("home", "away"):
        a: TeamLine = getattr(prev, side)
        b: TeamLine = getattr(new, side)
        if a.score != b.score:
            changes[f"{side}_score"] = _changed(a.score, b.score)
        if a.periods != b.periods:
            changes[f"{side}_periods"] = _changed(list(a.periods), list(b.periods))
        if a.stats != b.stats:
            keys = sorted(set(a.stats) | set(b.stats))
            changes[f"{side}_stats"] = {
                k: _changed(a.stats.get(k), b.stats.get(k))
                for k in keys
                if a.stats.get(k) != b.stats.get(k)
            }
    if prev.players != new.players:
        before = {(p.team, p.player_id): p for p in prev.players}
        after = {(p.team, p.player_id): p for p in new.players}
        changed_ids = sorted(
            f"{team}:{pid}"
            for team, pid in set(before) | set(after)
            if before.get((team, pid)) != after.get((team, pid))
        )
        changes["players"] = changed_ids
    if not changes:
        return []
    return [GameEvent(STATS_CORRECTED, {"changes": changes})]


# --- the inverse -----------------------------------------------------------------------------


def _pad(periods: list[int], k: int) -> None:
    while len(periods) < k:
        periods.append(0)


def apply_events(snapshot: BoxScore, events: Iterable[GameEvent]) -> BoxScore:
    """Replay events onto ``snapshot``: status, period, clock, scores and period scores.

    Players and team stats are not carried by events (besides corrections' lists) and are
    left as they were.
    """
    status = snapshot.status
    period = snapshot.period
    clock = snapshot.clock_seconds
    score = {"home": snapshot.home.score, "away": snapshot.away.score}
    periods = {"home": list(snapshot.home.periods), "away": list(snapshot.away.periods)}
    for event in events:
        p = event.payload
        kind = event.kind
        if kind == GAME_STARTED:
            status = GameStatus.LIVE
        elif kind == PERIOD_STARTED:
            period = int(p["period"])
            for side in periods:
                _pad(periods[side], period)
        elif kind == SCORE_CHANGED:
            score["home"], score["away"] = p["home_score"], p["away_score"]
            k = p.get("period")
            if k:
                _pad(periods[p["side"]], k)
                periods[p["side"]][k - 1] += p["points"]
            clock = p.get("clock_seconds", clock)
        elif kind == PERIOD_ENDED:
            k = int(p["period"])
            for side in periods:
                _pad(periods[side], k)
                periods[side][k - 1] = p[f"{side}_points"]
        elif kind == GAME_FINAL:
            status = GameStatus.FINAL
            score = {"home": p["home_score"], "away": p["away_score"]}
            periods = {side: list(p["periods"][side]) for side in periods}
            period = p.get("period", period)
            clock = 0.0
        elif kind in (POSTPONED, CANCELLED, RESCHEDULED):
            status = GameStatus(p["status"])
            score = {"home": p["home_score"], "away": p["away_score"]}
        elif kind == STATS_CORRECTED:
            changes = p["changes"]
            if "status" in changes:
                status = GameStatus(changes["status"]["after"])
            if "period" in changes:
                period = changes["period"]["after"]
            if "clock_seconds" in changes:
                clock = changes["clock_seconds"]["after"]
            for side in ("home", "away"):
                if f"{side}_score" in changes:
                    score[side] = changes[f"{side}_score"]["after"]
                if f"{side}_periods" in changes:
                    periods[side] = list(changes[f"{side}_periods"]["after"])
    return replace(
        snapshot,
        status=status,
        period=period,
        clock_seconds=clock,
        home=replace(snapshot.home, score=score["home"], periods=tuple(periods["home"])),
        away=replace(snapshot.away, score=score["away"], periods=tuple(periods["away"])),
    )
