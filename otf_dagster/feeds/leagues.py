"""Leagues as data: ESPN's ``{sport}/{league}`` pairs with aliases, read from YAML.

The packaged ``otf_dagster/defaults/leagues.yaml`` lists the major leagues; a user file in the
same shape adds or replaces lines (and may say which leagues to ``follow``). A league carries
what its sport shares (clock, periods, extra periods, poll interval, deadline) so parsers,
task types and the simulator read one place.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from otf_dagster import settings
from otf_dagster.exceptions import ConfigError

CLOCKS = ("countdown", "innings", "minutes")
EXTRAS = ("overtime", "extra_innings", "extra_time")
TEAM_CODES = ("own", "nba")
DEFAULT_LEAGUE = "nba"  # when neither OTF_LEAGUES nor the leagues file says
LEAGUES_ENV = settings.LEAGUES.env  # the leagues a deployment follows, e.g. nba,nfl,mlb
LEAGUES_FILE_ENV = settings.LEAGUES_FILE.env  # a YAML file adding leagues to the packaged ones

_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
_PAIR = re.compile(r"^(?P<sport>[a-z][a-z0-9-]*)/(?P<league>[a-z0-9][a-z0-9.-]*)$")
_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]{0,40}$")
_SPORT_FIELDS = (
    "clock",
    "periods",
    "period_name",
    "extra",
    "poll_interval_seconds",
    "deadline_seconds",
)
_LEAGUE_FIELDS = {
    "alias",
    "path",
    "name",
    "task_prefix",
    "team_codes",
    "headers",
    "groups",
    *_SPORT_FIELDS,
}
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")  # an HTTP token
MAX_GROUPS = 10

CONFIRM_DELAY_SECONDS = 600
SUMMARY_PATH = "/apis/site/v2/sports/{pair}/summary"
SCOREBOARD_PATH = "/apis/site/v2/sports/{pair}/scoreboard"


def packaged_file() -> Path:
    return Path(str(resources.files("otf_dagster.defaults").joinpath("leagues.yaml")))


@dataclass(frozen=True)
class League:
    """One league ESPN serves, with its sport's rules resolved (the line's overrides win)."""

    alias: str
    sport: str
    slug: str  # ESPN's league part of the pair: nfl, eng.1, college-football
    name: str
    task_prefix: str
    team_codes: str
    clock: str
    periods: int
    period_name: str
    extra: str
    poll_interval_seconds: float
    deadline_seconds: int
    # per feed (nba_cdn, espn): headers replacing the feed's defaults by name (None drops one)
    headers: dict[str, dict[str, str | None]] = field(default_factory=dict, hash=False)
    # ESPN's divisions (``groups=``) a scoreboard asks for, merged: college's whole top one
    groups: tuple[str, ...] = ()

    @property
    def pair(self) -> str:
        return f"{self.sport}/{self.slug}"

    @property
    def summary_path(self) -> str:
        return SUMMARY_PATH.format(pair=self.pair)

    @property
    def scoreboard_path(self) -> str:
        return SCOREBOARD_PATH.format(pair=self.pair)

    @property
    def boxscore_type(self) -> str:
        return f"{self.task_prefix}_GAME_BOXSCORE"

    @property
    def confirm_type(self) -> str:
        return f"{self.task_prefix}_GAME_CONFIRM"

    def task_type_specs(self) -> list[dict[str, Any]]:
        """The league's box-score and confirmation task types, as plain task type mappings."""
        template = f"{self.summary_path}?event={{key}}"
        return [
            {
                "name": self.boxscore_type,
                "description": f"Poll a {self.name} game's summary (ESPN site API) until it is final.",
                "handler": "espn.boxscore",
                "url_template": template,
                "poll_interval_seconds": self.poll_interval_seconds,
                "deadline_seconds": self.deadline_seconds,
                "max_attempts": 3,
                "max_consecutive_errors": 10,
                "stale_after_seconds": max(120, int(self.poll_interval_seconds) * 4),
                "required_services": ["runner"],
                "params": {
                    "league": self.alias,
                    "follow_up_type": self.confirm_type,
                    "follow_up_delay_seconds": CONFIRM_DELAY_SECONDS,
                },
            },
            {
                "name": self.confirm_type,
                "description": f"One last poll of a final {self.name} game summary.",
                "handler": "espn.confirm",
                "url_template": template,
                "poll_interval_seconds": 30,
                "deadline_seconds": 3600,
                "max_attempts": 3,
                "stale_after_seconds": 120,
                "required_services": ["runner"],
                "params": {"league": self.alias},
            },
        ]


class Leagues:
    """The known leagues, looked up by alias or by ``sport/league`` pair."""

    def __init__(
        self,
        leagues: Iterable[League],
        follow: tuple[str, ...] = (),
        feeds: Mapping[str, Mapping[str, str | None]] | None = None,
    ) -> None:
        self._by_alias = {lg.alias: lg for lg in leagues}
        self._by_pair = {lg.pair: lg for lg in self._by_alias.values()}
        self.follow = follow
        self.feeds = {name: dict(h) for name, h in (feeds or {}).items()}

    def headers_for(self, feed: str, league: League | None = None) -> dict[str, str]:
        """The headers a request to ``feed`` carries: the feed's defaults, then the league's."""
        merged: dict[str, str | None] = dict(self.feeds.get(feed) or {})
        if league is not None:
            merged.update(league.headers.get(feed) or {})
        return {k: v for k, v in merged.items() if v is not None}

    def __iter__(self):
        return iter(self._by_alias.values())

    def __len__(self) -> int:
        return len(self._by_alias)

    @property
    def aliases(self) -> list[str]:
        return sorted(self._by_alias)

    def find(self, value: str) -> League | None:
        text = str(value or "").strip().lower()
        return self._by_alias.get(text) or self._by_pair.get(text)

    def get(self, value: str | League) -> League:
        """The league named by alias or pair; anything else is refused, listing the known ones."""
        if isinstance(value, League):
            return value
        found = self.find(value)
        if found is None:
            raise ConfigError(
                f"unknown league {value!r}; known leagues: {', '.join(self.aliases)} "
                "(or their sport/league pairs, e.g. football/nfl); add one with a line in a "
                "leagues file (OTF_LEAGUES_FILE)"
            )
        return found

    def parse_list(self, text: str | Iterable[str]) -> list[League]:
        """``"nba,nfl, mlb"`` (or a list) -> those leagues, in order, once each."""
        items = text.split(",") if isinstance(text, str) else list(text)
        names = [str(item).strip() for item in items if str(item).strip()]
        if not names:
            raise ConfigError(
                f"no league given in {text!r}; list aliases such as nba,nfl,mlb "
                f"(known: {', '.join(self.aliases)})"
            )
        out: dict[str, League] = {}
        for name in names:
            league = self.get(name)
            out.setdefault(league.alias, league)
        return list(out.values())


# --- loading ---------------------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"leagues file {path} does not exist; check OTF_LEAGUES_FILE") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"leagues file {path} is not valid YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, Mapping) or set(doc) - {"sports", "leagues", "follow", "feeds"}:
        raise ConfigError(
            f"leagues file {path} must be a mapping with 'leagues' (and optionally 'sports', "
            "'follow', 'feeds'), as otf_dagster/defaults/leagues.yaml"
        )
    return dict(doc)


def _positive(where: str, name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: {name} must be a positive number, got {value!r}")
    if kind is int and int(value) != value:
        raise ConfigError(f"{where}: {name} must be a whole number, got {value!r}")
    return kind(value)


def _sport(where: str, raw: Any, base: Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a sport line is a mapping of {', '.join(_SPORT_FIELDS)}")
    unknown = set(raw) - set(_SPORT_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {sorted(unknown)}; allowed: {list(_SPORT_FIELDS)}"
        )
    out = dict(base or {})
    out.update(raw)
    missing = set(_SPORT_FIELDS) - set(out)
    if missing:
        raise ConfigError(f"{where}: missing field(s) {sorted(missing)}")
    return _checked_rules(where, out)


def _checked_rules(where: str, rules: dict[str, Any]) -> dict[str, Any]:
    if rules["clock"] not in CLOCKS:
        raise ConfigError(f"{where}: clock {rules['clock']!r} is not one of {', '.join(CLOCKS)}")
    if rules["extra"] not in EXTRAS:
        raise ConfigError(f"{where}: extra {rules['extra']!r} is not one of {', '.join(EXTRAS)}")
    if not isinstance(rules["period_name"], str) or not rules["period_name"].strip():
        raise ConfigError(
            f"{where}: period_name must be a word such as quarter, got {rules['period_name']!r}"
        )
    rules["periods"] = _positive(where, "periods", rules["periods"], int)
    rules["deadline_seconds"] = _positive(where, "deadline_seconds", rules["deadline_seconds"], int)
    rules["poll_interval_seconds"] = _positive(
        where, "poll_interval_seconds", rules["poll_interval_seconds"], float
    )
    return rules


def _headers(where: str, raw: Any) -> dict[str, str | None]:
    """``{Name: value}``: HTTP token names, one-line values; ``null`` drops a default."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: headers must map header names to values, got {raw!r}")
    out: dict[str, str | None] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ConfigError(f"{where}: {name!r} is not an HTTP header name")
        if value is not None and (
            not isinstance(value, str) or "\n" in value or "\r" in value or len(value) > 4000
        ):
            raise ConfigError(
                f"{where}: header {name} must be one line of text (or null to drop it), "
                f"got {str(value)[:40]!r}"
            )
        out[name] = value
    return out


def _feed_headers(where: str, raw: Any) -> dict[str, dict[str, str | None]]:
    """A league line's ``headers: {feed: {Name: value}}``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}: headers maps a feed to its headers, e.g. "
            "{nba_cdn: {Referer: 'https://www.nba.com/'}}, got {raw!r}"
        )
    return {str(feed): _headers(f"{where}: headers.{feed}", h) for feed, h in raw.items()}


def _groups(where: str, raw: Any) -> tuple[str, ...]:
    """ESPN division ids (50 college basketball's Division I, 80 FBS, 81 FCS): one or a list."""
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit() or len(text) > 6:
            raise ConfigError(
                f"{where}: groups {raw!r}: each is ESPN's division number (e.g. 50; 80 FBS, "
                "81 FCS), one or a list"
            )
        if text not in out:
            out.append(text)
    if len(out) > MAX_GROUPS:
        raise ConfigError(f"{where}: groups lists {len(out)} divisions; at most {MAX_GROUPS}")
    return tuple(out)


def _league(where: str, raw: Any, sports: Mapping[str, dict[str, Any]]) -> League:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}: a league line is a mapping such as {{alias: nfl, path: football/nfl, name: NFL}}"
        )
    unknown = set(raw) - _LEAGUE_FIELDS
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_LEAGUE_FIELDS)}"
        )
    alias = raw.get("alias")
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise ConfigError(
            f"{where}: alias {alias!r} is malformed: use lowercase letters, digits, _ and -, "
            "starting with a letter (e.g. nfl)"
        )
    where = f"{where} ({alias})"
    path = raw.get("path")
    pair = _PAIR.match(path) if isinstance(path, str) else None
    if pair is None:
        raise ConfigError(
            f"{where}: path {path!r} is not ESPN's sport/league pair (e.g. football/nfl, soccer/eng.1)"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: name must be the league's display name, got {name!r}")
    prefix = raw.get("task_prefix", re.sub(r"[^A-Z0-9]+", "_", alias.upper()))
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ConfigError(
            f"{where}: task_prefix {prefix!r} must be capitals, digits and _ (e.g. NFL)"
        )
    team_codes = raw.get("team_codes", "own")
    if team_codes not in TEAM_CODES:
        raise ConfigError(
            f"{where}: team_codes {team_codes!r} is not one of {', '.join(TEAM_CODES)}"
        )
    sport = pair.group("sport")
    rules = dict(sports.get(sport) or sports["default"])
    rules.update({k: raw[k] for k in _SPORT_FIELDS if k in raw})
    rules = _checked_rules(where, rules)
    return League(
        alias=alias,
        sport=sport,
        slug=pair.group("league"),
        name=name.strip(),
        task_prefix=prefix,
        team_codes=team_codes,
        headers=_feed_headers(where, raw.get("headers") or {}),
        groups=_groups(where, raw["groups"]) if raw.get("groups") not in (None, []) else (),
        **rules,
    )


def _merge(docs: list[tuple[Path, dict[str, Any]]]) -> Leagues:
    sports: dict[str, dict[str, Any]] = {}
    leagues: dict[str, League] = {}
    follow: tuple[str, ...] = ()
    feeds: dict[str, dict[str, str | None]] = {}
    for path, doc in docs:
        raw_feeds = doc.get("feeds") or {}
        if not isinstance(raw_feeds, Mapping):
            raise ConfigError(f"leagues file {path}: 'feeds' must map a feed to {{headers: ...}}")
        for feed, raw in raw_feeds.items():
            if not isinstance(raw, Mapping) or set(raw) - {"headers"}:
                raise ConfigError(
                    f"leagues file {path}: feed {feed!r} is a mapping with 'headers' only"
                )
            feeds.setdefault(str(feed), {}).update(
                _headers(f"{path}: feed {feed}", raw.get("headers") or {})
            )
        raw_sports = doc.get("sports") or {}
        if not isinstance(raw_sports, Mapping):
            raise ConfigError(f"leagues file {path}: 'sports' must map a sport to its rules")
        for sport, raw in raw_sports.items():
            sports[str(sport)] = _sport(f"{path}: sport {sport!r}", raw, sports.get(str(sport)))
        if "default" not in sports:
            raise ConfigError(f"leagues file {path}: 'sports' needs a 'default' line")
        raw_leagues = doc.get("leagues") or []
        if not isinstance(raw_leagues, list):
            raise ConfigError(f"leagues file {path}: 'leagues' must be a list of league lines")
        pairs: dict[str, str] = {}
        for index, raw in enumerate(raw_leagues, start=1):
            league = _league(f"{path}: league {index}", raw, sports)
            if pairs.setdefault(league.pair, league.alias) != league.alias:
                raise ConfigError(
                    f"{path}: league {league.alias!r} has the path {league.pair} of "
                    f"{pairs[league.pair]!r}; one league per pair"
                )
            # a later file's line replaces an earlier one of the same alias or pair
            leagues = {a: lg for a, lg in leagues.items() if lg.pair != league.pair}
            leagues[league.alias] = league
        if "follow" in doc:
            raw_follow = doc["follow"]
            if isinstance(raw_follow, str):
                raw_follow = raw_follow.split(",")
            if not isinstance(raw_follow, list):
                raise ConfigError(f"leagues file {path}: 'follow' must list league aliases")
            follow = tuple(str(x).strip() for x in raw_follow if str(x).strip())
    registry = Leagues(leagues.values(), feeds=feeds)
    if follow:
        try:
            registry.follow = tuple(lg.alias for lg in registry.parse_list(follow))
        except ConfigError as exc:
            raise ConfigError(f"leagues file {docs[-1][0]}: follow: {exc}") from None
    return registry


@cache
def default_leagues() -> Leagues:
    """The packaged leagues (read once)."""
    path = packaged_file()
    return _merge([(path, _read(path))])


# A user file's leagues by its path: (the file's stamp when read, them). Runners load the leagues
# on every poll; the file is parsed again only when it changed.
_USER_FILES: dict[str, tuple[tuple[int, int, int], Leagues]] = {}
_USER_FILES_LOCK = threading.Lock()


def load_leagues(user_file: str | Path | None = None) -> Leagues:
    """The packaged leagues, plus (replacing lines of the same alias) those of ``user_file``;
    read again only when the file changed (its modification time, size or inode)."""
    if not user_file:
        return default_leagues()
    user = Path(user_file)
    try:
        st = user.stat()
    except OSError:
        st = None  # missing or unreadable: _read says so in one line
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino) if st is not None else None
    key = str(user.absolute())
    with _USER_FILES_LOCK:
        cached = _USER_FILES.get(key)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return cached[1]
    packaged = packaged_file()
    leagues = _merge([(packaged, _read(packaged)), (user, _read(user))])
    if stamp is not None:
        with _USER_FILES_LOCK:
            _USER_FILES[key] = (stamp, leagues)
    return leagues


def league(value: str | League | None = None) -> League:
    """A packaged league by alias or pair (``nba`` when None)."""
    if isinstance(value, League):
        return value
    return default_leagues().get(value or DEFAULT_LEAGUE)


__all__ = [
    "CLOCKS",
    "DEFAULT_LEAGUE",
    "EXTRAS",
    "League",
    "Leagues",
    "default_leagues",
    "league",
    "load_leagues",
]
