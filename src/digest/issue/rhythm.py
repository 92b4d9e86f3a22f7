"""Commentary rhythm: which blogs an issue introduces with the curator's full commentary.

A reader who has read why the curator loves a blog does not need it again every week: the
commentary appears in full in the first issue that features the blog, and again whenever the
curator rewrites it; other issues show the blog's `tagline`, or nothing. `commentary: always`
shows it every time. Decided once, when the draft becomes an Issue, from the issues already
frozen, and kept in the Issue (``Issue.commentary``), so that a resumed send and the web archive
show exactly what the subscribers got. Pure: tested with values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Literal

from digest.config import BlogsFile
from digest.models import Issue

Mode = Literal["first", "always"]


def normalise(commentary: str) -> str:
    return " ".join(commentary.split())


def fingerprint(commentary: str) -> str:
    """Whitespace does not count as a change: re-wrapping a paragraph in YAML is no rewrite."""
    return hashlib.sha256(normalise(commentary).encode("utf-8")).hexdigest()[:16]


def featured_blogs(issue: Issue) -> list[str]:
    """The blogs an issue features, in order of appearance, the archive pick's last."""
    order: list[str] = []
    posts = [*issue.posts, *([issue.archive_pick] if issue.archive_pick else [])]
    for post in posts:
        if post.blog not in order:
            order.append(post.blog)
    return order


def history(issues: Iterable[Issue], current: Mapping[str, str]) -> dict[str, str]:
    """blog -> fingerprint of the commentary readers last got in full, from frozen issues.

    An issue frozen before issues recorded their commentary (``commentary`` None) showed every
    featured blog's commentary as blogs.yaml held it then; the text is unknown, so it counts as
    the current one: such a blog is not introduced again until the curator rewrites it.
    """
    seen: dict[str, str] = {}
    for issue in sorted(issues, key=lambda i: i.number):
        if issue.commentary is None:
            for blog in featured_blogs(issue):
                if current.get(blog):
                    seen[blog] = fingerprint(current[blog])
        else:
            for blog, text in issue.commentary.items():
                seen[blog] = fingerprint(text)
    return seen


def decide(
    featured: Iterable[str],
    current: Mapping[str, str],
    seen: Mapping[str, str],
    mode: Mode = "first",
) -> dict[str, str]:
    """blog -> the commentary to show in full in this issue (each featured blog at most once)."""
    shown: dict[str, str] = {}
    for blog in featured:
        text = normalise(current.get(blog, ""))
        if not text or blog in shown:
            continue
        if mode == "always" or seen.get(blog) != fingerprint(text):
            shown[blog] = text
    return shown


def commentary_for(issue: Issue, blogs: BlogsFile, frozen: Iterable[Issue]) -> dict[str, str]:
    """What ``issue`` shows in full, given the issues frozen before it."""
    current = {b.id: b.commentary for b in blogs.blogs()}
    return decide(
        featured_blogs(issue),
        current,
        history((i for i in frozen if i.number < issue.number), current),
        blogs.newsletter.commentary,
    )
