"""VERP (variable envelope return path): each message's own bounce address.

With DIGEST_BOUNCE_ADDRESS=bounces@example.org, the delivery whose Message-ID is
``<0123abcd...@example.org>`` is sent with MAIL FROM ``bounces+0123abcd...@example.org``: a
delivery report that comes back to that address names the delivery it is about, even when the
reporting server mangles or omits the recipient and the original headers.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"^[0-9a-f]{8,64}$")


def token_of(message_id: str) -> str:
    """The VERP token of a Message-ID: its local part (the send ledger's random hex)."""
    return message_id.strip().strip("<>").partition("@")[0]


def envelope_sender(bounce_address: str | None, message_id: str, *, default: str) -> str:
    """MAIL FROM for one delivery: ``bounces+<token>@domain``, or ``default`` without a bounce
    address (or with a Message-ID whose local part is no ledger token)."""
    token = token_of(message_id)
    if not bounce_address or not _TOKEN.match(token):
        return default
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{token}@{domain}"


def token_from(address: str, bounce_address: str) -> str | None:
    """The token of ``bounces+<token>@domain`` when it is our bounce address; None otherwise."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = bounce_address.rpartition("@")
    base, plus, token = local.partition("+")
    if not plus or base.lower() != base_local.lower() or domain.lower() != base_domain.lower():
        return None
    token = token.lower()
    return token if _TOKEN.match(token) else None
