"""config.redact masks every form a connection string carries a password in."""

from __future__ import annotations

import pytest

from otf_dagster.config import redact
from otf_dagster.core.store.db import connect
from otf_dagster.exceptions import ConfigError, DatabaseUnavailable

PW = "S3cr-et_pw"

FORMS = [
    f"postgresql://otf:{PW}@db.example:5432/otf",
    f"postgres://otf:{PW}@db.example/otf?sslmode=require",
    f"postgresql+psycopg2://otf:{PW}@db.example/dagster",
    f"postgresql:///otf?host=/run/pg&user=otf&password={PW}",
    f"postgresql:///otf?password={PW}&host=/run/pg",
    f"postgresql:///otf?host=/run/pg&user=otf&PASSWORD={PW}#frag",
    f"host=/run/pg user=otf password={PW} dbname=otf",
    f"host=/run/pg password = {PW}",
    f"host=/run/pg user=otf password='{PW} with spaces' dbname=otf",
    f"host=/run/pg password='it\\'s {PW}' dbname=otf",
    f"PGPASSWORD={PW} psql",
    # Percent-encoded: a connection URL inside another URL's query.
    f"https://ui.example/?db=postgresql%3A%2F%2Fotf%3A{PW}%40db%2Fotf",
    f"https://ui.example/?db=postgresql%3A%2F%2F%2Fotf%3Fhost%3D%2Frun%26password%3D{PW}",
]


@pytest.mark.parametrize("text", FORMS)
def test_every_form_is_masked_and_the_rest_kept(text):
    masked = redact(f"cannot connect to {text} (refused)")
    assert PW not in masked and "***" in masked
    assert masked.startswith("cannot connect to ") and masked.endswith(" (refused)")


def test_a_password_with_reserved_characters_is_masked_raw_and_decoded():
    url = "postgresql://otf:p%40ss%2Fw0rd@db/otf?password=q%26r"
    masked = redact(f"{url}; libpq said: p@ss/w0rd and q&r", url)
    for secret in ("p%40ss%2Fw0rd", "p@ss/w0rd", "q%26r", "q&r"):
        assert secret not in masked


def test_a_password_libpq_quotes_without_a_keyword_is_masked_by_its_source():
    url = f"postgresql:///otf?host=/nowhere&password={PW}%zz"
    assert PW not in redact(f'invalid percent-encoded token: "{PW}%zz"', url)


def test_text_without_a_password_is_unchanged():
    for text in (
        "postgresql://postgres:@/postgres?host=/tmp/x",
        "postgresql:///otf?host=/run/pg&user=otf",
        "task 'nba:1' is FAILED (attempt 2)",
    ):
        assert redact(text, text) == text


def test_connection_errors_never_carry_the_password(tmp_path):
    """libpq's own text may quote the connection string's parts: what reaches our message (and
    its exception chain, which Dagster stores) is masked."""
    sock = tmp_path / "no-server"
    for url, kind in (
        (f"postgresql:///otf?host={sock}&user=u&password={PW}", DatabaseUnavailable),
        (f"postgresql://u:{PW}@/otf?host={sock}", DatabaseUnavailable),
        (f"host={sock} user=u password='{PW}' dbname=otf", DatabaseUnavailable),
        (f"postgresql:///otf?host={sock}&password={PW}%zz", ConfigError),  # bad escape
        (f"postgresql:///otf?host={sock}&password={PW}&sslmode={PW}", DatabaseUnavailable),
    ):
        with pytest.raises(kind) as info:
            connect(url)
        assert PW not in str(info.value), str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__
