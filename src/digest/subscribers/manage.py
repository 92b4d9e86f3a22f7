"""After signup: one-click unsubscribe, preferences, and the curator's add and remove."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from digest.config import BlogsFile, Settings
from digest.errors import SubscriberError
from digest.models import Subscriber
from digest.store import subscribers as store
from digest.store.db import Connection, log_event, transaction
from digest.subscribers.optin import may_return, over_cap, start_confirmation
from digest.subscribers.values import (
    Mail,
    clean_cadence,
    clean_categories,
    clean_name,
    find_by_token,
    new_token,
    normalise_email,
)


def _leave(conn: Connection, sub: Subscriber, reason: str, how: str, now: datetime) -> None:
    store.set_status(conn, sub.id, "unsubscribed", now=now)
    store.suppress(conn, sub.email, reason, now=now)
    # A confirmation link sent before must not bring the address back: only a fresh one can.
    store.revoke_confirmations(conn, sub.id, now=now)
    log_event(conn, "unsubscribe", f"subscriber {sub.id} {how}", at=now)


def unsubscribe_by_token(
    conn: Connection, token: str, *, now: datetime, how: str = "web"
) -> Subscriber | None:
    """Unsubscribe at once (RFC 8058); idempotent. None for an unknown token."""
    with transaction(conn):
        sub = find_by_token(conn, token)
        if sub is None:
            return None
        if sub.status != "unsubscribed":
            # A bounced address stays `bounced` (the stronger fact) but is suppressed all the same.
            if sub.status == "bounced":
                store.suppress(conn, sub.email, "bounced", now=now)
                store.revoke_confirmations(conn, sub.id, now=now)
            else:
                _leave(conn, sub, "unsubscribed", how, now)
        return store.get_by_id(conn, sub.id)


def update_preferences(
    conn: Connection,
    blogs: BlogsFile,
    token: str,
    *,
    name: str | None,
    categories: Iterable[str] | None,
    cadence: str | None = None,
    now: datetime,
) -> Subscriber | None:
    """New name, categories and cadence (None: keep it) for the subscriber behind the token;
    None for an unknown token. A new cadence counts from the next edition: one being sent now
    keeps the audience it started with."""
    clean = clean_name(name)
    chosen = clean_categories(blogs, categories)
    rhythm = None if cadence is None else clean_cadence(cadence)
    with transaction(conn):
        sub = find_by_token(conn, token)
        if sub is None:
            return None
        store.update_preferences(conn, sub.id, name=clean, categories=chosen, cadence=rhythm)
        what = "changed preferences"
        if rhythm is not None and rhythm != sub.cadence:
            what += f" (cadence {sub.cadence} -> {rhythm})"
        log_event(conn, "preferences", f"subscriber {sub.id} {what}", at=now)
        return store.get_by_id(conn, sub.id)


@dataclass(frozen=True, slots=True)
class Resubscribe:
    subscriber: Subscriber
    mail: Mail | None  # the fresh confirmation, unless a cap or a bounce stands in the way


def resubscribe_by_token(
    conn: Connection,
    settings: Settings,
    blogs: BlogsFile,
    token: str,
    *,
    now: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Resubscribe | None:
    """The "Subscribe again" button of an unsubscribed address's preferences page: a fresh
    confirmation mail, as for any signup. The token is in every issue ever sent, forwarded
    ones included, so it cannot stand for the owner's consent now; a confirmation sent after
    the unsubscribe can. None for an unknown token."""
    with transaction(conn):
        sub = find_by_token(conn, token)
        if sub is None:
            return None
        if sub.status != "unsubscribed" or not may_return(
            sub, store.suppression_reason(conn, sub.email)
        ):
            return Resubscribe(sub, None)
        if over_cap(conn, settings, sub.email, now):
            return Resubscribe(sub, None)
        mail = start_confirmation(
            conn,
            settings,
            blogs.newsletter,
            sub,
            name=sub.name,
            categories=sub.categories,
            cadence=sub.cadence,
            now=now,
            source="web",
            ip=ip,
            user_agent=user_agent,
        )
        return Resubscribe(sub, mail)


# --- the curator's commands -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Added:
    subscriber: Subscriber
    mail: Mail | None  # the confirmation to send (not --confirmed)


def add(
    conn: Connection,
    settings: Settings,
    blogs: BlogsFile,
    *,
    email: str,
    name: str | None = None,
    categories: Iterable[str] | None = None,
    cadence: str = "weekly",
    confirmed: bool = False,
    force: bool = False,
    now: datetime,
) -> Added:
    """Add one subscriber by hand. A suppressed address (unsubscribed, bounced) is refused
    unless ``force``, which is logged: the curator then vouches for fresh consent."""
    address = normalise_email(email)
    clean = clean_name(name)
    chosen = clean_categories(blogs, categories)
    rhythm = clean_cadence(cadence)
    newsletter = blogs.newsletter
    with transaction(conn):
        reason = store.suppression_reason(conn, address)
        sub = store.get_by_email(conn, address)
        if reason is not None and not force:
            raise SubscriberError(
                f"{address} is on the suppression list ({reason})",
                email=address,
                hint="they asked not to be mailed; add --force only with their fresh consent",
            )
        if sub is not None and sub.status == "confirmed":
            raise SubscriberError(f"{address} is already subscribed", email=address)
        if reason is not None:
            store.unsuppress(conn, address)
            log_event(conn, "force-add", f"{address} re-added with --force (was {reason})", at=now)
        if sub is None:
            sub = store.insert_subscriber(
                conn,
                email=address,
                name=clean,
                categories=chosen,
                status="confirmed" if confirmed else "pending",
                token=new_token(),
                source="cli",
                now=now,
                consent_text="added by the curator (digest subscribers add)",
                cadence=rhythm,
            )
            if confirmed:
                return Added(sub, None)
        elif confirmed:
            store.update_preferences(conn, sub.id, name=clean, categories=chosen, cadence=rhythm)
            store.set_status(conn, sub.id, "confirmed", now=now)
            fresh = store.get_by_id(conn, sub.id)
            assert fresh is not None
            return Added(fresh, None)
        mail = start_confirmation(
            conn,
            settings,
            newsletter,
            sub,
            name=clean,
            categories=chosen,
            cadence=rhythm,
            now=now,
            source="cli",
            ip=None,
            user_agent=None,
        )
        return Added(sub, mail)


def remove(conn: Connection, email: str, *, now: datetime) -> Subscriber:
    """Unsubscribe by address (the curator acting on a request); the consent record stays."""
    address = normalise_email(email)
    with transaction(conn):
        sub = store.get_by_email(conn, address)
        if sub is None:
            raise SubscriberError(f"{address} is not a subscriber", email=address)
        if sub.status != "unsubscribed":
            _leave(conn, sub, "removed", "removed by the curator", now)
        fresh = store.get_by_id(conn, sub.id)
        assert fresh is not None
        return fresh


def send(settings: Settings, blogs: BlogsFile, mail: Mail) -> None:
    """Send one signup mail now (SMTP, or the Maildir outbox without DIGEST_SMTP_HOST)."""
    from digest.send.transactional import send_mail

    send_mail(settings, blogs.newsletter, to=mail.to, subject=mail.subject, text=mail.text)
