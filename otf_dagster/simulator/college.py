"""College scoreboards as ESPN answers them: a featured handful without ``groups``, the whole
division with it, and 25 events when ``limit`` is above 500 (ESPN's silent cap).

The simulator replays no college game: its college days list synthesized scheduled games
(``college_games`` per league, labelled synthesized), enough to test how a client asks.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

FEATURED = 10  # what ESPN listed bare on 2026-01-15 (82 games with groups=50)
CAPPED = 25
MAX_LIMIT = 500
TOP_DIVISION = {"basketball": "50", "football": "80"}  # 81 FCS, 90 all divisions (football)


def _event(event_id: str, day: date, n: int) -> dict[str, Any]:
    start = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)  # 19:00 US Eastern
    return {
        "id": event_id,
        "date": start.strftime("%Y-%m-%dT%H:%MZ"),
        "status": {"type": {"state": "pre", "completed": False, "name": "STATUS_SCHEDULED"}},
        "competitions": [
            {
                "id": event_id,
                "competitors": [
                    {"homeAway": "home", "team": {"abbreviation": f"H{n}"}, "score": "0"},
                    {"homeAway": "away", "team": {"abbreviation": f"A{n}"}, "score": "0"},
                ],
            }
        ],
        "_simulator": {"synthesized": True, "note": "SYNTHESIZED college game (not replayed)"},
    }


def scoreboard(
    slug: str, sport: str, day: date, games: int, query: dict[str, list[str]]
) -> dict[str, Any]:
    division = [_event(f"49{day:%m%d}{n:04d}", day, n) for n in range(games)]
    group = (query.get("groups") or [""])[0]
    if not group:
        events = division[:FEATURED]
    elif group in (TOP_DIVISION.get(sport), "90"):
        events = division
    else:
        events = []
    limit = (query.get("limit") or [""])[0]
    if limit.isdigit() and int(limit) > MAX_LIMIT:
        events = division[:CAPPED]
    elif limit.isdigit():
        events = events[: int(limit)]
    return {"leagues": [{"slug": slug}], "events": events}
