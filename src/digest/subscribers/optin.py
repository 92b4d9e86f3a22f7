"""Double opt-in: the signup request, the confirmation mail and link, a fresh link."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from digest.config import BlogsFile, Newsletter, Settings
from digest.models import Subscriber
from digest.store import subscribers as store
from digest.store.db import Connection, log_event, transaction
from digest.subscribers.values import (
    CONFIRM_TTL,
    Mail,
    cadence_words,
    clean_cadence,
    clean_categories,
    clean_name,
    consent_text,
    hash_token,
    new_token,
    normalise_email,
)

log = logging.getLogger("digest.subscribers")

# Suppressions an address may come back from by confirming a link sent afterwards: it left by
# choice. Any other (a hard bounce, a complaint, or a reason added later) gets no signup mail at
# all, whatever the form says: mailing it again costs the sender's reputation, not the reader's.
RETURNABLE = frozenset({"unsubscribed", "removed", "unsubscribed before import"})
_warned_at: float | None = None  # monotonic time of the last "hourly cap reached" warning


def mailbox(address: str) -> str:
    """The mailbox behind an address, for the signup caps: ``Victim+3@X.org`` -> ``victim@x.org``.

    Sub-addressing (RFC 5233 ``+tag``) delivers every variant to one inbox, so the caps count
    them together; case is folded as well (normalise_email keeps it only on paper).
    """
    local, _, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}".casefold()


def may_return(sub: Subscriber | None, suppression: str | None) -> bool:
    """May this address get a signup mail (and come back by confirming)?"""
    if sub is not None and sub.status == "bounced":
        return False
    return suppression is None or suppression in RETURNABLE


def _confirm_mail(
    settings: Settings, newsletter: Newsletter, to: str, token: str, cadence: str
) -> Mail:
    link = f"{settings.base_url}/confirm/{token}"
    text = (
        f"Hello,\n\nsomeone, hopefully you, asked to receive "
        f"{cadence_words(newsletter, cadence)} at this address.\n\n"
        f"To confirm, open this link and press the button:\n\n  {link}\n\n"
        f"The link works for {int(CONFIRM_TTL.total_seconds() // 3600)} hours. If you did not "
        "ask for this, ignore this mail: without your confirmation you will not hear from us "
        f"again.\n\n-- \n{newsletter.curator}, {newsletter.title}\n{settings.base_url}/\n"
    )
    return Mail(to=to, subject=f"Confirm your subscription to {newsletter.title}", text=text)


def _notice_mail(settings: Settings, newsletter: Newsletter, sub: Subscriber) -> Mail:
    text = (
        f"Hello,\n\nsomeone, hopefully you, asked to subscribe this address to "
        f"{newsletter.title}. It is subscribed already, to "
        f"{cadence_words(newsletter, sub.cadence)}, so nothing changed.\n\n"
        f"To choose weekly or monthly, your categories, or change your name:\n\n"
        f"  {settings.base_url}/preferences/{sub.token}\n\n"
        f"To unsubscribe:\n\n  {settings.base_url}/unsubscribe/{sub.token}\n\n"
        f"-- \n{newsletter.curator}, {newsletter.title}\n{settings.base_url}/\n"
    )
    return Mail(to=sub.email, subject=f"You are subscribed to {newsletter.title}", text=text)


def start_confirmation(
    conn: Connection,
    settings: Settings,
    newsletter: Newsletter,
    sub: Subscriber,
    *,
    name: str | None,
    categories: frozenset[str] | None,
    cadence: str,
    now: datetime,
    source: str,
    ip: str | None,
    user_agent: str | None,
) -> Mail:
    token = new_token()
    store.insert_confirmation(
        conn,
        token_hash=hash_token(token),
        subscriber_id=sub.id,
        now=now,
        expires_at=now + CONFIRM_TTL,
        name=name,
        categories=categories,
        cadence=cadence,
        source=source,
        ip=ip,
        user_agent=user_agent,
        consent_text=consent_text(newsletter),
    )
    store.record_signup_mail(conn, sub.email, "confirm", mailbox=mailbox(sub.email), now=now)
    return _confirm_mail(settings, newsletter, sub.email, token, cadence)


def over_cap(conn: Connection, settings: Settings, email: str, now: datetime) -> bool:
    """True when no signup mail may go to this address now: its mailbox had its daily share,
    or the list sent its hourly share (the form says the same either way)."""
    box = mailbox(email)
    if store.signup_mails_since(conn, box, now - timedelta(days=1)) >= (
        settings.signup_mails_per_address
    ):
        return True
    sent = store.all_signup_mails_since(conn, now - timedelta(hours=1))
    if sent < settings.signup_mails_per_hour:
        return False
    global _warned_at
    moment = time.monotonic()
    if _warned_at is None or moment - _warned_at > 3600:  # once an hour, not once a request
        _warned_at = moment
        log.warning(
            "signup mails: %d sent in the last hour, the cap (DIGEST_SIGNUP_MAILS_PER_HOUR); "
            "further signups get no mail until the hour has passed",
            sent,
        )
    return True


def subscribe(
    conn: Connection,
    settings: Settings,
    blogs: BlogsFile,
    *,
    email: str,
    name: str | None = None,
    categories: Iterable[str] | None = None,
    cadence: str | None = None,
    now: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
    source: str = "web",
) -> Mail | None:
    """A signup request. Returns the mail to send, or None (a cap reached, or suppressed).

    The caller must answer the same way whatever happens here: the state of an address (new,
    pending, confirmed, unsubscribed) is never revealed to whoever typed it (REFERENCE.md 5).
    A new or pending address gets a confirmation; a confirmed one a notice with its preferences
    link; an unsubscribed one a confirmation too, since confirming proves that the owner of the
    address wants it back (the suppression entry is lifted only then). A bounced or complaining
    address gets nothing.
    """
    address = normalise_email(email)
    clean = clean_name(name)
    chosen = clean_categories(blogs, categories)
    rhythm = clean_cadence(cadence)
    newsletter = blogs.newsletter
    with transaction(conn):
        sub = store.get_by_email(conn, address)
        if not may_return(sub, store.suppression_reason(conn, address)):
            return None
        if over_cap(conn, settings, address, now):
            return None
        if sub is None:
            sub = store.insert_subscriber(
                conn,
                email=address,
                name=clean,
                categories=chosen,
                status="pending",
                token=new_token(),
                source=source,
                now=now,
                ip=ip,
                user_agent=user_agent,
                consent_text=consent_text(newsletter),
                cadence=rhythm,
            )
        elif sub.status == "confirmed":
            store.record_signup_mail(conn, address, "notice", mailbox=mailbox(address), now=now)
            return _notice_mail(settings, newsletter, sub)
        return start_confirmation(
            conn,
            settings,
            newsletter,
            sub,
            name=clean,
            categories=chosen,
            cadence=rhythm,
            now=now,
            source=source,
            ip=ip,
            user_agent=user_agent,
        )


ConfirmStatus = Literal["valid", "confirmed", "already", "used", "revoked", "expired", "unknown"]


@dataclass(frozen=True, slots=True)
class ConfirmState:
    """What a confirmation link stands for.

    valid: unused and in time (GET shows the button); confirmed: the POST just activated it;
    already: used (or replaced by another link) and the subscriber is active; used: used before
    and the subscriber left since (the old link must not bring them back); revoked: replaced,
    or the address left or bounced after it was sent; expired; unknown (forged or purged).
    """

    status: ConfirmStatus
    subscriber: Subscriber | None = None
    cadence: str = "weekly"  # what the link asked for (valid), or what the subscriber has


def _lookup_confirmation(
    conn: Connection, token: str
) -> tuple[store.Confirmation, Subscriber] | None:
    if not token or len(token) > 100:
        return None
    digest = hash_token(token)
    found = store.get_confirmation(conn, digest)
    if found is None or not hmac.compare_digest(found.token_hash, digest):
        return None
    sub = store.get_by_id(conn, found.subscriber_id)
    return None if sub is None else (found, sub)


def _state(
    conn: Connection, conf: store.Confirmation, sub: Subscriber, now: datetime
) -> ConfirmState:
    if conf.used_at is not None:
        return ConfirmState("already" if sub.status == "confirmed" else "used", sub, sub.cadence)
    if conf.revoked_at is not None:
        status: ConfirmStatus = "already" if sub.status == "confirmed" else "revoked"
        return ConfirmState(status, sub, sub.cadence)
    if not may_return(sub, store.suppression_reason(conn, sub.email)):
        return ConfirmState("revoked", sub)  # bounced or complained since the link was sent
    asked = conf.cadence or sub.cadence
    if now >= conf.expires_at:
        return ConfirmState("expired", sub, asked)
    return ConfirmState("valid", sub, asked)


def check_confirmation(conn: Connection, token: str, *, now: datetime) -> ConfirmState:
    """Read-only: what a GET of the link shows. A GET never confirms (mail scanners fetch)."""
    found = _lookup_confirmation(conn, token)
    return ConfirmState("unknown") if found is None else _state(conn, *found, now)


def confirm(
    conn: Connection,
    token: str,
    *,
    now: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
) -> ConfirmState:
    """Activate the subscription the token was sent for (the POST of the confirm page).

    The address's other unused links stop working: each stood for a request now settled, and
    one left in a mailbox must not bring the address back after a later unsubscribe.
    """
    with transaction(conn):
        found = _lookup_confirmation(conn, token)
        if found is None:
            return ConfirmState("unknown")
        conf, sub = found
        state = _state(conn, conf, sub, now)
        if state.status != "valid" or not store.use_confirmation(conn, conf.token_hash, now=now):
            return state
        store.confirm_subscriber(conn, conf, now=now, ip=ip, user_agent=user_agent)
        store.revoke_confirmations(conn, sub.id, now=now, keep=conf.token_hash)
        reason = store.suppression_reason(conn, sub.email)
        if reason is not None:
            store.unsuppress(conn, sub.email)
            log_event(
                conn,
                "resubscribe",
                f"{sub.email} confirmed a new subscription (was suppressed: {reason})",
                at=now,
            )
        fresh = store.get_by_id(conn, sub.id)
        assert fresh is not None
        return ConfirmState("confirmed", fresh, fresh.cadence)


def resend_confirmation(
    conn: Connection,
    settings: Settings,
    blogs: BlogsFile,
    token: str,
    *,
    now: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Mail | None:
    """A fresh confirmation for the request an expired link was sent for (capped per day)."""
    with transaction(conn):
        found = _lookup_confirmation(conn, token)
        if found is None:
            return None
        conf, sub = found
        if _state(conn, conf, sub, now).status != "expired":
            return None
        if over_cap(conn, settings, sub.email, now):
            return None
        return start_confirmation(
            conn,
            settings,
            blogs.newsletter,
            sub,
            name=conf.name,
            categories=conf.categories,
            cadence=conf.cadence or sub.cadence,
            now=now,
            source=conf.source,
            ip=ip,
            user_agent=user_agent,
        )
