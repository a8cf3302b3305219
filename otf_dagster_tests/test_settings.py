"""One settings home: every variable the package reads is a :mod:`otf_dagster.settings` entry,
the README's configuration table lists exactly those with the same defaults, and a bad value is
one line naming the variable."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from otf_dagster import settings
from otf_dagster.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "otf_dagster"
README = ROOT / "README.md"
VARIABLE = re.compile(r"^(OTF|DAGSTER_PG)_[A-Z0-9_]+$|^DAGSTER_PG_URL$")
ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| (.*) \| (.*) \|$")


def readme_rows() -> dict[str, tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = ROW.match(line.strip())
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def row_for(s: settings.Setting) -> str:
    return f"| `{s.env}` | {s.meaning} | {s.default_text} |"


def test_the_readme_table_lists_every_setting_with_its_default_and_nothing_else():
    rows = readme_rows()
    missing = [row_for(s) for name, s in settings.SETTINGS.items() if name not in rows]
    assert not missing, "add to the README's configuration table:\n" + "\n".join(missing)
    unknown = sorted(set(rows) - set(settings.SETTINGS))
    assert not unknown, f"the README lists variables otf_dagster.settings does not: {unknown}"
    wrong = [
        f"{name}: README says {rows[name][1]}, otf_dagster.settings says {s.default_text}"
        for name, s in settings.SETTINGS.items()
        if rows[name][1] != s.default_text
    ]
    assert not wrong, "\n".join(wrong)


def _variable_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and VARIABLE.match(node.value)
    ]


def test_every_variable_the_package_names_is_a_setting():
    """A new ``os.environ.get("OTF_...")`` anywhere but the settings module fails here until
    the variable has its entry (default, meaning, check) and its README row."""
    known = set(settings.SETTINGS) | settings.INTERNAL
    strays = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "settings.py" and path.parent == PACKAGE:
            continue
        for line, value in _variable_literals(path):
            if value not in known:
                strays.append(f"{path.relative_to(ROOT)}:{line}: {value}")
    for path in sorted((PACKAGE / "deploy").glob("*.yaml")):
        for value in re.findall(r"\benv: ([A-Z0-9_]+)", path.read_text(encoding="utf-8")):
            if value not in known:
                strays.append(f"{path.relative_to(ROOT)}: {value}")
    assert not strays, "variables with no entry in otf_dagster.settings:\n" + "\n".join(strays)


CHECKED = [s for s in settings.SETTINGS.values() if s.parse is not settings.text and not s.secret]


@pytest.mark.parametrize("setting", CHECKED, ids=[s.env for s in CHECKED])
def test_a_bad_value_is_one_line_naming_the_variable_and_the_value(setting):
    with pytest.raises(ConfigError) as caught:
        setting.read({setting.env: "bogus-7"})
    message = str(caught.value)
    assert setting.env in message and "'bogus-7'" in message and "\n" not in message


@pytest.mark.parametrize("setting", list(settings.SETTINGS.values()), ids=list(settings.SETTINGS))
def test_unset_or_empty_is_the_default(setting):
    assert setting.read({}) == setting.default
    assert setting.read({setting.env: "  "}) == setting.default


def test_a_value_is_read_and_checked():
    assert settings.CLAIM_LIMIT.read({"OTF_CLAIM_LIMIT": "7"}) == 7
    assert settings.BACKFILL_MAX_STARTED.read({"OTF_BACKFILL_MAX_STARTED": "0"}) == 0
    assert settings.DELIVERY_RETRY_SCHEDULE.read({"OTF_DELIVERY_RETRY_SCHEDULE": "0,1"}) == (0, 1)
    assert settings.RUNNER_MODE.read({"OTF_RUNNER_MODE": "pool"}) == "pool"
    limits = {"OTF_FEED_HOST_LIMITS": "127.0.0.1=64, CDN.nba.com=4,127.0.0.1:8765=2"}
    assert settings.FEED_HOST_LIMITS.read(limits) == {
        "127.0.0.1": 64,
        "cdn.nba.com": 4,
        "127.0.0.1:8765": 2,
    }
    for bad in ("127.0.0.1", "a=0", "=4", "a=4,", "a=b"):
        with pytest.raises(ConfigError, match="OTF_FEED_HOST_LIMITS.*host=N"):
            settings.FEED_HOST_LIMITS.read({"OTF_FEED_HOST_LIMITS": bad})
    for bad in ("0", "-3", "1.5"):
        with pytest.raises(ConfigError, match="OTF_CLAIM_LIMIT"):
            settings.CLAIM_LIMIT.read({"OTF_CLAIM_LIMIT": bad})


def test_the_code_location_refuses_a_bad_setting_in_one_line(monkeypatch):
    from otf_dagster.definitions import defs

    monkeypatch.setenv("OTF_CLAIM_LIMIT", "-3")
    with pytest.raises(ConfigError, match=r"^OTF_CLAIM_LIMIT='-3' is not a whole number above 0"):
        defs()
