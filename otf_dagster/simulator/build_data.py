"""Rebuild ``simulator/data/`` from the recorded fixtures (a developer tool, not used at run time).

    python -m otf_dagster.simulator.build_data otf_dagster_tests/fixtures

The simulator must work from its own package alone, so it ships trimmed copies: the ORL at BOS
play-by-play without shot coordinates, the team names/ids seen in the recorded scoreboards, and
ESPN's 404 body verbatim.
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


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "otf_dagster_tests/fixtures"))
