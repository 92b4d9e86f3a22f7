"""An Event onto the store, once: the send loop's rules for refusals, applied late.

    hard       the subscriber is 'bounced' and suppressed, as a 5.1.1 at RCPT does
    soft       that delivery counts as soft-bounced; soft bounces on SOFT_LIMIT different
               issues suppress (digest.send.settle)
    policy     recorded and logged for the curator (a blocklisting, DMARC): never suppresses
    complaint  unsubscribed and suppressed (reason 'complaint'): never mailed again

The delivery is found by the original Message-ID, else by the address (its latest issue).
Unknown recipients are recorded, never an error: a provider reports every address it mailed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.feedback.model import Event, Kind
from digest.send import settle
from digest.send.bounces import SOFT_LIMIT
from digest.store import feedback as store
from digest.store import subscribers as subscribers_store
from digest.store.db import Connection, Row, log_event, transaction


@dataclass(frozen=True, slots=True)
class Applied:
    event: Event
    outcome: str
    new: bool  # False: this (source, event id) was applied before, nothing changed


def apply(conn: Connection, event: Event, *, now: datetime) -> Applied:
    """Apply ``event`` in a transaction of its own."""
    with transaction(conn):
        return apply_in(conn, event, now=now)


def apply_in(conn: Connection, event: Event, *, now: datetime) -> Applied:
    """Apply ``event`` inside the caller's transaction."""
    event_id = event.event_id[:500]
    if not store.record_event(
        conn,
        source=event.source,
        event_id=event_id,
        kind=str(event.kind),
        recipient=event.recipient,
        message_id=event.message_id,
        detail=event.detail[:1000],
        at=event.at,
        now=now,
    ):
        return Applied(event, "already applied", new=False)
    address = (event.recipient or "").strip().lower()
    delivery = store.find_delivery(conn, event.message_id, address or None)
    email = delivery["email"] if delivery else address
    sub = subscribers_store.get_by_email(conn, email) if email else None
    issue = delivery["issue"] if delivery else None
    outcome = _outcome(conn, event, delivery, sub.id if sub else None, email, now)
    if sub is not None and sub.status in ("unsubscribed", "bounced") and event.kind != Kind.POLICY:
        outcome = f"{outcome} (subscriber already {sub.status})"
    store.set_outcome(
        conn,
        event.source,
        event_id,
        outcome=outcome,
        issue=issue,
        subscriber_id=sub.id if sub else None,
    )
    if event.kind == Kind.POLICY:
        log_event(
            conn, "feedback policy", f"{event.source}: {email or '?'}: {event.detail}", at=now
        )
    return Applied(event, outcome, new=True)


def _outcome(
    conn: Connection,
    event: Event,
    delivery: Row | None,
    subscriber_id: int | None,
    email: str,
    now: datetime,
) -> str:
    if not email or (subscriber_id is None and event.kind != Kind.COMPLAINT):
        return "unknown recipient"
    if event.kind == Kind.COMPLAINT:
        settle.suppress_complaint(conn, subscriber_id, email, now=now)
        return "unsubscribed: complaint"
    if event.kind == Kind.POLICY:
        if delivery is not None:
            _mark(conn, delivery, "policy", event.detail, final=False)
        return "policy: reported, nobody suppressed"
    assert subscriber_id is not None
    if event.kind == Kind.HARD:
        if delivery is not None:
            _mark(conn, delivery, "hard", event.detail, final=True)
        settle.suppress_bounced(conn, subscriber_id, email, now=now)
        return "suppressed: hard bounce"
    if delivery is None:
        return "soft bounce: no delivery to count it against"
    if settle.soft_limit_reached(conn, subscriber_id, issue=delivery["issue"]):
        _mark(conn, delivery, "soft", event.detail, final=True)
        settle.suppress_bounced(conn, subscriber_id, email, now=now)
        return f"suppressed: soft bounces on {SOFT_LIMIT} issues"
    _mark(conn, delivery, "soft", event.detail, final=False)
    return "soft bounce counted"


def _mark(conn: Connection, delivery: Row, bounce: str, detail: str, *, final: bool) -> None:
    """The delivery's bounce class; a sent message that bounced for good becomes 'bounced'."""
    status = "bounced" if final and delivery["status"] == "sent" else delivery["status"]
    store.mark_delivery(conn, delivery, bounce, f"later: {detail}", status=status)
