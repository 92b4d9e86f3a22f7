"""One piece of feedback about a message already accepted: a bounce or a complaint."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from digest.send.bounces import Bounce, classify

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_REPLY = re.compile(r"^[245]\d\d\b")


class Kind(StrEnum):
    """The RFC 3463 reading of a late bounce (digest.send.bounces), plus complaints (RFC 5965).

    A delayed refusal is never 'transient': the server accepted the message and gave up later,
    so what would be a retry at SMTP time counts as a soft bounce here."""

    HARD = "hard"
    SOFT = "soft"
    POLICY = "policy"
    COMPLAINT = "complaint"


@dataclass(frozen=True, slots=True)
class Event:
    source: str  # ses | postmark | mailgun | sendgrid | dsn | arf
    event_id: str  # the provider's id, or the report's own Message-ID: applied once
    kind: Kind
    recipient: str | None  # the reader's address, when the source says
    message_id: str | None  # the original Message-ID, <...@...>, when known
    detail: str
    at: datetime | None = None


def kind_of(status: str | int | None, text: str = "", *, default: Kind = Kind.SOFT) -> Kind:
    """The kind of a late bounce from its status (an enhanced code such as 5.1.1, or a reply
    code such as 550) and its diagnostic text, read by digest.send.bounces.classify; the
    provider's own class (``default``) when neither says more."""
    status_text = str(status or "").strip()
    text = text.strip()
    if status_text.endswith(".0.0"):
        status_text = ""  # "5.0.0, other": the text (a reply code, its words) says more
    if _ENHANCED.match(status_text):
        reading = classify(550 if status_text[0] == "5" else 450, f"{status_text} {text}")
    elif status_text.isdigit() and len(status_text) == 3:
        reading = classify(int(status_text), text)
    elif _REPLY.match(text):
        reading = classify(int(text[:3]), text[3:].lstrip(" -"))
    else:
        # Words alone: only a clear "no such user" or a blocklisting overrides the provider.
        reading = classify(550, text) if text else None
        if reading is Bounce.SOFT:
            reading = None
    if reading is Bounce.HARD:
        return Kind.HARD
    if reading is Bounce.POLICY:
        return Kind.POLICY
    if reading is None:
        return default
    return Kind.SOFT  # soft, or a 4xx the server gave up retrying


def bracketed(message_id: str | None) -> str | None:
    """``abc@host`` or ``<abc@host>`` as ``<abc@host>``; None for nothing usable."""
    if not message_id:
        return None
    value = message_id.strip()
    if not value:
        return None
    return value if value.startswith("<") else f"<{value}>"
