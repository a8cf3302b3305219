"""How each sport runs: status names, clocks, inning halves, when a period is over.

Pure functions of feed values and a league's rules; the ESPN parser and event derivation share
them, so a rule lives here once.
"""

from __future__ import annotations

import re
from typing import Any

from otf_dagster.feeds.leagues import League
from otf_dagster.feeds.models import BoxScore, GameFormat, GameStatus
from otf_dagster.feeds.normalize import duration_seconds, to_float, to_int

# ESPN status names (type.name without STATUS_) that say a game is stopped, not over.
DELAY_DETAILS = ("delayed", "rain_delay", "delay")
_FINAL_NAMES = ("FINAL", "FULL_TIME", "FORFEIT", "END_OF_GAME")
_PERIOD_WORDS = ("quarter", "half", "period", "inning")
_INNING = re.compile(
    r"^\s*(?P<half>top|bot|bottom|mid|middle|end)\w*\s+(?:of\s+(?:the\s+)?)?(?P<n>\d+)",
    re.IGNORECASE,
)
_HALVES = {
    "top": "top",
    "bot": "bottom",
    "bottom": "bottom",
    "mid": "mid",
    "middle": "mid",
    "end": "end",
}
_MINUTES = re.compile(r"^\s*(?P<m>\d+)'(?:\s*\+\s*(?P<s>\d+)'?)?\s*$")
# an inning half's place in the inning: top, then the middle break, bottom, then its end
HALF_ORDER = ("top", "mid", "bottom", "end")


def espn_status(status: Any) -> tuple[GameStatus, str | None]:
    """``status.type`` -> (status, detail). "post" is not "final": postponed, suspended and an
    unfinished "post" game (completed false) are not FINAL; forfeits and full time are."""
    kind = status.get("type") if isinstance(status, dict) else None
    if not isinstance(kind, dict):
        return GameStatus.SCHEDULED, None
    name = str(kind.get("name") or "").strip().upper()
    detail = name.removeprefix("STATUS_").lower() or None
    state = str(kind.get("state") or "").strip().lower()
    completed = kind.get("completed")
    if "POSTPONED" in name:
        return GameStatus.POSTPONED, detail
    if "CANCEL" in name:
        return GameStatus.CANCELLED, detail
    if "SUSPENDED" in name:
        return GameStatus.SUSPENDED, detail
    if any(word in name for word in _FINAL_NAMES) and state != "in":
        return GameStatus.FINAL, detail
    if state == "in":
        return GameStatus.LIVE, detail
    if state == "post":
        return (GameStatus.SUSPENDED if completed is False else GameStatus.FINAL), detail
    if completed is True:
        return GameStatus.FINAL, detail
    return GameStatus.SCHEDULED, detail


def game_format(league: League, feed_format: Any) -> GameFormat:
    """The league's rules, with the periods the feed's ``format.regulation`` gives."""
    regulation = feed_format.get("regulation") if isinstance(feed_format, dict) else None
    regulation = regulation if isinstance(regulation, dict) else {}
    periods = to_int(regulation.get("periods"))
    name = str(regulation.get("displayName") or "").strip().lower()
    return GameFormat(
        regulation=periods if periods and periods > 0 else league.periods,
        name=name if name in _PERIOD_WORDS else league.period_name,
        extra=league.extra,
        clock=league.clock,
    )


def inning_half(text: Any) -> tuple[str | None, int | None]:
    """``"Top 9th"`` -> ("top", 9); ``"Mid 4th"``, ``"End 3rd"``, ``"Bot 5th"``; else (None, None)."""
    m = _INNING.match(text) if isinstance(text, str) else None
    if m is None:
        return None, None
    return _HALVES[m.group("half").lower()], int(m.group("n"))


def match_seconds(text: Any) -> float | None:
    """Soccer's ``"58'"`` -> 3480.0, ``"90'+5'"`` -> 5700.0 (stoppage time counted)."""
    m = _MINUTES.match(text) if isinstance(text, str) else None
    if m is None:
        return None
    return float((int(m.group("m")) + int(m.group("s") or 0)) * 60)


def clock_of(
    status: Any, fmt: GameFormat
) -> tuple[float | None, str | None, str | None, int | None]:
    """(clock seconds, display clock, inning half, period from the text) of a live status."""
    status = status if isinstance(status, dict) else {}
    kind = status.get("type") if isinstance(status.get("type"), dict) else {}
    display = status.get("displayClock")
    display = display.strip() if isinstance(display, str) and display.strip() else None
    if fmt.clock == "innings":
        half, number = inning_half(kind.get("shortDetail"))
        if half is None:
            half, number = inning_half(kind.get("detail"))
        if half is None:
            prefix = status.get("periodPrefix")
            half = _HALVES.get(str(prefix or "").strip().lower())
        text = (
            f"{half.capitalize() if half != 'bottom' else 'Bot'} {_ordinal(number)}"
            if half and number
            else None
        )
        return None, text, half, number
    clock = to_float(status.get("clock"))
    if clock is None:
        clock = match_seconds(display) if fmt.clock == "minutes" else duration_seconds(display)
    return clock, display, None, None


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def period_over(box: BoxScore) -> bool:
    """Whether a live game shows its current period as over (a break before the next one).

    Baseball: the inning's end; elsewhere a halftime / end-of-period status, or for countdown
    clocks a clock at 0.0 (between periods the feeds keep the old period at 0:00).
    """
    if box.status is not GameStatus.LIVE:
        return False
    if box.format.clock == "innings":
        return box.inning_half == "end"
    detail = box.status_detail or ""
    if detail == "halftime" or detail.startswith("end"):
        return True
    return box.format.clock == "countdown" and box.clock_seconds == 0.0


def delayed(box: BoxScore) -> bool:
    """A live or scheduled game that waits (rain delay, delayed start)."""
    return (
        box.status in (GameStatus.LIVE, GameStatus.SCHEDULED)
        and (box.status_detail or "") in DELAY_DETAILS
    )
