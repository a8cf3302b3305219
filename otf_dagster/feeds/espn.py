"""Pure parsers of the ESPN site API (site.api.espn.com) JSON into the models, for any league.

Scores are strings, linescores grow as periods start (baseball's home side one half-inning
behind), player stats are mapped by ``keys``; team codes are each league's own (the NBA's are
turned into NBA tricodes, SA -> SAS, so both NBA providers agree). What a sport's feed adds
(scoring plays, goals, penalties, cards, possession) is read by ``feeds.espn_plays``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from otf_dagster.exceptions import MalformedFeed, UnknownGame
from otf_dagster.feeds.espn_plays import possession, sport_plays
from otf_dagster.feeds.leagues import League
from otf_dagster.feeds.leagues import league as league_named
from otf_dagster.feeds.models import BoxScore, GameStatus, PlayerLine, ScheduleEntry, TeamLine
from otf_dagster.feeds.normalize import dig, espn_stats, nba_tricode, parse_utc, to_int
from otf_dagster.feeds.sports import clock_of, espn_status, game_format

PROVIDER = "espn"
_NBA = league_named("nba")

_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
_OFF = (GameStatus.SCHEDULED, GameStatus.POSTPONED, GameStatus.CANCELLED)


def _linescores(competitor: dict[str, Any]) -> tuple[int, ...]:
    raw = competitor.get("linescores")
    if not isinstance(raw, list):
        return ()
    out = []
    for entry in raw:
        if not isinstance(entry, dict):
            out.append(0)
            continue
        value = to_int(entry.get("value"))
        if value is None:
            value = to_int(entry.get("displayValue"), 0)
        out.append(value or 0)
    return tuple(out)


def _competitors(competition: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(home, away) competitor objects; {} when missing."""
    home: dict[str, Any] = {}
    away: dict[str, Any] = {}
    raw = competition.get("competitors") if isinstance(competition, dict) else None
    for index, comp in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(comp, dict):
            continue
        side = comp.get("homeAway") or ("home" if index == 0 else "away")
        if side == "home":
            home = comp
        else:
            away = comp
    return home, away


def team_code(team: Any, league: League) -> str:
    """The team's abbreviation as its league writes it (NBA tricodes for the NBA)."""
    raw = team.get("abbreviation") if isinstance(team, dict) else None
    if league.team_codes == "nba":
        return nba_tricode(raw)
    return str(raw or "").strip().upper() or "UNK"


def _codes_by_id(home: dict[str, Any], away: dict[str, Any], league: League) -> dict[str, str]:
    """Team id -> code, for plays and situations that name teams by id only."""
    out = {}
    for comp in (home, away):
        code = team_code(comp.get("team"), league)
        for key in (comp.get("id"), dig(comp, "team", "id")):
            if key is not None:
                out[str(key)] = code
    return out


def _value(raw: Any) -> Any:
    number = to_int(raw) if isinstance(raw, str) and raw.strip().lstrip("-").isdigit() else None
    return number if number is not None else raw


def _named_stats(entries: Any, prefix: str = "") -> dict[str, Any]:
    """[{name, displayValue}] (or groups of them under ``stats``) -> {name: value}."""
    out: dict[str, Any] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        if isinstance(entry.get("stats"), list):
            out.update(_named_stats(entry["stats"], f"{prefix}{entry['name']}."))
        else:
            out[f"{prefix}{entry['name']}"] = _value(entry.get("displayValue"))
    return out


def _team_stats(boxscore: Any, league: League) -> dict[str, dict[str, Any]]:
    """boxscore.teams[].statistics -> stats by team code (basketball: the normalized keys)."""
    out: dict[str, dict[str, Any]] = {}
    teams = boxscore.get("teams") if isinstance(boxscore, dict) else None
    for team in teams if isinstance(teams, list) else []:
        if not isinstance(team, dict) or not isinstance(team.get("statistics"), list):
            continue
        code = team_code(team.get("team"), league)
        if league.sport == "basketball":
            stats = [s for s in team["statistics"] if isinstance(s, dict)]
            out[code] = espn_stats(
                [s.get("name") for s in stats], [s.get("displayValue") for s in stats]
            )
        else:
            out[code] = _named_stats(team["statistics"])
    return out


def _row_stats(table: dict[str, Any], row: dict[str, Any], sport: str) -> dict[str, Any]:
    keys, values = table.get("keys"), row.get("stats")
    if sport == "basketball":
        return espn_stats(keys, values)
    if not isinstance(keys, list) or not isinstance(values, list):
        return {}
    group = table.get("name") or table.get("type")
    prefix = f"{group}." if group else ""
    return {
        f"{prefix}{k}": _value(v) for k, v in zip(keys, values, strict=False) if isinstance(k, str)
    }


def _players(boxscore: Any, league: League) -> list[PlayerLine]:
    """One line per player and table for basketball (one table); elsewhere a player's tables
    (passing, rushing, ...) merged into one line, keys prefixed by the table's name."""
    at: dict[tuple[str, str], int] = {}
    out: list[PlayerLine] = []
    groups = boxscore.get("players") if isinstance(boxscore, dict) else None
    for group in groups if isinstance(groups, list) else []:
        if not isinstance(group, dict):
            continue
        code = team_code(group.get("team"), league)
        for table in group.get("statistics") or []:
            if not isinstance(table, dict):
                continue
            for row in table.get("athletes") or []:
                if not isinstance(row, dict):
                    continue
                athlete = row.get("athlete") if isinstance(row.get("athlete"), dict) else {}
                line = PlayerLine(
                    team=code,
                    player_id=str(athlete.get("id") or ""),
                    name=str(athlete.get("displayName") or athlete.get("shortName") or "unknown"),
                    stats=_row_stats(table, row, league.sport),
                )
                key = (code, line.player_id)
                if league.sport == "basketball" or key not in at:
                    at[key] = len(out)
                    out.append(line)
                else:
                    first = out[at[key]]
                    out[at[key]] = PlayerLine(
                        code, first.player_id, first.name, {**first.stats, **line.stats}
                    )
    return out


def _check_league(doc: dict[str, Any], league: League, event_id: str | None) -> None:
    slug = dig(doc, "header", "league", "slug")
    if isinstance(slug, str) and slug.strip() and slug.strip().lower() != league.slug:
        other = dig(doc, "header", "league", "abbreviation") or slug
        raise UnknownGame(
            f"ESPN event {event_id!r} is a {other} game ({slug}), not {league.name} "
            f"({league.pair}); check the event id or ask with --league {slug}"
        )


def parse_espn_summary(
    doc: Any, event_id: str | None = None, league: League | None = None
) -> BoxScore:
    """``summary?event=ID`` -> BoxScore; the 404 error body or another league's event -> UnknownGame."""
    league = league or _NBA
    if isinstance(doc, dict) and "header" not in doc and to_int(doc.get("code")) == 404:
        raise UnknownGame(
            f"ESPN does not know {league.name} event {event_id!r}: "
            f"{str(doc.get('message'))[:80]!r}; check the event id on the ESPN scoreboard for that day"
        )
    competition = dig(doc, "header", "competitions", 0)
    if not isinstance(competition, dict):
        got = type(doc).__name__ if not isinstance(doc, dict) else f"keys {sorted(doc)[:6]}"
        raise MalformedFeed(
            f"ESPN {league.name} summary for event {event_id!r} has no header.competitions[0] "
            f"(got {got}); check the base URL"
        )
    _check_league(doc, league, event_id)
    return _boxscore(doc, competition, league, event_id, doc.get("format"), where="summary")


def _boxscore(
    doc: dict[str, Any],
    competition: dict[str, Any],
    league: League,
    event_id: str | None,
    feed_format: Any,
    where: str,
) -> BoxScore:
    home_c, away_c = _competitors(competition)
    if not home_c and not away_c:
        raise MalformedFeed(
            f"ESPN {league.name} {where} for event {event_id!r} has no competitors "
            "(header.competitions[0].competitors); the feed may have changed"
        )
    fmt = game_format(league, feed_format or competition.get("format"))
    status_raw = competition.get("status")
    status, detail = espn_status(status_raw)
    home_lines, away_lines = _linescores(home_c), _linescores(away_c)
    period = clock = display = half = None
    if status not in _OFF:
        clock, display, half, text_period = clock_of(status_raw, fmt)
        period = to_int(dig(status_raw, "period"))
        if period is None or period < 1:
            period = text_period or max(len(home_lines), len(away_lines)) or None
        if status is GameStatus.FINAL:
            half = None
            if fmt.clock == "countdown":
                clock = 0.0
            elif fmt.clock == "innings":
                display = None
    if status is GameStatus.SCHEDULED:
        home_lines, away_lines = (), ()
    codes = _codes_by_id(home_c, away_c, league)
    boxscore = doc.get("boxscore")
    team_stats = _team_stats(boxscore, league)
    home_code, away_code = (
        team_code(home_c.get("team"), league),
        team_code(away_c.get("team"), league),
    )
    return BoxScore(
        game_id=str(event_id or competition.get("id") or dig(doc, "header", "id") or ""),
        provider=PROVIDER,
        status=status,
        period=period,
        clock_seconds=clock,
        home=TeamLine(
            tricode=home_code,
            score=to_int(home_c.get("score"), 0) or 0,
            periods=home_lines,
            stats=team_stats.get(home_code, {}),
        ),
        away=TeamLine(
            tricode=away_code,
            score=to_int(away_c.get("score"), 0) or 0,
            periods=away_lines,
            stats=team_stats.get(away_code, {}),
        ),
        players=tuple(_players(boxscore, league)),
        league=league.alias,
        sport=league.sport,
        format=fmt,
        status_detail=detail,
        display_clock=display,
        inning_half=half,
        possession=possession(doc, competition, codes) if status is GameStatus.LIVE else None,
        plays=sport_plays(league.sport, doc, competition, codes),
    )


def parse_espn_scoreboard(doc: Any, league: League | None = None) -> list[ScheduleEntry]:
    """``scoreboard?dates=YYYYMMDD`` -> the games it lists (``"events": []`` -> [])."""
    league = league or _NBA
    if not isinstance(doc, dict) or not isinstance(doc.get("events", None), list):
        got = type(doc).__name__ if not isinstance(doc, dict) else f"keys {sorted(doc)[:6]}"
        raise MalformedFeed(
            f"ESPN {league.name} scoreboard body has no 'events' list (got {got}); check the base URL"
        )
    slug = dig(doc, "leagues", 0, "slug")
    if isinstance(slug, str) and slug.strip() and slug.strip().lower() != league.slug:
        raise UnknownGame(
            f"the ESPN scoreboard answered with {slug} games, not {league.name} ({league.pair}); "
            "check the league and the base URL"
        )
    out = []
    for event in doc["events"]:
        if not isinstance(event, dict) or not event.get("id"):
            continue
        competition = dig(event, "competitions", 0) or {}
        home, away = _competitors(competition)
        start = parse_utc(event.get("date")) or parse_utc(competition.get("date")) or _EPOCH
        out.append(
            ScheduleEntry(
                game_id=str(event["id"]),
                provider=PROVIDER,
                start_time=start,
                home=team_code(home.get("team"), league),
                away=team_code(away.get("team"), league),
                status=espn_status(event.get("status") or competition.get("status"))[0],
                league=league.alias,
            )
        )
    return out


def scoreboard_boxscores(doc: Any, league: League | None = None) -> dict[str, BoxScore]:
    """Scoreboard events as player-less box scores, by event id."""
    league = league or _NBA
    out = {}
    for event in doc.get("events") or [] if isinstance(doc, dict) else []:
        competition = dig(event, "competitions", 0)
        if isinstance(competition, dict) and event.get("id"):
            event_id = str(event["id"])
            out[event_id] = _boxscore(
                {}, competition, league, event_id, None, where="scoreboard event"
            )
    return out
