"""What a refusal does to the reader, whenever it arrives: the SMTP reply of the send loop or a
bounce reported later (digest.feedback). One copy of the rules of digest.send.bounces."""

from __future__ import annotations

from datetime import datetime

from digest.send.bounces import SOFT_LIMIT
from digest.store import deliveries as ledger
from digest.store import subscribers as subscribers_store
from digest.store.db import Connection


def soft_limit_reached(conn: Connection, subscriber_id: int, *, issue: int) -> bool:
    """True when a soft bounce on ``issue`` is the SOFT_LIMIT-th issue the mailbox refused."""
    return ledger.soft_bounced_issues(conn, subscriber_id, besides=issue) >= SOFT_LIMIT - 1


def suppress_bounced(conn: Connection, subscriber_id: int, email: str, *, now: datetime) -> None:
    """The address is dead: the subscriber is 'bounced' and never mailed again."""
    subscribers_store.set_status(conn, subscriber_id, "bounced", now=now)
    subscribers_store.suppress(conn, email, "bounced", now=now)


def suppress_complaint(
    conn: Connection, subscriber_id: int | None, email: str, *, now: datetime
) -> None:
    """The reader marked a digest as spam (RFC 5965): unsubscribed, suppressed for good."""
    if subscriber_id is not None:
        subscribers_store.set_status(conn, subscriber_id, "unsubscribed", now=now)
        # As an unsubscribe does: a confirmation link sent before must not bring them back.
        subscribers_store.revoke_confirmations(conn, subscriber_id, now=now)
    subscribers_store.suppress(conn, email, "complaint", now=now)
