"""The one seam to feedparser (RSS, Atom), plus JSON Feed 1.1, into plain ``Entry`` values.

Rules from REFERENCE.md sections 1 and 2:
- feedparser gets the bytes plus the real response headers (without a content type even a clean
  feed is flagged bozo), and runs with ``sanitize_html=False, resolve_relative_uris=False``: the
  sanitiser and URI resolver cost ~15x, and digest keeps no feed HTML, only a plain-text excerpt.
- ``bozo`` means odd, not unusable: entries parsed -> keep them and warn; none -> a feed error.
- Identity within a blog: guid / Atom id, else the link, else a hash of title and date.
- Plain RSS 2.0 and Atom 1.0 go through fastfeedparser first (fastparse.py, ~3x less CPU on
  XXIIVV): it takes only documents it reads as feedparser does; the rest come here.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import time
import xml.sax
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
import feedparser.api
import feedparser.mixin

from digest.errors import FeedError
from digest.feeds import fastparse, thumbnail
from digest.feeds.text import EXCERPT_CHARS, clip, excerpt, html_to_text, squash
from digest.models import Entry

TITLE_CHARS = 200
# Single-byte charsets that servers claim by default whatever the file holds (Apache's
# AddDefaultCharset, RFC 2616's ISO-8859-1 default for text/*).
_LEGACY_CHARSETS = frozenset(
    {"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii", "windows-1252"}
)
_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([^\s;\"]+)\"?", re.IGNORECASE)
_HTML_START = re.compile(
    rb"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html)", re.IGNORECASE | re.DOTALL
)
# feedparser's hook for choosing its SAX driver: ours first (see expat.py for why).
_SAX_DRIVER = "digest.feeds.expat"
if _SAX_DRIVER not in feedparser.api.PREFERRED_XML_PARSERS:
    feedparser.api.PREFERRED_XML_PARSERS.insert(0, _SAX_DRIVER)


def cp1252_table(mapping: Mapping[int, str]) -> str | None:
    """``mapping`` (code point -> character) as a string indexed by code point, or None.

    feedparser runs ``text.translate(_cp1252)`` on every element's text (Windows-1252 bytes
    mislabelled as Latin-1 -> the characters meant). With its dict, ``str.translate`` raises
    and clears a KeyError for every character of a text that is not pure ASCII: a fifth of
    feedparser's time on a 1 MB feed. A string table maps every character below U+10000 to
    itself without raising (characters beyond it still raise IndexError, a LookupError, and
    stay as they are): the same result, about twice as fast. Only single characters can be
    put in a string table; anything else keeps feedparser's dict.
    """
    if not all(
        isinstance(code, int) and 0 <= code < 0x10000 and isinstance(char, str) and len(char) == 1
        for code, char in mapping.items()
    ):
        return None
    chars = list(map(chr, range(0x10000)))
    for code, char in mapping.items():
        chars[code] = char
    return "".join(chars)


# feedparser.html keeps the dict (its loose parser and sanitiser use it; both are off here).
if isinstance(getattr(feedparser.mixin, "_cp1252", None), dict):
    feedparser.mixin._cp1252 = cp1252_table(feedparser.mixin._cp1252) or feedparser.mixin._cp1252


@dataclass(slots=True)
class ParsedFeed:
    title: str | None
    entries: list[Entry]
    warning: str | None = None
    link: str | None = None  # the site the feed belongs to, when it says
    kind: str = ""  # rss20, atom10, json11, ... as detected

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled with its entries as plain tuples: a parse worker's answer crosses the
        process boundary in about half the CPU (a cold run of 500 feeds: 70,000 entries)."""
        rows = [tuple(getattr(e, name) for name in _ENTRY_FIELDS) for e in self.entries]
        return _unpickle_feed, (self.title, rows, self.warning, self.link, self.kind)


_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


def _unpickle_feed(
    title: str | None, rows: list[tuple[Any, ...]], warning: str | None, link: str | None, kind: str
) -> ParsedFeed:
    return ParsedFeed(title, [Entry(*row) for row in rows], warning, link, kind)


def parse_feed(
    body: bytes, *, url: str, headers: Mapping[str, str], fast: bool = True
) -> ParsedFeed:
    """Parse a fetched feed; raises FeedError when the body is not a usable feed.

    ``fast``: try fastfeedparser first (fastparse.py: it takes only documents it reads as
    feedparser does); False: feedparser only, the reference.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    if not body.strip():
        raise FeedError("not a feed: the response was empty", url=url)
    if "json" in content_type.lower() or body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        return parse_json_feed(body, url=url)
    return _parse_xml(body, url=url, headers=lowered, fast=fast)


# --- RSS and Atom through feedparser ----------------------------------------------------------


def _feedparser_headers(body: bytes, url: str, headers: dict[str, str]) -> dict[str, str]:
    # The real headers only: no synthesised Content-Location (relative links are resolved
    # against the feed URL here, which spares feedparser a urljoin per element).
    out = dict(headers)
    content_type = out.get("content-type", "")
    match = _CHARSET.search(content_type)
    if match and match[1].lower() in _LEGACY_CHARSETS and not body.isascii():
        # A body labelled Latin-1 that decodes as UTF-8 is UTF-8: valid multi-byte UTF-8
        # sequences almost never occur in real Latin-1 text (the reasoning behind every
        # browser's encoding sniffer). Without this, feedparser trusts the label and every
        # accented or Japanese title turns into mojibake.
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            out["content-type"] = _CHARSET.sub("; charset=utf-8", content_type)
    return out


def _parse_xml(body: bytes, *, url: str, headers: dict[str, str], fast: bool) -> ParsedFeed:
    headers = _feedparser_headers(body, url, headers)
    shaped = fastparse.parse(body, headers) if fast else None
    if shaped is not None:
        kind, channel, raw_entries = shaped
        return ParsedFeed(
            title=_title(channel) or None,
            entries=list(_entries(raw_entries, url)),
            link=_link(channel.get("link"), url),
            kind=kind,
        )
    parsed: Any = feedparser.parse(
        body,
        response_headers=headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    version = str(parsed.get("version") or "")
    warning = None
    if parsed.get("bozo"):
        problem = _describe_bozo(parsed.get("bozo_exception"))
        if not parsed.entries and (not version or _is_fatal(parsed.get("bozo_exception"))):
            if not version and _HTML_START.match(body[:4096]):
                raise FeedError("not a feed: got an HTML page", url=url)
            raise FeedError(f"not a feed: {problem}", url=url)
        warning = problem
    elif not version:
        if _HTML_START.match(body[:4096]):
            raise FeedError("not a feed: got an HTML page", url=url)
        raise FeedError("not a feed: neither RSS, Atom nor JSON Feed", url=url)
    channel = parsed.feed
    entries = list(_entries(parsed.entries, url))
    return ParsedFeed(
        title=_title(channel) or None,
        entries=entries,
        warning=warning,
        link=_link(channel.get("link"), url),
        kind=version,
    )


def _is_fatal(exc: object) -> bool:
    # Charset and content-type oddities do not make a well-formed empty feed unusable.
    return not isinstance(exc, feedparser.CharacterEncodingOverride | feedparser.NonXMLContentType)


def _describe_bozo(exc: object) -> str:
    if isinstance(exc, xml.sax.SAXParseException):
        return f"malformed XML: {exc.getMessage()} (line {exc.getLineNumber()})"
    if isinstance(exc, feedparser.CharacterEncodingOverride):
        return f"wrong character encoding label: {exc}"
    if isinstance(exc, feedparser.NonXMLContentType):
        return f"served with a non-XML content type: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _entries(raw: Iterable[Any], feed_url: str) -> Iterable[Entry]:
    seen: set[str] = set()
    for item in raw:
        entry = _entry(item, feed_url)
        if entry is None or entry.key in seen:
            continue  # a feed repeating an item lists it once
        seen.add(entry.key)
        yield entry


def _entry(item: Any, feed_url: str) -> Entry | None:
    # dict.get, not FeedParserDict.get: none of these keys is one of its aliases, and its
    # alias lookup is a third of this function's cost on a large feed.
    get = dict.get
    link = _link(get(item, "link"), feed_url)
    published = _struct_to_datetime(
        get(item, "published_parsed") or get(item, "updated_parsed") or get(item, "created_parsed")
    )
    text = _entry_text(item)
    title = _title(item) or clip(text, 80)
    if not title and not link and not text:
        return None
    guid = str(get(item, "id") or "").strip() or None
    image = thumbnail.from_feedparser(item, link or feed_url)
    return Entry(
        key=identity(guid, link, title, published),
        title=title or "(untitled)",
        url=link,
        author=squash(str(get(item, "author") or "")) or None,
        published=published,
        excerpt=clip(text),
        guid=guid,
        words=_content_words(get(item, "content")),
        image=image[0] if image else None,
        image_alt=image[1] if image else None,
    )


_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)


def count_words(value: str, *, html: bool = True) -> int:
    """Words of a post's full content, for its reading time. A regex, not the HTML-to-text
    converter: a count needs no entities or layout, and a 735-item feed pays it per item."""
    return len((_TAG.sub(" ", value) if html else value).split())


def _content_words(contents: object) -> int | None:
    """Words of the full content (RSS content:encoded, Atom content); None when the feed
    carries only a summary: an excerpt's length says nothing about the post's."""
    if not isinstance(contents, list):
        return None
    total = 0
    for content in contents:
        value = str(content.get("value") or "")
        total += count_words(value, html="html" in str(content.get("type", "text/html")))
    return total or None


def _title(node: Any) -> str:
    title = dict.get(node, "title")
    if not title:
        return ""
    detail = dict.get(node, "title_detail") or {}
    if "html" in str(detail.get("type", "")):
        return clip(html_to_text(str(title), limit=TITLE_CHARS), TITLE_CHARS)
    return excerpt(str(title), TITLE_CHARS)


def _entry_text(item: Any) -> str:
    """Plain text (squashed) of the summary (an author's own), else of the content."""
    get = dict.get
    candidates: list[tuple[str, str]] = []
    summary = get(item, "summary")
    if summary:
        detail = get(item, "summary_detail") or {}
        candidates.append((str(summary), str(detail.get("type", "text/html"))))
    for content in get(item, "content") or []:
        if content.get("value"):
            candidates.append((str(content["value"]), str(content.get("type", "text/html"))))
    for value, kind in candidates:
        text = html_to_text(value, limit=EXCERPT_CHARS) if "html" in kind else squash(value)
        if text:
            return text
    return ""


def _link(value: object, base: str) -> str | None:
    if not value:
        return None
    return urljoin(base, str(value).strip())


def _struct_to_datetime(value: time.struct_time | None) -> datetime | None:
    if value is None:
        return None
    # feedparser's *_parsed are UTC struct_times: timegm, never mktime (local time).
    try:
        moment = datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return _plausible(moment)


def _plausible(moment: datetime) -> datetime | None:
    # Hugo writes Go's zero time (0001-01-01) for an undated page: that means "no date".
    return moment if moment.year >= 1970 else None


def identity(guid: str | None, link: str | None, title: str, published: datetime | None) -> str:
    """guid / id, else link, else a hash of title and date (REFERENCE.md section 2)."""
    if guid:
        return guid
    if link:
        return link
    stamp = published.isoformat() if published else ""
    return "sha1:" + hashlib.sha1(f"{title}\n{stamp}".encode()).hexdigest()


# --- JSON Feed 1.1 ----------------------------------------------------------------------------


def parse_json_feed(body: bytes, *, url: str) -> ParsedFeed:
    """JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1): feedparser 6 cannot read it."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FeedError(f"not a feed: invalid JSON ({exc})", url=url) from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(
        "https://jsonfeed.org/version/"
    ):
        raise FeedError("not a feed: JSON without a jsonfeed.org version", url=url)
    items = doc.get("items")
    if not isinstance(items, list):
        raise FeedError("not a feed: JSON Feed without an items list", url=url)
    entries: list[Entry] = []
    seen: set[str] = set()
    skipped = 0
    for item in items:
        entry = _json_entry(item, url) if isinstance(item, dict) else None
        if entry is None:
            skipped += 1
        elif entry.key not in seen:
            seen.add(entry.key)
            entries.append(entry)
    version = str(doc["version"]).rstrip("/").rsplit("/", 1)[-1]
    return ParsedFeed(
        title=squash(str(doc.get("title") or "")) or None,
        entries=entries,
        warning=f"{skipped} item(s) without id or content skipped" if skipped else None,
        link=_link(doc.get("home_page_url"), url),
        kind="json" + version.replace(".", ""),
    )


def _json_entry(item: dict[str, Any], feed_url: str) -> Entry | None:
    link = _link(item.get("url") or item.get("external_url"), feed_url)
    published = _iso_date(item.get("date_published")) or _iso_date(item.get("date_modified"))
    words: int | None = None
    if item.get("content_html"):
        words = count_words(str(item["content_html"])) or None
    elif item.get("content_text"):
        words = count_words(str(item["content_text"]), html=False) or None
    if item.get("summary"):
        text = squash(str(item["summary"]))
    elif item.get("content_html"):
        text = html_to_text(str(item["content_html"]), limit=EXCERPT_CHARS)
    else:
        text = squash(str(item.get("content_text") or ""))
    title = excerpt(squash(str(item.get("title") or "")), TITLE_CHARS) or excerpt(text, 80)
    guid = str(item["id"]).strip() if item.get("id") not in (None, "") else None
    if not (guid or link or title):
        return None
    authors = item.get("authors") or ([item["author"]] if item.get("author") else [])
    names = [str(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")]
    image = thumbnail.from_json_item(item, link or feed_url)
    return Entry(
        key=identity(guid, link, title, published),
        title=title or "(untitled)",
        url=link,
        author=", ".join(names) or None,
        published=published,
        excerpt=excerpt(text),
        guid=guid,
        words=words,
        image=image[0] if image else None,
        image_alt=image[1] if image else None,
    )


def _iso_date(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # RFC 3339 requires an offset; assume UTC
    return _plausible(moment.astimezone(UTC))
