"""The ``otf`` command line: one click group, one module per topic.

Every :class:`~otf_dagster.exceptions.OtfError` becomes one line on stderr and exit code 1;
a traceback means a bug. :func:`fail` is the one place that line is made: passwords masked,
control characters and newlines flattened, at most :data:`MAX_ERROR_CHARS` characters.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from otf_dagster.config import redact
from otf_dagster.exceptions import OtfError, shown
from otf_dagster.local.embedded import EMBEDDED_ENV

MAX_ERROR_CHARS = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def error_line(message: str) -> str:
    """``error: <message>`` as one printable line of at most MAX_ERROR_CHARS characters."""
    text = _CONTROL.sub(" ", redact(message)).strip()
    # Text that came from non-UTF-8 input carries lone surrogates: show them as escapes.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    line = f"error: {text}"
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def fail(message: str) -> NoReturn:
    click.echo(error_line(message), err=True)
    sys.exit(1)


class _OtfGroup(click.Group):
    def main(self, args: Sequence[str] | None = None, *rest, **kwargs):
        """Refuse an argument that is not UTF-8 before any command sees it (the database and
        the terminal would both choke on it later)."""
        argv = list(sys.argv[1:] if args is None else args)
        for i, arg in enumerate(argv, 1):
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:
                fail(
                    f"argument {i} ({shown(arg)}) is not valid UTF-8 text; "
                    "pass names and keys in UTF-8"
                )
        return super().main(argv, *rest, **kwargs)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OtfError as exc:
            fail(str(exc))


@click.group(cls=_OtfGroup)
@click.option(
    "--embedded",
    is_flag=True,
    help="Write to the embedded server when OTF_DATABASE_URL is unset (reads always may).",
)
def cli(embedded: bool) -> None:
    """otf: the Task Manager's command line (database, task types, tasks, feeds, events)."""
    if embedded:
        os.environ[EMBEDDED_ENV] = "1"


def _register() -> None:
    from otf_dagster.cli import backfill, db, dev, feed, simulate, stats, tasks

    cli.add_command(backfill.backfill)
    cli.add_command(db.db)
    cli.add_command(db.task_types_group)
    cli.add_command(db.env)
    cli.add_command(tasks.tasks)
    cli.add_command(stats.stats)
    from otf_dagster.cli import pools as pools_cli
    from otf_dagster.cli import services as services_cli

    cli.add_command(services_cli.report_cmd)
    cli.add_command(services_cli.events)
    cli.add_command(services_cli.subscriptions)
    cli.add_command(dev.dev)
    cli.add_command(dev.dagster_home_cmd)
    cli.add_command(feed.feed)
    cli.add_command(simulate.simulate)
    cli.add_command(pools_cli.deployments)
    cli.add_command(pools_cli.pools)
    from otf_dagster.cli import api as api_cli

    cli.add_command(api_cli.api)
    cli.add_command(api_cli.services_group)
    from otf_dagster.cli import endpoints as endpoints_cli

    cli.add_command(endpoints_cli.endpoints)
    cli.add_command(endpoints_cli.relay)

    from otf_dagster.cli import receiver as receiver_cli

    cli.add_command(receiver_cli.receiver)

    from otf_dagster.cli import history as history_cli

    cli.add_command(history_cli.history)


def main() -> None:
    _register()
    cli(prog_name="otf")
