"""`digest inbound`: the SMTP listener for blogs that publish by email (digest/inbound)."""

from __future__ import annotations

import asyncio
import signal

import click

from digest.cli import App, main, pass_app
from digest.errors import ConfigError
from digest.inbound.listener import serve
from digest.send.stop import Stopped


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    default=2525,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="The port (0: any free one, printed).",
)
@pass_app
def inbound(app: App, host: str, port: int) -> None:
    """Take newsletters by SMTP at in+<blog-id>@ (any domain), for the blogs with `email:`.

    Runs until SIGTERM or SIGINT. Mail from a blog's listed senders whose DKIM signature
    verifies becomes a post; everything else is quarantined and shown in the feed health.
    """
    ids = [b.id for b in app.blogs.blogs() if b.email is not None]
    if not ids:
        raise ConfigError(
            f"no blog in {app.settings.blogs} publishes by email",
            hint="give a blog `email: {from: [letters@example.org]}` instead of `feed:`",
        )
    app.db  # noqa: B018 - a database that cannot be opened fails before listening

    def ready(bound_host: str, bound_port: int) -> None:
        click.echo(f"listening on {bound_host}:{bound_port} (SMTP)")
        click.echo("addresses: " + ", ".join(f"in+{blog_id}@..." for blog_id in ids))

    stop = asyncio.run(serve(app.settings, app.blogs, app.db, host=host, port=port, on_ready=ready))
    raise Stopped(
        stop.signum or signal.SIGTERM, f"digest inbound: stopped, {stop.taken} message(s) taken"
    )
