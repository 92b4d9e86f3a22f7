"""The subscriber's side: subscribe, confirm (double opt-in), unsubscribe, preferences.

GET never changes anything (mail scanners fetch every link, REFERENCE.md section 3): the confirm
and unsubscribe links show a page whose button POSTs. Every page behind a personal token is
``no-store``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest import subscribers
from digest.errors import SubscriberError
from digest.models import Subscriber
from digest.store.db import Connection
from digest.subscribers.optin import mailbox
from digest.web.pages import NO_STORE, Site, form_text, path_token
from digest.web.publication import Publication
from digest.web.security import client_ip


@dataclass
class Subscribing:
    site: Site
    publication: Publication  # a refused signup shows the home page again, with its error

    # --- subscribe ------------------------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        started = time.monotonic()
        form = await request.form()
        if self.site.forged(request, form, "subscribe"):
            return self.site.refused()
        if not await self.site.ip_limiter.allow(client_ip(request)):
            return self.site.too_many()
        email, name = form_text(form, "email"), form_text(form, "name")
        chosen = [c for c in form.getlist("categories") if isinstance(c, str)]
        cadence = form_text(form, "cadence")
        if not form_text(form, "website"):  # the honeypot: people never see it, bots fill it
            try:
                address = subscribers.normalise_email(email)
                subscribers.clean_name(name)
                subscribers.clean_categories(self.site.blogs, chosen)
                cadence = subscribers.clean_cadence(cadence)
            except SubscriberError as exc:
                return await self.publication.home_page(
                    status=400,
                    error=exc.message + (f" ({exc.hint})" if exc.hint else ""),
                    email=email,
                    name=name,
                    chosen=set(chosen),
                    cadence=cadence.strip().lower(),
                )
            if not await self.site.address_limiter.allow(mailbox(address)):
                return self.site.too_many()
            now, ip = self.site.clock(), client_ip(request)
            agent = request.headers.get("user-agent")

            def work(conn: Connection) -> subscribers.Mail | None:
                return subscribers.subscribe(
                    conn,
                    self.site.settings,
                    self.site.blogs,
                    email=address,
                    name=name,
                    categories=chosen,
                    cadence=cadence,
                    now=now,
                    ip=ip,
                    user_agent=agent,
                    source="web",
                )

            mail = await self.site.db.run(work)
            if mail is not None:
                self.site.mailer.submit(mail)
        remaining = self.site.limits.subscribe_floor - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
        # What the form asked for, never what the address has: the page answers alike for all
        # (the honeypot's too: its cadence was not cleaned).
        shown = cadence if cadence in subscribers.CADENCES else "weekly"
        return self.site.render("subscribed.html", cadence=shown)

    # --- confirm ---------------------------------------------------------------------------

    def confirm_state_page(self, state: subscribers.ConfirmState, token: str) -> HTMLResponse:
        if state.status == "valid":
            form_token = self.site.token_for(f"confirm:{token}")
            return self.site.render(
                "confirm.html",
                200,
                NO_STORE,
                token=token,
                form_token=form_token,
                cadence=state.cadence,
            )
        if state.status == "confirmed":
            assert state.subscriber is not None
            return self.site.render("welcome.html", 200, NO_STORE, subscriber=state.subscriber)
        if state.status == "already":
            return self.site.message(
                "You are subscribed",
                "This address is confirmed already. Every issue links to your preferences.",
                private=True,
            )
        if state.status == "used":
            return self.site.message(
                "This link was used already",
                "It cannot be used again. To subscribe anew, use the form on the home page.",
                410,
                private=True,
            )
        if state.status == "revoked":
            return self.site.message(
                "This link no longer works",
                "A newer link was used, or the address left the list after this one was sent. "
                "To subscribe anew, use the form on the home page.",
                410,
                private=True,
            )
        if state.status == "expired":
            return self.site.render(
                "expired.html",
                410,
                NO_STORE,
                token=token,
                form_token=self.site.token_for(f"resend:{token}"),
            )
        return self.site.not_found("confirmation link")

    async def confirm_page(self, request: Request) -> Response:
        token = path_token(request)
        if token is None:
            return self.site.not_found("confirmation link")
        now = self.site.clock()
        state = await self.site.db.run(lambda c: subscribers.check_confirmation(c, token, now=now))
        return self.confirm_state_page(state, token)

    async def confirm(self, request: Request) -> Response:
        token = path_token(request)
        if token is None:
            return self.site.not_found("confirmation link")
        form = await request.form()
        if self.site.forged(request, form, f"confirm:{token}"):
            return self.site.refused()
        now, ip = self.site.clock(), client_ip(request)
        agent = request.headers.get("user-agent")
        state = await self.site.db.run(
            lambda c: subscribers.confirm(c, token, now=now, ip=ip, user_agent=agent)
        )
        return self.confirm_state_page(state, token)

    async def resend(self, request: Request) -> Response:
        token = path_token(request)
        if token is None:
            return self.site.not_found("confirmation link")
        form = await request.form()
        if self.site.forged(request, form, f"resend:{token}"):
            return self.site.refused()
        if not await self.site.ip_limiter.allow(client_ip(request)):
            return self.site.too_many()
        now, ip = self.site.clock(), client_ip(request)
        agent = request.headers.get("user-agent")
        mail = await self.site.db.run(
            lambda c: subscribers.resend_confirmation(
                c, self.site.settings, self.site.blogs, token, now=now, ip=ip, user_agent=agent
            )
        )
        if mail is not None:
            self.site.mailer.submit(mail)
        return self.site.render("subscribed.html", 200, NO_STORE, cadence=None)

    # --- unsubscribe and preferences -------------------------------------------------------

    async def _subscriber(self, token: str) -> Subscriber | None:
        return await self.site.db.run(lambda c: subscribers.find_by_token(c, token))

    async def unsubscribe_page(self, request: Request) -> Response:
        token = path_token(request)
        sub = None if token is None else await self._subscriber(token)
        if sub is None:
            return self.site.not_found("unsubscribe link")
        return self.site.render("unsubscribe.html", 200, NO_STORE, subscriber=sub, done=False)

    async def unsubscribe(self, request: Request) -> Response:
        """RFC 8058 one-click, and the page's button: 200 at once, never a redirect.

        No form token and no Origin check here: the mail provider POSTs
        ``List-Unsubscribe=One-Click`` bare. The 256-bit token in the URL is the authority, so a
        body that does not parse still unsubscribes.
        """
        token = path_token(request)
        if token is None:
            return self.site.not_found("unsubscribe link")
        try:
            form = await request.form()
        except HTTPException as exc:
            if exc.status_code == 413:
                raise
            form = FormData()
        how = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "web page"
        now = self.site.clock()
        sub = await self.site.db.run(
            lambda c: subscribers.unsubscribe_by_token(c, token, now=now, how=how)
        )
        if sub is None:
            return self.site.not_found("unsubscribe link")
        return self.site.render("unsubscribe.html", 200, NO_STORE, subscriber=sub, done=True)

    def preferences_view(
        self, sub: Subscriber, *, status: int = 200, error: str | None = None, saved: bool = False
    ) -> HTMLResponse:
        chosen = (
            sub.categories
            if sub.categories is not None
            else {c.id for c in self.site.blogs.categories}
        )
        return self.site.render(
            "preferences.html",
            status,
            NO_STORE,
            subscriber=sub,
            chosen=chosen,
            error=error,
            saved=saved,
            form_token=self.site.token_for(f"preferences:{sub.token}"),
        )

    async def preferences_page(self, request: Request) -> Response:
        token = path_token(request)
        sub = None if token is None else await self._subscriber(token)
        if sub is None:
            return self.site.not_found("preferences link")
        return self.preferences_view(sub)

    async def preferences(self, request: Request) -> Response:
        token = path_token(request)
        if token is None:
            return self.site.not_found("preferences link")
        form = await request.form()
        if self.site.forged(request, form, f"preferences:{token}"):
            return self.site.refused()
        now, ip = self.site.clock(), client_ip(request)
        agent = request.headers.get("user-agent")
        if form_text(form, "action") == "resubscribe":
            again = await self.site.db.run(
                lambda c: subscribers.resubscribe_by_token(
                    c, self.site.settings, self.site.blogs, token, now=now, ip=ip, user_agent=agent
                )
            )
            if again is None:
                return self.site.not_found("preferences link")
            if again.subscriber.status != "unsubscribed":
                return self.preferences_view(again.subscriber)
            if again.mail is not None:
                self.site.mailer.submit(again.mail)
            return self.site.render("subscribed.html", 200, NO_STORE, cadence=None)
        name = form_text(form, "name")
        chosen = [c for c in form.getlist("categories") if isinstance(c, str)]
        cadence = form_text(form, "cadence") or None  # a form without the choice keeps it
        try:
            sub = await self.site.db.run(
                lambda c: subscribers.update_preferences(
                    c,
                    self.site.blogs,
                    token,
                    name=name,
                    categories=chosen,
                    cadence=cadence,
                    now=now,
                )
            )
        except SubscriberError as exc:
            current = await self._subscriber(token)
            if current is None:
                return self.site.not_found("preferences link")
            return self.preferences_view(
                current, status=400, error=exc.message + (f" ({exc.hint})" if exc.hint else "")
            )
        if sub is None:
            return self.site.not_found("preferences link")
        return self.preferences_view(sub, saved=True)
