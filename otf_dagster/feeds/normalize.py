"""Small tolerant converters shared by the parsers: a bad value degrades to None, never raises.

Real feeds send padded strings, ``null`` where a number was, and clock formats that change;
one odd field must not crash a poll loop.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

_ISO_DURATION = re.compile(
    r"^\s*PT(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?\s*$",
    re.IGNORECASE,
)
_MMSS = re.compile(r"^\s*(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)\s*$")
_SECONDS = re.compile(r"^\s*(?P<s>\d+(?:\.\d+)?)\s*$")

# ESPN abbreviation -> NBA tricode, for the teams where they differ.
ESPN_TO_NBA_TRICODE = {
    "GS": "GSW",
    "NO": "NOP",
    "NY": "NYK",
    "SA": "SAS",
    "UTAH": "UTA",
    "WSH": "WAS",
}


def nba_tricode(abbreviation: Any) -> str:
    """One spelling of a team across providers (the NBA's), so games can be matched."""
    text = str(abbreviation or "").strip().upper()
    return ESPN_TO_NBA_TRICODE.get(text, text) or "UNK"


def duration_seconds(value: Any) -> float | None:
    """``PT07M15.00S`` / ``7:15`` / ``45.3`` / a number -> seconds; anything else -> None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    m = _ISO_DURATION.match(value)
    if m and any(m.group(g) for g in ("h", "m", "s")):
        hours = float(m.group("h") or 0)
        minutes = float(m.group("m") or 0)
        seconds = float(m.group("s") or 0)
        return round(hours * 3600 + minutes * 60 + seconds, 3)
    m = _MMSS.match(value)
    if m:
        return round(int(m.group("m")) * 60 + float(m.group("s")), 3)
    m = _SECONDS.match(value)
    if m:
        return float(m.group("s"))
    return None


def to_int(value: Any, default: int | None = None) -> int | None:
    """Integers, numeric strings (``"87"``, ``" 87 "``, ``"87.0"``, ``"+5"``) -> int."""
    if value is None or isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value else default  # NaN check
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return default
            return int(number) if number == number else default
    return default


def to_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def parse_utc(value: Any) -> datetime | None:
    """An ISO timestamp (``2023-04-20T23:30:00Z``, ``2024-01-09T00:00Z``) -> aware UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def made_attempted(value: Any) -> tuple[int | None, int | None]:
    """ESPN's ``"4-5"`` -> (4, 5)."""
    if not isinstance(value, str) or "-" not in value:
        return None, None
    made, _, attempted = value.strip().partition("-")
    return to_int(made), to_int(attempted)


def dig(obj: Any, *path: Any) -> Any:
    """``obj[a][b][c]`` or None when any step is missing or of the wrong type."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(obj, list) or not -len(obj) <= key < len(obj):
                return None
        elif not isinstance(obj, dict):
            return None
        obj = obj[key] if isinstance(key, int) else obj.get(key)
        if obj is None:
            return None
    return obj


# --- player / team statistics ---------------------------------------------------------------

# NBA CDN statistics{} key -> normalized key
NBA_STAT_KEYS = {
    "points": "points",
    "reboundsTotal": "rebounds",
    "reboundsOffensive": "offensive_rebounds",
    "reboundsDefensive": "defensive_rebounds",
    "assists": "assists",
    "steals": "steals",
    "blocks": "blocks",
    "turnovers": "turnovers",
    "foulsPersonal": "fouls",
    "fieldGoalsMade": "fg_made",
    "fieldGoalsAttempted": "fg_attempted",
    "threePointersMade": "three_made",
    "threePointersAttempted": "three_attempted",
    "freeThrowsMade": "ft_made",
    "freeThrowsAttempted": "ft_attempted",
    "plusMinusPoints": "plus_minus",
}

# ESPN keys[] entry -> normalized key (a "made-attempted" key fills two)
ESPN_STAT_KEYS = {
    "points": "points",
    "rebounds": "rebounds",
    "totalRebounds": "rebounds",
    "offensiveRebounds": "offensive_rebounds",
    "defensiveRebounds": "defensive_rebounds",
    "assists": "assists",
    "steals": "steals",
    "blocks": "blocks",
    "turnovers": "turnovers",
    "totalTurnovers": "turnovers",
    "fouls": "fouls",
    "plusMinus": "plus_minus",
}
ESPN_PAIR_KEYS = {
    "fieldGoalsMade-fieldGoalsAttempted": ("fg_made", "fg_attempted"),
    "threePointFieldGoalsMade-threePointFieldGoalsAttempted": ("three_made", "three_attempted"),
    "freeThrowsMade-freeThrowsAttempted": ("ft_made", "ft_attempted"),
}


def nba_stats(raw: Any) -> dict[str, Any]:
    """NBA ``statistics{}`` -> normalized stats; minutes become seconds when parseable."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Any] = {}
    for source, target in NBA_STAT_KEYS.items():
        if source in raw:
            out[target] = to_int(raw[source])
    if "minutes" in raw:
        out["minutes"] = duration_seconds(raw["minutes"])
    return out


def espn_stats(keys: Any, values: Any) -> dict[str, Any]:
    """ESPN ``keys[]`` + ``stats[]`` -> normalized stats, mapped by key, never by position."""
    if not isinstance(keys, list) or not isinstance(values, list):
        return {}
    out: dict[str, Any] = {}
    for key, value in zip(keys, values, strict=False):
        if key in ESPN_STAT_KEYS:
            out[ESPN_STAT_KEYS[key]] = to_int(value)
        elif key in ESPN_PAIR_KEYS:
            made_key, attempted_key = ESPN_PAIR_KEYS[key]
            out[made_key], out[attempted_key] = made_attempted(value)
        elif key == "minutes":
            minutes = to_float(value)
            out["minutes"] = None if minutes is None else minutes * 60.0
    return out
