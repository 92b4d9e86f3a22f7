"""create_app: the Starlette application, its routes and what they share."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from digest import subscribers
from digest.config import BlogsFile, Settings
from digest.store.db import get_meta, set_meta, transaction, utcnow
from digest.web.database import Database
from digest.web.mailer import Mailer
from digest.web.pages import Limits, Site
from digest.web.security import FormTokens, SecurityHeaders, origin_of

MAX_BODY = 64 * 1024  # every form here is tiny; refuse big bodies before parsing them


def _form_secret(settings: Settings, db: Database) -> bytes:
    """DIGEST_SECRET, or a random secret made once and kept in the database's meta table."""
    if settings.secret is not None:
        return settings.secret.get_secret_value().encode()
    conn = db.conn
    with transaction(conn):
        value = get_meta(conn, "web_secret")
        if value is None:
            value = secrets.token_urlsafe(32)
            set_meta(conn, "web_secret", value)
    return value.encode()


def create_app(
    settings: Settings,
    blogs: BlogsFile,
    db_path: Path,
    *,
    clock: Callable[[], datetime] = utcnow,
    limits: Limits | None = None,
    send: Callable[[subscribers.Mail], None] | None = None,
) -> Starlette:
    """The web app. ``clock``, ``limits`` and ``send`` exist for tests and benchmarks; by
    default mails go through digest.send.transactional (SMTP, or the Maildir outbox)."""
    db = Database(db_path)
    mailer = Mailer(send or (lambda mail: subscribers.send(settings, blogs, mail)))
    site = Site(
        settings=settings,
        blogs=blogs,
        db=db,
        mailer=mailer,
        forms=FormTokens(_form_secret(settings, db)),
        clock=clock,
        limits=limits or Limits(),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            mailer.close()  # let queued confirmation mails leave before the process ends
            db.close()

    routes = [
        Route("/", site.home, methods=["GET"]),
        Route("/subscribe", site.subscribe, methods=["POST"]),
        Route("/confirm/{token}", site.confirm_page, methods=["GET"]),
        Route("/confirm/{token}", site.confirm, methods=["POST"]),
        Route("/confirm/{token}/resend", site.resend, methods=["POST"]),
        Route("/unsubscribe/{token}", site.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", site.unsubscribe, methods=["POST"]),
        Route("/preferences/{token}", site.preferences_page, methods=["GET"]),
        Route("/preferences/{token}", site.preferences, methods=["POST"]),
        Route("/archive", site.archive, methods=["GET"]),
        Route("/archive/{number:int}", site.archived_issue, methods=["GET"]),
        Route("/feed.xml", site.feed, methods=["GET"]),
        Route("/healthz", site.healthz, methods=["GET"]),
        Route("/style.css", site.stylesheet, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders, base_origin=origin_of(settings.base_url))],
        exception_handlers={HTTPException: site.http_error, Exception: site.server_error},
        lifespan=lifespan,
        max_body_size=MAX_BODY,
    )
    app.state.site = site
    app.state.mailer = mailer
    app.state.db = db
    return app
