"""Postmark's bounce and spam complaint webhooks, behind HTTP basic auth.

Postmark signs nothing: the curator puts credentials in the webhook's URL
(https://user:password@digest.example.org/webhooks/postmark) and sets the same
DIGEST_POSTMARK_WEBHOOK_AUTH. Postmark reports Postmark's own MessageID, not ours: the delivery
is found by the address.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from digest.feedback.model import Event, Kind, kind_of
from digest.feedback.signing import Refused, parse_time, same, text

# Postmark's bounce types (developer docs, "Bounce webhook"). The rest (Subscribe,
# AutoResponder, AddressChange, OpenRelayTest, ...) say nothing about the address.
_TYPES = {
    "HardBounce": Kind.HARD,
    "BadEmailAddress": Kind.HARD,
    "ManuallyDeactivated": Kind.HARD,
    "SoftBounce": Kind.SOFT,
    "Transient": Kind.SOFT,
    "DnsError": Kind.SOFT,
    "Blocked": Kind.POLICY,
    "DMARCPolicy": Kind.POLICY,
    "SpamNotification": Kind.POLICY,
    "VirusNotification": Kind.POLICY,
    "ContentRelated": Kind.POLICY,
    "SpamComplaint": Kind.COMPLAINT,
}


def check_auth(header: str | None, expected: str) -> None:
    """The Authorization header against ``user:password``, in constant time."""
    if not header:
        raise Refused(401, "basic auth credentials required")
    scheme, _, encoded = header.partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Refused(401, "malformed basic auth credentials") from None
    if scheme.lower() != "basic" or not same(given, expected.encode()):
        raise Refused(403, "wrong credentials")


def events(payload: Any) -> list[Event]:
    if not isinstance(payload, dict):
        raise Refused(400, "expected one JSON object")
    kind = _TYPES.get(text(payload.get("Type")))
    if payload.get("RecordType") == "SpamComplaint":
        kind = Kind.COMPLAINT
    if kind is None or payload.get("RecordType") not in ("Bounce", "SpamComplaint"):
        return []
    event_id = str(payload.get("ID") or "")
    if not event_id:
        raise Refused(400, "no ID in the record")
    details = text(payload.get("Details")) or text(payload.get("Description"))
    if kind in (Kind.HARD, Kind.SOFT):  # a 5.7.1 in the details is a policy refusal
        kind = kind_of(None, details, default=kind)
    return [
        Event(
            source="postmark",
            event_id=event_id,
            kind=kind,
            recipient=text(payload.get("Email")) or None,
            message_id=None,
            detail=f"{payload.get('Type')}: {details}".strip(),
            at=parse_time(payload.get("BouncedAt")),
        )
    ]
