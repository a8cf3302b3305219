"""The wheel is the package a deployment installs: it carries every file the code reads (the
migrations, the named queries, the deployment files, the simulator's data), not the tests, and
it works from outside the checkout: migrate a database, load the Definitions, write a
DAGSTER_HOME."""

from __future__ import annotations

import json
import tomllib
from pathlib import PurePosixPath

from otf_dagster_tests.wheel import CHECKOUT, installed_wheel  # noqa: F401 - a fixture

# Folders of the checkout that the wheel carries under another name (pyproject package-dir).
MAPPED = {"sql": "otf_dagster/sql", "deploy": "otf_dagster/deploy"}
SHIPPED_SUFFIXES = {".py", ".sql", ".yaml", ".json"}


def source_files() -> set[str]:
    """Every file the package's code may read, by its path inside the wheel."""
    found = set()
    roots = {"otf_dagster": "otf_dagster", **MAPPED}
    for folder, inside in roots.items():
        for path in (CHECKOUT / folder).rglob("*"):
            if (
                path.is_file()
                and path.suffix in SHIPPED_SUFFIXES
                and "__pycache__" not in path.parts
            ):
                found.add(
                    str(PurePosixPath(inside) / path.relative_to(CHECKOUT / folder).as_posix())
                )
    return found


def packages_of(files: set[str]) -> set[str]:
    return {str(PurePosixPath(f).parent).replace("/", ".") for f in files}


def test_the_wheel_carries_every_source_file_and_no_test(installed_wheel):  # noqa: F811
    names = set(installed_wheel.names())
    shipped = {n for n in names if not n.startswith("otf_dagster-") and not n.endswith("/")}
    assert not any(n.startswith("otf_dagster_tests") for n in names)
    assert shipped == source_files()
    # pyproject lists the packages by hand: the list equals the source tree's packages.
    listed = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(listed["packages"]) == packages_of(source_files()) == packages_of(shipped)


def test_the_installed_wheel_migrates_and_loads_the_definitions(installed_wheel, pg_server):  # noqa: F811
    w = installed_wheel
    where = w.run(w.bin("python"), "-c", "import otf_dagster; print(otf_dagster.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(w.venv)), "otf_dagster came from the checkout"

    name = "otf_test_wheel_migrate"
    url = pg_server.create_database(name, template=None)
    try:
        migrated = w.run(w.bin("otf"), "db", "migrate", OTF_DATABASE_URL=url)
        assert migrated.returncode == 0, migrated.stderr
        # A plain server adds one line saying TimescaleDB is not there; the versions follow.
        assert migrated.stdout.splitlines()[-1].startswith("applied 0000"), migrated.stdout
        status = w.run(w.bin("otf"), "db", "status", "--json", OTF_DATABASE_URL=url)
        assert json.loads(status.stdout)["pending"] == []

        load = w.run(
            w.bin("python"),
            "-c",
            "from otf_dagster.definitions import defs; import json; r = defs().get_repository_def();"
            "print(json.dumps({'assets': sorted(k.to_user_string() for k in r.asset_graph.get_all_asset_keys()),"
            " 'jobs': sorted(j.name for j in r.get_all_jobs()), 'sensors': sorted(s.name for s in r.sensor_defs)}))",
            OTF_DATABASE_URL=url,
        )
        assert load.returncode == 0, load.stderr
        loaded = json.loads(load.stdout)
        assert loaded["assets"] == [
            "delivery_endpoints",
            "game_schedule",
            "task_runs",
            "task_stats",
        ]
        assert {"task_runner", "game_schedule_job", "delivery_relay"} <= set(loaded["jobs"])
        assert loaded["sensors"] == ["runner_failure_sensor", "task_manager"]
    finally:
        pg_server.drop_database(name)


def test_the_installed_wheel_writes_a_dagster_home(installed_wheel):  # noqa: F811
    w = installed_wheel
    home = w.workdir / "dagster_home"
    made = w.run(w.bin("otf"), "dagster-home", str(home))
    assert made.returncode == 0, made.stderr
    for name in ("dagster.yaml", "workspace.yaml"):
        assert (home / name).read_text() == (CHECKOUT / "deploy" / name).read_text()
