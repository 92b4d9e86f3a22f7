"""Mailgun's webhooks (the JSON form): HMAC-SHA256 of timestamp + token with the signing key.

A timestamp older (or newer) than MAX_AGE seconds is refused, and the caller records each token
so that a captured request cannot be replayed within that window (webhook_nonces).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from digest.feedback.model import Event, Kind, bracketed, kind_of
from digest.feedback.signing import Refused, obj, parse_time, same, text

MAX_AGE = 300  # seconds


def verify(payload: Any, key: bytes, *, now: float) -> str:
    """Check the signature block; returns its token (single use)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("signature"), dict):
        raise Refused(401, "no signature block")
    block = payload["signature"]
    timestamp, token, signature = (text(block.get(k)) for k in ("timestamp", "token", "signature"))
    if not (timestamp and token and signature):
        raise Refused(401, "the signature block needs timestamp, token and signature")
    expected = hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not same(signature.lower(), expected):
        raise Refused(403, "bad signature")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > MAX_AGE:
        raise Refused(403, "stale timestamp")
    return token


def events(payload: dict[str, Any]) -> list[Event]:
    data = payload.get("event-data")
    if not isinstance(data, dict):
        raise Refused(400, "no event-data")
    kind = _kind(data)
    if kind is None:
        return []
    event_id = text(data.get("id"))
    if not event_id:
        raise Refused(400, "no event id")
    headers = obj(obj(data.get("message")).get("headers"))
    status = obj(data.get("delivery-status"))
    detail = " ".join(
        str(v) for v in (status.get("code"), text(status.get("message")), data.get("reason")) if v
    )
    return [
        Event(
            source="mailgun",
            event_id=event_id,
            kind=kind,
            recipient=text(data.get("recipient")) or None,
            message_id=bracketed(text(headers.get("message-id"))),
            detail=detail or text(data.get("event")),
            at=parse_time(data.get("timestamp")),
        )
    ]


def _kind(data: dict[str, Any]) -> Kind | None:
    event, reason = text(data.get("event")), text(data.get("reason"))
    if event == "complained" or reason == "suppress-complaint":
        return Kind.COMPLAINT
    if event != "failed" or data.get("severity") != "permanent":
        return None  # a temporary failure: Mailgun retries it, and says when it gives up
    if reason == "suppress-unsubscribe":
        return None  # unsubscribed at Mailgun: nothing about the address itself
    if reason == "suppress-bounce":
        return Kind.HARD  # Mailgun's own list: the address bounced hard before
    if reason == "espblock":
        return Kind.POLICY
    if reason == "old":
        return Kind.SOFT  # retried until Mailgun gave up: the mailbox could not take it
    status = data.get("delivery-status")
    if not isinstance(status, dict):
        return Kind.HARD
    message = text(status.get("message")) or text(status.get("description"))
    return kind_of(status.get("enhanced-code") or status.get("code"), message, default=Kind.HARD)
