"""Optional DKIM signing with dkimpy (REFERENCE.md section 3).

The signature covers the exact bytes handed to SMTP: the caller signs, then sends those bytes
unchanged (re-serialising a signed message would break it). dkimpy's default header list omits
``List-Unsubscribe-Post``, so the list is passed explicitly: both one-click headers must be signed
for Gmail and Yahoo to honour them.
"""

from __future__ import annotations

from collections.abc import Callable

import dkim

from digest.config import Settings
from digest.errors import ConfigError

Signer = Callable[[bytes], bytes]

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)


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
                include_headers=list(SIGNED_HEADERS),
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
