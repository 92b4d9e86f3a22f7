"""Provider webhooks: /webhooks/ses, /webhooks/postmark, /webhooks/mailgun, /webhooks/sendgrid.

Each call is verified first (digest.feedback.<provider>), then parsed into events that are
applied in one transaction (digest.feedback.apply). A provider without its setting answers 403
and a call without valid credentials 401 or 403, with a short reason and nothing recorded; a
retried call applies nothing twice. A 2xx tells the provider to stop retrying, so only a call
that was applied (or is known and harmless) gets one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from digest.feedback import mailgun, postmark, sendgrid, ses
from digest.feedback.apply import apply_in
from digest.feedback.model import Event
from digest.feedback.signing import Refused, json_body
from digest.store.db import Connection, transaction, ts
from digest.web.pages import Site

log = logging.getLogger("digest.web")

# SendGrid posts batches of up to about 768 KB, SNS messages are at most 256 KB: the app's
# 64 KB form limit would refuse them for ever (each provider retries a 413).
WEBHOOK_MAX_BODY = 1024 * 1024

Parsed = tuple[list[Event], str | None]  # the events, and a single-use token to record


class Webhooks:
    def __init__(self, site: Site, *, sns: ses.SnsVerifier | None = None) -> None:
        self.site = site
        settings = site.settings
        self.sns = sns or ses.SnsVerifier()
        self.topics = {t.strip() for t in (settings.ses_topic_arns or "").split(",") if t.strip()}
        self.postmark_auth = settings.postmark_webhook_auth
        self.mailgun_key = settings.mailgun_signing_key
        key = settings.sendgrid_public_key
        self.sendgrid_key = sendgrid.load_key(key) if key else None  # a bad key fails at start

    def routes(self) -> list[Route]:
        return [
            Route(f"/webhooks/{name}", endpoint, methods=["POST"], max_body_size=WEBHOOK_MAX_BODY)
            for name, endpoint in (
                ("ses", self.ses),
                ("postmark", self.postmark),
                ("mailgun", self.mailgun),
                ("sendgrid", self.sendgrid),
            )
        ]

    async def ses(self, request: Request) -> Response:
        return await self._handle(request, "ses", self._ses)

    async def postmark(self, request: Request) -> Response:
        return await self._handle(request, "postmark", self._postmark)

    async def mailgun(self, request: Request) -> Response:
        return await self._handle(request, "mailgun", self._mailgun)

    async def sendgrid(self, request: Request) -> Response:
        return await self._handle(request, "sendgrid", self._sendgrid)

    # --- the providers ------------------------------------------------------------------------

    async def _ses(self, request: Request, body: bytes) -> Parsed | str:
        if not self.topics:
            raise Refused(403, "SES webhook not configured (DIGEST_SES_TOPIC_ARNS)")
        message = json_body(body)
        if not isinstance(message, dict):
            raise Refused(400, "expected an SNS message")
        if message.get("TopicArn") not in self.topics:
            raise Refused(403, "topic not in DIGEST_SES_TOPIC_ARNS")
        await self.sns.verify(message, now=self.site.clock())
        kind = message.get("Type")
        if kind == "SubscriptionConfirmation":
            url = str(message.get("SubscribeURL"))
            ses.check_sns_url(url, "SubscribeURL")
            await self.sns.fetch(url)
            log.info("webhook ses: subscribed to %s", message.get("TopicArn"))
            return "subscription confirmed"
        if kind != "Notification":
            return f"{kind}: nothing to do"
        return ses.events(message), None

    async def _postmark(self, request: Request, body: bytes) -> Parsed:
        if self.postmark_auth is None:
            raise Refused(403, "Postmark webhook not configured (DIGEST_POSTMARK_WEBHOOK_AUTH)")
        expected = self.postmark_auth.get_secret_value()
        postmark.check_auth(request.headers.get("authorization"), expected)
        return postmark.events(json_body(body)), None

    async def _mailgun(self, request: Request, body: bytes) -> Parsed:
        if self.mailgun_key is None:
            raise Refused(403, "Mailgun webhook not configured (DIGEST_MAILGUN_SIGNING_KEY)")
        payload = json_body(body)
        key = self.mailgun_key.get_secret_value().encode()
        token = mailgun.verify(payload, key, now=self.site.clock().timestamp())
        return mailgun.events(payload), token

    async def _sendgrid(self, request: Request, body: bytes) -> Parsed:
        if self.sendgrid_key is None:
            raise Refused(403, "SendGrid webhook not configured (DIGEST_SENDGRID_PUBLIC_KEY)")
        sendgrid.verify(self.sendgrid_key, body, dict(request.headers))
        return sendgrid.events(json_body(body)), None

    # --- shared -------------------------------------------------------------------------------

    async def _handle(
        self,
        request: Request,
        source: str,
        parse: Callable[[Request, bytes], Awaitable[Parsed | str]],
    ) -> Response:
        try:
            body = await request.body()
            parsed = await parse(request, body)
            if isinstance(parsed, str):
                return PlainTextResponse(parsed)
            events, token = parsed
            now = self.site.clock()

            def write(conn: Connection) -> tuple[int, int]:
                return _record(conn, source, events, token, now=now)

            new, repeated = await self.site.db.run(write)
        except Refused as refused:
            log.warning("webhook %s refused: %s %s", source, refused.status, refused.reason)
            return PlainTextResponse(refused.reason, status_code=refused.status)
        return PlainTextResponse(f"ok: {new} applied, {repeated} already applied")


def _record(
    conn: Connection,
    source: str,
    events: Sequence[Event],
    token: str | None,
    *,
    now: datetime,
) -> tuple[int, int]:
    with transaction(conn):
        if token is not None:
            cutoff = ts(now - timedelta(seconds=2 * mailgun.MAX_AGE))
            conn.execute(
                "DELETE FROM webhook_nonces WHERE source = ? AND seen_at < ?", (source, cutoff)
            )
            fresh = conn.execute(
                "INSERT INTO webhook_nonces (source, nonce, seen_at) VALUES (?, ?, ?)"
                " ON CONFLICT (source, nonce) DO NOTHING",
                (source, token, ts(now)),
            ).rowcount
            if not fresh:
                # 406: Mailgun stops retrying. Its first delivery was applied with this token.
                raise Refused(406, "token already used")
        applied = [apply_in(conn, event, now=now) for event in events]
    new = sum(1 for a in applied if a.new)
    return new, len(applied) - new
