"""The curator's Markdown (intro, notes): the one seam to markdown-it-py.

Raw HTML is off (``html: False`` escapes it) and only absolute http(s) and mailto links survive
(REFERENCE.md section 4): a ``javascript:`` or relative link is unwrapped into its plain text, so
the email never carries a link a mail client would refuse or a reader could not follow. Images are
disabled: an email image needs a width, a height and an https source, which Markdown cannot say.
"""

from __future__ import annotations

import textwrap
from functools import lru_cache
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

from digest.render.text import WIDTH, Links


def allowed_link(url: str) -> bool:
    """Absolute http(s) with a host, or mailto: the only links an issue may carry."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return bool(parts.netloc)
    return scheme == "mailto" and bool(parts.path)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable("image")
    md.validateLink = allowed_link  # type: ignore[method-assign]
    return md


@lru_cache(maxsize=1)
def _lint_parser() -> MarkdownIt:
    # The same grammar with images on and every link kept: what the curator wrote, for
    # `preview --check` to name what the mail parser refuses.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


def unrendered(source: str) -> list[tuple[str, str]]:
    """What the mail cannot show as written: ``("image", src)`` for each Markdown image (shown
    as a link), ``("link", href)`` for each link that is not absolute http(s) or mailto (shown
    as its words, unlinked)."""
    found: list[tuple[str, str]] = []
    if not source.strip():
        return found
    for token in _lint_parser().parse(source):
        for child in token.children or []:
            if child.type == "image":
                found.append(("image", str(child.attrGet("src") or "")))
            elif child.type == "link_open":
                href = str(child.attrGet("href") or "")
                if not allowed_link(href):
                    found.append(("link", href))
    return found


def _tokens(source: str) -> list[Token]:
    tokens = _parser().parse(source)
    for token in tokens:
        if token.type == "inline" and token.children:
            token.children = _unwrap_bad_links(token.children)
    return tokens


def _unwrap_bad_links(children: list[Token]) -> list[Token]:
    # markdown-it keeps a rejected link as <a href="">; drop the tags and keep the words.
    out: list[Token] = []
    dropping: list[bool] = []
    for child in children:
        if child.type == "link_open":
            bad = not allowed_link(str(child.attrGet("href") or ""))
            dropping.append(bad)
            if bad:
                continue
        elif child.type == "link_close":
            if dropping.pop():
                continue
        out.append(child)
    return out


def link_targets(source: str) -> list[str]:
    """The links the mail shows for ``source``, in order (their ``href`` as rendered)."""
    if not source.strip():
        return []
    return [
        str(child.attrGet("href") or "")
        for token in _tokens(source)
        for child in token.children or []
        if child.type == "link_open"
    ]


def to_html(source: str) -> str:
    """Safe HTML for the email: escaped raw HTML, vetted links."""
    if not source.strip():
        return ""
    md = _parser()
    return str(md.renderer.render(_tokens(source), md.options, {}))


def to_plain(source: str) -> str:
    """One line of plain text (for the preheader): no markup, no link targets."""
    words: list[str] = []
    for token in _tokens(source):
        for child in token.children or []:
            if child.type in ("text", "code_inline"):
                words.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                words.append(" ")
        if token.type in ("paragraph_close", "heading_close"):
            words.append(" ")
    return " ".join("".join(words).split())


def to_text(source: str, links: Links, *, indent: str = "", width: int = WIDTH) -> str:
    """Markdown as plain text for the text part: wrapped, links as numbered references."""
    if not source.strip():
        return ""
    blocks: list[tuple[str, bool]] = []  # (text, tight: follows the previous with one newline)
    hidden = False  # the current paragraph belongs to a tight list
    after_hidden = False  # ... and so did the previous block
    quote = ""  # "> " per open blockquote
    markers: list[str] = []  # list-item markers, "" once the first line is out
    depth: list[tuple[str, int]] = []  # open lists: (kind, next number)
    for token in _tokens(source):
        kind = token.type
        if kind == "paragraph_open":
            hidden = token.hidden
        elif kind == "blockquote_open":
            quote += "> "
        elif kind == "blockquote_close":
            quote = quote[:-2]
        elif kind in ("bullet_list_open", "ordered_list_open"):
            start = int(token.attrGet("start") or 1)
            if not depth:
                after_hidden = False  # a new list starts a new block
            depth.append((kind, start))
        elif kind in ("bullet_list_close", "ordered_list_close"):
            depth.pop()
        elif kind == "list_item_open":
            list_kind, number = depth[-1]
            if list_kind == "ordered_list_open":
                markers.append(f"{number}. ")
                depth[-1] = (list_kind, number + 1)
            else:
                markers.append("- ")
        elif kind == "list_item_close":
            markers.pop()
        elif kind in ("fence", "code_block"):
            lead = indent + quote + "    "
            code = token.content.rstrip("\n").split("\n")
            blocks.append(("\n".join(lead + line for line in code), False))
            after_hidden = False
        elif kind == "hr":
            blocks.append((indent + quote + "---", False))
            after_hidden = False
        elif kind == "inline":
            first = indent + quote + "".join(markers)
            rest = indent + quote + "".join(" " * len(m) for m in markers)
            text = _wrap_inline(token.children or [], links, first, rest, width)
            blocks.append((text, hidden and after_hidden))
            after_hidden = hidden
            # only the item's first line carries its marker
            markers = [" " * len(m) for m in markers]
    out = ""
    for text, tight in blocks:
        if text.strip():
            out += ("\n" if tight else "\n\n") + text if out else text
    return out


def _wrap_inline(children: list[Token], links: Links, first: str, rest: str, width: int) -> str:
    pieces: list[str] = []
    href: list[str] = []
    start: list[int] = []
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline"):
            pieces.append(child.content)
        elif kind == "softbreak":
            pieces.append(" ")
        elif kind == "hardbreak":
            pieces.append("\n")
        elif kind == "link_open":
            href.append(str(child.attrGet("href") or ""))
            start.append(len(pieces))
        elif kind == "link_close":
            url = href.pop()
            label = "".join(pieces[start.pop() :])
            # an autolink shows its address already; a numbered reference would repeat it
            if label.strip() not in (url, url.removeprefix("mailto:")):
                pieces.append(" " + links.ref(url))
    lines = "".join(pieces).split("\n")
    out: list[str] = []
    for number, line in enumerate(lines):
        out.append(
            textwrap.fill(
                line,
                width=width,
                initial_indent=first if number == 0 else rest,
                subsequent_indent=rest,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n".join(out)
