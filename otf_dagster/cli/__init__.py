"""The ``otf`` command line: one click group, one module per topic.

Every :class:`~otf_dagster.exceptions.OtfError` becomes one line on stderr and exit code 1;
a traceback means a bug.
"""

from __future__ import annotations

import os
import sys

import click

from otf_dagster.exceptions import OtfError
from otf_dagster.local.embedded import EMBEDDED_ENV


class _OtfGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OtfError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


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
    from otf_dagster.cli import db, dev, feed, simulate, stats, tasks

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


def main() -> None:
    _register()
    cli(prog_name="otf")
