"""What every page shares: the templates, form tokens, refusals, errors, health, the stylesheet.

The pages themselves follow the data flow: the subscriber's side (subscribe, confirm,
unsubscribe, preferences) in ``subscribing``, the public publication (home, archive, feeds,
discovery files) in ``publication``. All are server-rendered and work without JavaScript.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import Environment, StrictUndefined
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from digest import resources, subscribers
from digest.config import BlogsFile, Settings
from digest.render.text import shorten
from digest.render.view import dark_accent, day, host
from digest.store.db import DbError, ts
from digest.web.database import Database, check_writable
from digest.web.mailer import Mailer
from digest.web.ratelimit import RateLimiter
from digest.web.security import (
    FormTokens,
    cross_site,
    origin_of,
    redact,
    well_formed_token,
)

log = logging.getLogger("digest.web")

HEALTH_PROBE_EVERY = 1.0  # seconds between write probes of /healthz
NO_STORE = {"cache-control": "no-store"}  # pages behind a personal token stay out of caches


@dataclass(frozen=True, slots=True)
class Limits:
    """Abuse limits of the subscribe form (REFERENCE.md 5: list-bombing)."""

    per_ip: int = 10  # subscribe POSTs per IP per ip_window
    ip_window: float = 600.0
    per_address: int = 3  # subscribe POSTs per mailbox (+tag removed) per address_window
    address_window: float = 3600.0
    # POST /subscribe never answers sooner than this, whatever it did: with the mail sent in
    # the background, the remaining database work differs by microseconds; this hides it.
    subscribe_floor: float = 0.2


def form_text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def path_token(request: Request) -> str | None:
    """The token in the URL, or None when it cannot be one (a 404, never a 500)."""
    token = request.path_params.get("token")
    return token if isinstance(token, str) and well_formed_token(token) else None


@dataclass
class Site:
    settings: Settings
    blogs: BlogsFile
    db: Database
    mailer: Mailer
    forms: FormTokens
    clock: Callable[[], datetime]
    limits: Limits
    env: Environment = field(init=False)
    ip_limiter: RateLimiter = field(init=False)
    address_limiter: RateLimiter = field(init=False)
    css: bytes = field(init=False)
    accent_css: bytes = field(init=False)
    origin: str = field(init=False)
    health_checked: float = field(init=False, default=float("-inf"))
    health_error: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.env = Environment(
            loader=resources.loader("web", self.settings.templates),
            autoescape=True,  # every page escapes its data, whatever the template forgets
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        newsletter = self.blogs.newsletter
        self.env.globals.update(
            base=self.settings.base_url,
            newsletter=newsletter,
            categories=self.blogs.categories,
            consent_text=subscribers.consent_text(newsletter),
            logo=newsletter.logo,
        )
        zone = newsletter.schedule.tz
        self.env.filters.update(
            host=host,
            iso=lambda moment: ts(moment),
            day=lambda moment: day(moment, zone),
            shorten_text=shorten,
        )
        # In the database, so every `digest serve` on it shares them; the keys are hashed with
        # a secret derived from the form secret, which all of them share too.
        secret = self.forms.issue("rate limit keys", 0).encode()
        limits = self.limits
        self.ip_limiter = RateLimiter(
            self.db, "ip", limits.per_ip, limits.ip_window, secret=secret, clock=self.clock
        )
        self.address_limiter = RateLimiter(
            self.db,
            "address",
            limits.per_address,
            limits.address_window,
            secret=secret,
            clock=self.clock,
        )
        self.css = resources.read_bytes("web", "style.css", self.settings.templates)
        # The curator's accent (blogs.yaml), lightened for dark mode as the email does; served
        # after style.css, which stays a plain file a curator can replace (DIGEST_TEMPLATES).
        light, dark = newsletter.accent, dark_accent(newsletter.accent)
        # Links and buttons take it too, as in the mail: one colour for the whole publication.
        self.accent_css = (
            f":root {{ --accent: {light}; --link: {light}; --button: {light}; }}\n"
            "@media (prefers-color-scheme: dark) {"
            f" :root {{ --accent: {dark}; --link: {dark}; --button: {dark}; }} }}\n"
        ).encode()
        self.origin = origin_of(self.settings.base_url)

    # --- helpers ---------------------------------------------------------------------------

    def render(
        self,
        template: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        /,
        **ctx: Any,
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(**ctx)
        return HTMLResponse(html, status_code=status, headers=headers)

    def message(
        self,
        title: str,
        text: str,
        status: int = 200,
        *,
        private: bool = False,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        merged = {**(NO_STORE if private else {}), **(headers or {})}
        return self.render("message.html", status, merged, title=title, text=text)

    def token_for(self, purpose: str) -> str:
        return self.forms.issue(purpose, time.time())

    def forged(self, request: Request, form: FormData, purpose: str) -> bool:
        token = form_text(form, "form_token")
        return cross_site(request, self.origin) or not self.forms.valid(token, purpose, time.time())

    def refused(self) -> HTMLResponse:
        return self.message(
            "This form cannot be accepted",
            "It was sent from another site, or the page was open for too long. "
            "Reload the page and try again.",
            403,
        )

    def too_many(self) -> HTMLResponse:
        return self.message(
            "Too many attempts",
            "Please wait a while before trying again.",
            429,
            headers={"retry-after": "600"},
        )

    def not_found(self, what: str = "page") -> HTMLResponse:
        return self.message(
            "Not found",
            f"This {what} does not exist. A link from a mail may have been cut or mistyped.",
            404,
            private=True,
        )

    async def healthz(self, request: Request) -> Response:
        """200 while the database takes writes; 503 (with SQLite's reason) when it does not.

        The write probe runs at most once a second: a load balancer or a benchmark polling
        fast must not turn health checks into a stream of commits.
        """
        moment = time.monotonic()
        if moment - self.health_checked >= HEALTH_PROBE_EVERY:
            self.health_checked = moment
            try:
                await self.db.run(check_writable)
            except DbError as exc:
                if self.health_error is None:
                    log.error("the database cannot be written: %s", exc)
                self.health_error = f"database: {exc}"
            else:
                self.health_error = None
        if self.health_error is not None:
            return PlainTextResponse(self.health_error, status_code=503)
        return PlainTextResponse("ok")

    async def stylesheet(self, request: Request) -> Response:
        return Response(
            self.css, media_type="text/css", headers={"cache-control": "public, max-age=3600"}
        )

    async def accent_stylesheet(self, request: Request) -> Response:
        return Response(
            self.accent_css,
            media_type="text/css",
            headers={"cache-control": "public, max-age=3600"},
        )

    # --- errors ----------------------------------------------------------------------------

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return self.not_found()
        titles = {405: "Method not allowed", 413: "Too large"}
        title = titles.get(exc.status_code, "Request refused")
        return self.message(title, "The request could not be handled.", exc.status_code)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        log.error("error serving %s", redact(request.url.path), exc_info=exc)
        return self.message("Something went wrong", "Please try again in a moment.", 500)
