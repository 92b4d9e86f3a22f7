"""Click counts (newsletter.click_counts): an edition's links as BASE/r/<issue>/<n>.

Each link is numbered once per edition, from its full content (every category, every post in
full) in the order a reader meets it, when the edition is frozen (digest.send.deliver). The
map is stored (table ``links``) and every later render of the edition reads it, so every
recipient, every category variant and a send resumed after a crash carry the same short links:
a link says which post was followed, never by whom.

The rewrite runs over the finished template output, before premailer, so it reaches every link
there is: the curator's Markdown and their template overrides included. A URL not in the map
(a link an override adds after the freeze) stays as it is. Per-recipient links (unsubscribe,
preferences, web view) are placeholders at that point and never rewritten.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from digest.config import BlogsFile
from digest.models import Issue
from digest.render import markdown
from digest.render.view import build_view


class Target(NamedTuple):
    """Where one short link leads, and what it counts for."""

    url: str
    post_id: str | None = None  # the post it opens, if any
    blog: str | None = None  # the blog it belongs to, if any


def edition_links(issue: Issue, blogs: BlogsFile, *, base_url: str) -> list[Target]:
    """Every link the edition's mail can carry, numbered by position (n = index + 1)."""
    view = build_view(issue, blogs, base_url=base_url, in_full=None)
    posts = {p.url: p for p in issue.posts}
    if issue.archive_pick is not None:
        posts.setdefault(issue.archive_pick.url, issue.archive_pick)
    found: dict[str, Target] = {}

    def add(url: str, *, blog: str | None = None) -> None:
        post = posts.get(url)
        target = Target(url, post.id, post.blog) if post else Target(url, None, blog)
        known = found.get(url)
        if known is None or (known.post_id is None and target.post_id is not None):
            found[url] = target  # a post's own URL counts for the post wherever it appears

    def notes(source: str) -> None:
        for url in markdown.link_targets(source):
            add(url)

    add(f"{view.base_url}/")
    notes(view.intro)
    for category in view.categories:
        for block in category.blocks:
            add(block.homepage, blog=block.blog)
            for post in (*block.posts, *block.extra):
                add(post.url)
                notes(post.note)
            # "and N more posts from BLOG", when the size budget collapses some
            add(f"{view.archive_url}#blog-{block.blog}", blog=block.blog)
    if view.archive is not None:
        add(view.archive.homepage, blog=view.archive.blog)
        add(view.archive.post.url)
        notes(view.archive.post.note)
    add(f"{view.base_url}/archive")
    # http(s) only: a mailto: link opens the reader's mail program, there is nothing to count
    return [t for t in found.values() if urlsplit(t.url).scheme.lower() in ("http", "https")]


def short_links(base_url: str, issue: int, numbers: Mapping[int, str]) -> dict[str, str]:
    """{target URL: BASE/r/<issue>/<n>} from the stored ``{n: target URL}``."""
    base = base_url.rstrip("/")
    return {url: f"{base}/r/{issue}/{n}" for n, url in numbers.items()}


_HREF = re.compile(r"""(\bhref=(["']))(.*?)(\2)""", re.IGNORECASE | re.DOTALL)


def rewrite_html(body: str, short: Mapping[str, str]) -> str:
    """Each ``href`` whose target is in ``short`` replaced by its short link."""
    if not short:
        return body

    def one(match: re.Match[str]) -> str:
        found = short.get(html.unescape(match[3]).strip())
        return match[0] if found is None else match[1] + found + match[4]

    return _HREF.sub(one, body)


_URL = re.compile(r"https?://[^\s<>\"]+")
_TRAILING = ".,;:!?)]}'\"\u00bb\u201d\u2019"  # what may close a sentence after a bare URL


def rewrite_text(body: str, short: Mapping[str, str]) -> str:
    """Each URL of the text part that is in ``short`` replaced by its short link: the numbered
    references ("[3] URL"), the footer's archive link and bare URLs in the curator's words."""
    if not short:
        return body

    def one(match: re.Match[str]) -> str:
        word = match[0]
        url = word.rstrip(_TRAILING)
        found = short.get(word) or short.get(url)
        if found is None:
            return word
        return found if word in short else found + word[len(url) :]

    return _URL.sub(one, body)
