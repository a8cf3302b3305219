"""The two feed providers behind one Protocol, and ``make_provider`` to pick one by name.

Providers only fetch and hand bodies to the pure parsers; parse errors get the URL added.
A provider serves one league (``league=``: alias, ``sport/league`` pair or League; the NBA by
default); the NBA CDN serves only the NBA, ESPN every league it lists.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import date
from typing import Any, Protocol, TypeVar, runtime_checkable
from zoneinfo import ZoneInfo

from otf_dagster import settings
from otf_dagster.exceptions import ConfigError, MalformedFeed, UnknownGame
from otf_dagster.feeds import espn, nba_cdn
from otf_dagster.feeds.http import FeedClient, FeedHttpError
from otf_dagster.feeds.leagues import DEFAULT_LEAGUE, League, Leagues, default_leagues
from otf_dagster.feeds.leagues import league as league_named
from otf_dagster.feeds.models import BoxScore, ScheduleEntry

log = logging.getLogger(__name__)

PROVIDERS = ("nba_cdn", "espn")
# The NBA's default feed: ESPN, which the NBA CDN's Referer rule (May 2026) showed is the one
# feed every league already depends on (docs/design.md, "Feeds as they answer today").
DEFAULT_NBA_PROVIDER = settings.FEED_PROVIDER.default
# ESPN cuts a scoreboard ``limit`` above 500 to 25 events, silently: never ask for more.
MAX_LIMIT = 500
CAPPED_EVENTS = 25
DEFAULT_BASE_URLS = {"nba_cdn": "https://cdn.nba.com", "espn": "https://site.api.espn.com"}

_NBA_ID = re.compile(r"^\d{10}$")
_ESPN_ID = re.compile(r"^\d{6,12}$")
_SPORTS_PATH = re.compile(r"/sports/(?P<pair>[^/?]+/[^/?]+)/")
# ESPN's scoreboard ``dates=`` is a US Eastern day, whatever the league.
ESPN_DAY_ZONE = ZoneInfo("America/New_York")

T = TypeVar("T")


@runtime_checkable
class Provider(Protocol):
    name: str
    league: League
    warnings: list[str]  # what the last schedule() saw that a person should know

    def schedule(self, day: date) -> list[ScheduleEntry]: ...

    def boxscore(self, game_id: str, url: str | None = None) -> BoxScore:
        """The game's box score, from ``url`` (a URL or a path under the base URL: what the
        task type polls) or, without it, from the provider's usual path for the game."""
        ...


def _parsed(url: str, parse: Callable[[], T]) -> T:
    try:
        return parse()
    except MalformedFeed as exc:
        raise MalformedFeed(f"{url}: {exc}") from exc


class NbaCdnProvider:
    """cdn.nba.com: today's scoreboard, the season schedule, per-game box scores."""

    name = "nba_cdn"

    def __init__(
        self, client: FeedClient, league: League, headers: dict[str, str] | None = None
    ) -> None:
        self.client = client
        self.league = league
        self.headers = headers or {}
        self.warnings: list[str] = []

    def _get(self, path: str) -> tuple[str, Any]:
        url = self.client.url_for(path)
        return url, self.client.get_json(url, headers=self.headers or None)

    def schedule(self, day: date) -> list[ScheduleEntry]:
        """Today's scoreboard when it is about ``day`` (fresher), else the season schedule."""
        url, doc = self._get(nba_cdn.SCOREBOARD_PATH)
        if _parsed(url, lambda: nba_cdn.scoreboard_date(doc)) == day:
            return _parsed(url, lambda: nba_cdn.parse_nba_scoreboard(doc))
        url, doc = self._get(nba_cdn.SCHEDULE_PATH)
        return _parsed(url, lambda: nba_cdn.parse_nba_schedule(doc, day))

    def boxscore(self, game_id: str, url: str | None = None) -> BoxScore:
        """The game's box score; before one exists (the CDN says 403), its scoreboard entry."""
        game_id = str(game_id).strip()
        if not _NBA_ID.match(game_id):
            raise UnknownGame(
                f"{game_id!r} is not an NBA game id (10 digits, e.g. 0022400500); "
                "list ids with `otf feed schedule --provider nba_cdn`"
            )
        path = url or nba_cdn.BOXSCORE_PATH.format(game_id=game_id)
        try:
            url, doc = self._get(path)
        except FeedHttpError as exc:
            if exc.status != 403:
                raise
            return self._from_scoreboard(game_id, exc.url)
        return _parsed(url, lambda: nba_cdn.parse_nba_boxscore(doc))

    def _from_scoreboard(self, game_id: str, box_url: str) -> BoxScore:
        url, doc = self._get(nba_cdn.SCOREBOARD_PATH)
        boxes = _parsed(url, lambda: nba_cdn.scoreboard_boxscores(doc))
        if game_id not in boxes:
            raise UnknownGame(
                f"{box_url} is refused (403) and game {game_id!r} is not on today's scoreboard; "
                "check the game id, or retry once the game is about to start"
            )
        return boxes[game_id]

    def playbyplay(self, game_id: str) -> dict[str, Any]:
        """The raw play-by-play document (not normalized: used by the simulator's tests)."""
        _url, doc = self._get(nba_cdn.PLAYBYPLAY_PATH.format(game_id=game_id))
        return doc


def scoreboard_limit(limit: Any) -> int:
    """``limit`` for ESPN's scoreboard, checked: a whole number from 1 to ``MAX_LIMIT`` (ESPN
    cuts a larger one to 25 events, silently); ConfigError naming the value otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(
            f"ESPN scoreboard limit {limit!r} is not a whole number from 1 to {MAX_LIMIT} (ESPN "
            f"cuts a larger one to {CAPPED_EVENTS} events); ask for at most {MAX_LIMIT} and list "
            "the league's groups in leagues.yaml for more games"
        )
    return limit


class EspnProvider:
    """site.api.espn.com: one league's day scoreboard and per-event summaries."""

    name = "espn"

    def __init__(
        self,
        client: FeedClient,
        league: League,
        headers: dict[str, str] | None = None,
        leagues: Leagues | None = None,
        *,
        limit: int = MAX_LIMIT,
    ) -> None:
        self.client = client
        self.league = league
        self.headers = headers or {}
        self.leagues = leagues or default_leagues()
        self.limit = scoreboard_limit(limit)
        self.warnings: list[str] = []

    def _json(self, url: str, league: League) -> Any:
        headers = {**self.leagues.headers_for(self.name, league), **self.headers}
        return self.client.get_json(url, headers=headers or None)

    def _scoreboard(self, day: date) -> list[ScheduleEntry]:
        """One request per division the league lists (``groups``, with ``limit`` 500: never
        more, ESPN cuts that to 25), merged and de-duplicated by event id."""
        queries: list[dict[str, Any]] = [{"dates": day.strftime("%Y%m%d")}]
        if self.league.groups:
            queries = [{**queries[0], "groups": g, "limit": self.limit} for g in self.league.groups]
        out: dict[str, ScheduleEntry] = {}
        for query in queries:
            url = self.client.url_for(self.league.scoreboard_path, query)
            doc = self._json(url, self.league)
            entries = _parsed(url, lambda doc=doc: espn.parse_espn_scoreboard(doc, self.league))
            events = doc.get("events") if isinstance(doc, dict) else None
            if isinstance(events, list) and len(events) == CAPPED_EVENTS:
                warning = (
                    f"{url} listed exactly {CAPPED_EVENTS} events, the signature of ESPN's cap "
                    "(a limit above 500, or a featured subset): the day may hold more games; "
                    "check the league's groups in leagues.yaml"
                )
                log.warning("%s", warning)
                self.warnings.append(warning)
            for entry in entries:
                out.setdefault(entry.game_id, entry)
        return list(out.values())

    def schedule(self, day: date) -> list[ScheduleEntry]:
        """The league's games on ``day`` (a US Eastern day, as ESPN lists them): a scoreboard
        that also lists other days (the NFL's whole week) keeps only that day's."""
        self.warnings = []
        url = self.client.url_for(self.league.scoreboard_path, {"dates": day.strftime("%Y%m%d")})
        entries = self._scoreboard(day)
        on_day = [e for e in entries if e.start_time.astimezone(ESPN_DAY_ZONE).date() == day]
        if len(on_day) < len(entries):
            log.info(
                "%s: %d of %d games are on other days",
                url,
                len(entries) - len(on_day),
                len(entries),
            )
        return on_day

    def _league_of(self, url: str) -> League:
        """The league a task type's URL names (its sport/league path), else this provider's."""
        m = _SPORTS_PATH.search(url)
        if m is None or m.group("pair") == self.league.pair:
            return self.league
        return self.leagues.find(m.group("pair")) or self.league

    def boxscore(self, game_id: str, url: str | None = None) -> BoxScore:
        game_id = str(game_id).strip()
        if not _ESPN_ID.match(game_id):
            raise UnknownGame(
                f"{game_id!r} is not an ESPN event id (6 to 12 digits, e.g. 401585135); "
                f"list ids with `otf feed schedule --provider espn --league {self.league.alias}`"
            )
        url = (
            self.client.url_for(url)
            if url
            else self.client.url_for(self.league.summary_path, {"event": game_id})
        )
        league = self._league_of(url)
        try:
            doc = self._json(url, league)
        except FeedHttpError as exc:
            if exc.status != 403:
                raise
            return self._from_scoreboard(game_id, league, exc.url)
        return _parsed(url, lambda: espn.parse_espn_summary(doc, game_id, league))

    def _from_scoreboard(self, game_id: str, league: League, summary_url: str) -> BoxScore:
        """As for the NBA's CDN: a summary refused (403) falls back to the league's scoreboard
        of today, whose event carries the score, status and periods (no players)."""
        url = self.client.url_for(league.scoreboard_path)
        doc = self._json(url, league)
        boxes = _parsed(url, lambda: espn.scoreboard_boxscores(doc, league))
        if game_id not in boxes:
            raise UnknownGame(
                f"{summary_url} is refused (403) and event {game_id!r} is not on today's "
                f"{league.alias} scoreboard; check the event id, or retry nearer its start"
            )
        return boxes[game_id]


def schedule_feed(nba_provider: str, league: League) -> tuple[str, str]:
    """(the feed a league's schedule is read from, the box-score task type its games become):
    ``nba_provider`` for the NBA (its CDN's games are NBA_GAME_BOXSCORE tasks), ESPN for the
    other leagues."""
    name = nba_provider if league.pair == default_leagues().get(DEFAULT_LEAGUE).pair else "espn"
    return name, ("NBA_GAME_BOXSCORE" if name == "nba_cdn" else league.boxscore_type)


_CLASSES: dict[str, type[NbaCdnProvider] | type[EspnProvider]] = {
    "nba_cdn": NbaCdnProvider,
    "espn": EspnProvider,
}


def make_provider(
    name: str,
    base_url: str | None = None,
    client: FeedClient | None = None,
    league: str | League | None = None,
    headers: dict[str, str | None] | None = None,
    leagues: Leagues | None = None,
    **client_kwargs: Any,
) -> Provider:
    """A provider by name for one league (alias, ``sport/league`` pair or League; the NBA when
    None); ``base_url`` points it at the simulator, ``client`` shares one HTTP session.
    Requests carry the feed's headers (``leagues``' feed defaults, then the league's), then
    ``headers`` (a task type's; None drops one)."""
    if name not in _CLASSES:
        raise ConfigError(f"unknown feed provider {name!r}; use one of {', '.join(PROVIDERS)}")
    registry = leagues or default_leagues()
    the_league = league if isinstance(league, League) else registry.get(league or DEFAULT_LEAGUE)
    if name == "nba_cdn" and the_league.pair != league_named(DEFAULT_LEAGUE).pair:
        raise ConfigError(
            f"the NBA CDN serves only the NBA, not {the_league.name}; "
            f"use --provider espn for {the_league.alias}"
        )
    if client is None:
        client = FeedClient(base_url or DEFAULT_BASE_URLS[name], **client_kwargs)
    elif base_url or client_kwargs:
        raise ConfigError("make_provider: give either client= or base_url/client options, not both")
    if name == "nba_cdn":
        merged: dict[str, str | None] = {
            **registry.headers_for(name, the_league),
            **(headers or {}),
        }
        return NbaCdnProvider(
            client, the_league, {k: v for k, v in merged.items() if v is not None}
        )
    extra = {k: v for k, v in (headers or {}).items() if v is not None}
    return EspnProvider(client, the_league, extra, registry)
