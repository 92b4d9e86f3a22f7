"""Values a subscriber is made of: the address, the name, categories, tokens, consent text."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email

from digest.config import BlogsFile, Newsletter
from digest.errors import SubscriberError
from digest.models import Subscriber
from digest.store import subscribers as store
from digest.store.db import Connection

CONFIRM_TTL = timedelta(hours=72)  # REFERENCE.md 5: confirmation tokens expire in 24-72 h
MAILS_PER_DAY = 3  # signup mails per address per 24 h, whoever asks (list-bombing)
NAME_MAX = 100
# How often a reader hears from the newsletter: every weekly issue, or only the monthly edition
# ("The month in TITLE", the month's best). The first is every reader's until they choose.
CADENCES = ("weekly", "monthly")

# Unicode line and paragraph separators and the bidi overrides: not control characters (Cc) but
# just as able to break a header or disguise a name.
_FORBIDDEN_IN_NAME = set("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True, slots=True)
class Mail:
    """A transactional mail to send: a confirmation or an "already subscribed" notice."""

    to: str
    subject: str
    text: str


# --- values ---------------------------------------------------------------------------------


def normalise_email(address: str) -> str:
    """The canonical form of an address, or SubscriberError. Never looks up DNS.

    email-validator lowercases the domain and NFC-normalises; the local part is lowercased too:
    case-sensitive local parts exist on paper only, and ``Ann@x`` and ``ann@x`` must not become
    two subscribers.
    """
    text = address.strip()
    if not text:
        raise SubscriberError("no address given", hint="enter an address such as ann@example.org")
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(
            f"{text!r} is not a valid address: {exc}",
            email=text,
            hint="check for typos; an address looks like ann@example.org",
        ) from None
    return valid.normalized.lower()


def clean_name(name: str | None) -> str | None:
    """Trimmed, or None when empty. CR, LF and other control characters are refused, not
    stripped: the name goes into a To: header, and a quiet fix would hide an injection attempt."""
    if name is None:
        return None
    for char in name:  # before trimming: a trailing CR/LF is refused too
        if unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn") or char in _FORBIDDEN_IN_NAME:
            raise SubscriberError(
                f"the name contains a control character ({ascii(char)})",
                hint="use letters, digits, spaces and punctuation only",
            )
    text = name.strip()
    if not text:
        return None
    if len(text) > NAME_MAX:
        raise SubscriberError(
            f"the name is {len(text)} characters long", hint=f"use at most {NAME_MAX} characters"
        )
    return text


def clean_categories(blogs: BlogsFile, categories: Iterable[str] | None) -> frozenset[str] | None:
    """The chosen category ids; None means all of them (and any added later)."""
    if categories is None:
        return None
    chosen = frozenset(c.strip() for c in categories if c.strip())
    known = [c.id for c in blogs.categories]
    unknown = sorted(chosen - set(known))
    if unknown:
        raise SubscriberError(
            f"unknown categor{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}",
            hint=f"choose from: {', '.join(known)}",
        )
    if not chosen:
        raise SubscriberError("no category chosen", hint="choose at least one category")
    return None if chosen == set(known) else chosen


def clean_cadence(value: str | None) -> str:
    """``weekly`` or ``monthly`` (any case, trimmed); nothing given is weekly."""
    text = (value or "").strip().lower()
    if not text:
        return "weekly"
    if text not in CADENCES:
        raise SubscriberError(f"unknown cadence {value!r}", hint=f"choose {' or '.join(CADENCES)}")
    return text


def cadence_words(newsletter: Newsletter, cadence: str) -> str:
    """What a reader of that cadence receives, in the signup mails' words: "X every week"."""
    if cadence == "monthly":
        return f"the monthly edition of {newsletter.title}, the month's best, once a month"
    return f"{newsletter.title} every week"


def parse_categories(text: str | None) -> list[str] | None:
    """``"ml, music"`` (commas, semicolons or spaces) -> ids; empty -> None (all)."""
    if text is None or not text.strip():
        return None
    return [part for part in re.split(r"[,;\s]+", text.strip()) if part]


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits, 43 characters: fits a short one-click URL


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def consent_text(newsletter: Newsletter) -> str:
    """What the subscribe form says; stored word for word with each consent record (the
    cadence chosen is stored beside it)."""
    return (
        f"Send me {newsletter.title}, an email by {newsletter.curator}, at this address: weekly, "
        "or monthly with the best of each month, as I choose. I can unsubscribe at any time with "
        "one click from any issue."
    )


def find_by_token(conn: Connection, token: str) -> Subscriber | None:
    """The subscriber whose public token this is. The token never names a row id."""
    if not token or len(token) > 100:
        return None
    found = store.get_by_token(conn, token)
    if found is None or not hmac.compare_digest(found.token.encode(), token.encode()):
        return None
    return found
