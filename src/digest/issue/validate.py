"""Checking a draft the curator edited: every mistake names the file, the line and the field.

Works on the ruamel.yaml round-trip document (its nodes know their line numbers), against
blogs.yaml and the stored posts. The first problem found is reported: one clear message beats a
page of consequences of the same typo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

from digest.config import BlogsFile
from digest.errors import DraftError
from digest.issue.select import highlight_id
from digest.models import IssuePost, Post
from digest.store.db import parse_ts

TOP_KEYS = ("number", "since", "until", "subject", "intro", "posts", "archive_pick", "feed_health")
POST_KEYS = ("id", "title", "url", "blog", "category", "note", "include")


@dataclass(slots=True)
class DraftFile:
    number: int | None
    since: datetime
    until: datetime
    subject: str
    intro: str
    posts: list[tuple[IssuePost, bool]]  # (post, include)
    archive_pick: IssuePost | None
    lines: dict[str, int] = field(default_factory=dict)  # top-level key -> line


def http_url(value: str) -> bool:
    """Absolute http(s) with a host: what a post or pick may link to."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def parse_ts_value(value: Any) -> datetime | None:
    """A time as the draft holds it: quoted ISO text, or a YAML timestamp if unquoted."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            return parse_ts(value.strip())
        except ValueError:
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                return None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _line(node: Any, key: str | int | None = None) -> int | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if isinstance(key, str):
            return int(lc.key(key)[0]) + 1
        if isinstance(key, int):
            return int(lc.item(key)[0]) + 1
    except (KeyError, IndexError, TypeError):
        pass
    return int(lc.line) + 1


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value} (a number)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)[:60]


class _Checker:
    def __init__(self, path: str, blogs: BlogsFile, known: Mapping[str, Post]) -> None:
        self.path = path
        self.blogs = blogs
        self.known = known

    def fail(
        self, message: str, node: Any, key: str | int | None, where: str, hint: str | None = None
    ) -> NoReturn:
        raise DraftError(message, path=self.path, line=_line(node, key), field=where, hint=hint)

    def text(
        self, node: Any, key: str, where: str, *, required: bool, one_line: bool = False
    ) -> str:
        value = node.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(f"expected text, found {_kind(value)}", node, key, where)
        if one_line and ("\n" in value.strip() or "\r" in value):
            # a line break in a header is a header injection (RFC 5322 2.2)
            self.fail("expected a single line", node, key, where)
        return str(value)

    def unknown_keys(self, node: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in node:
            if key not in allowed:
                self.fail(
                    f"unknown key {key!r} (a typo?)",
                    node,
                    str(key),
                    f"{where}.{key}" if where else str(key),
                    hint="expected one of: " + ", ".join(allowed),
                )

    def _category_hint(self, value: Any) -> str:
        ids = ", ".join(c.id for c in self.blogs.categories)
        wanted = str(value).strip().casefold()
        for cat in self.blogs.categories:
            if wanted in (cat.id.casefold(), cat.title.casefold()):
                return f"the id of the category {cat.title!r} is {cat.id!r} (blogs.yaml: {ids})"
        return f"use a category id from blogs.yaml: {ids}"

    def post(
        self, node: Any, where: str, parent: Any, index: str | int, *, pick: bool
    ) -> tuple[IssuePost, bool]:
        if not isinstance(node, Mapping):
            self.fail(
                f"expected a post (id, title, url, ...), found {_kind(node)}", parent, index, where
            )
        self.unknown_keys(node, POST_KEYS, where)
        include = node.get("include", True)
        if not isinstance(include, bool):
            self.fail(
                f"expected true or false, found {_kind(include)}",
                node,
                "include",
                f"{where}.include",
            )
        raw_id = node.get("id")
        if raw_id is not None and not isinstance(raw_id, str):
            self.fail(f"expected a post id, found {_kind(raw_id)}", node, "id", f"{where}.id")
        stored = self.known.get(raw_id) if raw_id else None
        if stored is None and not pick:
            if raw_id is None:
                self.fail("missing: every post needs its id", node, None, f"{where}.id")
            if include:
                self.fail(
                    f"unknown post id {raw_id!r}",
                    node,
                    "id",
                    f"{where}.id",
                    hint="ids come from `digest draft`; to leave a post out set include: false",
                )
        stored_blog = self.blogs.blog(stored.blog) if stored else None

        blog_id = node.get("blog", stored.blog if stored else None)
        if not isinstance(blog_id, str) or self.blogs.blog(blog_id) is None:
            self.fail(
                f"unknown blog {_kind(blog_id)}",
                node,
                "blog",
                f"{where}.blog",
                hint="use a blog id from blogs.yaml: "
                + ", ".join(b.id for b in self.blogs.blogs()),
            )
        blog = self.blogs.blog(blog_id)
        assert blog is not None
        # An edited category moves the post to that section of the issue (and to its readers).
        category = node.get("category", (stored_blog or blog).category)
        if not isinstance(category, str) or self.blogs.category(category) is None:
            self.fail(
                f"unknown category {_kind(category)}",
                node,
                "category",
                f"{where}.category",
                hint=self._category_hint(category),
            )
        url = node.get("url", stored.url if stored else None)
        if not isinstance(url, str) or not http_url(url):
            self.fail(
                f"expected an absolute http(s) URL, found {_kind(url)}", node, "url", f"{where}.url"
            )
        title = node.get("title", stored.title if stored else None)
        if not isinstance(title, str) or not title.strip():
            self.fail(f"expected a title, found {_kind(title)}", node, "title", f"{where}.title")
        note = self.text(node, "note", f"{where}.note", required=False)
        post_id = raw_id or highlight_id(blog.id, url)
        return (
            IssuePost(
                id=post_id,
                title=" ".join(title.split()),
                url=url.strip(),
                blog=blog.id,
                category=category,
                author=stored.author if stored else None,
                date=stored.date if stored else None,
                excerpt=stored.excerpt if stored else "",
                note=note,
                words=stored.words if stored else None,
            ),
            include,
        )


def validate(
    doc: Any,
    *,
    path: str,
    blogs: BlogsFile,
    known: Mapping[str, Post],
    keys: tuple[str, ...] = TOP_KEYS,
) -> DraftFile:
    """The draft's content, or DraftError naming file, line and field. ``keys``: the top-level
    keys this kind of draft has (the monthly draft's are issue/monthly.py's)."""
    check = _Checker(path, blogs, known)
    if not isinstance(doc, Mapping):
        raise DraftError(
            f"expected a mapping with subject, intro, posts and archive_pick, found {_kind(doc)}",
            path=path,
            line=1,
            hint="run `digest draft` on an empty folder to see the expected shape",
        )
    check.unknown_keys(doc, keys, "")
    lines = {str(k): line for k in doc if (line := _line(doc, str(k))) is not None}

    number = doc.get("number")
    if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
        check.fail(f"expected an issue number, found {_kind(number)}", doc, "number", "number")
    times: dict[str, datetime] = {}
    for key in ("since", "until"):
        moment = parse_ts_value(doc.get(key))
        if moment is None:
            check.fail(
                f"expected a time such as 2026-11-30T08:00:00Z, found {_kind(doc.get(key))}",
                doc,
                key,
                key,
                hint="digest writes this key; run `digest draft` again or restore it",
            )
        times[key] = moment
    subject = check.text(doc, "subject", "subject", required=True, one_line=True).strip()
    intro = check.text(doc, "intro", "intro", required=False)

    entries = doc.get("posts")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        check.fail(f"expected a list of posts, found {_kind(entries)}", doc, "posts", "posts")
    posts: list[tuple[IssuePost, bool]] = []
    seen: dict[str, int] = {}
    for index, node in enumerate(entries):
        where = f"posts[{index}]"
        post, include = check.post(node, where, entries, index, pick=False)
        if post.id in seen:
            check.fail(
                f"post {post.id!r} is listed twice (first as posts[{seen[post.id]}])",
                node,
                "id",
                f"{where}.id",
                hint="remove one of the two entries",
            )
        seen[post.id] = index
        posts.append((post, include))

    pick: IssuePost | None = None
    pick_node = doc.get("archive_pick")
    if pick_node is not None:
        pick, include = check.post(pick_node, "archive_pick", doc, "archive_pick", pick=True)
        if not include:
            pick = None
    return DraftFile(
        number=number,
        since=times["since"],
        until=times["until"],
        subject=subject,
        intro=intro,
        posts=posts,
        archive_pick=pick,
        lines=lines,
    )
