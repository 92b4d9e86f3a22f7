"""Delivery reports (RFC 3464 DSNs) and complaints (RFC 5965 ARF) read into Events.

A DSN's recipient blocks give Status, Action and Diagnostic-Code, read as the send loop reads
an SMTP refusal; a bounce in no standard form (old Exim, qmail, ...) is left to flufl.bounce,
which knows most of them and says only which addresses failed for good (hard). The delivery is
named by the VERP address the report came back to, else by the returned message's Message-ID,
else by the recipient. The event id is the report's own Message-ID: a report read twice (or
from Maildir and IMAP) is applied once.
"""

from __future__ import annotations

import email
import hashlib
import re
from email.message import Message
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from digest.feedback.model import Event, Kind, bracketed, kind_of
from digest.feedback.verp import token_from

# RFC 5965 feedback types (and RFC 6591's auth-failure): the reader's doing, or ours.
_FEEDBACK = {"abuse": Kind.COMPLAINT, "fraud": Kind.COMPLAINT, "other": Kind.COMPLAINT}
_FEEDBACK_POLICY = ("auth-failure", "virus")
_QUOTED_ID = re.compile(r"(?im)^message-id:[ \t]*(<[^<>\s]+@[^<>\s]+>)")
_ADDRESSED = ("delivered-to", "x-original-to", "envelope-to", "to")


class NotAReport(ValueError):
    """Neither a delivery report nor a complaint that digest can read: left for a human."""


def read(raw: bytes, *, bounce_address: str | None, id_domain: str) -> list[Event]:
    """The events of one report (possibly none: a 'delayed' DSN, a not-spam ARF), or
    NotAReport. ``id_domain``: the domain of the ledger's Message-IDs, for VERP tokens."""
    msg = email.message_from_bytes(raw)
    report_id = bracketed(msg.get("message-id")) or f"<sha256-{hashlib.sha256(raw).hexdigest()}>"
    verp_id = _verp_id(msg, _ADDRESSED, bounce_address, id_domain)
    report_type = str(msg.get_param("report-type") or "").lower()
    if msg.get_content_type() == "multipart/report" and report_type == "feedback-report":
        returned = _returned(msg)
        if verp_id is None and returned is not None:  # the complaint returns our Return-Path
            verp_id = _verp_id(returned, ("return-path",), bounce_address, id_domain)
        return _arf(msg, returned, report_id, verp_id)
    blocks = _status_blocks(msg)
    if blocks:
        return _dsn(msg, blocks, report_id, verp_id)
    return _nonstandard(msg, report_id, verp_id)


def _verp_id(
    msg: Message, names: tuple[str, ...], bounce_address: str | None, id_domain: str
) -> str | None:
    """The ledger Message-ID named by a VERP address in one of these headers."""
    if not bounce_address:
        return None
    for name in names:
        for _, address in getaddresses(msg.get_all(name, [])):
            token = token_from(address, bounce_address)
            if token:
                return f"<{token}@{id_domain}>"
    return None


def _returned(msg: Message) -> Message | None:
    """The original message (or its headers) returned inside the report."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message):
                return inner
        if kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return email.message_from_bytes(payload.lstrip())
    return None


def _original_id(msg: Message, verp_id: str | None) -> str | None:
    if verp_id:
        return verp_id
    returned = _returned(msg)
    if returned is not None:
        return bracketed(returned.get("message-id"))
    # A bounce in no standard form quotes the message as text ("This is a copy of the message").
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            body = part.get_payload(decode=True)
            found = (
                _QUOTED_ID.search(body.decode("utf-8", "replace"))
                if isinstance(body, bytes)
                else None
            )
            if found:
                return found[1]
    return None


def _status_blocks(msg: Message) -> list[Message]:
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status" and part.is_multipart():
            return [block for block in part.get_payload() if isinstance(block, Message)]
    return []


def _address(value: str | None) -> str | None:
    """``rfc822; ann@example.org`` as ``ann@example.org``."""
    if not value:
        return None
    address = parseaddr(value.partition(";")[2] if ";" in value else value)[1]
    return address.strip().lower() or None


def _dsn(msg: Message, blocks: list[Message], report_id: str, verp_id: str | None) -> list[Event]:
    message_id = _original_id(msg, verp_id)
    found: list[Event] = []
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        action = (block.get("action") or "").strip().lower()
        if not action.startswith(("failed", "error")):
            continue  # delayed, delivered, relayed, expanded: nothing has failed yet
        status = (block.get("status") or "").strip()
        diagnostic = " ".join((block.get("diagnostic-code") or "").split())
        reply = diagnostic.partition(";")[2].strip() if ";" in diagnostic else diagnostic
        default = Kind.HARD if status.startswith("5") else Kind.SOFT
        recipient = _address(block.get("original-recipient")) or _address(
            block.get("final-recipient")
        )
        found.append(
            Event(
                source="dsn",
                event_id=f"{report_id}/{recipient or len(found)}",
                kind=kind_of(status, reply, default=default),
                recipient=recipient,
                message_id=message_id,
                detail=" ".join(filter(None, (status, reply))) or action,
            )
        )
    return found


def _nonstandard(msg: Message, report_id: str, verp_id: str | None) -> list[Event]:
    temporary, permanent = all_failures(msg)
    if not permanent and not temporary:
        raise NotAReport("no delivery status, and no bounce flufl.bounce recognises")
    if not permanent:
        return []  # a warning: the server is still trying
    message_id = _original_id(msg, verp_id)
    return [
        Event(
            source="dsn",
            event_id=f"{report_id}/{address.decode()}",
            kind=Kind.HARD,
            recipient=address.decode().lower(),
            message_id=message_id,
            detail=f"permanent failure: {msg.get('subject', '')}".strip(),
        )
        for address in sorted(permanent)
    ]


def _arf(
    msg: Message, returned: Message | None, report_id: str, verp_id: str | None
) -> list[Event]:
    fields = None
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            inner = part.get_payload(0) if part.is_multipart() else None
            fields = inner if isinstance(inner, Message) else None
            if fields is None:  # some parsers keep it as text
                text = part.get_payload(decode=True)
                fields = email.message_from_bytes(text) if isinstance(text, bytes) else None
    if fields is None:
        raise NotAReport("a feedback report without its message/feedback-report part")
    feedback = (fields.get("feedback-type") or "").strip().lower()
    kind = Kind.POLICY if feedback in _FEEDBACK_POLICY else _FEEDBACK.get(feedback)
    if kind is None:
        return []  # not-spam, or a type this version does not act on
    recipient = _address(fields.get("original-rcpt-to"))
    if recipient is None and returned is not None:
        recipient = _address(returned.get("to"))  # Yahoo and AOL redact one or the other
    message_id = verp_id or (bracketed(returned.get("message-id")) if returned else None)
    agent = fields.get("user-agent") or fields.get("reporting-mta") or ""
    return [
        Event(
            source="arf",
            event_id=report_id,
            kind=kind,
            recipient=recipient,
            message_id=message_id,
            detail=f"feedback-type {feedback} {agent}".strip(),
        )
    ]
