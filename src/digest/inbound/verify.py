"""Is this mail really from the newsletter? DKIM (RFC 6376, dkimpy), aligned with From.

A From header costs nothing to forge; a DKIM signature proves that the signing domain (d=) sent
these bytes. So a letter counts only when one of its signatures verifies and its d= is the From
domain or a parent or child of it (DMARC's relaxed alignment, RFC 7489 3.1.1, without the public
suffix list: digest only ever compares a domain with its own parents and children). A valid
signature from the mailing service's own domain (d=esp.example) proves nothing about who wrote
From. A signature with l= (a body length) is refused: anything appended after that length
would ride along on it, and that is exactly where an attacker would write.

Production looks the keys up in DNS (dkimpy's resolver, dnspython); tests pass ``dnsfunc``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dkim

DnsFunc = Callable[..., bytes | None]
DNS_TIMEOUT = 5  # seconds per key lookup (dkimpy's default)

_QUIET = logging.getLogger("digest.inbound.dkim")  # dkimpy logs each failure as an error
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def aligned(signing_domain: str, from_domain: str) -> bool:
    d, f = signing_domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return d == f or f.endswith("." + d) or d.endswith("." + f)


def dkim_problem(raw: bytes, sender: str, *, dnsfunc: DnsFunc | None = None) -> str | None:
    """None when a signature verifies and aligns with ``sender``'s domain; else why not."""
    from_domain = sender.rpartition("@")[2]
    try:
        verifier = dkim.DKIM(raw, logger=_QUIET, timeout=DNS_TIMEOUT)
    except dkim.DKIMException as exc:
        return f"DKIM does not verify: {exc}"
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    if count == 0:
        return "DKIM signature missing"
    problems: list[str] = []
    for idx in range(count):
        try:
            if dnsfunc is None:
                ok = verifier.verify(idx=idx)
            else:
                ok = verifier.verify(idx=idx, dnsfunc=dnsfunc)
        except dkim.DKIMException as exc:
            # "body hash mismatch (got b'...', expected b'...')": the words, not the hashes
            problems.append(f"DKIM does not verify: {str(exc).split(' (')[0]}")
            continue
        domain = (verifier.domain or b"").decode("ascii", "replace")
        if not ok:
            problems.append(f"DKIM does not verify (d={domain})")
        elif b"l" in verifier.signature_fields:
            problems.append(f"DKIM signature covers only part of the body (l=, d={domain})")
        elif not aligned(domain, from_domain):
            problems.append(f"DKIM domain does not match From (d={domain}, From {from_domain})")
        else:
            return None
    # The most telling reason: a valid but misaligned signature says more than a broken one.
    return next((p for p in problems if "does not match" in p), problems[0])
