"""A post's thumbnail, as its own feed names it: the image URL (absolute) and its alt text.

In this order, the first that names an http(s) image wins:
``media:thumbnail``, ``media:content`` with an image medium or type, an image enclosure, then
the first ``<img>`` of the content (or summary) HTML, resolved against the post's URL (Hugo
feeds such as lilianweng's write ``src="agent-overview.png"``, relative to the post).
Only the URL is kept: the image itself is fetched later, and only when the curator asked for
images (``newsletter.images: cached``, digest/images.py).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

ALT_CHARS = 200
URL_CHARS = 2000
# The first <img> tag only: a regex finds it, HTMLParser reads its attributes (quoting,
# entities). Parsing a whole post's HTML per item would cost a 735-item feed dearly.
_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)


class _Attrs(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attrs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and not self.attrs:
            self.attrs = {k: v or "" for k, v in attrs}

    handle_startendtag = handle_starttag


def _absolute(src: str, base: str) -> str | None:
    src = src.strip()
    if not src or len(src) > URL_CHARS:
        return None
    url = urljoin(base, src)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None  # data:, cid:, javascript: and the like are no thumbnails
    return url


def _alt(value: object) -> str | None:
    text = " ".join(str(value or "").split())[:ALT_CHARS]
    return text or None


def first_img(html: str, base: str) -> tuple[str, str | None] | None:
    """(absolute src, alt) of the first ``<img>`` with a usable src in ``html``."""
    for match in _IMG.finditer(html):
        parser = _Attrs()
        parser.feed(match[0])
        parser.close()
        url = _absolute(parser.attrs.get("src", ""), base)
        if url is not None:
            return url, _alt(parser.attrs.get("alt"))
    return None


def _is_image(node: dict[str, Any]) -> bool:
    kind = str(node.get("type") or "")
    medium = str(node.get("medium") or "")
    return medium == "image" or kind.startswith("image/")


def from_feedparser(item: Any, base: str) -> tuple[str, str | None] | None:
    """The thumbnail of one feedparser entry; ``base``: the post URL, else the feed URL."""
    get = dict.get
    for node in get(item, "media_thumbnail") or []:
        if isinstance(node, dict) and (url := _absolute(str(node.get("url") or ""), base)):
            return url, None
    for node in get(item, "media_content") or []:
        if isinstance(node, dict) and _is_image(node):
            if url := _absolute(str(node.get("url") or ""), base):
                return url, None
    # feedparser keeps enclosures among the links ("enclosures" is a computed alias).
    for node in get(item, "links") or []:
        if not isinstance(node, dict) or node.get("rel") != "enclosure":
            continue
        if str(node.get("type") or "").startswith("image/"):
            if url := _absolute(str(node.get("href") or ""), base):
                return url, None
    bodies = [str(c.get("value") or "") for c in get(item, "content") or []]
    bodies.append(str(get(item, "summary") or ""))
    for body in bodies:
        if "<img" in body.lower() and (found := first_img(body, base)):
            return found
    return None


def from_json_item(item: dict[str, Any], base: str) -> tuple[str, str | None] | None:
    """JSON Feed 1.1: ``image``, then ``banner_image``, then the first img of content_html."""
    for key in ("image", "banner_image"):
        if isinstance(item.get(key), str) and (url := _absolute(item[key], base)):
            return url, None
    html = item.get("content_html")
    if isinstance(html, str) and "<img" in html.lower():
        return first_img(html, base)
    return None
