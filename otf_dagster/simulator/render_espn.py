"""ESPN scoreboard and summary shapes for the replayed NFL, MLB and NHL games.

The shapes mirror the recorded fixtures of ``espn-multisport``: string scores, linescores that
grow as periods start (baseball's home side once its half begins), ``format.regulation``,
football's ``situation.possession`` (scoreboard) and current drive (summary), its
``scoringPlays``; hockey's ``plays`` (goals, penalties). Teams are the slate's.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from otf_dagster.feeds.leagues import league as league_named
from otf_dagster.simulator.espn_replay import SportState, recorded
from otf_dagster.simulator.slate import SimGame, espn_teams, side_of

_ORDINAL = {1: "1st", 2: "2nd", 3: "3rd"}
_HALF_TEXT = {"Top": "Top", "Mid": "Mid", "Bottom": "Bot", "End": "End"}


def _ordinal(n: int) -> str:
    return _ORDINAL.get(n, f"{n}th")


def _team(game: SimGame, code: str) -> dict[str, Any]:
    info = espn_teams(game.league).get(code)
    if info is None:  # a recorded team missing from the scoreboards: its summary header
        rec = recorded(game.league)
        info = next(t for t in (rec["home"], rec["away"]) if t["abbreviation"] == code)
    return dict(info)


def _status(game: SimGame, s: SportState) -> dict[str, Any]:
    if s.state == "pre":
        detail = game.start_time.strftime("%-m/%-d - %H:%M UTC")
        kind = ("1", "STATUS_SCHEDULED", "pre", False, "Scheduled", detail)
    elif s.state == "post":
        kind = ("3", "STATUS_FINAL", "post", True, "Final", "Final")
    elif game.league == "mlb":
        text = f"{_HALF_TEXT[s.half or 'Top']} {_ordinal(s.period)}"
        kind = ("2", s.name, "in", False, "In Progress", text)
    elif s.name == "STATUS_HALFTIME":
        kind = ("23", s.name, "in", False, "Halftime", "Halftime")
    elif s.name == "STATUS_END_PERIOD":
        kind = ("22", s.name, "in", False, "End of Period", f"End of {_ordinal(s.period)}")
    else:
        minutes, seconds = divmod(int(s.clock), 60)
        kind = (
            "2",
            s.name,
            "in",
            False,
            "In Progress",
            f"{minutes}:{seconds:02d} - {_ordinal(s.period)}",
        )
    minutes, seconds = divmod(int(s.clock), 60)
    return {
        "clock": float(s.clock),
        "displayClock": f"{minutes}:{seconds:02d}",
        "period": s.period,
        "type": {
            "id": kind[0],
            "name": kind[1],
            "state": kind[2],
            "completed": kind[3],
            "description": kind[4],
            "detail": kind[5],
            "shortDetail": kind[5],
        },
    }


def _competitors(game: SimGame, s: SportState) -> list[dict[str, Any]]:
    out = []
    for side in ("home", "away"):
        code = game.home if side == "home" else game.away
        team = _team(game, code)
        score = s.home_score if side == "home" else s.away_score
        periods = s.home_periods if side == "home" else s.away_periods
        comp: dict[str, Any] = {
            "id": team["id"],
            "homeAway": side,
            "team": team,
            "score": str(score),
        }
        if s.state != "pre":
            comp["linescores"] = [
                {"value": float(v), "displayValue": str(v), "period": i}
                for i, v in enumerate(periods, start=1)
            ]
        if s.state == "post":
            other = s.away_score if side == "home" else s.home_score
            comp["winner"] = score > other
        out.append(comp)
    return out


def _format(game: SimGame) -> dict[str, Any]:
    return {"regulation": {"periods": recorded(game.league)["format"]["regulation"]["periods"]}}


def _date(game: SimGame) -> str:
    return game.start_time.strftime("%Y-%m-%dT%H:%MZ")


def _note(game: SimGame) -> dict[str, Any]:
    return {"synthesized": game.synthesized, "note": game.note}


def _uid(game: SimGame) -> str:
    league = recorded(game.league)["league"]
    return f"s:0~l:{league['id']}~e:{game.espn_id}"


def espn_event(game: SimGame, s: SportState) -> dict[str, Any]:
    home, away = _team(game, game.home), _team(game, game.away)
    competition: dict[str, Any] = {
        "id": game.espn_id,
        "date": _date(game),
        "format": _format(game),
        "competitors": _competitors(game, s),
        "status": _status(game, s),
    }
    if s.live and s.possession is not None:
        competition["situation"] = {"possession": _team(game, side_of(game, s.possession))["id"]}
    return {
        "id": game.espn_id,
        "uid": _uid(game),
        "date": _date(game),
        "name": f"{away['displayName']} at {home['displayName']}",
        "shortName": f"{away['abbreviation']} @ {home['abbreviation']}",
        "competitions": [competition],
        "status": competition["status"],
        "_simulator": _note(game),
    }


def espn_scoreboard(
    league: str, games: list[tuple[SimGame, SportState]], day: date
) -> dict[str, Any]:
    info = recorded(league)["league"]
    return {
        "leagues": [{k: info[k] for k in ("id", "slug", "abbreviation", "name")}],
        "day": {"date": day.isoformat()},
        "events": [espn_event(game, s) for game, s in games],
    }


def _scoring_play(game: SimGame, play: dict[str, Any]) -> dict[str, Any]:
    team = _team(game, side_of(game, play["team"]))
    minutes, seconds = divmod(int(play["clock"]), 60)
    return {
        "id": play["id"],
        "type": {"text": play["type"]},
        "text": play["text"],
        "awayScore": play["awayScore"],
        "homeScore": play["homeScore"],
        "period": {"number": play["period"]},
        "clock": {"value": float(play["clock"]), "displayValue": f"{minutes}:{seconds:02d}"},
        "team": {k: team[k] for k in ("id", "abbreviation", "displayName")},
    }


def _hockey_play(game: SimGame, play: dict[str, Any]) -> dict[str, Any]:
    minutes, seconds = divmod(int(play["elapsed"]), 60)
    out: dict[str, Any] = {
        "id": play["id"],
        "type": {"text": play["type"]},
        "text": play["text"],
        "awayScore": play["awayScore"],
        "homeScore": play["homeScore"],
        "period": {"number": play["period"], "displayValue": _ordinal(play["period"])},
        "clock": {"displayValue": f"{minutes}:{seconds:02d}"},
        "scoringPlay": play["scoringPlay"],
    }
    if play.get("team"):
        out["team"] = {"id": _team(game, side_of(game, play["team"]))["id"]}
    return out


def espn_summary(game: SimGame, s: SportState) -> dict[str, Any]:
    event = espn_event(game, s)
    competition = dict(event["competitions"][0])
    competition.pop("situation", None)
    rec = recorded(game.league)
    body: dict[str, Any] = {
        "boxscore": {
            "teams": [{"team": c["team"], "statistics": []} for c in competition["competitors"]]
        },
        "format": rec["format"],
        "header": {
            "id": game.espn_id,
            "uid": event["uid"],
            "league": rec["league"],
            "competitions": [competition],
        },
        "meta": {"gameState": competition["status"]["type"]["state"]},
        "_simulator": _note(game),
    }
    sport = league_named(game.league).sport
    if sport == "football":
        body["scoringPlays"] = [_scoring_play(game, p) for p in s.plays]
        if s.live and s.possession is not None:
            team = _team(game, side_of(game, s.possession))
            body["drives"] = {"current": {"team": {k: team[k] for k in ("id", "abbreviation")}}}
    elif sport == "hockey":
        body["plays"] = [_hockey_play(game, p) for p in s.plays]
    return body
