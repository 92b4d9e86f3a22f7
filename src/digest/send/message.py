"""One issue message per recipient, built cheaply from MIME parts prepared once.

REFERENCE.md section 3. The rendered issue (premailer already run, placeholders inside) is split
once, at build time, into quoted-printable pieces around its placeholders; per recipient only
the placeholder values are encoded (a few dozen bytes) and a handful of headers written. Encoding
a whole 60 kB body as quoted-printable costs ~400 microseconds, the per-recipient path ~15.

Every header is written by hand rather than through ``email.policy``: the policy folds a long
``List-Unsubscribe`` into ``=?utf-8?q?...?=`` encoded words and providers then drop the one-click
button (REFERENCE.md section 3).
"""

from __future__ import annotations

import binascii
import html as html_lib
import secrets
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, parseaddr
from typing import Protocol

import idna

from digest.config import Newsletter, Settings
from digest.send.dkim import Signer, load_signer

CRLF = b"\r\n"

# The unsubscribe POST body RFC 8058 asks receivers to send: the exact value matters.
ONE_CLICK = "List-Unsubscribe=One-Click"


class RenderedLike(Protocol):
    """What digest.render.Rendered offers (helper B's type, structurally)."""

    @property
    def subject(self) -> str: ...

    @property
    def html(self) -> str: ...

    @property
    def text(self) -> str: ...

    def fill(
        self, *, unsubscribe_url: str, preferences_url: str, web_url: str, name: str | None
    ) -> tuple[str, str]: ...


def qp(data: bytes) -> bytes:
    """Quoted-printable body text (RFC 2045 6.7), lines <= 76, CRLF line ends."""
    body = binascii.b2a_qp(data.replace(b"\r\n", b"\n"), quotetabs=False, istext=True)
    return body.replace(b"\n", CRLF)


def _qp_piece(text: str) -> bytes:
    """A piece that may be followed by another piece mid-line: end it with a soft line break,
    so that joined pieces keep every line <= 76 however long the values are."""
    if not text:
        return b""
    out = qp(text.encode("utf-8"))
    return out if out.endswith(CRLF) else out + b"=" + CRLF


def header_text(value: str, name: str) -> str:
    """A header value as ASCII: raw if it already is, else RFC 2047 encoded words."""
    value = " ".join(value.split())  # no CR/LF can reach a header
    if value.isascii():
        return value
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def wire_address(address: str) -> str:
    """An address as it is written into ``To:`` and ``RCPT TO``.

    Never RFC 2047 encoded: encoded words are for display names, and ``=?utf-8?q?j=C3=B6rg?=@``
    is no address at all (RFC 2047 section 5). With an ASCII local part an internationalised
    domain becomes IDNA A-labels (RFC 5890), so message and envelope stay plain ASCII and reach
    any server. A non-ASCII local part has no ASCII form: it stays UTF-8, NFC (RFC 6532 3.1), and
    only a server offering SMTPUTF8 (RFC 6531) can take it.
    """
    address = "".join(address.split())
    if address.isascii():
        return address
    address = unicodedata.normalize("NFC", address)
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii():
        return address
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError:  # not a valid IDN: left as it is, SMTPUTF8 or a refusal decides
        return address


def address_header(display: str | None, address: str, name: str) -> str:
    """``Name <addr>`` with the display name quoted or RFC 2047 encoded as needed; the address
    itself as ``wire_address`` writes it."""
    address = wire_address(address)
    display = " ".join((display or "").split())[:200]
    if not display:
        return address
    if display.isascii():
        if any(c in display for c in '()<>[]:;@\\,."'):
            quoted = display.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{quoted}" <{address}>'
        return f"{display} <{address}>"
    encoded = Header(display, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{encoded} <{address}>"


_date_cache: list[object] = [0, ""]


def date_header(now: float | None = None) -> str:
    """A ``Date:`` value in UTC with a numeric zone, ``Mon, 02 Mar 2026 08:00:00 +0000``:
    RFC 5322 section 4.3 lists ``GMT`` among the obsolete zones, and ``-0000`` would say the
    local zone is unknown (3.3)."""
    # Formatting costs a few microseconds; a send does thousands of messages per second.
    second = int(time.time() if now is None else now)
    if _date_cache[0] != second:
        _date_cache[:] = [second, format_datetime(datetime.fromtimestamp(second, UTC))]
    return str(_date_cache[1])


@dataclass(slots=True)
class _Body:
    """One body (text or HTML) as quoted-printable pieces: bytes are static, ints are slots."""

    pieces: tuple[bytes | int, ...]

    def encode(self, values: tuple[bytes, ...]) -> bytes:
        return b"".join(p if isinstance(p, bytes) else values[p] for p in self.pieces)


_SLOTS = ("unsubscribe_url", "preferences_url", "web_url", "name")


def _split(filled: str, sentinels: tuple[str, ...]) -> _Body:
    pieces: list[bytes | int] = []
    rest = filled.replace("\r\n", "\n")
    while True:
        found = [(rest.find(s), i) for i, s in enumerate(sentinels) if s in rest]
        if not found:
            break
        at, slot = min(found)
        if piece := _qp_piece(rest[:at]):
            pieces.append(piece)
        pieces.append(slot)
        rest = rest[at + len(sentinels[slot]) :]
    if rest:
        pieces.append(qp(rest.encode("utf-8")))
    return _Body(tuple(pieces))


@dataclass(slots=True)
class _Fast:
    """The bodies split at their placeholders, for named and unnamed recipients."""

    text: _Body
    html: _Body
    text_unnamed: _Body
    html_unnamed: _Body
    html_escape: Callable[[str], str]


_ESCAPES: tuple[Callable[[str], str], ...] = (
    lambda s: html_lib.escape(s, quote=True),
    lambda s: html_lib.escape(s, quote=False),
    lambda s: s,
)


def _prepare(rendered: RenderedLike, web_url: str) -> _Fast | None:
    """Find the placeholders by filling sentinels; None if fill() is not a plain substitution
    (then every message is filled and encoded whole: correct, only slower)."""
    tag = secrets.token_hex(6)
    sentinels = tuple(f"zq{tag}{i}qz" for i in range(len(_SLOTS)))
    html, text = rendered.fill(
        unsubscribe_url=sentinels[0],
        preferences_url=sentinels[1],
        web_url=sentinels[2],
        name=sentinels[3],
    )
    html_u, text_u = rendered.fill(
        unsubscribe_url=sentinels[0], preferences_url=sentinels[1], web_url=sentinels[2], name=None
    )
    fast = _Fast(
        _split(text, sentinels),
        _split(html, sentinels),
        _split(text_u, sentinels),
        _split(html_u, sentinels),
        _ESCAPES[0],
    )
    probe = {
        "unsubscribe_url": "https://a.example/unsubscribe/Tok-_09",
        "preferences_url": "https://a.example/preferences/Tok-_09",
        "web_url": web_url,
    }
    for name in ("Zoë <&> \"q\" 'x'", None):
        want_html, want_text = rendered.fill(**probe, name=name)
        got_text = _decode(fast, probe, name, html=False, escape=lambda s: s)
        if got_text != want_text.replace("\r\n", "\n"):
            return None
    for escape in _ESCAPES:
        if all(
            _decode(fast, probe, name, html=True, escape=escape)
            == rendered.fill(**probe, name=name)[0].replace("\r\n", "\n")
            for name in ("Zoë <&> \"q\" 'x'", None)
        ):
            fast.html_escape = escape
            return fast
    return None


def _decode(
    fast: _Fast, values: dict[str, str], name: str | None, *, html: bool, escape: Callable[..., str]
) -> str:
    body = (fast.html if html else fast.text) if name is not None else None
    if body is None:
        body = fast.html_unnamed if html else fast.text_unnamed
    encoded = tuple(
        _qp_piece(escape(v))
        for v in (
            values["unsubscribe_url"],
            values["preferences_url"],
            values["web_url"],
            name or "",
        )
    )
    return binascii.a2b_qp(body.encode(encoded).replace(CRLF, b"\n")).decode("utf-8")


@dataclass(slots=True)
class MessageTemplate:
    """An issue variant ready to be personalised: build once, then ``message()`` per recipient."""

    rendered: RenderedLike
    base_url: str
    web_url: str
    static_headers: bytes
    boundary: bytes
    unsubscribe_mailto: str | None
    fast: _Fast | None
    signer: Signer | None
    _subjects: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        rendered: RenderedLike,
        *,
        newsletter: Newsletter,
        settings: Settings,
        issue_number: int | None,
        archive_key: str | None = None,
    ) -> MessageTemplate:
        """``archive_key``: the edition's name in the web archive when it is not its number
        (a monthly edition's 2026-11)."""
        base = settings.base_url
        key = archive_key or (str(issue_number) if issue_number is not None else None)
        web_url = f"{base}/archive/{key}" if key is not None else f"{base}/archive"
        from_name, from_addr = parseaddr(newsletter.from_)
        reply_name, reply_addr = parseaddr(newsletter.reply_to)
        # '=_' never occurs in quoted-printable text, so the boundary cannot collide with a body.
        boundary = f"=_digest_{secrets.token_hex(12)}"
        list_id = address_header(newsletter.title, newsletter.list_id_value, "List-Id")
        headers = [
            f"From: {address_header(from_name, from_addr, 'From')}",
            f"Reply-To: {address_header(reply_name, reply_addr, 'Reply-To')}",
            f"List-Id: {list_id}",
            f"List-Unsubscribe-Post: {ONE_CLICK}",
            "Precedence: bulk",
            "Auto-Submitted: auto-generated",
        ]
        if issue_number is not None:
            headers.append(f"Feedback-ID: issue-{issue_number}:{newsletter.list_id_value}:digest")
        headers += [
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
        ]
        return cls(
            rendered=rendered,
            base_url=base,
            web_url=web_url,
            static_headers=("\r\n".join(headers) + "\r\n").encode("utf-8"),
            boundary=boundary.encode("ascii"),
            unsubscribe_mailto=settings.unsubscribe_mailto,
            fast=_prepare(rendered, web_url),
            signer=load_signer(settings),
        )

    def _subject(self, prefix: str) -> bytes:
        cached = self._subjects.get(prefix)
        if cached is None:
            value = header_text(prefix + self.rendered.subject, "Subject")
            cached = self._subjects[prefix] = f"Subject: {value}\r\n".encode("ascii")
        return cached

    def bodies(self, *, token: str, name: str | None) -> tuple[bytes, bytes]:
        """(text, html) as quoted-printable bytes for one recipient."""
        unsubscribe_url = f"{self.base_url}/unsubscribe/{token}"
        preferences_url = f"{self.base_url}/preferences/{token}"
        if self.fast is None:
            html, text = self.rendered.fill(
                unsubscribe_url=unsubscribe_url,
                preferences_url=preferences_url,
                web_url=self.web_url,
                name=name,
            )
            return qp(text.encode("utf-8")), qp(html.encode("utf-8"))
        fast = self.fast
        esc = fast.html_escape
        urls = (unsubscribe_url, preferences_url, self.web_url)
        text_values = tuple(_qp_piece(v) for v in (*urls, name or ""))
        html_values = tuple(_qp_piece(esc(v)) for v in (*urls, name or ""))
        if name is None:
            return fast.text_unnamed.encode(text_values), fast.html_unnamed.encode(html_values)
        return fast.text.encode(text_values), fast.html.encode(html_values)

    def message(
        self,
        *,
        to: str,
        name: str | None,
        token: str,
        message_id: str,
        subject_prefix: str = "",
    ) -> bytes:
        """The exact bytes to send (DKIM-signed when configured), CRLF line ends."""
        if name is not None:
            name = " ".join(name.split()) or None
        text, html = self.bodies(token=token, name=name)
        unsubscribe = f"<{self.base_url}/unsubscribe/{token}>"
        if self.unsubscribe_mailto:
            # RFC 2369: a list of URLs; folding at the comma keeps the https URL whole.
            unsubscribe += f",\r\n <mailto:{self.unsubscribe_mailto}?subject=unsubscribe>"
        personal = (
            f"Date: {date_header()}\r\n"
            f"Message-ID: {message_id}\r\n"
            f"To: {address_header(name, to, 'To')}\r\n"
            f"List-Unsubscribe: {unsubscribe}\r\n"
        ).encode()  # UTF-8: ASCII unless the address has a non-ASCII local part (RFC 6532)
        b = self.boundary
        message = b"".join(
            (
                personal,
                self._subject(subject_prefix),
                self.static_headers,
                b"\r\n--",
                b,
                b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                text,
                b"\r\n--",
                b,
                b"\r\nContent-Type: text/html; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                html,
                b"\r\n--",
                b,
                b"--\r\n",
            )
        )
        return message if self.signer is None else self.signer(message)


def message_id(domain: str) -> str:
    """A fresh Message-ID (RFC 5322 3.6.4): random, so it reveals no row id."""
    return f"<{secrets.token_hex(12)}@{domain}>"
