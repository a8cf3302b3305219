"""What each sport's ESPN feed adds to the score: its notable plays, and who has the ball.

football: ``scoringPlays[]``; hockey: goals and penalties out of ``plays[]``; soccer: goals and
red cards out of the competition's ``details[]``. A sport not listed has none. Teams are named
by id in plays; ``codes`` maps ids to the league's team codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otf_dagster.feeds.models import Play
from otf_dagster.feeds.normalize import dig, to_int


def _team(raw: Any, codes: dict[str, str]) -> str:
    if not isinstance(raw, dict):
        return ""
    abbreviation = raw.get("abbreviation")
    if raw.get("id") is not None and str(raw["id"]) in codes:
        return codes[str(raw["id"])]
    return str(abbreviation or "").strip().upper()


def _text(play: dict[str, Any]) -> str:
    text = " ".join(str(play.get("text") or "").split())
    kind = dig(play, "type", "text")
    return text or str(kind or "")


def _play(kind: str, play: dict[str, Any], play_id: str, codes: dict[str, str]) -> Play:
    return Play(
        play_id=play_id,
        kind=kind,
        team=_team(play.get("team"), codes),
        period=to_int(dig(play, "period", "number")),
        clock=dig(play, "clock", "displayValue"),
        text=_text(play),
        home_score=to_int(play.get("homeScore")),
        away_score=to_int(play.get("awayScore")),
    )


def _football(
    doc: dict[str, Any], competition: dict[str, Any], codes: dict[str, str]
) -> list[Play]:
    raw = doc.get("scoringPlays")
    return [
        _play("scoring_play", p, str(p.get("id") or i), codes)
        for i, p in enumerate(raw if isinstance(raw, list) else [])
        if isinstance(p, dict)
    ]


_HOCKEY_KINDS = {"goal": "goal", "penalty": "penalty"}


def _hockey(doc: dict[str, Any], competition: dict[str, Any], codes: dict[str, str]) -> list[Play]:
    out = []
    raw = doc.get("plays")
    for i, p in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(p, dict):
            continue
        kind = _HOCKEY_KINDS.get(str(dig(p, "type", "text") or "").strip().lower())
        if kind is None and p.get("scoringPlay") is True:
            kind = "goal"
        if kind is not None:
            out.append(_play(kind, p, str(p.get("id") or i), codes))
    return out


def _soccer(doc: dict[str, Any], competition: dict[str, Any], codes: dict[str, str]) -> list[Play]:
    """Details carry no id: one is made of what they say (kind, minute, team, players)."""
    out = []
    raw = competition.get("details")
    for p in raw if isinstance(raw, list) else []:
        if not isinstance(p, dict):
            continue
        if p.get("scoringPlay") is True:
            kind = "goal"
        elif p.get("redCard") is True:
            kind = "red_card"
        else:
            continue
        athletes = p.get("athletesInvolved") if isinstance(p.get("athletesInvolved"), list) else []
        who = "-".join(str(a.get("id")) for a in athletes if isinstance(a, dict) and a.get("id"))
        team = _team(p.get("team"), codes)
        minute = dig(p, "clock", "value")
        play_id = f"{kind}:{dig(p, 'type', 'id') or ''}:{minute}:{team}:{who}"
        play = _play(kind, p, play_id, codes)
        names = ", ".join(
            str(a.get("displayName"))
            for a in athletes
            if isinstance(a, dict) and a.get("displayName")
        )
        text = " - ".join(t for t in (play.text, names) if t)
        out.append(Play(play.play_id, kind, team, play.period, play.clock, text))
    return out


PLAY_SOURCES: dict[str, Callable[[dict[str, Any], dict[str, Any], dict[str, str]], list[Play]]] = {
    "football": _football,
    "hockey": _hockey,
    "soccer": _soccer,
}


def sport_plays(
    sport: str, doc: Any, competition: dict[str, Any], codes: dict[str, str]
) -> tuple[Play, ...]:
    source = PLAY_SOURCES.get(sport)
    if source is None:
        return ()
    return tuple(source(doc if isinstance(doc, dict) else {}, competition, codes))


def possession(doc: Any, competition: dict[str, Any], codes: dict[str, str]) -> str | None:
    """The team with the ball: the scoreboard's ``situation.possession`` (a team id) or a
    summary's current drive; None when the feed does not say."""
    team_id = dig(competition, "situation", "possession")
    if team_id is not None and str(team_id) in codes:
        return codes[str(team_id)]
    drive_team = dig(doc, "drives", "current", "team")
    code = _team(drive_team, codes) if isinstance(drive_team, dict) else ""
    return code or None
