"""SendGrid's signed event webhook: ECDSA P-256 over timestamp + raw body, SHA-256.

The verification key is the one SendGrid shows under Mail Settings > Signed Event Webhook
(base64 of the DER public key); each request carries X-Twilio-Email-Event-Webhook-Signature
(base64 DER signature) and X-Twilio-Email-Event-Webhook-Timestamp.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from digest.errors import ConfigError
from digest.feedback.model import Event, Kind, bracketed, kind_of
from digest.feedback.signing import Refused, parse_time, text

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"

_CLASSIFICATION = {
    "Invalid Address": Kind.HARD,
    "Mailbox Unavailable": Kind.SOFT,
    "Technical": Kind.SOFT,
    "Content": Kind.POLICY,
    "Reputation": Kind.POLICY,
    "Frequency or Volume Too High": Kind.POLICY,
}


def load_key(value: str) -> ec.EllipticCurvePublicKey:
    """DIGEST_SENDGRID_PUBLIC_KEY: base64 DER as SendGrid shows it, or a PEM block."""
    try:
        if "BEGIN PUBLIC KEY" in value:
            key = serialization.load_pem_public_key(value.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(value.split())))
    except (ValueError, binascii.Error):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(
            "DIGEST_SENDGRID_PUBLIC_KEY is not an ECDSA public key",
            hint="copy the verification key from SendGrid's Signed Event Webhook settings",
        )
    return key


def verify(key: ec.EllipticCurvePublicKey, body: bytes, headers: dict[str, str]) -> None:
    signature, timestamp = headers.get(SIGNATURE.lower()), headers.get(TIMESTAMP.lower())
    if not signature or not timestamp:
        raise Refused(401, f"{SIGNATURE} and {TIMESTAMP} required")
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            timestamp.encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused(403, "bad signature") from None


def events(payload: Any) -> list[Event]:
    if not isinstance(payload, list):
        raise Refused(400, "expected a JSON array of events")
    found: list[Event] = []
    for item in payload:
        if not isinstance(item, dict):
            continue
        kind = _kind(item)
        event_id = text(item.get("sg_event_id"))
        if kind is None or not event_id:
            continue
        status, reason = text(item.get("status")), text(item.get("reason"))
        found.append(
            Event(
                source="sendgrid",
                event_id=event_id,
                kind=kind,
                recipient=text(item.get("email")) or None,
                message_id=bracketed(text(item.get("smtp-id"))),
                detail=" ".join(filter(None, (text(item.get("event")), status, reason))),
                at=parse_time(item.get("timestamp")),
            )
        )
    return found


def _kind(item: dict[str, Any]) -> Kind | None:
    event, reason = text(item.get("event")), text(item.get("reason"))
    if event == "spamreport":
        return Kind.COMPLAINT
    if event == "dropped":
        # SendGrid's own suppression lists: only these two say something about the reader.
        return {"Bounced Address": Kind.HARD, "Spam Reporting Address": Kind.COMPLAINT}.get(reason)
    if event != "bounce":
        return None  # delivered, deferred (SendGrid retries), opens, clicks, ...
    blocked = text(item.get("type")) == "blocked"
    default = _CLASSIFICATION.get(text(item.get("bounce_classification")))
    if default is None:
        default = Kind.SOFT if blocked else Kind.HARD
    if default is Kind.POLICY:
        return default
    return kind_of(text(item.get("status")), reason, default=default)
