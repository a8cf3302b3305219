"""FeedClient retry/fatal rules against real faults served by the simulator on 127.0.0.1."""

from __future__ import annotations

import socket
import time

import pytest

from otf_dagster.exceptions import (
    ConfigError,
    FatalFeedError,
    MalformedFeed,
    RetriableFeedError,
    UnknownGame,
)
from otf_dagster.feeds import FeedClient, make_provider
from otf_dagster.feeds.leagues import default_leagues
from otf_dagster.feeds.providers import PROVIDERS
from otf_dagster.simulator import Simulator

SCOREBOARD = "/static/json/liveData/scoreboard/todaysScoreboard_00.json"


def client(sim: Simulator, **kw) -> FeedClient:
    """A client as the NBA feed's: with its headers (the CDN refuses liveData without them)."""
    options = {
        "timeout": (1.0, 1.0),
        "total_retries": 2,
        "backoff_factor": 0.0,
        "headers": default_leagues().headers_for("nba_cdn"),
    }
    options.update(kw)
    return FeedClient(sim.base_url, **options)


def hits(sim: Simulator, fragment: str) -> int:
    return sum(fragment in r for r in sim.requests)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_transient_5xx_then_success(sim: Simulator, status: int) -> None:
    sim.inject("todaysScoreboard", "error", count=1, status=status)
    doc = client(sim).get_json(SCOREBOARD)
    assert doc["scoreboard"]["games"]
    assert hits(sim, "todaysScoreboard") == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_exhausted_retries_are_retriable(sim: Simulator, status: int) -> None:
    kind = "rate_limit" if status == 429 else "error"
    sim.inject("todaysScoreboard", kind, count=None, status=status, retry_after=0)
    with pytest.raises(RetriableFeedError, match=f"todaysScoreboard_00.json.*{status}"):
        client(sim).get_json(SCOREBOARD)
    assert hits(sim, "todaysScoreboard") == 3  # first try + 2 retries


def test_retry_after_is_honoured(sim: Simulator) -> None:
    sim.inject("todaysScoreboard", "429", count=1, retry_after=1)
    started = time.monotonic()
    client(sim).get_json(SCOREBOARD)
    assert time.monotonic() - started >= 0.9
    assert hits(sim, "todaysScoreboard") == 2


def test_retry_after_is_capped(sim: Simulator) -> None:
    sim.inject("todaysScoreboard", "rate_limit", count=1, retry_after=3600)
    started = time.monotonic()
    client(sim, max_retry_after=0.2).get_json(SCOREBOARD)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_404_is_unknown_game(sim: Simulator, provider: str) -> None:
    game = sim.games[0]
    game_id = game.nba_id if provider == "nba_cdn" else game.espn_id
    sim.inject(game_id, "404", count=1)
    p = make_provider(provider, base_url=sim.base_url, total_retries=2)
    with pytest.raises(UnknownGame, match=game_id):
        p.boxscore(game_id)
    assert hits(sim, game_id) == 1  # never retried
    assert p.boxscore(game_id).game_id == game_id


@pytest.mark.parametrize("status", [400, 401, 403, 410])
def test_other_4xx_are_fatal(sim: Simulator, status: int) -> None:
    sim.inject("todaysScoreboard", "error", count=1, status=status)
    with pytest.raises(FatalFeedError, match=str(status)) as info:
        client(sim).get_json(SCOREBOARD)
    assert not isinstance(info.value, RetriableFeedError | UnknownGame)
    assert hits(sim, "todaysScoreboard") == 1


def test_nba_403_falls_back_to_the_scoreboard(sim: Simulator) -> None:
    """The CDN refuses box scores it has not published yet (403): use the scoreboard entry."""
    game = sim.games[0]
    sim.inject(f"boxscore_{game.nba_id}", "error", count=1, status=403)
    box = make_provider("nba_cdn", base_url=sim.base_url).boxscore(game.nba_id)
    assert (box.game_id, box.home.tricode, box.players) == (game.nba_id, "BOS", ())


def test_espn_403_falls_back_to_the_scoreboard(sim: Simulator) -> None:
    """A refused summary (403) is read from the league's scoreboard instead; an event that is
    not on it is unknown, named."""
    game = sim.games[0]
    sim.inject("summary", "error", count=1, status=403)
    box = make_provider("espn", base_url=sim.base_url).boxscore(game.espn_id)
    assert (box.game_id, box.home.tricode, box.players) == (game.espn_id, "BOS", ())
    sim.inject("summary", "error", count=1, status=403)
    with pytest.raises(UnknownGame, match="'999999999' is not on today's nba scoreboard"):
        make_provider("espn", base_url=sim.base_url).boxscore("999999999")


def test_malformed_body_names_the_url(sim: Simulator) -> None:
    sim.inject("todaysScoreboard", "malformed", count=1)
    with pytest.raises(MalformedFeed) as info:
        client(sim).get_json(SCOREBOARD)
    message = str(info.value)
    assert f"{sim.base_url}{SCOREBOARD}" in message
    assert "502 Bad Gateway" in message  # the excerpt


def test_wrong_shape_names_the_url(sim: Simulator) -> None:
    game = sim.games[0]
    sim.inject("summary", "malformed", count=1, body='[{"not": "a summary"}]')
    with pytest.raises(MalformedFeed, match=rf"summary\?event={game.espn_id}.*header"):
        make_provider("espn", base_url=sim.base_url).boxscore(game.espn_id)


def test_slow_answer_beyond_read_timeout_is_retriable(sim: Simulator) -> None:
    sim.inject("todaysScoreboard", "slow", count=None, seconds=1.0)
    started = time.monotonic()
    with pytest.raises(RetriableFeedError, match="timed out"):
        client(sim, timeout=(1.0, 0.2), total_retries=1).get_json(SCOREBOARD)
    assert time.monotonic() - started < 1.5
    assert hits(sim, "todaysScoreboard") == 2


def test_one_slow_answer_is_retried(sim: Simulator) -> None:
    sim.inject("todaysScoreboard", "slow", count=1, seconds=1.0)
    assert client(sim, timeout=(1.0, 0.2)).get_json(SCOREBOARD)["scoreboard"]


def test_dropped_connection_is_retried_then_retriable(sim: Simulator) -> None:
    sim.inject("todaysScoreboard", "drop", count=1)
    assert client(sim).get_json(SCOREBOARD)["scoreboard"]
    sim.inject("todaysScoreboard", "drop", count=None)
    with pytest.raises(RetriableFeedError, match="todaysScoreboard"):
        client(sim).get_json(SCOREBOARD)


def test_connection_refused_is_retriable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    feed = FeedClient(f"http://127.0.0.1:{port}", total_retries=1, backoff_factor=0.0)
    with pytest.raises(RetriableFeedError, match=f"127.0.0.1:{port}.*unreachable"):
        feed.get_json("/x.json")


def test_one_pool_per_client_and_its_connection_is_kept(sim: Simulator) -> None:
    """One urllib3 pool per client; a body read whole gives its connection back, so the next
    GET reuses it (keep-alive) instead of connecting again."""
    feed = client(sim)
    pool = feed.pool
    feed.get_json(SCOREBOARD)
    hosts = pool.connection_from_url(sim.base_url)
    [conn] = [c for c in hosts.pool.queue if c is not None]  # back in its pool
    sock = conn.sock
    feed.get_json(SCOREBOARD)
    assert feed.pool is pool
    assert hosts.num_connections == 1 and conn.sock is sock is not None  # the same socket
    assert set(feed.retry.status_forcelist) == {429, 500, 502, 503, 504}
    assert feed.retry.allowed_methods == frozenset({"GET"})


def test_make_provider_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError, match="'nba'.*nba_cdn, espn"):
        make_provider("nba")
    with pytest.raises(ConfigError, match="ftp://x"):
        make_provider("espn", base_url="ftp://x")


def test_make_provider_defaults_to_the_real_feeds() -> None:
    assert make_provider("nba_cdn").client.base_url == "https://cdn.nba.com"
    assert make_provider("espn").client.base_url == "https://site.api.espn.com"


class _Huge:
    """A loopback server answering 50 MB of JSON: chunked with no length, or with its
    Content-Length declared. It counts the bytes it managed to send."""

    SIZE = 50 * 2**20

    def __init__(self, declare: bool) -> None:
        import http.server
        import threading

        outer = self
        self.sent = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if declare:
                    self.send_header("Content-Length", str(outer.SIZE))
                else:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if declare:
                    return  # the client refuses on the header: nothing more is sent
                piece = b"[" + b"0," * (2**20 // 2 - 1) + b"0]"  # 1 MiB of a JSON array
                try:
                    for _ in range(outer.SIZE // len(piece)):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        outer.sent += len(piece)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client stopped reading: what this test wants
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("declare", [False, True], ids=["chunked", "content-length"])
def test_a_50_mb_answer_is_refused_within_the_limit(declare: bool) -> None:
    """A feed answering 50 MB costs the poll at most its byte limit (here 1 MiB), never the
    whole body and its parse: one clear error naming the limit and the setting."""
    import tracemalloc

    server = _Huge(declare)
    feed = FeedClient(server.base_url, timeout=(2.0, 30.0), total_retries=0, max_bytes=2**20)
    try:
        tracemalloc.start()
        with pytest.raises(FatalFeedError, match=r"above the 1,048,576-byte limit.*OTF_FEED_MAX_BYTES"):
            feed.get_json("/big.json")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        feed.close()
        server.close()
    assert peak < 8 * 2**20, f"peak {peak:,} bytes while refusing a 50 MB answer"
    assert server.sent < _Huge.SIZE  # the client hung up; it never took it all


def test_an_answer_within_the_limit_is_read_whole(sim: Simulator) -> None:
    doc = client(sim, max_bytes=10 * 2**20).get_json(SCOREBOARD)
    assert doc["scoreboard"]["games"]


class _Echo:
    """A loopback server that keeps each request's headers (as sent, repeats included) and
    answers a gzip-compressed JSON document when the client asks for gzip; ``/moved...`` is
    redirected there."""

    def __init__(self) -> None:
        import gzip
        import http.server
        import json
        import threading

        outer = self
        self.seen: list[list[tuple[str, str]]] = []
        self.paths: list[str] = []
        body = json.dumps({"ok": True, "pad": "x" * 2000}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.seen.append(list(self.headers.items()))
                outer.paths.append(self.path)
                if self.path.startswith("/moved"):  # a redirect, as a CDN may answer
                    self.send_response(302)
                    self.send_header("Location", "/a.json")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
                data = gzip.compress(body) if gzipped else body
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if gzipped:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_headers_merge_by_name_and_gzip_is_decoded() -> None:
    """A call's header replaces the client's of the same name whatever its case (sent once),
    None removes one, and a gzip answer (asked for, as requests did) is decoded."""
    server = _Echo()
    feed = FeedClient(server.base_url, headers={"Referer": "https://feed/", "X-Feed": "1"})
    try:
        doc = feed.get_json("/a.json", headers={"referer": "https://task/", "X-Feed": None})
    finally:
        feed.close()
        server.close()
    assert doc["ok"] is True and len(doc["pad"]) == 2000
    [sent] = server.seen
    names = [name.lower() for name, _ in sent]
    assert names.count("referer") == 1 and dict(sent)["referer"] == "https://task/"
    assert "x-feed" not in names
    assert "gzip" in dict((n.lower(), v) for n, v in sent)["accept-encoding"]


def test_a_header_value_http_refuses_is_one_line_without_the_value() -> None:
    """A secret with a newline in it (a bad paste) fails the GET as a FatalFeedError that does
    not repeat the value; never a traceback of http.client's ValueError."""
    server = _Echo()
    feed = FeedClient(server.base_url, total_retries=0)
    try:
        with pytest.raises(FatalFeedError, match="header name or value is not valid") as info:
            feed.get_json("/a.json", headers={"Authorization": "Bearer s3cret\nX-Evil: 1"})
    finally:
        feed.close()
        server.close()
    assert "s3cret" not in str(info.value) and "\n" not in str(info.value)
    assert server.seen == []


def test_the_environment_s_proxy_is_read_once_and_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY names a proxy (here a loopback server that answers what it is asked for):
    the GET goes to it, absolute URL and credentials included; ``no_proxy`` for the feed's
    host bypasses it. The environment is read when the client is made, not per GET."""
    import base64

    proxy = _Echo()
    target = "http://feed.invalid:81"
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://bob:pw@{proxy.base_url[len('http://') :]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("http_proxy", raising=False)
        feed = FeedClient(target, total_retries=0)
        monkeypatch.delenv("HTTP_PROXY")  # read once: still proxied
        assert feed.get_json("/a.json")["ok"] is True
        [sent] = proxy.seen
        assert proxy.paths == [f"{target}/a.json"]  # the absolute URL: a proxy's request
        auth = dict((n.lower(), v) for n, v in sent)["proxy-authorization"]
        assert auth == "Basic " + base64.b64encode(b"bob:pw").decode()
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        monkeypatch.setenv("NO_PROXY", "feed.invalid")
        bypassed = FeedClient(target, total_retries=0, timeout=(1.0, 1.0))
        with pytest.raises(RetriableFeedError, match="unreachable"):
            bypassed.get_json("/a.json")  # straight to feed.invalid, which does not resolve
        assert len(proxy.seen) == 1
    finally:
        proxy.close()


def test_tls_is_verified_against_the_environment_s_ca_bundle(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loopback HTTPS feed with a certificate of its own: trusted through REQUESTS_CA_BUNDLE
    (or CURL_CA_BUNDLE), refused (retriable, one line) without it, as requests did."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server = _Echo()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    base = server.base_url.replace("http://", "https://")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    try:
        with pytest.raises(RetriableFeedError, match="unreachable.*SSLError"):
            FeedClient(base, total_retries=0).get_json("/a.json")
        monkeypatch.setenv("CURL_CA_BUNDLE", str(cert))
        assert FeedClient(base, total_retries=0).get_json("/a.json")["ok"] is True
        monkeypatch.delenv("CURL_CA_BUNDLE")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        assert FeedClient(base, total_retries=0).get_json("/a.json")["ok"] is True
    finally:
        server.close()


def test_a_redirect_is_followed() -> None:
    """A 302 is followed to the document (as requests did), counted against the retries."""
    server = _Echo()
    feed = FeedClient(server.base_url, total_retries=1)
    try:
        assert feed.get_json("/moved.json")["ok"] is True
    finally:
        feed.close()
        server.close()
    assert server.paths == ["/moved.json", "/a.json"]
