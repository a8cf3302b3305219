from __future__ import annotations

import pytest

from otf_dagster.exceptions import InvalidTaskType, UnknownTaskType
from otf_dagster.handlers import task_types

GOOD = {
    "name": "NBA_TEST",
    "handler": "nba_cdn.boxscore",
    "url_template": "/boxscore_{key}.json",
    "poll_interval_seconds": 5,
}


def test_defaults_file_is_valid():
    names = [t.name for t in task_types.load_file(task_types.DEFAULTS_FILE)]
    assert names == [
        "NBA_GAME_BOXSCORE",
        "NBA_GAME_CONFIRM",
        "ESPN_GAME_BOXSCORE",
        "ESPN_GAME_CONFIRM",
    ]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"poll_interval_seconds": 0}, "poll_interval_seconds"),
        ({"poll_interval_seconds": -3}, "-3"),
        ({"poll_interval_seconds": float("nan")}, "poll_interval_seconds"),
        ({"poll_interval_seconds": "10"}, "'10'"),
        ({"handler": "ftp.poll"}, "'ftp.poll'"),
        ({"url_template": "/boxscore.json"}, "/boxscore.json"),
        ({"url_template": "/{key}/{other}"}, "{other}"),
        ({"name": "lower_case"}, "'lower_case'"),
        ({"name": "X"}, "'X'"),
        ({"name": "DROP TABLE tasks;--"}, "DROP TABLE"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"deadline_seconds": 1.5}, "deadline_seconds"),
        ({"required_services": []}, "required_services"),
        ({"required_services": ["Photo Service"]}, "'Photo Service'"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_task_types_are_refused_naming_field_and_value(change, needle):
    with pytest.raises(InvalidTaskType) as err:
        task_types.validate({**GOOD, **change})
    assert needle in str(err.value)


def test_refused_type_writes_nothing(store):
    good = task_types.validate(GOOD)
    with pytest.raises(InvalidTaskType):
        types = [good, task_types.validate({**GOOD, "name": "OTHER", "poll_interval_seconds": 0})]
        store.apply_task_types(types)
    with pytest.raises(UnknownTaskType):
        store.get_task_type("NBA_TEST")


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "types.yaml"
    bad.write_text("task_types: [ {name: A_B, \n")
    with pytest.raises(InvalidTaskType, match="types.yaml"):
        task_types.load_file(bad)
    bad.write_text("task_types: []\n")
    with pytest.raises(InvalidTaskType, match="non-empty list"):
        task_types.load_file(bad)


def test_apply_update_soft_delete(store):
    tt = task_types.validate(GOOD)
    assert store.apply_task_type(tt) is True
    assert store.apply_task_type(task_types.validate({**GOOD, "poll_interval_seconds": 7})) is False
    assert store.get_task_type("NBA_TEST").poll_interval_seconds == 7
    store.delete_task_type("NBA_TEST")
    with pytest.raises(UnknownTaskType, match="soft-deleted"):
        store.get_task_type("NBA_TEST")
    assert store.get_task_type("NBA_TEST", include_deleted=True).deleted_at is not None
    assert [t.name for t in store.list_task_types()] == []
    with pytest.raises(UnknownTaskType):
        store.delete_task_type("NBA_TEST")
    store.apply_task_type(tt)  # re-applying un-deletes
    assert store.get_task_type("NBA_TEST").deleted_at is None
