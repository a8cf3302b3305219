"""The embedded nats-server: its own folder, a port kept across restarts, one line on failure."""

from __future__ import annotations

import socket

import pytest

from otf_dagster.exceptions import ConfigError
from otf_dagster.local import nats as embedded_nats


def test_start_reuses_a_running_server_and_restart_keeps_the_port(tmp_path):
    folder = tmp_path / "nats"
    server = embedded_nats.start(folder)
    try:
        assert server.url.startswith("nats://127.0.0.1:") and server.port > 0
        assert embedded_nats.start(folder) == server  # found running, not a second one
        assert embedded_nats.running(folder) == server
        again = server.restart()
        assert again.port == server.port and again.pid != server.pid
        assert (folder / embedded_nats.STORE_DIR).is_dir()
    finally:
        assert embedded_nats.stop(folder) is True
    assert embedded_nats.running(folder) is None
    assert embedded_nats.stop(folder) is False


def test_a_taken_port_is_one_line_naming_the_folder(tmp_path):
    folder = tmp_path / "nats"
    folder.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        (folder / embedded_nats.PORT_FILE).write_text(f"{taken.getsockname()[1]}\n")
        with pytest.raises(ConfigError) as refused:
            embedded_nats.start(folder)
    message = str(refused.value)
    assert str(folder) in message and "address already in use" in message
    assert "\n" not in message


def test_a_stale_pid_file_naming_another_process_is_not_stopped(tmp_path):
    import os

    folder = tmp_path / "nats"
    folder.mkdir()
    (folder / embedded_nats.PID_FILE).write_text(f"{os.getpid()}\n")  # this very test process
    assert embedded_nats.stop(folder) is False


def test_the_url_is_the_environment_s_else_the_embedded_server_s(tmp_path, monkeypatch):
    monkeypatch.setenv(embedded_nats.NATS_URL_ENV, "nats://nats.example.test:4222")
    assert embedded_nats.resolve_url(tmp_path / "nats") == "nats://nats.example.test:4222"
    assert embedded_nats.running(tmp_path / "nats") is None  # nothing started for it
    monkeypatch.delenv(embedded_nats.NATS_URL_ENV)
    try:
        assert (
            embedded_nats.resolve_url(tmp_path / "nats")
            == embedded_nats.running(tmp_path / "nats").url
        )
    finally:
        embedded_nats.stop(tmp_path / "nats")
