"""Click counts (newsletter.click_counts): short links the same in every copy, a redirect that
counts readers only, and `digest stats`. Real parts: aiosmtpd, the database, Starlette's
TestClient with its lifespan (the counts are flushed every second and at shutdown, and wait out
a database that refuses them), `digest send` killed and resumed as a process."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from digest.cli import main
from digest.config import load_blogs
from digest.models import Issue, IssuePost
from digest.render import render_issue
from digest.render.links import edition_links, short_links
from digest.send.deliver import send_issue
from digest.store import clicks
from digest.store import issues as issues_store
from digest.store.db import transaction
from digest.web import create_app
from digest.web.redirect import counted
from digest.weekly import review
from plugins.feedserver import FeedServer
from plugins.smtp import Newsroom, Received, SmtpServer, free_port

BASE = "https://digest.example.org"
SHORT = re.compile(re.escape(BASE) + r"/r/1/(\d+)")
HREF = re.compile(r'href="([^"]*)"')
URL = re.compile(r"https?://\S+")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _counting(room: Newsroom) -> None:
    path = Path(room.env["DIGEST_BLOGS"])
    path.write_text(
        path.read_text().replace("newsletter:\n", "newsletter:\n  click_counts: true\n", 1)
    )
    room.blogs = load_blogs(path)


def _send(room: Newsroom, server: SmtpServer) -> None:
    env = {k.removeprefix("DIGEST_").lower(): v for k, v in server.env().items()}
    send_issue(room.settings(**env), room.blogs, room.conn, now=room.now, retry_delays=(0.05,))


def _parts(received: Received) -> tuple[str, str]:
    msg = received.message
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert isinstance(html, EmailMessage) and isinstance(text, EmailMessage)
    return html.get_content(), text.get_content()


def _n(url: str) -> int:
    """The link number of a short link of issue 1 (-1: not one)."""
    found = SHORT.fullmatch(url)
    return int(found[1]) if found else -1


def _personal(url: str) -> bool:
    return any(f"{BASE}/{p}" in url for p in ("unsubscribe/", "preferences/", "archive/1"))


def _outbound(html: str, text: str) -> tuple[list[str], list[str]]:
    """The links of one copy that are not per-recipient (or in-page anchors)."""
    hrefs = [unescape(h) for h in HREF.findall(html)]
    return (
        [h for h in hrefs if not h.startswith("#") and not _personal(h)],
        [u for u in URL.findall(text) if not _personal(u)],
    )


def _ready(room: Newsroom) -> dict[str, list[str] | None]:
    """Click counts on, a drafted issue, readers of three category variants."""
    _counting(room)
    room.add_posts(2)
    room.draft()
    readers: dict[str, list[str] | None] = {
        "all1@example.net": None,
        "all2@example.net": None,
        "ml1@example.net": ["ml"],
        "ml2@example.net": ["ml"],
        "mix@example.net": ["music", "permacomputing"],
    }
    for address, cats in readers.items():
        room.subscribe(address, name="Ann", categories=cats)
    return readers


def test_every_copy_and_variant_carries_the_same_short_links(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    readers = _ready(newsroom)
    _send(newsroom, smtp_server)
    assert Counter(r for m in smtp_server.messages for r in m.rcpt_tos) == {a: 1 for a in readers}
    stored = clicks.links(newsroom.conn, 1)
    archived = issues_store.get_issue(newsroom.conn, 1)
    assert archived is not None and stored
    issue = archived.content
    # The map names every post of the edition (and its blog), whatever variant a reader gets.
    targets = {t.url: t for t in edition_links(issue, newsroom.blogs, base_url=BASE)}
    assert [stored[n] for n in sorted(stored)] == list(targets)
    for post in issue.posts:
        assert targets[post.url].post_id == post.id and targets[post.url].blog == post.blog
    featured = [*issue.posts, *([issue.archive_pick] if issue.archive_pick else [])]
    by_title: dict[str, str] = {}
    variants: dict[str, tuple[list[str], list[str]]] = {}
    for received in smtp_server.messages:
        html, text = _parts(received)
        hrefs, urls = _outbound(html, text)
        assert hrefs and urls
        # Every link that is not the reader's own is a short link of this edition, in both parts.
        assert all(_n(h) in stored for h in hrefs)
        assert all(SHORT.fullmatch(u) for u in urls), urls
        # A post title leads to the short link of that post, the same in every variant.
        for short, title in re.findall(r'class="post-title" href="([^"]+)"[^>]*>([^<]+)<', html):
            assert by_title.setdefault(title, short) == short
            post = next(p for p in featured if p.title == unescape(title))
            assert stored[_n(short)] == post.url
        # Readers of one variant get byte-identical links.
        key = json.dumps(readers[received.rcpt_tos[0]])
        assert variants.setdefault(key, (hrefs, urls)) == (hrefs, urls)
        # The personal links stay the reader's own; never a tracking pixel.
        assert "/unsubscribe/" in html and "/r/" not in received.message["List-Unsubscribe"]
        for img in re.findall(r"<img\b[^>]*>", html):
            assert not re.search(r'\b(width|height)="?[01]"?\b', img), img
            assert "/r/" not in img and "unsubscribe" not in img
    assert len(variants) == 3 and len(by_title) == len(featured)
    # The web archive keeps direct links.
    assert "/r/" not in archived.html and issue.posts[0].url in archived.html


def test_off_sends_direct_links_and_stores_no_map(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    newsroom.add_posts(1)
    newsroom.draft()
    newsroom.subscribe("ann@example.net")
    _send(newsroom, smtp_server)
    html, text = _parts(smtp_server.messages[0])
    assert "/r/" not in html and "/r/" not in text
    assert clicks.links(newsroom.conn, 1) == {}
    archived = issues_store.get_issue(newsroom.conn, 1)
    assert archived is not None and archived.content.posts[0].url in html


def _digest(room: Newsroom, server: SmtpServer, *args: str) -> subprocess.Popen[str]:
    env = room.subprocess_env()
    env.update(server.env())
    env["DIGEST_SMTP_POOL"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "digest", *args],
        cwd=room.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_send_killed_and_resumed_keeps_the_same_links(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    _counting(newsroom)
    newsroom.add_posts(1)
    newsroom.draft()
    addresses = newsroom.subscribe_many(60)
    smtp_server.handler.delay = 0.02
    first = _digest(newsroom, smtp_server, "send", "--yes")
    deadline = time.monotonic() + 60
    while len(smtp_server.messages) < 10:
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert len(smtp_server.messages) < 60
    smtp_server.handler.delay = 0
    second = _digest(newsroom, smtp_server, "send", "--yes")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert sorted(set(smtp_server.copies())) == sorted(addresses)
    seen = {json.dumps(_outbound(*_parts(m))) for m in smtp_server.messages}
    assert len(seen) == 1  # before the kill and after it: one set of links
    assert SHORT.search(seen.pop())


def test_text_part_lines_stay_under_78_columns() -> None:
    blogs = load_blogs(Path(__file__).resolve().parent.parent / "blogs.yaml")
    long = "https://example.org/" + "a-very-long-slug-" * 6 + "?utm_source=feed&page=2"
    note = "See [the thread](https://example.org/thread/" + "x" * 70 + ") and <" + long + ">."
    issue = Issue(
        number=1,
        subject="A week",
        intro="Hello, [a long link](" + long + "/intro).",
        since=datetime(2026, 11, 23, tzinfo=UTC),
        until=datetime(2026, 11, 30, tzinfo=UTC),
        posts=[
            IssuePost(id="xxiivv-1", title="Forth", url=long, blog="xxiivv",
                      category="permacomputing", note=note),
        ],
    )  # fmt: skip
    targets = edition_links(issue, blogs, base_url=BASE)
    short = short_links(BASE, 1, {n: t.url for n, t in enumerate(targets, start=1)})
    assert f"{long}/intro" in short and "https://example.org/thread/" + "x" * 70 in short
    rendered = render_issue(issue, blogs, base_url=BASE, links=short)
    direct = render_issue(issue, blogs, base_url=BASE)
    assert max(len(line) for line in direct.text.splitlines()) >= 78  # what it fixes
    html, text = rendered.fill(
        unsubscribe_url=f"{BASE}/u", preferences_url=f"{BASE}/p", web_url=f"{BASE}/w", name="Ann"
    )
    assert max(len(line) for line in text.splitlines()) < 78, text
    assert long not in text and long not in html and "example.org/thread" not in html
    assert re.findall(r"https?://\S+", text) and all(
        u.rstrip(".>").startswith((f"{BASE}/r/1/", f"{BASE}/u", f"{BASE}/p", f"{BASE}/w"))
        for u in re.findall(r"https?://\S+", text)
    )
    # Off: exactly the mail of before, not a byte changed.
    assert render_issue(issue, blogs, base_url=BASE, links={}) == direct


def _web(room: Newsroom) -> TestClient:
    settings = room.settings()
    return TestClient(create_app(settings, room.blogs, room.db_path), base_url="http://testserver")


def _clicks(room: Newsroom) -> dict[int, int]:
    return {c.n: c.clicks for c in clicks.link_counts(room.conn, 1) if c.clicks}


def test_redirect_counts_readers_only(newsroom: Newsroom, smtp_server: SmtpServer) -> None:
    _ready(newsroom)
    _send(newsroom, smtp_server)
    stored = clicks.links(newsroom.conn, 1)
    post_n = next(n for n, url in stored.items() if "/post-" in url)
    reader = {"user-agent": BROWSER}
    with _web(newsroom) as client:
        answer = client.get(f"/r/1/{post_n}", headers=reader, follow_redirects=False)
        assert answer.status_code == 302 and answer.headers["location"] == stored[post_n]
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "set-cookie" not in answer.headers
        client.get(f"/r/1/{post_n}", headers=reader, follow_redirects=False)
        # Answered, not counted: HEAD, prefetches, link scanners, no agent at all.
        assert (
            client.head(f"/r/1/{post_n}", headers=reader, follow_redirects=False).status_code == 302
        )
        for extra in (
            {"sec-purpose": "prefetch;prerender"},
            {"purpose": "prefetch"},
            {"x-purpose": "preview"},
            {"x-moz": "prefetch"},
            {"user-agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"},
            {
                "user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
            },
            {"user-agent": "Proofpoint URL Defense"},
            {"user-agent": ""},
        ):
            answer = client.get(
                f"/r/1/{post_n}", headers={**reader, **extra}, follow_redirects=False
            )
            assert answer.status_code == 302, extra
        # Unknown links are a 404 page, never a redirect.
        for path in ("/r/1/9999", "/r/2/1", "/r/99999999999999999999/1", "/r/1/x"):
            answer = client.get(path, headers=reader, follow_redirects=False)
            assert answer.status_code == 404 and "location" not in answer.headers, path
            assert "does not exist" in answer.text
    # Flushed at shutdown: two clicks, on that link only.
    assert _clicks(newsroom) == {post_n: 2}
    # Two servers on one database at once (a fleet behind a balancer): their counts add up.
    with _web(newsroom) as one, _web(newsroom) as two:
        for client in (one, two, one):
            client.get(f"/r/1/{post_n}", headers=reader, follow_redirects=False)
    assert _clicks(newsroom) == {post_n: 5}


def test_prefetch_and_scanner_rules() -> None:
    assert counted("GET", {"user-agent": BROWSER})
    assert not counted("HEAD", {"user-agent": BROWSER})
    assert not counted("GET", {"user-agent": BROWSER, "sec-purpose": "prefetch"})
    assert not counted("GET", {"user-agent": "Mozilla/5.0 HeadlessChrome/120.0"})
    assert not counted("GET", {"user-agent": "Microsoft Office/16.0 (Windows NT 10.0)"})
    assert not counted("GET", {"user-agent": "Mimecast-LinkScanner"})
    assert not counted("GET", {"user-agent": "Google-Safety"})


def _cli(room: Newsroom, *args: str) -> tuple[int, str]:
    env = {**room.env, "COLUMNS": "200"}
    result = CliRunner().invoke(main, ["stats", *args], env=env)
    return result.exit_code, result.output


def test_stats_per_post_per_blog_and_shares(newsroom: Newsroom, smtp_server: SmtpServer) -> None:
    code, out = _cli(newsroom)
    assert code == 0 and "Click counts are off" in " ".join(out.split())
    assert "click_counts: true" in out
    _ready(newsroom)
    _send(newsroom, smtp_server)
    archived = issues_store.get_issue(newsroom.conn, 1)
    assert archived is not None
    targets = edition_links(archived.content, newsroom.blogs, base_url=BASE)
    posts = [(n, t) for n, t in enumerate(targets, start=1) if t.post_id]
    (n1, top), (n2, second) = posts[0], posts[1]
    homepage = next(n for n, t in enumerate(targets, start=1) if t.blog and not t.post_id)
    clicks.add_clicks(newsroom.conn, {(1, n1): 5, (1, n2): 2, (1, homepage): 1})
    code, out = _cli(newsroom, "--json")
    assert code == 0, out
    got = json.loads(out)
    assert got["click_counts"] is True and got["issue"] == 1 and got["clicks"] == 8
    assert got["posts"][0] == {
        "post_id": top.post_id, "title": got["posts"][0]["title"], "blog": top.blog,
        "url": top.url, "clicks": 5,
    }  # fmt: skip
    assert got["posts"][1]["post_id"] == second.post_id and got["posts"][1]["clicks"] == 2
    per_blog = {b["blog"]: b["clicks"] for b in got["blogs"]}
    assert sum(per_blog.values()) == 8 and per_blog[top.blog] >= 5
    assert got["last"]["issues"] == [1]
    assert abs(sum(b["share"] for b in got["last"]["blogs"]) - 1) < 0.001
    code, out = _cli(newsroom, "1", "--last", "3")
    words = " ".join(out.split())
    assert code == 0 and "Issue 1" in words and "8 clicks" in words
    assert (
        got["posts"][0]["title"] in words
        and "Each blog's share of the clicks, last 1 issue" in words
    )
    code, out = _cli(newsroom, "7")
    assert code == 1 and "issue 7 is not in the archive" in out


def test_the_review_mail_shows_the_last_issues_top_posts(
    newsroom: Newsroom, smtp_server: SmtpServer, feed_server: FeedServer
) -> None:
    newsroom.local_feeds(feed_server)  # no internet: the review's gathering is served locally
    _ready(newsroom)
    _send(newsroom, smtp_server)
    archived = issues_store.get_issue(newsroom.conn, 1)
    assert archived is not None
    targets = edition_links(archived.content, newsroom.blogs, base_url=BASE)
    posts = [(n, t) for n, t in enumerate(targets, start=1) if t.post_id]
    clicks.add_clicks(newsroom.conn, {(1, posts[2][0]): 7, (1, posts[0][0]): 1})
    titles = {p.id: p.title for p in archived.content.posts}
    sent_before = len(smtp_server.messages)
    newsroom.now += timedelta(days=6)
    newsroom.add_posts(1)
    env = {k.removeprefix("DIGEST_").lower(): v for k, v in smtp_server.env().items()}
    review(
        newsroom.settings(**env),
        newsroom.blogs,
        newsroom.conn,
        now=newsroom.now,
        slot=newsroom.now + timedelta(hours=20),
    )
    [received] = smtp_server.messages[sent_before:]
    note = received.message.get_body(("plain",))
    assert isinstance(note, EmailMessage)
    words = " ".join(note.get_content().split())
    top, other = titles[posts[2][1].post_id or ""], titles[posts[0][1].post_id or ""]
    assert f"Most clicked in issue 1: - {top}: 7 clicks - {other}: 1 click" in words


def test_counts_wait_out_a_failing_database_and_are_written_once(
    newsroom: Newsroom, caplog: pytest.LogCaptureFixture
) -> None:
    with transaction(newsroom.conn):
        clicks.save_links(newsroom.conn, 1, [("https://blog.example.org/a", "p1", "blog")])
    reader = {"user-agent": BROWSER}

    def until(check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10
        while not check():
            assert time.monotonic() < deadline
            time.sleep(0.05)

    with _web(newsroom) as client:
        with transaction(newsroom.conn):  # the flush now fails, for real, inside the database
            newsroom.conn.execute("ALTER TABLE clicks RENAME TO clicks_away")
        for _ in range(3):
            assert client.get("/r/1/1", headers=reader, follow_redirects=False).status_code == 302
        until(lambda: "click counts not written yet (3 clicks kept)" in caplog.text)
        with transaction(newsroom.conn):
            newsroom.conn.execute("ALTER TABLE clicks_away RENAME TO clicks")
        until(lambda: _clicks(newsroom) == {1: 3})  # the next flush, every second
        client.get("/r/1/1", headers=reader, follow_redirects=False)
    assert _clicks(newsroom) == {1: 4}  # and the last one at shutdown: none lost, none twice


def test_digest_serve_writes_the_counts_when_it_is_stopped(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    _ready(newsroom)
    _send(newsroom, smtp_server)
    port = free_port()
    server = _digest(newsroom, smtp_server, "serve", "--port", str(port))
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()
            time.sleep(0.05)
        with httpx.Client(base_url=base, headers={"user-agent": BROWSER}) as client:
            for n in (1, 2, 2):
                assert client.get(f"/r/1/{n}").status_code == 302
            assert client.get("/r/1/2", headers={"user-agent": "curl/8.5"}).status_code == 302
    finally:
        server.send_signal(signal.SIGTERM)  # at once: the counts are still in memory
        _, log = server.communicate(timeout=30)
    assert "Traceback" not in log, log
    assert _clicks(newsroom) == {1: 1, 2: 2}
