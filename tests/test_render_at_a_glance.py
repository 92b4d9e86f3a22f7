"""At a glance: a prolific blog shows max_posts_per_blog posts in full and the rest as compact
title links; reading time when the feed carried the full content."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from digest.config import BlogsFile
from digest.models import Post
from digest.render import render_issue
from digest.store import posts as store_posts
from digest.store import transaction
from test_render_email import BASE, make_issue, make_post


def test_a_prolific_blog_shows_three_in_full_and_the_rest_as_title_links(
    blogs: BlogsFile,
) -> None:
    posts = [make_post("xxiivv", "permacomputing", n) for n in range(7)]
    posts.append(make_post("hundred-rabbits", "permacomputing", 99))
    rendered = render_issue(make_issue(posts), blogs, base_url=BASE)
    html, text = rendered.html, rendered.text
    assert rendered.posts == 8 and rendered.shown == 8
    assert html.count('class="post"') == 3 + 1
    assert "and 4 more from XXIIVV" in html
    for n in range(3, 7):  # compact: the title, linked
        assert f'<a href="https://xxiivv.example.org/posts/{n}"' in html
        assert f"- Post number {n} \u00b7 5 Jul 2026 [" in text
    assert html.count('class="excerpt"') == 4  # excerpts only for the posts in full
    assert "XXIIVV</a> (7)" in html and "XXIIVV (7)" in text  # In this issue counts them all
    # the curator decides how many
    blogs.newsletter.max_posts_per_blog = 1
    html = render_issue(make_issue(posts), blogs, base_url=BASE).html
    assert html.count('class="post"') == 1 + 1 and "and 6 more from XXIIVV" in html


def test_reading_time_only_from_full_content(blogs: BlogsFile) -> None:
    posts = [
        make_post("xxiivv", "permacomputing", 1, words=1380),
        make_post("hundred-rabbits", "permacomputing", 2),  # summary only
        make_post("chris-olah", "ml", 3, words=40),  # a teaser in the content element
    ]
    text = render_issue(make_issue(posts), blogs, base_url=BASE).text
    assert "A. Writer \u00b7 5 Jul 2026 \u00b7 6 min read" in text
    assert text.count("min read") == 1


def test_posts_keep_their_word_count(conn: sqlite3.Connection) -> None:
    now = datetime(2026, 7, 6, tzinfo=UTC)
    post = Post("b-1", "b", "T", "https://b.example/1", None, None, now, "E", words=812)
    with transaction(conn):
        store_posts.insert_post(
            conn, post, key="k", link_title=None, canonical=None, backlog=False, duplicate_of=None
        )
    assert store_posts.get_posts(conn, ["b-1"])["b-1"].words == 812
    with transaction(conn):
        store_posts.update_post(
            conn,
            "b-1",
            key="k",
            link_title=None,
            canonical=None,
            title="T",
            url="https://b.example/1",
            author=None,
            published=None,
            excerpt="E",
            words=None,
        )
    assert store_posts.get_posts(conn, ["b-1"])["b-1"].words is None
