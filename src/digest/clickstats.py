"""What the click counts say (newsletter.click_counts): `digest stats` and the review mail.

Clicks per post and per blog for one edition, and each blog's share over the last few: plain
values, shaped here once, printed by the command (a table, or stable JSON) and quoted in the
curator's review mail. Counts of links, never of readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from digest.config import BlogsFile
from digest.errors import DigestError
from digest.models import IssuePost
from digest.store import clicks
from digest.store import issues as issues_store
from digest.store.db import Connection

LAST = 8  # issues in the blog shares by default


@dataclass(frozen=True, slots=True)
class PostClicks:
    post_id: str
    title: str
    blog: str
    url: str
    clicks: int


@dataclass(frozen=True, slots=True)
class BlogClicks:
    blog: str
    name: str
    clicks: int
    share: float = 0.0  # of all blog clicks over the issues counted


@dataclass(frozen=True, slots=True)
class IssueClicks:
    issue: int
    subject: str
    clicks: int  # every link, the newsletter's own (archive, home page) included
    posts: list[PostClicks]  # most clicked first; posts never clicked too, with 0
    blogs: list[BlogClicks]
    shares_over: list[int]  # the issues of ``shares``, newest first
    shares: list[BlogClicks]

    def as_json(self) -> dict[str, Any]:
        return {
            "issue": self.issue,
            "subject": self.subject,
            "clicks": self.clicks,
            "posts": [
                {"post_id": p.post_id, "title": p.title, "blog": p.blog, "url": p.url,
                 "clicks": p.clicks}
                for p in self.posts
            ],
            "blogs": [{"blog": b.blog, "name": b.name, "clicks": b.clicks} for b in self.blogs],
            "last": {
                "issues": self.shares_over,
                "blogs": [
                    {"blog": b.blog, "name": b.name, "clicks": b.clicks,
                     "share": round(b.share, 4)}
                    for b in self.shares
                ],
            },
        }  # fmt: skip


def _name(blogs: BlogsFile, blog_id: str) -> str:
    blog = blogs.blog(blog_id)
    return blog.name if blog else blog_id


def issue_clicks(
    conn: Connection, blogs: BlogsFile, issue: int | None = None, *, last: int = LAST
) -> IssueClicks | None:
    """The counts of ``issue`` (default: the latest edition sent with click counts); None
    when no edition has any. An edition that is not in the archive, or was sent without click
    counts, is a DigestError naming it."""
    if issue is None:
        latest = clicks.counted_issues(conn, 1)
        if not latest:
            return None
        issue = latest[0]
    archived = issues_store.get_issue(conn, issue)
    if archived is None:
        raise DigestError(
            f"issue {issue} is not in the archive",
            hint="`digest stats` without a number shows the latest issue sent",
        )
    counts = clicks.link_counts(conn, issue)
    if not counts:
        raise DigestError(
            f"issue {issue} was sent without click counts: its links lead straight to the posts",
            hint="issues sent after `click_counts: true` (newsletter: in blogs.yaml) are counted",
        )
    content = archived.content
    featured: dict[str, IssuePost] = {p.id: p for p in content.posts}
    if content.archive_pick is not None:
        featured.setdefault(content.archive_pick.id, content.archive_pick)
    per_post = clicks.post_clicks(conn, [issue])
    posts = sorted(
        (
            PostClicks(p.id, " ".join(p.title.split()) or p.url, p.blog, p.url,
                       per_post.get(p.id, 0))
            for p in featured.values()
        ),
        key=lambda p: -p.clicks,
    )  # fmt: skip
    per_blog = clicks.blog_clicks(conn, [issue])
    shown = [BlogClicks(b, _name(blogs, b), n) for b, n in per_blog.items()]
    over = clicks.counted_issues(conn, last)
    totals = clicks.blog_clicks(conn, over)
    whole = sum(totals.values())
    shares = [
        BlogClicks(b, _name(blogs, b), n, n / whole if whole else 0.0) for b, n in totals.items()
    ]
    return IssueClicks(
        issue=issue,
        subject=archived.subject,
        clicks=sum(c.clicks for c in counts),
        posts=posts,
        blogs=sorted(shown, key=lambda b: (-b.clicks, b.name)),
        shares_over=over,
        shares=sorted(shares, key=lambda b: (-b.clicks, b.name)),
    )


def review_lines(conn: Connection, limit: int = 5) -> str:
    """For the review mail: the latest counted issue's most clicked posts, one a line."""
    latest = clicks.counted_issues(conn, 1)
    if not latest:
        return ""
    archived = issues_store.get_issue(conn, latest[0])
    if archived is None:
        return ""
    content = archived.content
    titles = {p.id: " ".join(p.title.split()) or p.url for p in content.posts}
    if content.archive_pick is not None:
        titles.setdefault(content.archive_pick.id, content.archive_pick.title)
    top = clicks.top_posts(conn, latest[0], limit)
    lines = "\n".join(
        f"- {titles.get(post_id, post_id)}: {n} {'click' if n == 1 else 'clicks'}"
        for post_id, n in top
    )
    return f"Most clicked in issue {latest[0]}:\n{lines or '- no clicks counted yet'}\n\n"
