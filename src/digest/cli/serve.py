"""`digest serve`: the web pages (signup, confirm, unsubscribe, preferences, archive)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import click

from digest.cli import App, main, pass_app
from digest.send.stop import STOP, Stopped

if TYPE_CHECKING:
    from digest.schedule import Scheduler


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request (to stdout). The personal tokens in paths show as <token>.",
)
@click.option(
    "--with-scheduler",
    is_flag=True,
    help="Also run the weekly job at its scheduled time (`digest run`) in this process.",
)
@click.option(
    "--limit-concurrency",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Connections at most (lowered to fit the file limit). At the cap the oldest idle or "
    "slow one is closed; when all are busy, 503.",
)
@click.option(
    "--timeout-request",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds a client gets to send a whole request (headers and body), or it is cut off.",
)
@pass_app
def serve(
    app: App,
    host: str,
    port: int,
    access_log: bool,
    with_scheduler: bool,
    limit_concurrency: int,
    timeout_request: float,
) -> None:
    """Serve the web pages with uvicorn (one process: the rate limits live in memory).

    Links in pages and mails come from DIGEST_BASE_URL, never from the request. Behind a
    reverse proxy, uvicorn takes the client address from X-Forwarded-For only when the proxy is
    listed in FORWARDED_ALLOW_IPS (default 127.0.0.1).
    """
    # Here, not at the top: `digest --help` need not load the web stack.
    from digest.web import create_app, server
    from digest.web.security import origin_of

    web = create_app(app.settings, app.blogs, app.settings.db)
    reserved = server.FILES_RESERVED
    if with_scheduler:  # the weekly job's feed fetches and SMTP connections need files too
        reserved += app.settings.fetch_concurrency + app.settings.smtp_pool
    cap = server.connection_cap(limit_concurrency, reserved)
    app.console.print(
        f"serving {app.blogs.newsletter.title} on http://{host}:{port} "
        f"(links use {app.settings.base_url})"
    )
    if cap < limit_concurrency:
        app.console.print(
            f"at most {cap} connections: the file limit (ulimit -n) leaves no room for "
            f"{limit_concurrency}"
        )
    stop = threading.Event()
    if with_scheduler:
        from digest.schedule import Scheduler

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        scheduler = Scheduler(app.settings)
        # A daemon thread: the job runs beside the web server (it opens its own connection);
        # uvicorn owns the main thread and Ctrl-C.
        thread = threading.Thread(
            target=_scheduler_thread, args=(scheduler, stop), name="digest-scheduler",
            daemon=True,
        )  # fmt: skip
        thread.start()
        app.console.print(
            f"scheduler: next run {scheduler.next_run(app.blogs):%a %d %b %Y %H:%M} UTC"
        )
    try:
        server.run(
            web,
            host=host,
            port=port,
            base_origin=origin_of(app.settings.base_url),
            max_connections=cap,
            request_timeout=timeout_request,
            access_log=access_log,
        )
    finally:
        # uvicorn has shut down (SIGTERM, SIGINT, SIGHUP): a send under way in the scheduler
        # thread finishes the messages in flight, records them, and stops.
        if not STOP.requested:
            STOP.request()
        stop.set()
        if with_scheduler:
            thread.join(timeout=app.settings.stop_grace + 5)


def _scheduler_thread(scheduler: Scheduler, stop: threading.Event) -> None:
    try:
        scheduler.run_forever(stop=stop)
    except Stopped as stopped:
        logging.getLogger("digest.schedule").info("%s", stopped.line)
