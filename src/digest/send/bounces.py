"""What an SMTP refusal says about the reader, read as a mail operator would (RFC 3463).

    hard       the address is bad (5.1.x, 5.2.1, or a bare 5xx saying "no such user"):
               suppress the subscriber at once
    policy     the server refuses *us* (5.7.x: a blocklisting, DMARC, spam): never the reader's
               fault, so never suppress; defer, and tell the curator
    soft       the mailbox cannot take mail now (5.2.2 full, 4.2.2, other 5.x.x): defer; after
               SOFT_LIMIT soft bounces on different issues, suppress
    transient  a 4xx, a dropped or timed-out connection: retry within the run, then defer

A 550 5.7.1 "blocked using zen.spamhaus.org" at RCPT is a statement about the sending IP, which
big providers give for a whole domain at once: treating it as "no such user" (as the RCPT stage
alone suggests) would unsubscribe every reader at that provider.
"""

from __future__ import annotations

import re
from enum import StrEnum

# Soft bounces on this many different issues suppress the address (listmonk keeps soft
# bounces forever by default; a mailbox full for three issues in a row is abandoned).
SOFT_LIMIT = 3

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# A 5xx without an enhanced code: only a clear statement that the mailbox does not exist is hard.
_NO_SUCH_USER = re.compile(
    r"no (such )?(user|mailbox|recipient|account)|user(name)? unknown|unknown (user|recipient"
    r"|mailbox)|mailbox (not found|unavailable|does not exist)|(user|mailbox|recipient|address)"
    r" does not exist|invalid (recipient|mailbox)",
    re.IGNORECASE,
)
_POLICY_WORDS = re.compile(
    r"block(ed|list)|black ?list|spamhaus|\bspam\b|reputation|dmarc|\bpolicy\b|denied",
    re.IGNORECASE,
)


class Bounce(StrEnum):
    HARD = "hard"
    POLICY = "policy"
    SOFT = "soft"
    TRANSIENT = "transient"


def classify(code: int, text: str) -> Bounce | None:
    """The class of a reply; None for a success. ``code`` 0: the connection failed."""
    if 200 <= code < 300:
        return None
    enhanced = _ENHANCED.match(text)
    if enhanced:
        klass, subject, detail = enhanced.groups()
        if subject == "7":
            # 4.7.x is throttling or greylisting (Gmail's 4.7.28): the server's, not ours.
            return Bounce.POLICY if klass == "5" else Bounce.TRANSIENT
        if (subject, detail) == ("2", "2"):
            return Bounce.SOFT  # mailbox full, whichever class the server chose
        if klass == "5":
            if subject == "1" or (subject, detail) == ("2", "1"):
                return Bounce.HARD
            return Bounce.SOFT
        return Bounce.TRANSIENT
    if code >= 500:
        if _NO_SUCH_USER.search(text):
            return Bounce.HARD
        if _POLICY_WORDS.search(text):
            return Bounce.POLICY
        return Bounce.SOFT
    return Bounce.TRANSIENT
