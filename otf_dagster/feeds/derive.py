"""Turn two consecutive box scores into the events that happened between them, in any sport.

Pure and deterministic: the runner stores the last BoxScore as a checkpoint and appends
``derive_events(checkpoint, new)``; ``apply_events`` is the inverse used to check that the event
stream loses nothing a consumer needs (status, period, scores, per-period scores, baseball's
inning half, football's possession, the sport's notable plays).

Points are attributed to periods by the per-period scores, so one poll spanning several
periods yields, in order, period_started k / score_changed (period k) / period_ended k for each.
Baseball's innings split in halves: the visitors' half (runs, then its end) before the home
side's. A period counts as ended when a later one has started, the game is final, or the feed
shows it over (``sports.period_over``). Every payload names the league.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from otf_dagster.feeds.models import (
    CANCELLED,
    DELAYED,
    GAME_FINAL,
    GAME_STARTED,
    GOAL,
    HALF_INNING_ENDED,
    HALF_INNING_STARTED,
    LEAD_CHANGED,
    PENALTY,
    PERIOD_ENDED,
    PERIOD_STARTED,
    PLAY_CORRECTED,
    POSSESSION_CHANGED,
    POSTPONED,
    RED_CARD,
    RESCHEDULED,
    RESUMED,
    SCORE_CHANGED,
    SCORING_PLAY,
    STATS_CORRECTED,
    SUSPENDED,
    BoxScore,
    GameEvent,
    GameStatus,
    Play,
    TeamLine,
)
from otf_dagster.feeds.sports import HALF_ORDER, delayed, period_over

_OFF = (GameStatus.SCHEDULED, GameStatus.POSTPONED, GameStatus.CANCELLED)
_STATUS_EVENTS = {
    GameStatus.POSTPONED: POSTPONED,
    GameStatus.CANCELLED: CANCELLED,
    GameStatus.SUSPENDED: SUSPENDED,
}
PLAY_KINDS = (SCORING_PLAY, GOAL, PENALTY, RED_CARD)  # a play event is named by its play kind
SIDES = ("home", "away")


def empty_like(box: BoxScore) -> BoxScore:
    """The same game before the start: what ``derive_events(None, box)`` diffs against."""
    return BoxScore(
        game_id=box.game_id,
        provider=box.provider,
        status=GameStatus.SCHEDULED,
        period=None,
        clock_seconds=None,
        home=TeamLine(tricode=box.home.tricode, score=0),
        away=TeamLine(tricode=box.away.tricode, score=0),
        league=box.league,
        sport=box.sport,
        format=box.format,
    )


def _leader(box: BoxScore, home_score: int, away_score: int) -> str | None:
    if home_score == away_score:
        return None
    return box.home.tricode if home_score > away_score else box.away.tricode


def _at(periods: tuple[int, ...], k: int) -> int:
    return periods[k - 1] if 0 < k <= len(periods) else 0


def _has(line: TeamLine, k: int) -> bool:
    return 0 < k <= len(line.periods)


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
    if box.status not in (GameStatus.LIVE, GameStatus.SUSPENDED):
        return False
    return period < current or (period == current and period_over(box))


def _innings(box: BoxScore) -> bool:
    return box.format.clock == "innings"


def _half_position(box: BoxScore) -> int:
    """Baseball: how far the game has come, counted in inning quarters (top, mid, bottom, end);
    -1 before the first pitch."""
    if box.status in _OFF or not box.period:
        return -1
    if box.status is GameStatus.FINAL:
        half = "end" if _has(box.home, box.period) else "mid"
    else:
        half = box.inning_half or "top"
    return (box.period - 1) * 4 + HALF_ORDER.index(half)


def derive_events(prev: BoxScore | None, new: BoxScore) -> list[GameEvent]:
    """What happened between ``prev`` (None: nothing seen yet) and ``new``; [] when nothing."""
    if prev is None:
        if new.status is GameStatus.SCHEDULED and not delayed(new):
            return []
        prev = empty_like(new)
    if prev == new:
        return []
    return [
        GameEvent(event.kind, {**event.payload, "league": new.league})
        for event in _derive(prev, new)
    ]


def _derive(prev: BoxScore, new: BoxScore) -> list[GameEvent]:
    if prev.status is GameStatus.FINAL:
        return _corrections(prev, new)
    if new.status in (GameStatus.POSTPONED, GameStatus.CANCELLED):
        if prev.status is new.status:
            return []
        return [GameEvent(_STATUS_EVENTS[new.status], _status_payload(prev, new))]
    if new.status is GameStatus.SCHEDULED:
        if prev.status in (GameStatus.POSTPONED, GameStatus.CANCELLED, GameStatus.SUSPENDED):
            return [GameEvent(RESCHEDULED, _status_payload(prev, new))]
        return _delays(prev, new)
    events: list[GameEvent] = []
    if prev.status is GameStatus.SUSPENDED:
        events.append(GameEvent(RESUMED, {"from": "suspended", "status": new.status.value}))
    events += _delays(prev, new)
    events += _play(prev, new)
    if new.status is GameStatus.SUSPENDED and prev.status is not GameStatus.SUSPENDED:
        events.append(GameEvent(SUSPENDED, _status_payload(prev, new)))
    return events


def _status_payload(prev: BoxScore, new: BoxScore) -> dict[str, Any]:
    return {
        "status": new.status.value,
        "previous_status": prev.status.value,
        "detail": new.status_detail,
        "home_score": new.home.score,
        "away_score": new.away.score,
        "period": new.period,
        "inning_half": new.inning_half,
        "periods": {"home": list(new.home.periods), "away": list(new.away.periods)},
    }


def _delays(prev: BoxScore, new: BoxScore) -> list[GameEvent]:
    """A rain delay or delayed start begins, or ends with play going on."""
    was, now = delayed(prev), delayed(new)
    if now and (not was or prev.status_detail != new.status_detail):
        return [GameEvent(DELAYED, {"detail": new.status_detail, "period": new.period})]
    if was and not now and new.status is not GameStatus.SCHEDULED:
        return [GameEvent(RESUMED, {"from": prev.status_detail, "status": new.status.value})]
    return []


def _play(prev: BoxScore, new: BoxScore) -> list[GameEvent]:
    """``new`` is live, final or suspended, ``prev`` is not final."""
    events: list[GameEvent] = []
    if prev.status in _OFF:
        events.append(GameEvent(GAME_STARTED, {"home": new.home.tricode, "away": new.away.tricode}))
    p0 = _current_period(prev)
    p1 = max(_current_period(new), p0)

    # points per (period, side); what periods do not explain goes to the current period
    diffs: dict[int, dict[str, int]] = {}
    for k in range(1, p1 + 1):
        diffs[k] = {
            "home": _at(new.home.periods, k) - _at(prev.home.periods, k),
            "away": _at(new.away.periods, k) - _at(prev.away.periods, k),
        }
    plays = _new_plays(prev, new)
    for side, total in (
        ("home", new.home.score - prev.home.score),
        ("away", new.away.score - prev.away.score),
    ):
        residual = total - sum(d[side] for d in diffs.values())
        if residual and not getattr(new, side).periods:
            # no linescores (soccer): the new goals say in which period the points came
            team = getattr(new, side).tricode
            for k, new_plays in sorted(plays.items()):
                goals = sum(1 for p in new_plays if p.kind == "goal" and p.team == team)
                goals = min(goals, residual) if residual > 0 else 0
                if k and goals:
                    diffs.setdefault(k, {"home": 0, "away": 0})[side] += goals
                    residual -= goals
        if residual:
            diffs.setdefault(p1, {"home": 0, "away": 0})[side] += residual

    game = _Game(prev, new, events)
    for k in sorted(diffs):
        if k > p0 and k >= 1:
            lines = [side for side in SIDES if _has(getattr(new, side), k)]
            events.append(GameEvent(PERIOD_STARTED, game.period(k) | {"lines": lines}))
        if _innings(new):
            game.halves(k, diffs[k])
        else:
            for side in SIDES:
                game.score(side, k, diffs[k][side], k == p1)
            game.lead()
        events += [_play_event(p) for p in plays.pop(k, [])]
        if k >= 1 and _ended(new, k) and not _ended(prev, k):
            events.append(
                GameEvent(
                    PERIOD_ENDED,
                    game.period(k)
                    | {
                        "home_points": _at(new.home.periods, k) if _has(new.home, k) else None,
                        "away_points": _at(new.away.periods, k) if _has(new.away, k) else None,
                    },
                )
            )
    for rest in plays.values():
        events += [_play_event(p) for p in rest]
    events += _corrected_plays(prev, new)
    if new.status is GameStatus.LIVE and new.possession != prev.possession:
        events.append(GameEvent(POSSESSION_CHANGED, {"team": new.possession, "period": new.period}))
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


class _Game:
    """The running score while one poll's events are written out, period by period."""

    def __init__(self, prev: BoxScore, new: BoxScore, events: list[GameEvent]) -> None:
        self.prev, self.new, self.events = prev, new, events
        self.running = {"home": prev.home.score, "away": prev.away.score}
        self.leader = _leader(prev, prev.home.score, prev.away.score)
        self.p1 = max(_current_period(new), _current_period(prev))
        self.pos0, self.pos1 = (
            (_half_position(prev), _half_position(new)) if _innings(new) else (0, 0)
        )

    def period(self, k: int) -> dict[str, Any]:
        return {"period": k, "label": self.new.format.label(k)}

    def score(self, side: str, k: int, points: int, current: bool) -> None:
        if not points:
            return
        line: TeamLine = getattr(self.new, side)
        self.running[side] += points
        self.events.append(
            GameEvent(
                SCORE_CHANGED,
                {
                    "team": line.tricode,
                    "side": side,
                    "points": points,
                    "home_score": self.running["home"],
                    "away_score": self.running["away"],
                    "period": k or None,
                    "clock_seconds": self.new.clock_seconds if current else 0.0,
                    "linescore": _has(line, k),
                },
            )
        )

    def lead(self) -> None:
        now_leading = _leader(self.new, self.running["home"], self.running["away"])
        if now_leading != self.leader:
            self.leader = now_leading
            self.events.append(
                GameEvent(
                    LEAD_CHANGED,
                    {
                        "leader": now_leading,
                        "home_score": self.running["home"],
                        "away_score": self.running["away"],
                    },
                )
            )

    def halves(self, k: int, points: dict[str, int]) -> None:
        """Baseball's inning ``k``: the visitors bat in the top half, the home side in the bottom."""
        for side, half, end in (("away", "top", "mid"), ("home", "bottom", "end")):
            start_at, end_at = (
                (k - 1) * 4 + HALF_ORDER.index(half),
                (k - 1) * 4 + HALF_ORDER.index(end),
            )
            team = getattr(self.new, side).tricode
            if self.pos0 < start_at <= self.pos1:
                self.events.append(
                    GameEvent(HALF_INNING_STARTED, {"inning": k, "half": half, "batting": team})
                )
            self.score(side, k, points[side], k == self.p1)
            self.lead()
            if self.pos0 < end_at <= self.pos1:
                self.events.append(
                    GameEvent(
                        HALF_INNING_ENDED,
                        {
                            "inning": k,
                            "half": half,
                            "batting": team,
                            "runs": _at(getattr(self.new, side).periods, k),
                        },
                    )
                )


def _new_plays(prev: BoxScore, new: BoxScore) -> dict[int, list[Play]]:
    """Plays ``new`` lists and ``prev`` did not, by period (0: no period), in feed order."""
    seen = {p.play_id for p in prev.plays}
    out: dict[int, list[Play]] = {}
    for play in new.plays:
        if play.play_id not in seen:
            out.setdefault(play.period or 0, []).append(play)
    return out


def _play_event(play: Play) -> GameEvent:
    return GameEvent(play.kind, play.to_dict())


def _corrected_plays(prev: BoxScore, new: BoxScore) -> list[GameEvent]:
    """Plays the feed changed or took back since the last poll."""
    after = {p.play_id: p for p in new.plays}
    out = []
    for play in prev.plays:
        now = after.get(play.play_id)
        if now != play:
            out.append(
                GameEvent(
                    PLAY_CORRECTED,
                    {
                        "play_id": play.play_id,
                        "before": play.to_dict(),
                        "after": None if now is None else now.to_dict(),
                        "position": None if now is None else new.plays.index(now),
                    },
                )
            )
    return out


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
    for side in SIDES:
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
    if prev.plays != new.plays:
        changes["plays"] = _changed(
            [p.play_id for p in prev.plays], [p.to_dict() for p in new.plays]
        )
    if not changes:
        return []
    return [GameEvent(STATS_CORRECTED, {"changes": changes})]


# --- the inverse -----------------------------------------------------------------------------


def _pad(periods: list[int], k: int) -> None:
    while len(periods) < k:
        periods.append(0)


class _Rebuilt:
    """What ``apply_events`` rebuilds, as mutable state."""

    def __init__(self, snapshot: BoxScore) -> None:
        self.status = snapshot.status
        self.period = snapshot.period
        self.clock = snapshot.clock_seconds
        self.half = snapshot.inning_half
        self.possession = snapshot.possession
        self.score = {"home": snapshot.home.score, "away": snapshot.away.score}
        self.periods = {"home": list(snapshot.home.periods), "away": list(snapshot.away.periods)}
        self.plays = list(snapshot.plays)

    def apply(self, kind: str, p: dict[str, Any]) -> None:
        if kind == GAME_STARTED:
            self.status = GameStatus.LIVE
        elif kind == RESUMED:
            if p.get("from") == "suspended":
                self.status = GameStatus(p.get("status", GameStatus.LIVE.value))
        elif kind == PERIOD_STARTED:
            self.period = int(p["period"])
            for side in p.get("lines", SIDES):
                _pad(self.periods[side], self.period)
        elif kind == SCORE_CHANGED:
            self.score["home"], self.score["away"] = p["home_score"], p["away_score"]
            k = p.get("period")
            if k and p.get("linescore", True):
                _pad(self.periods[p["side"]], k)
                self.periods[p["side"]][k - 1] += p["points"]
            self.clock = p.get("clock_seconds", self.clock)
        elif kind == PERIOD_ENDED:
            k = int(p["period"])
            for side in SIDES:
                if p.get(f"{side}_points") is not None:
                    _pad(self.periods[side], k)
                    self.periods[side][k - 1] = p[f"{side}_points"]
        elif kind == HALF_INNING_STARTED:
            self.period, self.half = int(p["inning"]), p["half"]
            _pad(self.periods["away" if p["half"] == "top" else "home"], self.period)
        elif kind == HALF_INNING_ENDED:
            self.half = "mid" if p["half"] == "top" else "end"
        elif kind == POSSESSION_CHANGED:
            self.possession = p.get("team")
        elif kind in PLAY_KINDS:
            self.plays.append(Play.from_dict(p))
        elif kind == PLAY_CORRECTED:
            self.plays = [q for q in self.plays if q.play_id != p["play_id"]]
            if p.get("after") is not None:
                self.plays.insert(int(p.get("position") or 0), Play.from_dict(p["after"]))
        elif kind == GAME_FINAL:
            self.status = GameStatus.FINAL
            self.score = {"home": p["home_score"], "away": p["away_score"]}
            self.periods = {side: list(p["periods"][side]) for side in SIDES}
            self.period = p.get("period", self.period)
            self.half = self.possession = None
        elif kind in (POSTPONED, CANCELLED, RESCHEDULED, SUSPENDED):
            self._status(p)
        elif kind == STATS_CORRECTED:
            self._corrected(p["changes"])

    def _status(self, p: dict[str, Any]) -> None:
        self.status = GameStatus(p["status"])
        self.score = {"home": p["home_score"], "away": p["away_score"]}
        if "periods" in p:
            self.periods = {side: list(p["periods"][side]) for side in SIDES}
            self.period = p.get("period")
            self.half = p.get("inning_half")
        if self.status is not GameStatus.SUSPENDED:
            self.clock = self.possession = None

    def _corrected(self, changes: dict[str, Any]) -> None:
        if "status" in changes:
            self.status = GameStatus(changes["status"]["after"])
        if "period" in changes:
            self.period = changes["period"]["after"]
        if "clock_seconds" in changes:
            self.clock = changes["clock_seconds"]["after"]
        for side in SIDES:
            if f"{side}_score" in changes:
                self.score[side] = changes[f"{side}_score"]["after"]
            if f"{side}_periods" in changes:
                self.periods[side] = list(changes[f"{side}_periods"]["after"])
        if "plays" in changes:
            self.plays = [Play.from_dict(d) for d in changes["plays"]["after"]]


def apply_events(snapshot: BoxScore, events: Iterable[GameEvent]) -> BoxScore:
    """Replay events onto ``snapshot``: status, period, clock, scores and period scores, inning
    half, possession and plays.

    Players and team stats are not carried by events (besides corrections' lists) and are
    left as they were.
    """
    state = _Rebuilt(snapshot)
    for event in events:
        state.apply(event.kind, event.payload)
    return replace(
        snapshot,
        status=state.status,
        period=state.period,
        clock_seconds=state.clock,
        inning_half=state.half,
        possession=state.possession,
        plays=tuple(state.plays),
        home=replace(
            snapshot.home, score=state.score["home"], periods=tuple(state.periods["home"])
        ),
        away=replace(
            snapshot.away, score=state.score["away"], periods=tuple(state.periods["away"])
        ),
    )
