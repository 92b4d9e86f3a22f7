"""Better excerpts for thin feeds (blogs.yaml ``excerpt: page``): the lede of the post's page.

The one seam to trafilatura. Some feeds carry only a title, or "Continue reading...". For a
blog marked ``excerpt: page``, digest fetches each post's own page once, at draft time, and
only for the posts going into the issue: through the guard for third-party URLs
(digest/net.py: a post URL comes from someone else's feed), with the feed fetcher's manners
(its User-Agent, DIGEST_FETCH_TIMEOUT for the whole exchange, DIGEST_FETCH_MAX_BYTES, at most
DIGEST_FETCH_PER_HOST at once per host). trafilatura finds the article in the HTML digest
fetched (it never fetches anything itself, and never sees compressed bytes: we decode them);
its first paragraphs, cut at a sentence boundary near the feed path's excerpt length
(feeds/text.py), become the excerpt.

Stored per URL (store/pages.py), lede or failure alike: a re-draft or the next issue never asks
the blog again. Any failure (an error status, a timeout, a page too big, not HTML, no text)
keeps the feed's summary and says why in the draft's feed health. A refusal by the guard is
not stored (nothing was fetched): it is checked again on the next draft, so setting
DIGEST_ALLOW_PRIVATE_TARGETS=1 later takes effect.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import datetime

from digest.config import BlogsFile, Settings
from digest.errors import DigestError
from digest.feeds.text import EXCERPT_CHARS, clip, squash
from digest.issue.select import HealthNote
from digest.models import Post
from digest.net import Fetched, TargetRefused, fetch_each, reason
from digest.store import pages as store
from digest.store import posts as store_posts
from digest.store.db import Connection

ACCEPT = "text/html, application/xhtml+xml;q=0.9"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# trafilatura's time grows with the number of elements (~1 s for 40 000 on this machine, 36 s
# for 200 000): only the start of a page that long is read. A long post has a few thousand,
# and its lede is at the start.
MAX_TAGS = 20_000
# A boundary is a sentence end (closing quotes included) followed by a space and a word that
# does not start lower case: "said. Then" and "done. 2026" are boundaries, "e.g. the" is not;
# CJK full stops need no space.
_SENTENCE_END = re.compile(
    r"[.!?\u2026]+[\"'\u201d\u2019\u00bb)\]]*(?=\s+(\S))|[\u3002\uff01\uff1f]"
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


class PageError(DigestError):
    """A page that gives no lede; the message is the reason the curator sees."""


# --- the lede (trafilatura) -------------------------------------------------------------------


def decode(body: bytes, content_type: str) -> str:
    """The page as text: the charset the server named, else the page's <meta>, else UTF-8."""
    charset = ""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
    if not charset and (meta := _META_CHARSET.search(body[:4096])):
        charset = meta[1].decode("ascii")
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _start(html: str, tags: int = MAX_TAGS) -> str:
    """``html`` up to its ``tags``-th tag (lxml closes what the cut leaves open)."""
    at = -1
    for _ in range(tags):
        at = html.find("<", at + 1)
        if at < 0:
            return html
    return html[:at]


def paragraphs(html: str, url: str) -> list[str]:
    """The article's paragraphs, headings, lists, quotes, code and tables left out."""
    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # its warnings are ours to say
    # favor_precision: a short post's page would otherwise fall back to "all the text on the
    # page", navigation included; for a lede, less text beats the wrong text.
    doc = trafilatura.bare_extraction(
        _start(html),
        url=url,
        favor_precision=True,
        include_comments=False,
        include_tables=False,
        with_metadata=False,
    )
    body = getattr(doc, "body", None)
    if body is None:
        return []
    texts = (squash("".join(p.itertext())) for p in body.iterchildren("p"))
    return [text for text in texts if text]


def cut_lede(text: str, chars: int = EXCERPT_CHARS) -> str:
    """``text`` up to the last sentence end within ``chars`` (a few sentences, never half of
    one); when the first sentence alone is longer than that, cut on a word with an ellipsis."""
    if len(text) <= chars:
        return text
    best = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if end > chars:
            break
        following = match.group(1)
        if following is None or not following[0].islower():
            best = end
    return text[:best] if best >= chars // 3 else clip(text, chars)


def lede(html: str, url: str, chars: int = EXCERPT_CHARS) -> str:
    """The lede of a post's page; raises PageError when the page holds no article text."""
    found = paragraphs(html, url)
    if not found:
        raise PageError("no article text found on the page")
    text = ""
    for paragraph in found:  # enough paragraphs to fill the excerpt, and no more
        text = f"{text} {paragraph}" if text else paragraph
        if len(text) > chars:
            break
    return cut_lede(text, chars)


# --- fetching (draft time) --------------------------------------------------------------------

Result = tuple[str | None, str | None]  # (lede, error): exactly one is set


def _lede_of(fetched: Fetched) -> str:
    kind = fetched.content_type.split(";")[0].strip().lower()
    if kind and kind not in HTML_TYPES:
        raise PageError(f"not an HTML page ({kind})")
    return lede(decode(fetched.body, fetched.content_type), fetched.url)


def fetch_ledes(settings: Settings, urls: list[str]) -> dict[str, Result | TargetRefused]:
    """The lede (or why none) of each page, fetched now; a refusal by the guard as itself."""
    out: dict[str, Result | TargetRefused] = {}
    for url, found in fetch_each(settings, urls, _lede_of, accept=ACCEPT).items():
        if isinstance(found, TargetRefused):
            out[url] = found
        else:
            out[url] = (found, None) if isinstance(found, str) else (None, reason(found))
    return out


def _page_posts(blogs: BlogsFile, posts: Iterable[Post]) -> list[Post]:
    """The posts whose blog asks for ``excerpt: page`` and that have a page."""
    return [p for p in posts if p.url and (blog := blogs.blog(p.blog)) and blog.excerpt == "page"]


def cache_ledes(
    settings: Settings, blogs: BlogsFile, conn: Connection, ids: Iterable[str], *, now: datetime
) -> list[HealthNote]:
    """Fetch the pages of the posts ``ids`` (the issue's) not fetched yet, store each lede or
    failure; returns a note for each post that keeps its feed summary, for the feed health."""
    posts = _page_posts(blogs, store_posts.get_posts(conn, ids).values())
    urls = list(dict.fromkeys(p.url for p in posts if p.url))
    stored = store.get_page_excerpts(conn, urls)
    refused: dict[str, str] = {}
    due = [url for url in urls if url not in stored]
    if due:
        results = fetch_ledes(settings, due)
        refused = {u: r.reason for u, r in results.items() if isinstance(r, TargetRefused)}
        store.save_page_excerpts(
            conn, {u: r for u, r in results.items() if not isinstance(r, TargetRefused)}, now=now
        )
        stored = store.get_page_excerpts(conn, urls)
    notes = []
    for post in posts:
        row = stored.get(post.url or "")
        reason = refused.get(post.url or "") or (row.error if row is not None else None)
        if reason:
            blog = blogs.blog(post.blog)
            notes.append(
                HealthNote(
                    post.blog,
                    "page",
                    f"{blog.name if blog else post.blog}: the feed's summary for "
                    f"\u201c{post.title}\u201d, no lede from its page: {reason}",
                )
            )
    return notes


# --- the issue (no network) -------------------------------------------------------------------


def with_ledes(conn: Connection, blogs: BlogsFile, posts: Mapping[str, Post]) -> dict[str, Post]:
    """``posts`` with the stored lede of their page as the excerpt, where their blog asks for
    one and it was found; the others as they are."""
    wanted = _page_posts(blogs, posts.values())
    stored = store.get_page_excerpts(conn, list({p.url for p in wanted if p.url}))
    out = dict(posts)
    for post in wanted:
        row = stored.get(post.url or "")
        if row is not None and row.excerpt:
            out[post.id] = dataclasses.replace(post, excerpt=row.excerpt)
    return out


__all__ = [
    "PageError",
    "cache_ledes",
    "cut_lede",
    "decode",
    "fetch_ledes",
    "lede",
    "paragraphs",
    "with_ledes",
]
