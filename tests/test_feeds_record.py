"""record_entries in batches: the cases a batch could get wrong (a key the feed repeats, a GUID
rewrite and an id clash inside one batch, a duplicate across two blogs recorded in one run), and
statement counts: a feed's record step does not grow with the feed, a 304 is three."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from digest.config import Settings, load_blogs
from digest.feeds.gather import gather_sync
from digest.feeds.record import Recorded, post_id, record_entries
from digest.models import Entry, Post
from digest.store import posts as store_posts
from digest.store.db import transaction

NOW = datetime(2026, 11, 30, 8, tzinfo=UTC)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
# Two keys whose post ids clash in their 8 hex digits (sha1 prefix 140be441).
CLASH = ("https://example.org/p/31602", "https://example.org/p/108972")


def entry(n: int | str, *, blog: str = "b", title: str | None = None, **kw: Any) -> Entry:
    url = kw.pop("url", f"https://{blog}.example/posts/{n}/")
    fields: dict[str, Any] = {
        "key": f"https://{blog}.example/?p={n}",
        "title": title or f"Post {n}",
        "url": url,
        "author": None,
        "published": NOW - timedelta(days=1),
        "excerpt": f"About {n}.",
    }
    fields.update(kw)
    return Entry(**fields)


def record(conn: Any, blog: str, entries: Sequence[Entry], *, first_run: bool) -> Recorded:
    with transaction(conn):
        return record_entries(
            conn,
            blog,
            entries,
            now=NOW,
            first_run=first_run,
            window_start=LONG_AGO if first_run else NOW - timedelta(days=7),
        )


def stored(conn: Any, blog: str) -> dict[str, tuple[str, str, str | None]]:
    """key -> (id, title, duplicate_of) of every post of the blog."""
    rows = conn.execute("SELECT key, id, title, duplicate_of FROM posts WHERE blog = ?", (blog,))
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_a_key_the_feed_repeats_is_one_post_the_first_as_listed(conn: Any) -> None:
    first, again = entry(1), entry(1, title="Post 1, listed again")
    out = record(conn, "b", [first, entry(2), again], first_run=True)
    assert len(out.new) == 2 and out.updated == 0
    assert {k: v[1] for k, v in stored(conn, "b").items()} == {
        first.key: "Post 1",
        entry(2).key: "Post 2",
    }
    # Later: a repeated known key is one update, not two.
    edited = replace(first, title="Post 1 (edited)")
    out = record(conn, "b", [edited, replace(edited, title="other")], first_run=False)
    assert out.updated == 1 and stored(conn, "b")[first.key][1] == "Post 1 (edited)"


def test_a_guid_rewrite_inside_the_batch_claims_the_old_post_once(conn: Any) -> None:
    old = entry(1, title="Run")
    record(conn, "b", [old, entry(2)], first_run=True)
    old_id = stored(conn, "b")[old.key][0]
    # The CMS re-keys post 1 (same link and title) and a second entry shares its link and
    # title: the first is the rewrite, the second a post of its own (XXIIVV's "Run").
    moved = replace(old, key="https://b.example/new-guid/1")
    twin = replace(old, key="https://b.example/new-guid/1b")
    out = record(conn, "b", [moved, entry(2), twin, entry(3)], first_run=False)
    assert out.rewrites == 1 and out.updated == 1
    posts = stored(conn, "b")
    assert old.key not in posts and posts[moved.key][0] == old_id
    assert posts[twin.key][0] != old_id and len(posts) == 4
    assert sorted(out.new) == sorted([posts[twin.key][0], posts[entry(3).key][0]])
    events = [r[0] for r in conn.execute("SELECT detail FROM events WHERE kind = 'guid_rewrite'")]
    assert events == [f"{old_id}: {old.key!r} -> {moved.key!r}"]


def test_duplicates_across_blogs_in_one_run_point_at_the_earliest_copy(conn: Any) -> None:
    shared = "https://shared.example/essay"
    # An older copy in blog "c", seen a week before this run.
    earlier = Post("c-1", "c", "Essay", shared, None, None, NOW - timedelta(days=7), "E")
    with transaction(conn):
        store_posts.insert_post(
            conn,
            earlier,
            key="c-essay",
            link_title=None,
            canonical="shared.example/essay",
            backlog=False,
            duplicate_of=None,
        )
    out_a = record(conn, "a", [entry("essay", blog="a", url=shared)], first_run=False)
    # Blog b, in the same run, lists it twice under two keys (http and https, www.).
    b_entries = [
        entry("essay", blog="b", url="http://www.shared.example/essay/"),
        entry("essay2", blog="b", url=shared + "?utm_source=rss"),
        entry("own", blog="b"),
    ]
    out_b = record(conn, "b", b_entries, first_run=False)
    assert [d.duplicate_of for d in out_a.duplicates] == ["c-1"]
    assert [d.duplicate_of for d in out_b.duplicates] == ["c-1", "c-1"]
    assert [d.of_blog for d in out_b.duplicates] == ["c", "c"]
    assert out_b.new == [stored(conn, "b")[b_entries[2].key][0]] and not out_a.new
    # A blog's own posts sharing a link are never duplicates of each other.
    out_c = record(conn, "c", [entry("again", blog="c", url=shared)], first_run=False)
    assert out_c.duplicates == [] and len(out_c.new) == 1


def test_post_ids_that_clash_get_longer_ones_inside_the_batch_and_against_the_store(
    conn: Any,
) -> None:
    assert post_id("b", CLASH[0]) == post_id("b", CLASH[1])
    taken = post_id("b", "https://b.example/?p=9")
    with transaction(conn):  # another post already holds the id the entry would get
        store_posts.insert_post(
            conn,
            Post(taken, "b", "Squatter", None, None, None, NOW, ""),
            key="squatter",
            link_title=None,
            canonical=None,
            backlog=True,
            duplicate_of=None,
        )
    entries = [entry(1, key=CLASH[0]), entry(2, key=CLASH[1]), entry(9)]
    record(conn, "b", entries, first_run=True)
    posts = stored(conn, "b")
    assert posts[CLASH[0]][0] == post_id("b", CLASH[0])
    assert posts[CLASH[1]][0] == post_id("b", CLASH[1], 12)
    assert posts[entries[2].key][0] == post_id("b", entries[2].key, 12)
    assert posts["squatter"][0] == taken


class Counting:
    """The connection, counting the statements sent to it (execute and executemany calls)."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.calls = conn, 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.calls += 1
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        self.calls += 1
        return self.conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_a_feed_costs_a_few_statements_whatever_its_length(conn: Any) -> None:
    def calls(blog: str, n: int, *, edit: bool = False) -> int:
        entries = [entry(i, blog=blog) for i in range(n)]
        if edit:  # a later run: every entry edited in place, and one new
            entries = [replace(e, excerpt="Edited.") for e in entries] + [entry(n, blog=blog)]
        counting = Counting(conn)
        with transaction(conn):
            record_entries(
                counting,  # type: ignore[arg-type]
                blog,
                entries,
                now=NOW,
                first_run=not edit,
                window_start=LONG_AGO,
            )
        return counting.calls

    small, large = calls("small", 20), calls("large", 400)
    assert small == large <= 5
    assert calls("small", 20, edit=True) == calls("large", 400, edit=True) <= 5
    assert conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0] == 20 + 400 + 2


def test_a_feed_answering_304_costs_three_statements(feed_server, write_blogs, conn) -> None:
    urls = {
        f"b{i}": feed_server.serve_fixture(f"/{i}.xml", "colah.rss.xml", etag=f'"e{i}"')
        for i in range(3)
    }
    path = write_blogs(urls)
    settings, blogs = Settings(blogs=path), load_blogs(path)
    first = gather_sync(settings, blogs, conn, now=NOW)
    assert {r.status for r in first.results} == {"ok"}
    counting = Counting(conn)
    later = NOW + timedelta(hours=2)
    again = gather_sync(settings, blogs, counting, now=later, force=True)
    assert {(r.status, r.failures, r.next_poll) for r in again.results} == {
        ("not_modified", 0, later + timedelta(hours=1))
    }
    # Each feed: its row, one UPDATE (validators and success), its newest post.
    assert counting.calls == 3 * 3
    rows = conn.execute("SELECT blog, etag, last_success, http_status FROM feeds ORDER BY blog")
    assert [tuple(r) for r in rows] == [
        (f"b{i}", f'"e{i}"', "2026-11-30T10:00:00Z", 304) for i in range(3)
    ]
