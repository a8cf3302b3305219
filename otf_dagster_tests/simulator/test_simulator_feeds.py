"""The simulator is split by feed (``simulator/feeds/``): each path template of a real feed
(``otf_dagster.feeds``) is a route of exactly one simulator feed module, the one of that feed;
no route is of a path no feed has; no two modules answer the same path; and every shipped task
type's URL is served by one of them."""

from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

import otf_dagster.feeds
from otf_dagster.feeds import leagues as real_espn
from otf_dagster.feeds import nba_cdn as real_cdn
from otf_dagster.handlers import task_types
from otf_dagster.simulator.feeds import FEEDS, demo, espn, nba_cdn

# Each simulator feed module and the real feed module whose paths it serves (the demo counter
# is the simulator's own feed).
REAL_OF: dict[ModuleType, ModuleType | None] = {nba_cdn: real_cdn, espn: real_espn, demo: None}
SAMPLES = {"game_id": "0022000180", "pair": "basketball/nba", "key": "k"}


def templates(module: ModuleType) -> set[str]:
    """A module's path templates: its ``..._PATH`` strings."""
    return {
        value
        for name, value in vars(module).items()
        if name.endswith("_PATH") and isinstance(value, str) and value.startswith("/")
    }


def real_templates() -> set[str]:
    found: set[str] = set()
    for info in pkgutil.iter_modules(otf_dagster.feeds.__path__):
        found |= templates(importlib.import_module(f"otf_dagster.feeds.{info.name}"))
    return found


def sample(template: str) -> str:
    """The template's path with each ``{field}`` filled (a field without a sample fails)."""
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], template)


def name(feed: ModuleType) -> str:
    return feed.__name__.rsplit(".", 1)[-1]


def served_by(path: str) -> list[str]:
    """The simulator feeds that answer ``path``."""
    return [name(feed) for feed in FEEDS if feed.match(path) is not None]


def test_every_feed_is_one_module_serving_its_real_feeds_paths() -> None:
    assert set(FEEDS) == set(REAL_OF)
    for feed, real in REAL_OF.items():
        routes = {route.template for route in feed.ROUTES}
        assert routes == (templates(real) if real else templates(feed)), name(feed)
    every_route = [route.template for feed in FEEDS for route in feed.ROUTES]
    assert len(every_route) == len(set(every_route)), "a template routed twice"
    assert real_templates() <= set(every_route), "a real feed's path the simulator does not serve"


def test_each_path_is_answered_by_exactly_one_feed() -> None:
    for feed in FEEDS:
        for route in feed.ROUTES:
            assert served_by(sample(route.template)) == [name(feed)], route.template
    assert served_by("/nowhere.json") == []


def test_every_shipped_task_type_url_is_served() -> None:
    urls = [
        t.url_template
        for path in (task_types.DEFAULTS_FILE, task_types.EXAMPLES_FILE)
        for t in task_types.load_file(path)
    ]
    assert urls
    for url in urls:
        path = sample(url.split("?")[0])
        assert len(served_by(path)) == 1, (url, served_by(path))
