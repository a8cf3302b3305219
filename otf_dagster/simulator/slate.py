"""The simulator's slate: which games exist, who plays, when they start, where they stand now.

Game 1 is the recorded ORL at BOS game; the others replay the same actions under other team
pairs and are labelled ``synthesized`` in every payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from otf_dagster.simulator.replay import (
    RECORDED_GAME_ID,
    Replay,
    ReplayState,
    load_json,
    recorded_replay,
)

FEED_DAY_ZONE = ZoneInfo("America/New_York")


@dataclass(frozen=True)
class SimGame:
    index: int
    nba_id: str
    espn_id: str
    home: str  # NBA tricode
    away: str
    start: float  # real (clock) seconds
    synthesized: bool

    @property
    def start_time(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)

    @property
    def day(self) -> date:
        """The game's day as both real feeds list it: the US Eastern date of the tip-off."""
        return self.start_time.astimezone(FEED_DAY_ZONE).date()

    @property
    def note(self) -> str:
        if not self.synthesized:
            return f"recorded play-by-play of NBA game {RECORDED_GAME_ID} (ORL at BOS), replayed"
        return (
            f"SYNTHESIZED: the actions of NBA game {RECORDED_GAME_ID} (ORL at BOS) replayed "
            f"as {self.away} at {self.home}; players are the recorded ones"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "nba_id": self.nba_id,
            "espn_id": self.espn_id,
            "home": self.home,
            "away": self.away,
            "start_time": self.start_time.isoformat(),
            "synthesized": self.synthesized,
        }


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


def make_slate(
    games: int, t0: float, first_start: float, spacing: float, slate_id: int | None = None
) -> list[SimGame]:
    """``games`` games; game i starts ``first_start + i * spacing`` s after ``t0`` (rounded).

    Without ``slate_id`` game 1 keeps the recorded id (0022000180) and the others are
    00299000NN. With it (``otf simulate --fresh-ids``, which ``otf dev`` uses) every game's ids
    carry the slate number, so a second slate on the same task database is new games, not
    games already tracked to the end.
    """
    others = [t for t in sorted(teams()) if t not in ("BOS", "ORL")]
    slate = []
    for i in range(games):
        if i == 0:
            home, away, nba_id = "BOS", "ORL", RECORDED_GAME_ID
        else:
            pair = (2 * (i - 1)) % max(len(others) - 1, 1)
            home, away = others[pair], others[pair + 1]
            nba_id = f"00299{i:05d}"
        espn_id = str(401900000 + i + 1)
        if slate_id is not None:
            nba_id = f"00298{slate_id % 1000:03d}{i:02d}"
            espn_id = f"4018{slate_id % 1000:03d}{i:02d}"
        slate.append(
            SimGame(
                index=i,
                nba_id=nba_id,
                espn_id=espn_id,
                home=home,
                away=away,
                start=float(round(t0 + first_start + i * spacing)),
                synthesized=i > 0,
            )
        )
    return slate


def game_time(game: SimGame, now: float, speed: float) -> float:
    """Game-timeline seconds since tip-off (negative before)."""
    return (now - game.start) * speed


def state_of(game: SimGame, now: float, speed: float) -> ReplayState:
    return replay().state_at(game_time(game, now, speed))


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
    """The slate tricode playing the recorded team's part."""
    return game.home if recorded_team == replay().home else game.away
