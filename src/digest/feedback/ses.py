"""Amazon SES bounce and complaint notifications, delivered by SNS over HTTPS.

SNS signs each message with an RSA key whose certificate it serves from
``https://sns.<region>.amazonaws.com/...pem``: the string to sign is built from the message's
fields in AWS's fixed order, and SignatureVersion 1 is SHA1, 2 SHA256. A certificate named
anywhere else is refused without being fetched. AWS's signature proves only that *some* SNS
topic sent it, so a topic not in DIGEST_SES_TOPIC_ARNS is refused too: anyone can subscribe our
URL to a topic of their own. A SubscriptionConfirmation is confirmed by GETting its
SubscribeURL (itself checked to be an SNS URL).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from digest.feedback.model import Event, Kind, bracketed, kind_of
from digest.feedback.signing import Refused, obj, parse_time, text

Fetch = Callable[[str], Awaitable[bytes]]

_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
MAX_CERT = 64 * 1024
_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_FIELDS["UnsubscribeConfirmation"] = _FIELDS["SubscriptionConfirmation"]


def check_sns_url(url: str, what: str, *, suffix: str = "") -> None:
    parts = urlsplit(url)
    if (
        parts.scheme != "https"
        or not _SNS_HOST.match(parts.hostname or "")
        or parts.port not in (None, 443)
        or parts.username is not None
        or not parts.path.endswith(suffix)
    ):
        raise Refused(403, f"{what} is not an https://sns.<region>.amazonaws.com URL")


def signing_string(message: dict[str, Any]) -> bytes:
    """AWS's canonical string: each present field as 'Name\\nvalue\\n', in the fixed order."""
    fields = _FIELDS.get(text(message.get("Type")))
    if fields is None:
        raise Refused(400, f"unknown SNS message type {message.get('Type')!r}")
    lines = []
    for name in fields:
        value = message.get(name)
        if name == "Subject" and value is None:
            continue
        if not isinstance(value, str):
            raise Refused(400, f"SNS message without {name}")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


async def fetch_https(url: str) -> bytes:
    """GET a small https resource (a certificate, the SubscribeURL), no redirects. A failure
    is a 502, so that SNS retries the notification later."""
    try:
        async with (
            httpx.AsyncClient(timeout=10.0, follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise Refused(502, f"{url} answered {response.status_code}")
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_CERT:
                    raise Refused(403, f"{url} is too large")
            return body
    except httpx.HTTPError as exc:
        raise Refused(502, f"could not fetch {url}: {type(exc).__name__}") from None


class SnsVerifier:
    """Verifies SNS signatures; certificates are fetched once and kept by URL."""

    def __init__(self, fetch: Fetch = fetch_https, certs: dict[str, bytes] | None = None) -> None:
        self.fetch = fetch
        self.certs: dict[str, bytes] = {} if certs is None else certs

    async def verify(self, message: dict[str, Any], *, now: datetime) -> None:
        version = text(message.get("SignatureVersion"))
        if version not in ("1", "2"):
            raise Refused(401, "unsigned, or an unknown SignatureVersion")
        url = text(message.get("SigningCertURL"))
        check_sns_url(url, "SigningCertURL", suffix=".pem")
        to_sign = signing_string(message)
        try:
            signature = base64.b64decode(text(message.get("Signature")), validate=True)
        except (binascii.Error, ValueError):
            raise Refused(403, "malformed signature") from None
        if url not in self.certs:
            self.certs[url] = await self.fetch(url)
        try:
            cert = x509.load_pem_x509_certificate(self.certs[url])
        except ValueError:
            del self.certs[url]
            raise Refused(403, "SigningCertURL is not a PEM certificate") from None
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused(403, "the signing certificate has no RSA key")
        if not cert.not_valid_before_utc <= now.astimezone(UTC) <= cert.not_valid_after_utc:
            raise Refused(403, "the signing certificate has expired")
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 (AWS's v1)
        try:
            key.verify(signature, to_sign, padding.PKCS1v15(), digest)
        except InvalidSignature:
            raise Refused(403, "bad signature") from None


def events(message: dict[str, Any]) -> list[Event]:
    """The events of a verified SNS Notification carrying an SES notification (the
    notificationType form, or eventType from an SES configuration set's event destination)."""
    try:
        ses = obj(json.loads(text(message.get("Message"))))
    except ValueError:
        raise Refused(400, "the SNS Message is not an SES notification") from None
    kind_name = text(ses.get("notificationType")) or text(ses.get("eventType"))
    mail = obj(ses.get("mail"))
    message_id = bracketed(text(obj(mail.get("commonHeaders")).get("messageId")))
    if message_id is None:
        for header in mail.get("headers") or []:
            if text(obj(header).get("name")).lower() == "message-id":
                message_id = bracketed(text(obj(header).get("value")))
    if kind_name == "Bounce":
        return _bounces(obj(ses.get("bounce")), message_id)
    if kind_name == "Complaint":
        # complaintSubType OnAccountSuppressionList: SES did not send it, the address having
        # complained before; a complaint all the same.
        complaint = obj(ses.get("complaint"))
        feedback = text(complaint.get("complaintFeedbackType")) or "complaint"
        return [
            _event(complaint, obj(rcpt), Kind.COMPLAINT, message_id, feedback)
            for rcpt in complaint.get("complainedRecipients") or []
        ]
    return []  # Delivery, Send, Open, ...: nothing to act on


def _bounces(bounce: dict[str, Any], message_id: str | None) -> list[Event]:
    default = _bounce_default(text(bounce.get("bounceType")), text(bounce.get("bounceSubType")))
    found = []
    for item in bounce.get("bouncedRecipients") or []:
        rcpt = obj(item)
        code = text(rcpt.get("diagnosticCode"))  # "smtp; 550 5.1.1 user unknown"
        kind = default
        if default is not Kind.POLICY:
            kind = kind_of(
                text(rcpt.get("status")), code.partition(";")[2] or code, default=default
            )
        detail = code or text(bounce.get("bounceSubType"))
        found.append(_event(bounce, rcpt, kind, message_id, detail))
    return found


def _bounce_default(bounce_type: str, subtype: str) -> Kind:
    if subtype in ("ContentRejected", "AttachmentRejected"):
        return Kind.POLICY
    if bounce_type == "Permanent":
        return Kind.HARD
    return Kind.SOFT  # Transient (mailbox full, too large) or Undetermined


def _event(
    block: dict[str, Any], rcpt: dict[str, Any], kind: Kind, message_id: str | None, detail: Any
) -> Event:
    recipient = text(rcpt.get("emailAddress"))
    feedback_id = text(block.get("feedbackId"))
    if not feedback_id:
        raise Refused(400, "an SES notification without feedbackId")
    return Event(
        source="ses",
        event_id=f"{feedback_id}/{recipient.lower()}",
        kind=kind,
        recipient=recipient or None,
        message_id=message_id,
        detail=str(detail or ""),
        at=parse_time(block.get("timestamp")),
    )
