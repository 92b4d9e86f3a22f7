"""Rendering an issue once, then personalising it per subscriber, vs premailer per subscriber.

The issue: 30 posts from the real fixture feeds (their titles and excerpts), every blog of
the repository's blogs.yaml, an intro and notes in Markdown, an archive pick. digest renders it
once (Jinja2 + premailer) and makes each subscriber's copy by substituting placeholders; the
reference is what a naive sender does: run premailer for every subscriber (measured here on
the very same HTML, so the ratio is the cost of inlining, not of templates).

    python benchmarks/bench_render.py
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.config import load_blogs
from digest.feeds.parse import parse_feed
from digest.models import Issue, IssuePost
from digest.render import render_issue
from digest.render.email import _html, inline_css
from digest.render.view import build_view

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import best_of, peak_rss_mb, ratio, table  # noqa: E402

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
BASE = "https://digest.example.org"
FIXTURES = ROOT / "tests" / "fixtures" / "feeds"
FEEDS = {
    "xxiivv.rss.xml": "xxiivv",
    "100r.rss.xml": "hundred-rabbits",
    "sander.atom.xml": "sander-dieleman",
    "lilianweng.index.xml": "lilianweng",
    "colah.rss.xml": "chris-olah",
    "optimisticunderground.rss.xml": "optimistic-underground",
}
SUBSCRIBERS = 100_000


def thirty_post_issue() -> Issue:
    blogs = load_blogs(ROOT / "blogs.yaml")
    posts: list[IssuePost] = []
    per_feed = {name: 5 for name in FEEDS} | {
        "xxiivv.rss.xml": 6,
        "optimisticunderground.rss.xml": 4,
    }
    for name, blog_id in FEEDS.items():
        blog = blogs.blog(blog_id)
        assert blog is not None
        parsed = parse_feed((FIXTURES / name).read_bytes(), url="https://x.example/", headers={})
        for n, entry in enumerate(parsed.entries[: per_feed[name]]):
            posts.append(
                IssuePost(
                    id=f"{blog_id}-{n:08x}",
                    title=entry.title,
                    url=entry.url or blog.homepage,
                    blog=blog_id,
                    category=blog.category,
                    author=entry.author,
                    date=NOW - timedelta(days=1),
                    excerpt=entry.excerpt,
                    note="Worth it for the *second* half; see [this](https://example.org/x)."
                    if n == 0
                    else "",
                )
            )
    assert len(posts) == 30
    return Issue(
        number=42,
        subject="Blogs I like #42",
        intro="A week of **diffusion** and paper folding. [The archive](https://example.org/).",
        since=NOW - timedelta(days=7),
        until=NOW,
        posts=posts,
        archive_pick=posts[7].model_copy(update={"id": "pick", "note": "An old favourite."}),
    )


def main() -> None:
    blogs = load_blogs(ROOT / "blogs.yaml")
    issue = thirty_post_issue()
    render_issue(issue, blogs, base_url=BASE)  # warm up: templates compiled, caches filled

    render_s = best_of(20, lambda: render_issue(issue, blogs, base_url=BASE))
    rendered = render_issue(issue, blogs, base_url=BASE)

    token = "t" * 43

    def personalise() -> None:
        rendered.fill(
            unsubscribe_url=f"{BASE}/unsubscribe/{token}",
            preferences_url=f"{BASE}/preferences/{token}",
            web_url=f"{BASE}/archive/42",
            name="Ada Lovelace",
        )

    rounds = []
    for _ in range(7):
        n = 20_000
        start = time.perf_counter()
        for _ in range(n):
            personalise()
        rounds.append((time.perf_counter() - start) / n)
    fill_s = statistics.median(rounds)

    # The reference: premailer for every subscriber, on the same template output.
    raw = _html(build_view(issue, blogs, base_url=BASE), None, {})  # no click counts
    premailer_s = best_of(20, lambda: inline_css(raw))

    def verdict(value: float, target: float) -> str:
        return "ok" if value < target else "MISSED"

    table(
        "render one 30-post issue, personalise per subscriber (digest) vs premailer per "
        "subscriber (reference)",
        [
            (
                "render the issue once (Jinja2 + premailer)",
                f"{render_s * 1e3:.1f} ms",
                "-",
                "-",
                f"< 50 ms: {verdict(render_s, 0.050)}",
            ),
            (
                "one subscriber's copy",
                f"{fill_s * 1e6:.1f} us",
                f"{premailer_s * 1e6:.0f} us",
                ratio(premailer_s, fill_s),
                f"< 50 us: {verdict(fill_s, 50e-6)}",
            ),
            (
                f"{SUBSCRIBERS:,} subscribers",
                f"{(render_s + fill_s * SUBSCRIBERS):.2f} s",
                f"{premailer_s * SUBSCRIBERS:.0f} s",
                ratio(premailer_s * SUBSCRIBERS, render_s + fill_s * SUBSCRIBERS),
                f"< 5 s: {verdict(render_s + fill_s * SUBSCRIBERS, 5.0)}",
            ),
            (
                "encoded HTML (quoted-printable)",
                f"{rendered.size / 1024:.1f} KB",
                "-",
                "-",
                "< 90 KB: " + verdict(rendered.size, 90 * 1024),
            ),
            ("peak RSS", f"{peak_rss_mb():.0f} MB", "-", "-", "-"),
        ],
    )


if __name__ == "__main__":
    main()
