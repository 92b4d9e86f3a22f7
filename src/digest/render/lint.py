"""`digest preview --check`: what must hold before an issue goes out.

REFERENCE.md sections 3 and 4: the HTML fits the budget (Gmail clips past ~102 KB and hides the
unsubscribe footer with the rest), every link is absolute http(s) (or mailto), every image has
alt text and a size, both parts carry the unsubscribe link, no category is empty, and no
placeholder is left unfilled. The curator's Markdown is checked at its source too: an image or
a relative link there never reaches the HTML as one (render/markdown.py drops them).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from digest.models import Issue
from digest.render import markdown
from digest.render.email import HTML_BUDGET, encoded_size

_TEXT_LINK = re.compile(r"^\[(\d+)\] (\S+)$", re.MULTILINE)


def absolute_link(url: str, *, mailto: bool = True) -> bool:
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https"):
        return bool(parts.netloc)
    return mailto and parts.scheme == "mailto" and bool(parts.path)


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.images: list[dict[str, str | None]] = []
        self.categories: list[tuple[str, int]] = []  # (heading, posts)
        self._td_depth = 0
        self._category_depth: int | None = None
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = (values.get("class") or "").split()
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "td":
            self._td_depth += 1
            if "category" in classes:
                self._category_depth = self._td_depth
                self.categories.append(("", 0))
        elif tag == "a" and "href" in values:
            self.links.append(values["href"] or "")
        elif tag == "img":
            self.images.append(values)
        if self._category_depth is not None and self.categories:
            heading, count = self.categories[-1]
            if "post" in classes or "more" in classes:
                self.categories[-1] = (heading, count + 1)
            if tag == "h2" and not heading:
                self._in_heading = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            if self._category_depth == self._td_depth:
                self._category_depth = None
            self._td_depth -= 1
        elif tag == "h2":
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._in_heading and self.categories:
            heading, count = self.categories[-1]
            self.categories[-1] = (heading + data.strip(), count)


def lint(html: str, text: str, *, unsubscribe_url: str, budget: int = HTML_BUDGET) -> list[str]:
    """Every problem of one filled copy (html, text); empty when it may be sent."""
    problems: list[str] = []
    size = encoded_size(html)
    if size > budget:
        problems.append(
            f"size: the HTML is {size / 1024:.1f} KB encoded, over the {budget // 1024} KB "
            "budget (Gmail clips at 102 KB, hiding the unsubscribe link)"
        )
    scan = _Scan()
    scan.feed(html)
    scan.close()
    for href in scan.links:
        if href.startswith("#") and href[1:] in scan.ids:
            continue  # "In this issue" jumps within the mail
        if not absolute_link(href):
            problems.append(f"link: {href!r} in the HTML is not an absolute http(s) URL")
    for image in scan.images:
        src = image.get("src") or ""
        if not absolute_link(src, mailto=False):
            problems.append(f"image: {src!r} is not an absolute http(s) URL")
        missing = [a for a in ("alt", "width", "height") if image.get(a) is None]
        if missing:
            problems.append(f"image: {src!r} has no {', '.join(missing)}")
    for number, url in _TEXT_LINK.findall(text):
        if not absolute_link(url):
            problems.append(f"link: [{number}] {url!r} in the text is not an absolute http(s) URL")
    if unsubscribe_url not in scan.links:
        problems.append("unsubscribe: the HTML part has no unsubscribe link")
    if unsubscribe_url not in text:
        problems.append("unsubscribe: the text part has no unsubscribe link")
    for heading, posts in scan.categories:
        if posts == 0:
            problems.append(f"category: {heading or '(untitled)'!r} has no posts")
    problems += placeholder_problems(html, text)
    return problems


# `{{ x }}` and `{% x %}` (Jinja, Mailchimp, Liquid), `%%X%%` (digest's own, and older tools):
# nothing fills them after this point, so each one would reach readers as typed.
_PLACEHOLDER = re.compile(r"\{\{.{0,80}?\}\}|\{%.{0,80}?%\}|\{\{|%%\w{1,80}%%")


def placeholder_problems(html: str, text: str) -> list[str]:
    """Placeholders left unfilled in a filled copy, each part once."""
    problems: list[str] = []
    for part, body in (("HTML", html), ("text", text)):
        found = sorted({" ".join(m.split()) for m in _PLACEHOLDER.findall(body)})
        if found:
            shown = ", ".join(found[:5]) + (" ..." if len(found) > 5 else "")
            problems.append(f"placeholder: {shown} left in the {part}")
    return problems


def markdown_problems(issue: Issue) -> list[str]:
    """The curator's Markdown (intro, notes) that the mail cannot show as written: images
    (an email image needs a width, a height and https, which Markdown cannot say) and links
    that are not absolute http(s), which the mail shows as plain words."""
    sources = [("the intro", issue.intro)]
    sources += [(f"the note on {p.title!r}", p.note) for p in issue.posts]
    if issue.archive_pick is not None:
        sources.append(
            (f"the note on the archive pick {issue.archive_pick.title!r}", issue.archive_pick.note)
        )
    problems: list[str] = []
    for where, source in sources:
        for kind, target in markdown.unrendered(source):
            if kind == "image":
                problems.append(
                    f"image: {where} has a Markdown image ({target!r}), which the mail shows "
                    "as words, not a picture; make it a link, [words](https://...), or leave it out"
                )
            else:
                problems.append(
                    f"link: {target!r} in {where} is not an absolute http(s) URL, so the mail "
                    "shows its words unlinked; write the full https:// address"
                )
    return problems


def base_url_problems(base_url: str, *, explicit: bool) -> list[str]:
    """DIGEST_BASE_URL as readers will meet it: every link of the issue (unsubscribe first) is
    built from it, so an address left at its default or without TLS is a problem to fix."""
    if not explicit:
        return [
            f"base URL: DIGEST_BASE_URL is unset, so every link points at {base_url} "
            "(no reader can open it); set it to the public https address of `digest serve`"
        ]
    if urlsplit(base_url).scheme != "https":
        return [
            f"base URL: {base_url} is not https; readers' unsubscribe links should be "
            "(set DIGEST_BASE_URL to the https address of `digest serve`)"
        ]
    return []
