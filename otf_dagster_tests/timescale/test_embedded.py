"""The embedded server's TimescaleDB build: refused with one line when it cannot be used.

(A build that installs and preloads is exercised by test_convert_later and by the whole
suite under `make test-timescale`.)"""

from __future__ import annotations

import pytest

from otf_dagster.exceptions import ConfigError
from otf_dagster.local import embedded


def test_a_folder_without_install_sh_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"OTF_TIMESCALEDB=.*nowhere: no install.sh there"):
        embedded.start(tmp_path / "pgdata", timescaledb=tmp_path / "nowhere")
    assert not (tmp_path / "pgdata").exists() or not any((tmp_path / "pgdata").iterdir())


def test_a_build_that_refuses_this_server_is_reported_in_one_line(tmp_path, monkeypatch):
    build = tmp_path / "other-build"
    build.mkdir()
    (build / "install.sh").write_text(
        '#!/usr/bin/env bash\necho "checking $1" \necho "install.sh: refusing to install: built for'
        " 'PostgreSQL 17.2'\" >&2\nexit 1\n"
    )
    monkeypatch.setenv("OTF_TIMESCALEDB", str(build))
    assert embedded.timescaledb_build() == build
    with pytest.raises(ConfigError) as err:
        embedded.install_timescaledb(build)
    assert str(err.value) == (
        f"OTF_TIMESCALEDB={build}: install.sh: refusing to install: built for 'PostgreSQL 17.2'"
    )
