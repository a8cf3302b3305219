"""``otf receiver`` (also ``python -m otf_dagster.cli.receiver``): the webhook receiver of
``otf dev`` in the foreground, for one owner."""

from __future__ import annotations

import click

from otf_dagster.exceptions import OtfError
from otf_dagster.local import receiver as receiver_mod


@click.command("receiver")
@click.option("--owner", required=True, help="The owner (service) whose endpoint this is.")
@click.option("--api-url", default=None,
              help=f"Where `otf api` listens (default: ${receiver_mod.API_URL_ENV}).")  # fmt: skip
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0: any free port; the URL is printed).")  # fmt: skip
@click.option("--secret-env", default=receiver_mod.SECRET_ENV, show_default=True,
              help="Variable holding the endpoint's signing secret (whsec_...).")  # fmt: skip
@click.option("--token-env", default=receiver_mod.TOKEN_ENV, show_default=True,
              help="Variable holding the owner's API token.")  # fmt: skip
@click.option("--final-kind", "final_kinds", multiple=True,
              default=receiver_mod.FINAL_KINDS, show_default=True,
              help="An event kind after which the owner reports FINISHED (repeatable).")  # fmt: skip
def receiver(
    owner: str,
    api_url: str | None,
    port: int,
    secret_env: str,
    token_env: str,
    final_kinds: tuple[str, ...],
) -> None:
    """Verify Standard Webhooks, log each event, report FINISHED after each final event,
    until SIGTERM or Ctrl-C."""
    from otf_dagster.cli import fail

    try:
        config = receiver_mod.ReceiverConfig.from_env(
            owner, api_url, secret_env=secret_env, token_env=token_env, final_kinds=final_kinds
        )
        receiver_mod.serve_forever(config, port=port, say=click.echo)
    except OtfError as exc:
        fail(str(exc))


if __name__ == "__main__":
    receiver.main(prog_name="otf receiver")
