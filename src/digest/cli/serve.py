"""`digest serve`: the web pages (signup, confirm, unsubscribe, preferences, archive)."""

from __future__ import annotations

import click

from digest.cli import App, main, pass_app


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request. Off by default: paths carry personal unsubscribe tokens.",
)
@pass_app
def serve(app: App, host: str, port: int, access_log: bool) -> None:
    """Serve the web pages with uvicorn (one process: the rate limits live in memory).

    Links in pages and mails come from DIGEST_BASE_URL, never from the request. Behind a
    reverse proxy, uvicorn takes the client address from X-Forwarded-For only when the proxy is
    listed in FORWARDED_ALLOW_IPS (default 127.0.0.1).
    """
    import uvicorn  # here, not at the top: `digest --help` need not load the web stack

    from digest.web import create_app

    web = create_app(app.settings, app.blogs, app.settings.db)
    app.console.print(
        f"serving {app.blogs.newsletter.title} on http://{host}:{port} "
        f"(links use {app.settings.base_url})"
    )
    uvicorn.run(
        web, host=host, port=port, access_log=access_log, server_header=False, log_level="info"
    )
