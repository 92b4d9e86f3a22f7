"""A newsletter's HTML, read once: a sanitised copy, its paragraphs and its links.

The copy is built from an allow-list (html.parser, stdlib), never by removing what is known to
be bad: every tag and attribute not listed is dropped, so a script, a form, an iframe, an
``onload=`` or a ``style="background:url(...)"`` cannot survive by being new. Images go too
(their alt text stays): a newsletter's images are how it learns who opened it, and the archived
copy on digest's site must not tell the sender who reads it there. Links keep only http(s) and
mailto targets; the links that act for the recipient (unsubscribe, preferences) are dropped,
as they would let any visitor act for the curator's subscription.

Hidden parts (``display:none`` preheaders, ``mso-hide:all`` Outlook fallbacks) are neither
copied nor read as paragraphs: they are the "preview text" mail clients show, not the letter.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

# Dropped with everything inside them.
_DROP = frozenset(
    "script style head title template noscript iframe object embed applet form select "
    "textarea button svg math canvas audio video frameset frame".split()
)
# Copied (without attributes, but for the few in _ATTRS).
_KEEP = frozenset(
    "a p br hr h1 h2 h3 h4 h5 h6 strong b em i u s blockquote ul ol li pre code table thead "
    "tbody tfoot tr td th div span figure figcaption sup sub small".split()
)
_VOID = frozenset("br hr img input meta link area base col embed param source track wbr".split())
_ATTRS = {"a": ("href", "title"), "td": ("colspan", "rowspan"), "th": ("colspan", "rowspan")}
# Tags that end a paragraph of text (as feeds/text.py reads them).
_BLOCKS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 "
    "h6 header hr li main nav ol p pre section table td th tr ul".split()
)
_HIDDEN = re.compile(
    r"display\s*:\s*none|mso-hide\s*:\s*all|visibility\s*:\s*hidden|max-height\s*:\s*0(?![.\d])",
    re.IGNORECASE,
)
_SAFE_HREF = re.compile(r"(https?://|mailto:)", re.IGNORECASE)
# Skipping a hidden <td> or <p> whose end tag the HTML leaves implied (it may): the next one of
# its kind, or the end of what holds it, ends the skip, so one sloppy cell cannot hide the rest.
# A letter's links that act for its recipient (the curator's own address): unsubscribe, manage
# preferences, forward. Published on digest's site, anyone could use them; they go, words too.
_PERSONAL = re.compile(
    r"unsub|opt[- ]?out|preferences|manage (your )?subscription|/manage\b|/profile\b|"
    r"forward (this|to a friend)",
    re.IGNORECASE,
)
_IMPLIED = frozenset("p li td th tr dt dd".split())
_HOLDERS = frozenset("table tbody thead tfoot tr ul ol dl div body html".split())


@dataclass(slots=True)
class Link:
    href: str
    text: str


@dataclass(slots=True)
class ReadHtml:
    safe: str  # the sanitised copy, a fragment
    paragraphs: list[str] = field(default_factory=list)  # visible text blocks, squashed
    links: list[Link] = field(default_factory=list)  # http(s) links in order, with their text
    canonical: str | None = None  # <link rel="canonical" href>


class _Reader(HTMLParser):
    def __init__(self, title: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.title = " ".join(title.split()).casefold() if title else None
        self.heading: tuple[str, int, int] | None = None  # an h1/h2 that may repeat the title
        self.out: list[str] = []
        self.open: list[str] = []  # copied tags not closed yet
        self.skip: str | None = None  # the tag whose content is being skipped
        self.skip_depth = 0
        self.text: list[str] = []  # the paragraph being read
        # The open link: its href, its words, where it starts in out and in open.
        self.anchor: tuple[str, list[str], int, int] | None = None
        self.result = ReadHtml(safe="")

    # --- structure -------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "link":
            self._link(dict(attrs))
            return
        if self.skip is not None:
            if tag == self.skip and tag in _IMPLIED and self.skip_depth == 1:
                self.skip = None  # the hidden one ended where this one starts
            elif self.skip == "head" and tag == "body":
                self.skip = None  # a <head> left open
            else:
                self.skip_depth += tag == self.skip
                return
        values = dict(attrs)
        if tag in _DROP or _HIDDEN.search(values.get("style") or ""):
            if tag not in _VOID:
                self.skip, self.skip_depth = tag, 1
            return
        if tag in _BLOCKS:
            self._paragraph()
        if tag == "img":
            alt = " ".join((values.get("alt") or "").split())
            if alt:
                self.handle_data(f" {alt} ")
            return
        if tag == "a":
            self._end_anchor()
            href = (values.get("href") or "").strip()
            if not _SAFE_HREF.match(href):
                return  # its words stay, as plain text
        if tag not in _KEEP:
            return
        if tag in ("p", "a") and tag in self.open:  # neither nests: a new one ends the last
            self._close(tag)
        if tag == "a":
            self.anchor = (href, [], len(self.out), len(self.open))
        kept = "".join(
            f' {name}="{html.escape(value, quote=True)}"'
            for name in _ATTRS.get(tag, ())
            if (value := values.get(name))
        )
        if tag == "a" and "href" in values:
            kept += ' rel="nofollow noopener noreferrer"'
        if tag in ("h1", "h2") and self.title is not None:
            self.heading = (tag, len(self.out), len(self.open))
        self.out.append(f"<{tag}{kept}>")
        if tag not in _VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skip is not None:
            holder = self.skip in _IMPLIED and tag in _HOLDERS  # ends an implied end tag's skip
            if tag == self.skip:
                self.skip_depth -= 1
            elif holder:
                self.skip_depth = 0
            if self.skip_depth > 0:
                return
            self.skip = None
            if not holder:
                return  # the hidden element's own end tag
        if self.heading is not None and tag == self.heading[0]:
            self._end_heading()
        if tag in _BLOCKS:
            self._paragraph()
        if tag == "a":
            self._end_anchor()
        if tag in self.open:
            self._close(tag)

    def _close(self, tag: str) -> None:
        """Close ``tag`` and whatever it holds, so the copy is always well nested."""
        while self.open:
            top = self.open.pop()
            self.out.append(f"</{top}>")
            if top == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.skip is not None:
            return
        self.out.append(html.escape(data, quote=False))
        self.text.append(data)
        if self.anchor is not None:
            self.anchor[1].append(data)

    # --- what is read on the way -----------------------------------------------------------

    def _link(self, attrs: dict[str, str | None]) -> None:
        rel = (attrs.get("rel") or "").lower().split()
        href = (attrs.get("href") or "").strip()
        if "canonical" in rel and href.lower().startswith(("http://", "https://")):
            self.result.canonical = self.result.canonical or href

    def _end_anchor(self) -> None:
        if self.anchor is None:
            return
        href, words, at, depth = self.anchor
        text = " ".join("".join(words).split())
        self.result.links.append(Link(href, text))
        self.anchor = None
        if _PERSONAL.search(text) or _PERSONAL.search(href):
            del self.out[at:]
            del self.open[depth:]

    def _end_heading(self) -> None:
        """The letter's own heading, when it repeats the title the page shows above it, goes."""
        assert self.heading is not None
        _, at, depth = self.heading
        self.heading = None
        if " ".join("".join(self.text).split()).casefold() == self.title:
            del self.out[at:]
            del self.open[depth:]
            self.title = None  # once

    def _paragraph(self) -> None:
        text = " ".join("".join(self.text).split())
        if text:
            self.result.paragraphs.append(text)
        self.text = []

    def finish(self) -> ReadHtml:
        self.close()
        self._paragraph()
        self._end_anchor()
        self.out.extend(f"</{tag}>" for tag in reversed(self.open))
        self.result.safe = "".join(self.out)
        return self.result


def read_html(markup: str, *, title: str | None = None) -> ReadHtml:
    """``title``: the letter's subject; a heading repeating it is left out of the copy (the
    page shows it already), though not out of the paragraphs."""
    reader = _Reader(title)
    reader.feed(markup)
    return reader.finish()


def text_to_html(text: str) -> str:
    """A plain-text letter as a sanitised copy: paragraphs, escaped."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    return "".join("<p>" + html.escape(b).replace("\n", "<br>") + "</p>" for b in blocks)
