"""What a received newsletter says: who sent it, its title, its own link, its lede, and whether
it is the newsletter's opt-in confirmation rather than a letter. Parsed with the stdlib email
package (policy default); nothing here decides whether it is trusted (verify.py does).
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from email.utils import getaddresses, parsedate_to_datetime

from digest.feeds.text import clip
from digest.inbound.html import Link, ReadHtml, read_html, text_to_html

LEDE_WORDS = 6  # a paragraph shorter than this is a heading, a greeting line or a button
# The "view online" boilerplate: the letter's own web copy when it links one, never its lede.
_VIEW_ONLINE = re.compile(
    r"\b(view|read|open|see)\b.{0,25}\b(online|in (your |a |the )?browser|on the web|"
    r"web version|on (our |the )?(web)?site)\b|\bweb version\b",
    re.IGNORECASE,
)
_BOILERPLATE = re.compile(
    _VIEW_ONLINE.pattern + r"|having trouble (viewing|reading)|unsubscribe|"
    r"update your (email )?preferences|forwarded (this|to you)|add us to your address book",
    re.IGNORECASE,
)
# A newsletter's double opt-in: "Confirm your subscription", "Please verify your email".
_CONFIRM_TEXT = re.compile(
    r"\b(confirm|verify|activate)\w*\b.{0,40}\b(subscription|subscribe|sign[- ]?up|e-?mail|"
    r"address|account)|\b(confirm|verify|activate) (it|now|here|me)\b|\bopt[- ]?in\b",
    re.IGNORECASE,
)
_CONFIRM_LINK = re.compile(r"confirm|verif|activat|opt[-_]?in|double[-_]?opt", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.IGNORECASE)
_ANGLE_URL = re.compile(r"<(https?://[^>\s]+)>", re.IGNORECASE)


@dataclass(slots=True)
class Letter:
    id: str  # sha256 of the Message-ID, else of the bytes
    message_id: str | None
    senders: list[str]  # the From addresses, lower-cased
    subject: str
    published: datetime | None  # the Date header, UTC
    url: str | None  # its own web copy: "view online", canonical, Archived-At, List-Post
    lede: str  # plain text, the first real paragraphs
    words: int
    safe_html: str  # the sanitised copy, served at BASE/letters/<id> when it has no url
    confirm_url: str | None  # set when it is a newsletter's opt-in confirmation
    message: EmailMessage


def mail_id(raw: bytes, message_id: str | None) -> str:
    key = message_id.strip().encode() if message_id else raw
    return hashlib.sha256(key).hexdigest()


def parse_letter(raw: bytes) -> Letter:
    message = email.message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    message_id = _header(message, "message-id") or None
    subject = " ".join(_header(message, "subject").split())
    read = _read_body(message, subject)
    paragraphs = [p for p in read.paragraphs if not _is_boilerplate(p) and p != subject]
    real = [p for p in paragraphs if len(p.split()) >= LEDE_WORDS] or paragraphs
    text = " ".join(read.paragraphs)
    return Letter(
        id=mail_id(raw, message_id),
        message_id=message_id,
        senders=[a.lower() for _, a in getaddresses([_header(message, "from")]) if a],
        subject=subject,
        published=_date(_header(message, "date")),
        url=_own_url(message, read),
        lede=clip(" ".join(real[:3])),
        words=len(text.split()),
        safe_html=read.safe,
        confirm_url=_confirm_url(subject, read),
        message=message,
    )


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except (ValueError, IndexError, TypeError):  # a malformed header the parser chokes on
        return ""
    return str(value) if value is not None else ""


def _read_body(message: EmailMessage, subject: str) -> ReadHtml:
    part = message.get_body(preferencelist=("html", "plain"))  # one walk: headers cost here
    if part is None:
        return ReadHtml(safe="")
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):  # an unknown charset, a bad encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ReadHtml(safe="")
    if part.get_content_subtype() == "html":
        return read_html(content, title=subject)
    return _read_text(content)


def _read_text(text: str) -> ReadHtml:
    blocks = [" ".join(b.split()) for b in re.split(r"\n\s*\n", text)]
    links: list[Link] = []
    for block in blocks:
        for url in _URL.findall(block):
            links.append(Link(url.rstrip(".,;:"), block))
    return ReadHtml(safe=text_to_html(text), paragraphs=[b for b in blocks if b], links=links)


def _is_boilerplate(paragraph: str) -> bool:
    return len(paragraph) < 200 and _BOILERPLATE.search(paragraph) is not None


def _http(url: str | None) -> str | None:
    return url if url and url.lower().startswith(("http://", "https://")) else None


def _own_url(message: EmailMessage, read: ReadHtml) -> str | None:
    """The letter's own web copy. Archived-At (RFC 5064) names this message's archived copy;
    List-Post is taken only as an http(s) URL; List-Archive is not: it names the list's whole
    archive, the same for every letter."""
    for link in read.links:
        if _VIEW_ONLINE.search(link.text) and _http(link.href):
            return link.href
    if read.canonical:
        return read.canonical
    for name in ("archived-at", "list-post"):
        value = _header(message, name)
        if angled := _ANGLE_URL.search(value):
            return angled[1]
        if bare := _URL.match(value):
            return bare[0]
    return None


def _confirm_url(subject: str, read: ReadHtml) -> str | None:
    """The confirm link of a newsletter's own opt-in mail, None for a letter. Both must hold:
    the subject or the opening asks to confirm, and a link says confirm/verify/activate."""
    opening = " ".join(read.paragraphs[:6])[:1500]
    if not (_CONFIRM_TEXT.search(subject) or _CONFIRM_TEXT.search(opening)):
        return None
    links = [link for link in read.links if _http(link.href)]
    for link in links:  # the button's words first: "Yes, confirm my subscription"
        if _CONFIRM_LINK.search(link.text):
            return link.href
    for link in links:
        if _CONFIRM_LINK.search(link.href):
            return link.href
    return None


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC, origin unknown (RFC 5322 3.3)
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
