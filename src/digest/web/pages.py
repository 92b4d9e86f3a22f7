"""The route handlers: server-rendered pages that work without JavaScript.

GET never changes anything (mail scanners fetch every link, REFERENCE.md section 3): the confirm
and unsubscribe links show a page whose button POSTs.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
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
from digest.errors import SubscriberError
from digest.models import Subscriber
from digest.store.issues import get_issue, list_issues
from digest.subscribers.optin import mailbox
from digest.web.database import Database, check_writable
from digest.web.feed import atom_feed
from digest.web.mailer import Mailer
from digest.web.ratelimit import RateLimiter
from digest.web.security import (
    FormTokens,
    client_ip,
    cross_site,
    origin_of,
    redact,
    well_formed_token,
)

log = logging.getLogger("digest.web")

HEALTH_PROBE_EVERY = 1.0  # seconds between write probes of /healthz
NO_STORE = {"cache-control": "no-store"}  # pages behind a personal token stay out of caches
# The stored issue is premailer output: inline styles only, images from anywhere over https.
ISSUE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)


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


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def _path_token(request: Request) -> str | None:
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
        )
        self.ip_limiter = RateLimiter(self.limits.per_ip, self.limits.ip_window)
        self.address_limiter = RateLimiter(self.limits.per_address, self.limits.address_window)
        self.css = resources.read_bytes("web", "style.css", self.settings.templates)
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
        token = _text(form, "form_token")
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

    # --- home and subscribe ----------------------------------------------------------------

    def home_page(
        self,
        issues: list[Any],
        *,
        status: int = 200,
        error: str | None = None,
        email: str = "",
        name: str = "",
        chosen: set[str] | None = None,
    ) -> HTMLResponse:
        return self.render(
            "home.html",
            status,
            issues=issues,
            error=error,
            email=email,
            name=name,
            chosen=chosen if chosen is not None else {c.id for c in self.blogs.categories},
            form_token=self.token_for("subscribe"),
        )

    async def recent_issues(self) -> list[Any]:
        return await self.db.run(lambda c: list_issues(c)[:5])

    async def home(self, request: Request) -> Response:
        return self.home_page(await self.recent_issues())

    async def subscribe(self, request: Request) -> Response:
        started = time.monotonic()
        form = await request.form()
        if self.forged(request, form, "subscribe"):
            return self.refused()
        if not self.ip_limiter.allow(client_ip(request), time.monotonic()):
            return self.too_many()
        email, name = _text(form, "email"), _text(form, "name")
        chosen = [c for c in form.getlist("categories") if isinstance(c, str)]
        if not _text(form, "website"):  # the honeypot: people never see it, bots fill it
            try:
                address = subscribers.normalise_email(email)
                subscribers.clean_name(name)
                subscribers.clean_categories(self.blogs, chosen)
            except SubscriberError as exc:
                return self.home_page(
                    await self.recent_issues(),
                    status=400,
                    error=exc.message + (f" ({exc.hint})" if exc.hint else ""),
                    email=email,
                    name=name,
                    chosen=set(chosen),
                )
            if not self.address_limiter.allow(mailbox(address), time.monotonic()):
                return self.too_many()
            now, ip = self.clock(), client_ip(request)
            agent = request.headers.get("user-agent")

            def work(conn: sqlite3.Connection) -> subscribers.Mail | None:
                return subscribers.subscribe(
                    conn,
                    self.settings,
                    self.blogs,
                    email=address,
                    name=name,
                    categories=chosen,
                    now=now,
                    ip=ip,
                    user_agent=agent,
                    source="web",
                )

            mail = await self.db.run(work)
            if mail is not None:
                self.mailer.submit(mail)
        remaining = self.limits.subscribe_floor - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
        return self.render("subscribed.html")

    # --- confirm ---------------------------------------------------------------------------

    def confirm_state_page(self, state: subscribers.ConfirmState, token: str) -> HTMLResponse:
        if state.status == "valid":
            form_token = self.token_for(f"confirm:{token}")
            return self.render("confirm.html", 200, NO_STORE, token=token, form_token=form_token)
        if state.status == "confirmed":
            assert state.subscriber is not None
            return self.render("welcome.html", 200, NO_STORE, subscriber=state.subscriber)
        if state.status == "already":
            return self.message(
                "You are subscribed",
                "This address is confirmed already. Every issue links to your preferences.",
                private=True,
            )
        if state.status == "used":
            return self.message(
                "This link was used already",
                "It cannot be used again. To subscribe anew, use the form on the home page.",
                410,
                private=True,
            )
        if state.status == "revoked":
            return self.message(
                "This link no longer works",
                "A newer link was used, or the address left the list after this one was sent. "
                "To subscribe anew, use the form on the home page.",
                410,
                private=True,
            )
        if state.status == "expired":
            return self.render(
                "expired.html",
                410,
                NO_STORE,
                token=token,
                form_token=self.token_for(f"resend:{token}"),
            )
        return self.not_found("confirmation link")

    async def confirm_page(self, request: Request) -> Response:
        token = _path_token(request)
        if token is None:
            return self.not_found("confirmation link")
        now = self.clock()
        state = await self.db.run(lambda c: subscribers.check_confirmation(c, token, now=now))
        return self.confirm_state_page(state, token)

    async def confirm(self, request: Request) -> Response:
        token = _path_token(request)
        if token is None:
            return self.not_found("confirmation link")
        form = await request.form()
        if self.forged(request, form, f"confirm:{token}"):
            return self.refused()
        now, ip = self.clock(), client_ip(request)
        agent = request.headers.get("user-agent")
        state = await self.db.run(
            lambda c: subscribers.confirm(c, token, now=now, ip=ip, user_agent=agent)
        )
        return self.confirm_state_page(state, token)

    async def resend(self, request: Request) -> Response:
        token = _path_token(request)
        if token is None:
            return self.not_found("confirmation link")
        form = await request.form()
        if self.forged(request, form, f"resend:{token}"):
            return self.refused()
        if not self.ip_limiter.allow(client_ip(request), time.monotonic()):
            return self.too_many()
        now, ip = self.clock(), client_ip(request)
        agent = request.headers.get("user-agent")
        mail = await self.db.run(
            lambda c: subscribers.resend_confirmation(
                c, self.settings, self.blogs, token, now=now, ip=ip, user_agent=agent
            )
        )
        if mail is not None:
            self.mailer.submit(mail)
        return self.render("subscribed.html", 200, NO_STORE)

    # --- unsubscribe and preferences -------------------------------------------------------

    async def _subscriber(self, token: str) -> Subscriber | None:
        return await self.db.run(lambda c: subscribers.find_by_token(c, token))

    async def unsubscribe_page(self, request: Request) -> Response:
        token = _path_token(request)
        sub = None if token is None else await self._subscriber(token)
        if sub is None:
            return self.not_found("unsubscribe link")
        return self.render("unsubscribe.html", 200, NO_STORE, subscriber=sub, done=False)

    async def unsubscribe(self, request: Request) -> Response:
        """RFC 8058 one-click, and the page's button: 200 at once, never a redirect.

        No form token and no Origin check here: the mail provider POSTs
        ``List-Unsubscribe=One-Click`` bare. The 256-bit token in the URL is the authority, so a
        body that does not parse still unsubscribes.
        """
        token = _path_token(request)
        if token is None:
            return self.not_found("unsubscribe link")
        try:
            form = await request.form()
        except HTTPException as exc:
            if exc.status_code == 413:
                raise
            form = FormData()
        how = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "web page"
        now = self.clock()
        sub = await self.db.run(
            lambda c: subscribers.unsubscribe_by_token(c, token, now=now, how=how)
        )
        if sub is None:
            return self.not_found("unsubscribe link")
        return self.render("unsubscribe.html", 200, NO_STORE, subscriber=sub, done=True)

    def preferences_view(
        self, sub: Subscriber, *, status: int = 200, error: str | None = None, saved: bool = False
    ) -> HTMLResponse:
        chosen = (
            sub.categories if sub.categories is not None else {c.id for c in self.blogs.categories}
        )
        return self.render(
            "preferences.html",
            status,
            NO_STORE,
            subscriber=sub,
            chosen=chosen,
            error=error,
            saved=saved,
            form_token=self.token_for(f"preferences:{sub.token}"),
        )

    async def preferences_page(self, request: Request) -> Response:
        token = _path_token(request)
        sub = None if token is None else await self._subscriber(token)
        if sub is None:
            return self.not_found("preferences link")
        return self.preferences_view(sub)

    async def preferences(self, request: Request) -> Response:
        token = _path_token(request)
        if token is None:
            return self.not_found("preferences link")
        form = await request.form()
        if self.forged(request, form, f"preferences:{token}"):
            return self.refused()
        now, ip = self.clock(), client_ip(request)
        agent = request.headers.get("user-agent")
        if _text(form, "action") == "resubscribe":
            again = await self.db.run(
                lambda c: subscribers.resubscribe_by_token(
                    c, self.settings, self.blogs, token, now=now, ip=ip, user_agent=agent
                )
            )
            if again is None:
                return self.not_found("preferences link")
            if again.subscriber.status != "unsubscribed":
                return self.preferences_view(again.subscriber)
            if again.mail is not None:
                self.mailer.submit(again.mail)
            return self.render("subscribed.html", 200, NO_STORE)
        name = _text(form, "name")
        chosen = [c for c in form.getlist("categories") if isinstance(c, str)]
        try:
            sub = await self.db.run(
                lambda c: subscribers.update_preferences(
                    c, self.blogs, token, name=name, categories=chosen, now=now
                )
            )
        except SubscriberError as exc:
            current = await self._subscriber(token)
            if current is None:
                return self.not_found("preferences link")
            return self.preferences_view(
                current, status=400, error=exc.message + (f" ({exc.hint})" if exc.hint else "")
            )
        if sub is None:
            return self.not_found("preferences link")
        return self.preferences_view(sub, saved=True)

    # --- archive, feed, health -------------------------------------------------------------

    async def archive(self, request: Request) -> Response:
        issues = await self.db.run(list_issues)
        return self.render("archive.html", issues=issues)

    async def archived_issue(self, request: Request) -> Response:
        number = request.path_params["number"]
        if number >= 2**63:  # past SQLite's INTEGER: no such issue (not an OverflowError)
            return self.not_found("issue")
        issue = await self.db.run(lambda c: get_issue(c, number))
        if issue is None:
            return self.not_found("issue")
        # The stored web copy, rendered when sending started (see the interfaces file).
        return HTMLResponse(issue.html, headers={"content-security-policy": ISSUE_CSP})

    async def feed(self, request: Request) -> Response:
        issues = await self.db.run(list_issues)
        body = atom_feed(issues, self.blogs, base_url=self.settings.base_url, now=self.clock())
        return Response(body, media_type="application/atom+xml; charset=utf-8")

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
            except sqlite3.Error as exc:
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
