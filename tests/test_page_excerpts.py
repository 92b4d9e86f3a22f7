"""excerpt: page: the lede of each post's own page, served by the real local HTTP server (which
fails on purpose: 500, a stall, too big, not HTML), fetched through the guard at draft time for
the issue's posts only, stored in the real database (SQLite or PostgreSQL), cached for good,
and carried into the rendered email."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from digest.config import load_blogs
from digest.feeds.page import cut_lede, decode, lede
from digest.issue.draft import load_issue, refresh_draft
from digest.render import render_issue
from digest.store import pages as store
from digest.store import posts as store_posts
from digest.store import transaction
from plugins.drafting import NOW, Week
from plugins.feedserver import FeedServer

BLOG = "xxiivv"  # the blog set to `excerpt: page` (XXIIVV in the repository's blogs.yaml)


def article(name: str) -> str:
    """A blog post's page: navigation, a heading, three paragraphs of prose, a footer."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>A post | XXIIVV</title></head>"
        "<body><header><nav><a href='/'>Home</a> <a href='/about'>About</a></nav></header>"
        f"<main><article><h1>Heading of {name}</h1>"
        f"<p>The lede of {name} starts here, on its own page. Boats need tools that last, so "
        "we make them from what we find in the harbour.</p>"
        "<p>Our second gyroscope worked, the first and the third did not. This post is about "
        "those two, and what a bicycle hub can teach you about angular momentum.</p>"
        "<p>The rest of the post goes on for a long while about aluminium, vibrations and the "
        "smell of hot bearings, none of which fits in an excerpt of a weekly digest.</p>"
        "</article></main><footer>Copyright 2026. Subscribe to the newsletter!</footer>"
        "</body></html>"
    )


def expected_lede(name: str) -> str:
    return (
        f"The lede of {name} starts here, on its own page. Boats need tools that last, so we "
        "make them from what we find in the harbour. Our second gyroscope worked, the first and "
        "the third did not. This post is about those two, and what a bicycle hub can teach you "
        "about angular momentum."
    )


def _page_blog(week: Week, feed_server: FeedServer, *, excerpt: str = "page") -> dict[str, str]:
    """XXIIVV asks for `excerpt: <excerpt>`; every one of its posts (back catalogue included)
    links to a page on the local server. Returns post id -> served path."""
    text = week.settings.blogs.read_text()
    anchor = "        homepage: https://wiki.xxiivv.com/site/home.html\n"
    assert anchor in text
    week.settings.blogs.write_text(text.replace(anchor, anchor + f"        excerpt: {excerpt}\n"))
    week.blogs = load_blogs(week.settings.blogs)
    week.settings = week.settings.model_copy(
        update={"allow_private_targets": True, "fetch_timeout": 1.0}
    )
    ids = [row[0] for row in week.conn.execute("SELECT id FROM posts WHERE blog = ?", (BLOG,))]
    paths = {}
    with transaction(week.conn):
        for post_id in ids:
            path = f"/posts/{post_id}.html"
            url = feed_server.serve(path, article(post_id), content_type="text/html")
            week.conn.execute("UPDATE posts SET url = ? WHERE id = ?", (url, post_id))
            paths[post_id] = path
    return paths


def _hits(feed_server: FeedServer, paths: dict[str, str]) -> dict[str, int]:
    return {i: n for i, path in paths.items() if (n := len(feed_server.hits(path)))}


def _issue_ids(week: Week) -> set[str]:
    issue = load_issue(week.settings, week.blogs, week.conn)
    entries = [*issue.posts, *([issue.archive_pick] if issue.archive_pick else [])]
    return {p.id for p in entries if p.blog == BLOG}


def test_the_page_lede_reaches_the_email_and_only_the_issue_s_pages_are_fetched(
    feed_server: FeedServer, week: Week
) -> None:
    paths = _page_blog(week, feed_server)
    feeds = store_posts.get_posts(week.conn, list(paths))
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    assert [n for n in summary.health if n.kind == "page"] == []

    in_issue = _issue_ids(week)
    new = {i for i in week.new_ids if i.startswith(BLOG)}
    assert len(new) == 2 and new <= in_issue
    # Each page of the issue fetched once; the back catalogue outside the window (all but the
    # archive pick, if it is XXIIVV's) is never asked for.
    assert _hits(feed_server, paths) == dict.fromkeys(in_issue, 1)
    assert len(paths) > len(in_issue) + 5
    hit = feed_server.hits(paths[sorted(new)[0]])[0]
    assert hit.headers["user-agent"].startswith("digest/")
    assert hit.headers["accept"].startswith("text/html")

    issue = load_issue(week.settings, week.blogs, week.conn)
    for post in issue.posts:
        if post.id in new:
            assert post.excerpt == expected_lede(post.id)
            assert feeds[post.id].excerpt != post.excerpt  # not the feed's summary
        elif post.blog != BLOG:
            assert "lede of" not in post.excerpt  # other blogs keep their feed's summary
    rendered = render_issue(issue, week.blogs, base_url="https://digest.example.org")
    words = " ".join(rendered.text.split())
    for post_id in new:
        start = f"The lede of {post_id} starts here, on its own page."
        assert start in rendered.html
        assert start in words


def test_a_re_draft_and_a_fresh_draft_ask_the_pages_nothing(
    feed_server: FeedServer, week: Week
) -> None:
    paths = _page_blog(week, feed_server)
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    fetched = _hits(feed_server, paths)
    assert fetched and set(fetched.values()) == {1}
    stored = store.get_page_excerpts(week.conn, [feed_server.url(paths[i]) for i in fetched])
    assert {row.excerpt for row in stored.values()} == {expected_lede(i) for i in fetched}

    refresh_draft(week.settings, week.blogs, week.conn, now=NOW + timedelta(hours=2))
    summary.path.rename(summary.path.with_name("aside.yaml"))  # the curator starts afresh
    refresh_draft(week.settings, week.blogs, week.conn, now=NOW + timedelta(days=2))
    load_issue(week.settings, week.blogs, week.conn)
    assert _hits(feed_server, paths) == fetched  # zero requests since the first draft


@pytest.mark.parametrize(
    ("serve", "reason"),
    [
        ({"status": 500}, "HTTP 500"),
        ({"stall_after": 100}, "timed out after 1 s"),
        ({"body": "<p>" + "x " * 3000 + "</p>"}, "larger than 4096 bytes"),
        ({"content_type": "application/pdf", "body": "%PDF-1.7"}, "not an HTML page"),
        ({"body": "<html><body><nav><a href='/'>Home</a></nav></body></html>"}, "no article"),
    ],
    ids=["500", "timeout", "too-big", "not-html", "no-text"],
)
def test_a_failure_keeps_the_feed_summary_and_says_why(
    feed_server: FeedServer, week: Week, serve: dict[str, object], reason: str
) -> None:
    paths = _page_blog(week, feed_server)
    week.settings = week.settings.model_copy(update={"fetch_max_bytes": 4096})
    broken = sorted(i for i in week.new_ids if i.startswith(BLOG))[0]
    body = serve.pop("body", article(broken))
    kind = serve.pop("content_type", "text/html")
    feed_server.serve(paths[broken], body, content_type=kind, validators=False, **serve)
    feed_summary = store_posts.get_posts(week.conn, [broken])[broken].excerpt

    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    (note,) = [n.text for n in summary.health if n.kind == "page"]
    assert note.startswith("XXIIVV: the feed's summary for") and reason in note
    assert reason in summary.path.read_text()  # in the draft's feed_health, for the curator
    issue = load_issue(week.settings, week.blogs, week.conn)
    post = next(p for p in issue.posts if p.id == broken)
    assert post.excerpt == feed_summary
    row = store.get_page_excerpts(week.conn, [feed_server.url(paths[broken])])
    assert row[feed_server.url(paths[broken])].excerpt is None
    # The failure is stored too: the next draft does not ask again, and says it again.
    again = refresh_draft(week.settings, week.blogs, week.conn, now=NOW + timedelta(hours=1))
    assert len(feed_server.hits(paths[broken])) == 1
    assert [n.text for n in again.health if n.kind == "page"] == [note]


def test_excerpt_feed_fetches_no_page_and_left_out_posts_are_not_fetched(
    feed_server: FeedServer, week: Week
) -> None:
    paths = _page_blog(week, feed_server, excerpt="feed")
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    assert feed_server.log == []  # excerpt: feed (the default): no page is ever fetched

    # The curator leaves one XXIIVV post out, then switches the blog to `excerpt: page`.
    left_out, kept = sorted(i for i in week.new_ids if i.startswith(BLOG))
    text = summary.path.read_text()
    at = text.index(f"id: {left_out}")
    at = text.index("include: true", at)
    summary.path.write_text(text[:at] + "include: false" + text[at + len("include: true") :])
    page = week.settings.blogs.read_text().replace("excerpt: feed", "excerpt: page")
    week.settings.blogs.write_text(page)
    week.blogs = load_blogs(week.settings.blogs)
    refresh_draft(week.settings, week.blogs, week.conn, now=NOW + timedelta(hours=1))
    fetched = _hits(feed_server, paths)
    assert kept in fetched and left_out not in fetched
    assert set(fetched) == _issue_ids(week)


def test_the_guard_refuses_post_pages_on_private_addresses(
    feed_server: FeedServer, week: Week
) -> None:
    paths = _page_blog(week, feed_server)
    week.settings = week.settings.model_copy(update={"allow_private_targets": False})
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    notes = [n.text for n in summary.health if n.kind == "page"]
    assert notes and all("loopback address 127.0.0.1" in n for n in notes)
    assert feed_server.log == []  # refused before connecting
    urls = [feed_server.url(p) for p in paths.values()]
    assert store.get_page_excerpts(week.conn, urls) == {}  # nothing fetched, nothing stored
    # An intranet curator allows it: the next draft fetches, as nothing was cached.
    week.settings = week.settings.model_copy(update={"allow_private_targets": True})
    again = refresh_draft(week.settings, week.blogs, week.conn, now=NOW + timedelta(hours=1))
    assert [n for n in again.health if n.kind == "page"] == []
    assert _hits(feed_server, paths)


def test_a_few_pages_at_a_time_per_host(feed_server: FeedServer, week: Week) -> None:
    paths = _page_blog(week, feed_server)
    week.settings = week.settings.model_copy(update={"fetch_per_host": 1})
    for post_id, path in paths.items():
        feed_server.serve(path, article(post_id), content_type="text/html", delay=0.1)
    refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    assert len(_hits(feed_server, paths)) >= 2 and feed_server.peak == 1


# --- the lede itself ------------------------------------------------------------------------


def test_the_lede_is_the_article_s_prose_cut_at_a_sentence() -> None:
    assert lede(article("p1"), "https://b.example/p1") == expected_lede("p1")
    # A short article is kept whole; headings and navigation never count.
    short = (
        "<html><body><header><nav><a href='/'>Home</a> <a href='/b'>Blog</a></nav></header>"
        "<main><article><h1>Title</h1><p>Only this, a short note.</p><ul><li>a list</li></ul>"
        "</article></main><footer>(c) me</footer></body></html>"
    )
    assert lede(short, "https://b.example/p2") == "Only this, a short note."


def test_a_huge_page_is_read_from_its_start_in_bounded_time() -> None:
    paragraph = "<p>One of very many paragraphs, each a sentence long. It goes on.</p>"
    huge = f"<html><body><article><h1>Long</h1>{paragraph * 100_000}</article></body></html>"
    started = time.perf_counter()
    assert lede(huge, "https://b.example/huge").startswith("One of very many paragraphs")
    assert time.perf_counter() - started < 10  # all of it: 36 s on the development machine


def test_cut_lede_prefers_a_sentence_end_and_respects_abbreviations() -> None:
    text = (
        "A gyroscope keeps its axis because angular momentum is conserved. That much is in "
        "every textbook, e.g. the one by Smith. What the textbooks leave out is how it feels to "
        "hold one: the wheel pushes back, sideways, as if it had opinions. We built three. "
        "The second one worked, which surprised everyone on the boat, the cat included."
    )
    cut = cut_lede(text)
    assert cut.endswith("We built three.") and len(cut) <= 300
    assert not cut_lede(text, 90).endswith("e.g.")  # "e.g. the" is no sentence end
    assert cut_lede("Tiny. " + "word " * 100).endswith("\u2026")  # no end near: cut on a word
    assert cut_lede("A short one.") == "A short one."


def test_the_page_is_decoded_by_its_declared_charset() -> None:
    body = "<html><head><meta charset='iso-8859-1'></head><p>Caf\u00e9</p></html>"
    assert "Caf\u00e9" in decode(body.encode("latin-1"), "text/html")
    assert "Caf\u00e9" in decode(body.encode("latin-1"), "text/html; charset=ISO-8859-1")
    assert "Caf\u00e9" in decode("<p>Caf\u00e9</p>".encode(), "text/html")
    assert "Caf" in decode(b"<p>Caf\xe9</p>", "text/html; charset=no-such-charset")
