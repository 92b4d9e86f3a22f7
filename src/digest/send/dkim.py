"""Optional DKIM signing with dkimpy (REFERENCE.md section 3).

The signature covers the exact bytes handed to SMTP: the caller signs, then sends those bytes
unchanged (re-serialising a signed message would break it).

Which headers: every header digest wrote, read off the message itself, so a header added later
(``Feedback-ID``, ``Precedence``, ``Auto-Submitted`` were left out of a fixed list once) is
signed without anyone remembering to list it. dkimpy's default list would omit
``List-Unsubscribe-Post``, and Gmail and Yahoo honour one-click only when both one-click headers
are signed (RFC 8058 section 4).

Oversigning (RFC 6376 sections 5.4.2 and 8.15): a verifier hashes a header named n times in
``h=`` from the bottom up, so naming ``From``, ``Subject`` and both ``List-Unsubscribe``
headers once more than they occur signs their absence too. A second copy prepended on the way
(a forged unsubscribe target above ours, which clients read first) then breaks the signature
instead of riding along on a valid one.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import dkim

from digest.config import Settings
from digest.errors import ConfigError

Signer = Callable[[bytes], bytes]

OVERSIGNED = (b"from", b"subject", b"list-unsubscribe", b"list-unsubscribe-post")
# RFC 6376 5.4.1 (and dkimpy refuses them): trace and bcc headers change on the way.
_NEVER_SIGNED = frozenset(dkim.DKIM.SHOULD_NOT)

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.M)


def signed_headers(message: bytes) -> list[bytes]:
    """The ``h=`` list for this message: each header once per occurrence, in order, then one
    more of each oversigned name."""
    end = _HEAD_END.search(message)
    head = message[: end.start()] if end else message
    names = [m[1].lower() for m in _FIELD_NAME.finditer(head)]
    return [n for n in names if n not in _NEVER_SIGNED] + list(OVERSIGNED)


def load_signer(settings: Settings) -> Signer | None:
    """A function signing a message, or None when DKIM is not configured."""
    if not settings.dkim_enabled:
        return None
    assert settings.dkim_key_file and settings.dkim_domain and settings.dkim_selector
    try:
        key = settings.dkim_key_file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"DIGEST_DKIM_KEY_FILE: cannot read {settings.dkim_key_file}: {exc.strerror}",
            path=str(settings.dkim_key_file),
            hint="point it at the PEM private key whose public half is in DNS",
        ) from None
    selector = settings.dkim_selector.encode("ascii")
    domain = settings.dkim_domain.encode("ascii")

    def sign(message: bytes) -> bytes:
        try:
            header = dkim.sign(
                message,
                selector,
                domain,
                key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=signed_headers(message),
            )
        except dkim.DKIMException as exc:
            raise ConfigError(
                f"DKIM signing failed: {exc}",
                path=str(settings.dkim_key_file),
                hint="DIGEST_DKIM_KEY_FILE must hold an RSA private key in PEM form",
            ) from None
        return bytes(header) + message

    sign(b"From: probe@example.org\r\nTo: probe@example.org\r\n\r\nprobe\r\n")  # fail early
    return sign
