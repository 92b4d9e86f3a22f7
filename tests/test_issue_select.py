from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.config import load_blogs
from digest.issue.select import (
    archive_candidates,
    arrange,
    feed_health,
    insertion_index,
    issue_window,
    pick_archive,
    same_url,
)
from digest.models import FeedState, Post

NOW = datetime(2026, 7, 6, 8, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)  # the window ends just after `now`: what was gathered is in


def post(blog: str, n: int, *, days_ago: float = 1, url: str | None = None) -> Post:
    seen = NOW - timedelta(days=days_ago)
    return Post(
        id=f"{blog}-{n:08x}",
        blog=blog,
        title=f"{blog} post {n}",
        url=url or f"https://{blog}.example.org/{n}",
        author=None,
        published=seen - timedelta(hours=n),
        first_seen=seen,
        excerpt="",
    )


def state(status: str, *, error: str | None = None, failures: int = 0) -> FeedState:
    return FeedState(
        blog="",
        url=None,
        status=status,
        http_status=None,
        error=error,
        failures=failures,
        last_fetch=NOW,
        last_success=NOW - timedelta(days=3) if status != "ok" else NOW,
        next_poll=None,
    )


def test_first_issue_looks_back_then_each_issue_starts_where_the_last_ended() -> None:
    first = issue_window(previous_until=None, draft_since=None, now=NOW, lookback_days=7)
    assert (first.since, first.until) == (NOW - timedelta(days=7), NOW + SECOND)
    # a re-draft of the first issue a day later keeps its start: nothing slides out
    later = NOW + timedelta(days=1)
    redraft = issue_window(previous_until=None, draft_since=first.since, now=later, lookback_days=7)
    assert (redraft.since, redraft.until) == (first.since, later + SECOND)
    # the next issue starts exactly at the previous cutoff: no gap, no overlap
    second = issue_window(previous_until=first.until, draft_since=None, now=later, lookback_days=7)
    assert (second.since, second.until) == (first.until, later + SECOND)
    gathered_at_now = post("a", 1, days_ago=0).first_seen
    next_second = gathered_at_now + SECOND
    assert gathered_at_now in first and gathered_at_now not in second
    assert next_second not in first and next_second in second


def test_posts_are_grouped_by_category_then_blog_in_file_order(blogs_yaml: Path) -> None:
    blogs = load_blogs(blogs_yaml)
    posts = [
        post("optimistic-underground", 1),
        post("lilianweng", 2),
        post("xxiivv", 3),
        post("sander-dieleman", 4),
        post("xxiivv", 5),
        post("not-in-blogs-yaml", 6),
    ]
    arranged = arrange(posts, blogs)
    assert [(p.category, p.blog) for p in arranged] == [
        ("permacomputing", "xxiivv"),
        ("permacomputing", "xxiivv"),
        ("ml", "sander-dieleman"),
        ("ml", "lilianweng"),
        ("music", "optimistic-underground"),
    ]
    # within a blog: oldest first (post 5 was published five hours before its first sight)
    assert [p.id for p in arranged[:2]] == ["xxiivv-00000005", "xxiivv-00000003"]


def test_new_posts_go_after_the_last_entry_of_their_category() -> None:
    order = ["permacomputing", "ml", "music"]
    listed = ["ml", "permacomputing", "ml", "music"]  # the curator moved things around
    assert insertion_index(listed, "ml", order) == 3
    assert insertion_index(listed, "permacomputing", order) == 2
    assert insertion_index(["ml", "music"], "permacomputing", order) == 0
    assert insertion_index(["permacomputing", "music"], "ml", order) == 1
    assert insertion_index([], "music", order) == 0
    assert insertion_index(["permacomputing"], "unknown", order) == 1


def test_archive_pick_is_deterministic_never_featured_and_alternates_pools(
    blogs_yaml: Path,
) -> None:
    blogs = load_blogs(blogs_yaml)
    catalogue = {
        "colah": [],
        "chris-olah": [post("chris-olah", n, days_ago=400 + n) for n in range(5)],
        "xxiivv": [post("xxiivv", n, days_ago=300 + n) for n in range(5)],
    }
    highlights, back = archive_candidates(blogs, catalogue, featured=[])
    assert {h.url for h in highlights} == {link.url for b in blogs.blogs() for link in b.highlights}
    assert all(h.note for h in highlights)
    odd = pick_archive(5, highlights, back)
    even = pick_archive(6, highlights, back)
    assert odd in highlights and even in back
    # same number, same pick, even with new candidates listed first
    extra = [post("xxiivv", 99, days_ago=500)]
    assert pick_archive(5, highlights, back + extra) == odd
    # what an issue featured never comes back; trailing slashes and http/https do not matter
    featured = [h.url.replace("https://", "http://") + "/" for h in highlights]
    highlights2, back2 = archive_candidates(blogs, catalogue, featured=featured)
    assert highlights2 == []
    pick = pick_archive(5, highlights2, back2)
    assert pick is not None and pick in back2
    assert pick_archive(1, [], []) is None
    # this week's posts are not archive material
    _, back3 = archive_candidates(
        blogs, catalogue, featured=[], exclude=[p.url for p in catalogue["xxiivv"] if p.url]
    )
    assert {p.blog for p in back3} == {"chris-olah"}


def test_same_url_ignores_scheme_www_case_and_trailing_slash() -> None:
    assert same_url("https://WWW.Example.org/a/") == same_url("http://example.org/a")
    assert same_url("https://example.org/a#x") != same_url("https://example.org/a")


def test_feed_health_names_failing_gone_dormant_and_duplicates(blogs_yaml: Path) -> None:
    blogs = load_blogs(blogs_yaml)
    states = {b.id: state("ok") for b in blogs.blogs()}
    states["xxiivv"] = state("error", error="HTTP 503 Service Unavailable", failures=3)
    states["hundred-rabbits"] = state("gone", error="HTTP 410 Gone")
    del states["delayed"]
    newest = {b.id: NOW - timedelta(days=2) for b in blogs.blogs()}
    newest["chris-olah"] = NOW - timedelta(days=400)
    dup = post("lilianweng", 1)
    notes = feed_health(
        blogs,
        states=states,
        newest=newest,
        duplicates=[(dup, "sander-dieleman")],
        now=NOW,
        dormant_days=180,
    )
    by_blog = {(n.blog, n.kind): n.text for n in notes}
    assert set(by_blog) == {
        ("xxiivv", "failing"),
        ("hundred-rabbits", "gone"),
        ("chris-olah", "dormant"),
        ("delayed", "unfetched"),
        ("lilianweng", "duplicate"),
    }
    assert (
        "HTTP 503" in by_blog[("xxiivv", "failing")] and "3 runs" in by_blog[("xxiivv", "failing")]
    )
    assert "400 days" in by_blog[("chris-olah", "dormant")]
    assert "Sander Dieleman" in by_blog[("lilianweng", "duplicate")]
