"""create_app: the Starlette application, its routes and what they share."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from digest import subscribers
from digest.config import BlogsFile, Settings
from digest.store.db import get_meta, set_meta, transaction, utcnow
from digest.web.database import Database
from digest.web.letters import Letters
from digest.web.mailer import Mailer
from digest.web.pages import Limits, Site
from digest.web.publication import Publication
from digest.web.redirect import Redirects
from digest.web.security import FormTokens, SecurityHeaders, origin_of
from digest.web.subscribing import Subscribing
from digest.web.webhooks import Webhooks

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


class TrailingSlash:
    """``/unsubscribe/<token>/`` is served as ``/unsubscribe/<token>``, never redirected.

    Starlette's own answer to a trailing slash is a 307 whose Location comes from the request's
    Host header (a redirect to wherever the client says), and a mail provider's one-click POST
    (RFC 8058) does not follow redirects: the unsubscribe would be lost.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = dict(scope, path=path.rstrip("/") or "/")
            raw = scope.get("raw_path")
            if raw:
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


class App(Starlette):
    """Starlette with the security headers outermost: on its own 413 and 500 answers too."""

    def __init__(self, *args: Any, base_origin: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base_origin = base_origin
        self.router.redirect_slashes = False  # no redirect is ever built from the Host header

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        return TrailingSlash(SecurityHeaders(inner, base_origin=self.base_origin))


def create_app(
    settings: Settings,
    blogs: BlogsFile,
    db_path: Path | str,
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
    public = Publication(site)
    reader = Subscribing(site, public)
    webhooks = Webhooks(site)  # bounces and complaints from mail providers
    redirects = Redirects(site)  # an issue's short links (newsletter.click_counts)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redirects.start()
        try:
            yield
        finally:
            await redirects.close()  # the clicks counted in memory
            mailer.close()  # let queued confirmation mails leave before the process ends
            db.close()

    routes = [
        Route("/", public.home, methods=["GET"]),
        Route("/subscribe", reader.subscribe, methods=["POST"]),
        Route("/confirm/{token}", reader.confirm_page, methods=["GET"]),
        Route("/confirm/{token}", reader.confirm, methods=["POST"]),
        Route("/confirm/{token}/resend", reader.resend, methods=["POST"]),
        Route("/unsubscribe/{token}", reader.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", reader.unsubscribe, methods=["POST"]),
        Route("/preferences/{token}", reader.preferences_page, methods=["GET"]),
        Route("/preferences/{token}", reader.preferences, methods=["POST"]),
        Route("/archive", public.archive, methods=["GET"]),
        Route("/archive/{number:int}", public.archived_issue, methods=["GET"]),
        Route("/archive/{month}", public.monthly_edition, methods=["GET"]),
        Route("/images/{name}", public.image, methods=["GET"]),
        Route("/letters/{id}", Letters(site).letter, methods=["GET"]),
        Route("/feed.xml", public.feed, methods=["GET"]),
        Route("/feed/{category}.xml", public.category_feed, methods=["GET"]),
        Route("/blogroll.opml", public.blogroll, methods=["GET"]),
        Route("/.well-known/recommendations.json", public.recommendations, methods=["GET"]),
        Route("/sitemap.xml", public.sitemap, methods=["GET"]),
        Route("/robots.txt", public.robots, methods=["GET"]),
        Route("/healthz", site.healthz, methods=["GET"]),
        Route("/r/{issue:int}/{n:int}", redirects.follow, methods=["GET"]),
        Route("/style.css", site.stylesheet, methods=["GET"]),
        Route("/accent.css", site.accent_stylesheet, methods=["GET"]),
        *webhooks.routes(),
    ]
    app = App(
        routes=routes,
        base_origin=origin_of(settings.base_url),
        exception_handlers={HTTPException: site.http_error, Exception: site.server_error},
        lifespan=lifespan,
        max_body_size=MAX_BODY,
    )
    app.state.site = site
    app.state.mailer = mailer
    app.state.db = db
    app.state.webhooks = webhooks
    return app
