"""Rebuild ``simulator/data/`` from the recorded fixtures (a developer tool, not used at run time).

    python -m otf_dagster.simulator.build_data otf_dagster_tests/fixtures

The simulator must work from its own package alone, so it ships trimmed copies: the ORL at BOS
play-by-play without shot coordinates, the team names/ids seen in the recorded scoreboards, and
ESPN's 404 body verbatim; for the other sports, what their replays read of one recorded game
each (NFL GB at ATL scoring plays and drives, MLB CLE at PIT inning and result plays, NHL NYR
at FLA goals, penalties and period marks) and the teams of each league's recorded scoreboards.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DATA = Path(__file__).with_name("data")
PBP = "nba_cdn/playbyplay/playbyplay_0022000180_ORL-at-BOS_final.json"
DROP = {"x", "y", "xLegacy", "yLegacy", "side", "shotDistance", "personIdsFilter", "edited"}


def build(fixtures: Path) -> None:
    doc = json.loads((fixtures / PBP).read_text())
    actions = [
        {k: v for k, v in a.items() if k not in DROP}
        for a in sorted(doc["game"]["actions"], key=lambda a: a["orderNumber"])
    ]
    trimmed = {
        "meta": doc["meta"],
        "game": {"gameId": doc["game"]["gameId"], "actions": actions},
        "_source": f"otf_dagster_tests/fixtures/{PBP}, actions sorted by orderNumber, "
        f"fields {sorted(DROP)} dropped",
    }
    (DATA / "playbyplay_0022000180.json").write_text(json.dumps(trimmed, separators=(",", ":")))

    teams: dict[str, dict] = {}
    for path in sorted((fixtures / "nba_cdn").rglob("*.json")):
        body = json.loads(path.read_text())
        games = (body.get("scoreboard") or {}).get("games") or []
        games += [body["game"]] if isinstance(body.get("game"), dict) else []
        for game in games:
            for side in ("homeTeam", "awayTeam"):
                team = game.get(side) or {}
                if team.get("teamTricode") and team.get("teamName"):
                    teams.setdefault(team["teamTricode"], {}).update(
                        nba={k: team[k] for k in ("teamId", "teamName", "teamCity")}
                    )
    for path in sorted((fixtures / "espn" / "scoreboard").glob("*.json")):
        for event in json.loads(path.read_text()).get("events", []):
            for comp in event["competitions"][0]["competitors"]:
                t = comp["team"]
                fields = ("id", "abbreviation", "location", "name", "displayName")
                espn = {k: t.get(k) for k in fields}
                nba = {"SA": "SAS", "NO": "NOP", "NY": "NYK", "GS": "GSW", "UTAH": "UTA"}.get(
                    t["abbreviation"], t["abbreviation"]
                )
                teams.setdefault(nba, {})["espn"] = espn
    # teams only ESPN shows (BOS): NBA names from ESPN's, the team id from the play-by-play
    pbp_ids = {a["teamTricode"]: a["teamId"] for a in actions if a.get("teamTricode")}
    for tricode, team in teams.items():
        if "nba" not in team and tricode in pbp_ids:
            espn = team["espn"]
            team["nba"] = {
                "teamId": pbp_ids[tricode],
                "teamName": espn["name"],
                "teamCity": espn["location"],
            }
    complete = {k: v for k, v in sorted(teams.items()) if "nba" in v and "espn" in v}
    (DATA / "teams.json").write_text(json.dumps(complete, indent=1))
    error = fixtures / "espn/summary/summary_401673394_error_404.json"
    (DATA / "espn_error_404.json").write_bytes(error.read_bytes())


MS = "espn-multisport"
RECORDED = {
    "nfl": f"{MS}/nfl/summary/summary_2023-09-17_post_GB-at-ATL_401547417.json",
    "mlb": f"{MS}/mlb/summary/summary_2023-07-19_post_CLE-at-PIT_401472463.json",
    "nhl": f"{MS}/nhl/summary/summary_2024-06-01_post_NYR-at-FLA_401672881.json",
}
TEAM_FIELDS = ("id", "abbreviation", "location", "name", "displayName")
MLB_KEPT = ("start-inning", "end-inning", "play-result")
NHL_KEPT = ("Goal", "Penalty", "Period Start", "Period End", "End of Game")


def _seconds(clock: str) -> float:
    minutes, _, seconds = str(clock).partition(":")
    return int(minutes) * 60 + float(seconds or 0)


def _header(doc: dict) -> dict:
    competition = doc["header"]["competitions"][0]
    sides = {c["homeAway"]: c for c in competition["competitors"]}
    return {
        "event_id": doc["header"]["id"],
        "date": competition["date"],
        "league": {k: doc["header"]["league"][k] for k in ("id", "slug", "abbreviation", "name")},
        "format": doc["format"],
        "home": {k: sides["home"]["team"][k] for k in TEAM_FIELDS},
        "away": {k: sides["away"]["team"][k] for k in TEAM_FIELDS},
        "final": {"home": int(sides["home"]["score"]), "away": int(sides["away"]["score"])},
    }


def _nfl(doc: dict) -> dict:
    out = _header(doc)
    out["scoring_plays"] = [
        {
            "id": p["id"],
            "type": p["type"]["text"],
            "text": " ".join(p["text"].split()),
            "team": p["team"]["abbreviation"],
            "period": p["period"]["number"],
            "clock": _seconds(p["clock"]["displayValue"]),
            "homeScore": p["homeScore"],
            "awayScore": p["awayScore"],
        }
        for p in doc["scoringPlays"]
    ]
    out["drives"] = [
        {
            "team": d["team"]["abbreviation"],
            "start": [
                d["start"]["period"]["number"],
                _seconds(d["start"]["clock"]["displayValue"]),
            ],
            "end": [d["end"]["period"]["number"], _seconds(d["end"]["clock"]["displayValue"])],
        }
        for d in doc["drives"]["previous"]
        if "clock" in d.get("start", {}) and "clock" in d.get("end", {})
    ]
    return out


def _mlb(doc: dict) -> dict:
    out = _header(doc)
    out["plays"] = [
        {
            "id": p["id"],
            "kind": p["type"]["type"],
            "inning": p["period"]["number"],
            "half": p["period"]["type"],
            "homeScore": p["homeScore"],
            "awayScore": p["awayScore"],
            "text": p.get("text", ""),
        }
        for p in doc["plays"]
        if p["type"].get("type") in MLB_KEPT
    ]
    return out


def _nhl(doc: dict) -> dict:
    out = _header(doc)
    out["plays"] = [
        {
            "id": p["id"],
            "type": p["type"]["text"],
            "text": p.get("text", ""),
            "team": (p.get("team") or {}).get("id"),
            "period": p["period"]["number"],
            "elapsed": _seconds(p["clock"]["displayValue"]),
            "homeScore": p["homeScore"],
            "awayScore": p["awayScore"],
            "scoringPlay": p.get("scoringPlay", False),
        }
        for p in doc["plays"]
        if p["type"]["text"] in NHL_KEPT
    ]
    return out


def build_sports(fixtures: Path) -> None:
    for alias, relative in RECORDED.items():
        doc = json.loads((fixtures / relative).read_text())
        trimmed = {"nfl": _nfl, "mlb": _mlb, "nhl": _nhl}[alias](doc)
        trimmed["_source"] = f"otf_dagster_tests/fixtures/{relative}, trimmed by build_data.py"
        (DATA / f"replay_{alias}.json").write_text(json.dumps(trimmed, indent=1))
    teams: dict[str, dict[str, dict]] = {}
    for alias in RECORDED:
        for path in sorted((fixtures / MS / alias / "scoreboard").glob("*.json")):
            for event in json.loads(path.read_text()).get("events", []):
                for comp in event["competitions"][0]["competitors"]:
                    t = comp["team"]
                    teams.setdefault(alias, {})[t["abbreviation"]] = {
                        k: t.get(k) for k in TEAM_FIELDS
                    }
    (DATA / "teams_espn.json").write_text(
        json.dumps({k: dict(sorted(v.items())) for k, v in sorted(teams.items())}, indent=1)
    )


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "otf_dagster_tests/fixtures")
    build(root)
    build_sports(root)
