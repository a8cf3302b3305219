"""The simulator's slate: which games exist, who plays, when they start, where they stand now.

Per league, game 1 is the league's recorded game (NBA ORL at BOS, NFL GB at ATL, MLB CLE at
PIT, NHL NYR at FLA); the others replay the same game under other team pairs and are labelled
``synthesized`` in every payload. Games of every league share one accelerated clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from otf_dagster.exceptions import ConfigError
from otf_dagster.simulator.espn_replay import SportState, recorded, sport_replay
from otf_dagster.simulator.replay import (
    RECORDED_GAME_ID,
    Replay,
    ReplayState,
    load_json,
    recorded_replay,
)

FEED_DAY_ZONE = ZoneInfo("America/New_York")
# The leagues the simulator replays a recorded game of, in the order their games are listed;
# the position is also a digit of the synthesized ESPN ids.
SIM_LEAGUES = ("nba", "nfl", "mlb", "nhl")


@dataclass(frozen=True)
class SimGame:
    index: int
    nba_id: str
    espn_id: str
    home: str  # NBA tricode
    away: str
    start: float  # real (clock) seconds
    synthesized: bool
    league: str = "nba"
    speed: float = 60.0  # game seconds per real second (a slate's own, kept across restarts)

    @property
    def start_time(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)

    @property
    def day(self) -> date:
        """The game's day as both real feeds list it: the US Eastern date of the tip-off."""
        return self.start_time.astimezone(FEED_DAY_ZONE).date()

    @property
    def note(self) -> str:
        if self.league == "nba":
            game = f"NBA game {RECORDED_GAME_ID} (ORL at BOS)"
        else:
            rec = recorded(self.league)
            game = (
                f"{self.league.upper()} game {rec['event_id']} "
                f"({rec['away']['abbreviation']} at {rec['home']['abbreviation']})"
            )
        if not self.synthesized:
            return f"recorded play-by-play of {game}, replayed"
        return (
            f"SYNTHESIZED: the plays of {game} replayed as {self.away} at {self.home}; "
            "players are the recorded ones"
        )

    @property
    def simulator_note(self) -> dict[str, Any]:
        """What every payload of the game says of it, under ``_simulator``."""
        return {"synthesized": self.synthesized, "note": self.note}

    def to_dict(self) -> dict[str, Any]:
        return {
            "league": self.league,
            "nba_id": self.nba_id,
            "espn_id": self.espn_id,
            "home": self.home,
            "away": self.away,
            "start_time": self.start_time.isoformat(),
            "synthesized": self.synthesized,
        }

    def to_record(self) -> dict[str, Any]:
        """Everything needed to serve the game again after a restart (``--slates-file``)."""
        return self.to_dict() | {"index": self.index, "start": self.start, "speed": self.speed}

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> SimGame:
        return cls(
            index=int(d["index"]),
            nba_id=str(d["nba_id"]),
            espn_id=str(d["espn_id"]),
            home=str(d["home"]),
            away=str(d["away"]),
            start=float(d["start"]),
            synthesized=bool(d["synthesized"]),
            league=str(d.get("league", "nba")),
            speed=float(d["speed"]),
        )


def teams() -> dict[str, Any]:
    return load_json("teams.json")


def team_info(tricode: str) -> dict[str, Any]:
    info = teams().get(tricode)
    if info:
        return info
    return {
        "nba": {"teamId": 0, "teamName": tricode, "teamCity": tricode},
        "espn": {
            "id": "0",
            "abbreviation": tricode,
            "location": tricode,
            "name": tricode,
            "displayName": tricode,
        },
    }


def espn_teams(league: str) -> dict[str, dict[str, Any]]:
    """The league's teams seen in its recorded scoreboards, by abbreviation."""
    return load_json("teams_espn.json")[league]


def _pairs(league: str) -> tuple[tuple[str, str], list[str]]:
    """(recorded home, away) and the other teams to synthesize games with."""
    if league == "nba":
        return ("BOS", "ORL"), [t for t in sorted(teams()) if t not in ("BOS", "ORL")]
    rec = recorded(league)
    home, away = rec["home"]["abbreviation"], rec["away"]["abbreviation"]
    return (home, away), [t for t in sorted(espn_teams(league)) if t not in (home, away)]


def _ids(league: str, i: int, slate_id: int | None) -> tuple[str, str]:
    """(NBA CDN id, ESPN id) of a league's game i: the recorded ids for game 1 of a slate
    without number; synthesized ids carry the league's position (and the slate number)."""
    position = SIM_LEAGUES.index(league)
    if league == "nba":
        nba_id = RECORDED_GAME_ID if i == 0 else f"00299{i:05d}"
        espn_id = str(401900000 + i + 1)
        if slate_id is not None:
            nba_id = f"00298{slate_id % 1000:03d}{i:02d}"
            espn_id = f"4018{slate_id % 1000:03d}{i:02d}"
        return nba_id, espn_id
    if slate_id is not None:
        return "", f"4018{slate_id % 1000:03d}{position}{i:02d}"
    return "", recorded(league)["event_id"] if i == 0 else f"4019{position}{i + 1:04d}"


def make_slate(
    games: int,
    t0: float,
    first_start: float,
    spacing: float,
    slate_id: int | None = None,
    leagues: tuple[str, ...] = ("nba",),
    speed: float = 60.0,
) -> list[SimGame]:
    """``games`` games per league; the n-th game of the slate starts ``first_start + n *
    spacing`` s after ``t0`` (rounded), the leagues' games in the order given.

    Without ``slate_id`` each league's game 1 keeps its recorded ids (NBA 0022000180) and the
    others are numbered from fixed bases. With it (``otf simulate --fresh-ids``, which ``otf
    dev`` uses) every game's ids carry the slate number, so a second slate on the same task
    database is new games, not games already tracked to the end.
    """
    unknown = [lg for lg in leagues if lg not in SIM_LEAGUES]
    if unknown or not leagues:
        raise ConfigError(
            f"the simulator cannot replay {', '.join(unknown) or 'no league'}; "
            f"it has a recorded game of {', '.join(SIM_LEAGUES)}"
        )
    slate = []
    n = 0
    for league in leagues:
        (home0, away0), others = _pairs(league)
        for i in range(games):
            if i == 0:
                home, away = home0, away0
            elif len(others) < 2:  # the recordings show no other teams (NHL): swap sides
                home, away = (away0, home0) if i % 2 else (home0, away0)
            else:
                pair = (2 * (i - 1)) % max(len(others) - 1, 1)
                home, away = others[pair], others[pair + 1]
            nba_id, espn_id = _ids(league, i, slate_id)
            slate.append(
                SimGame(
                    index=i,
                    nba_id=nba_id,
                    espn_id=espn_id,
                    home=home,
                    away=away,
                    start=float(round(t0 + first_start + n * spacing)),
                    synthesized=i > 0,
                    league=league,
                    speed=speed,
                )
            )
            n += 1
    return slate


def game_time(game: SimGame, now: float, speed: float) -> float:
    """Game-timeline seconds since tip-off (negative before)."""
    return (now - game.start) * speed


def state_of(game: SimGame, now: float, speed: float | None = None) -> ReplayState:
    """An NBA game's replay state (``speed``: the game's own when None)."""
    return replay().state_at(game_time(game, now, speed or game.speed))


def sport_state_of(game: SimGame, now: float) -> SportState:
    """A game of another league: its sport's replay state."""
    return sport_replay(game.league).state_at(game_time(game, now, game.speed))


def replay() -> Replay:
    return recorded_replay()


def status_text(state: ReplayState, game: SimGame) -> str:
    if state.status == 1:
        return game.start_time.strftime("%H:%M UTC")
    if state.status == 3:
        return "Final"
    if state.in_break:
        return "Half" if state.period == 2 else f"End Q{state.period}"
    minutes, seconds = divmod(int(state.clock), 60)
    label = f"Q{state.period}" if state.period <= 4 else f"OT{state.period - 4}"
    return f"{label} {minutes:d}:{seconds:02d}"


def side_of(game: SimGame, recorded_team: str) -> str:
    """The slate team playing the recorded team's part (an abbreviation or an ESPN team id)."""
    if game.league == "nba":
        return game.home if recorded_team == replay().home else game.away
    rec = recorded(game.league)
    return (
        game.home
        if recorded_team in (rec["home"]["abbreviation"], rec["home"]["id"])
        else game.away
    )
