"""Webmentions to the featured posts (digest/webmention.py), against a local receiver."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mf2py
import pytest
from click.testing import CliRunner

from digest import net
from digest.cli import main
from digest.config import BlogsFile, Settings, load_blogs
from digest.errors import ConfigError
from digest.models import Issue, IssuePost
from digest.store import connect, transaction
from digest.store.db import Connection
from digest.store.issues import freeze_issue, set_issue_status
from digest.webmention import (
    MAX_ATTEMPTS,
    html_endpoint,
    link_header_endpoint,
    send_webmentions,
)
from digest.weekly import run_once
from plugins.receiver import Receiver
from plugins.smtp import Newsroom, SmtpServer
from plugins.website import Web, freeze

BASE = "https://digest.example.org"
SENT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def turn_on(blogs_yaml: Path) -> BlogsFile:
    text = blogs_yaml.read_text()
    blogs_yaml.write_text(text.replace("newsletter:\n", "newsletter:\n  webmentions: true\n", 1))
    return load_blogs(blogs_yaml)


@pytest.fixture
def room(blogs_yaml: Path, db_path: Path) -> Iterator[tuple[Settings, BlogsFile, Connection]]:
    settings = Settings(
        base_url=BASE, blogs=blogs_yaml, db=db_path, allow_private_targets=True, fetch_timeout=5
    )
    conn = connect(db_path)
    try:
        yield settings, turn_on(blogs_yaml), conn
    finally:
        conn.close()


def sent_issue(conn: Connection, number: int, *urls: str, pick: str | None = None) -> None:
    """An issue featuring ``urls`` (and ``pick`` from the archive), sent."""

    def post(n: int, url: str) -> IssuePost:
        return IssuePost(id=f"b-{number}-{n}", title=f"Post {n}", url=url, blog="xxiivv",
                         category="permacomputing")  # fmt: skip

    since = SENT - timedelta(weeks=1)
    issue = Issue(
        number=number,
        subject=f"Blogs I like #{number}",
        since=since,
        until=SENT,
        posts=[post(n, u) for n, u in enumerate(urls)],
        archive_pick=None if pick is None else post(99, pick),
    )
    sent_at = SENT + timedelta(weeks=number)
    with transaction(conn):
        freeze_issue(conn, issue, html="<p>x</p>", text="x", status="sending", now=sent_at)
        set_issue_status(conn, number, "sent", sent_at=sent_at)


def rows(conn: Connection) -> dict[str, tuple[str, int | None, int, str | None]]:
    """target -> (status, http_status, attempts, endpoint)."""
    found = conn.execute("SELECT target, status, http_status, attempts, endpoint FROM webmentions")
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in found}


# --- discovery, pure ----------------------------------------------------------------------------


def test_link_headers_several_comma_joined_and_rel_lists() -> None:
    assert link_header_endpoint(['</wm>; rel="webmention"']) == "/wm"
    assert link_header_endpoint(["<https://x.example/wm>; rel=webmention"]) == (
        "https://x.example/wm"
    )
    joined = '</feed>; rel="alternate", </a,b/wm?x=1>; type="x"; rel="me webmention"'
    assert link_header_endpoint([joined]) == "/a,b/wm?x=1"
    several = ['</style.css>; rel="stylesheet"', '</second>; rel="webmention"']
    assert link_header_endpoint(several) == "/second"
    assert link_header_endpoint(['</no>; rel="not-webmention"', '<>; rel="WebMention"']) == ""
    assert link_header_endpoint(['</x>; rel="alternate"']) is None


def test_html_endpoint_in_document_order() -> None:
    assert html_endpoint('<link rel="webmention" href="/a">') == "/a"
    assert html_endpoint('<a href="/b" rel="webmention">x</a><link rel=webmention href=/c>') == "/b"
    assert html_endpoint('<link rel="webmention"><a rel="webmention" href="/d">') == "/d"
    assert html_endpoint('<!-- <link rel="webmention" href="/e"> --><p>') is None
    assert html_endpoint('<link rel="not-webmention" href="/f">') is None
    assert html_endpoint('<link rel="me webmention" href="">') == ""
    assert html_endpoint('<a rel="webmention" href="/g?q=1&amp;r=2">') == "/g?q=1&r=2"


# --- against the receiver ---------------------------------------------------------------------


def test_endpoints_in_a_header_a_link_an_a_relative_empty_and_none(
    room: tuple[Settings, BlogsFile, Connection], receiver: Receiver
) -> None:
    settings, blogs, conn = room
    wm = receiver.endpoint("/wm", 202)
    header = receiver.page("/header", links=(f'<{wm}>; rel="webmention"',))
    link = receiver.page("/link", '<html><head><link rel="webmention" href="/wm"></head></html>')
    anchor = receiver.page("/deep/a", '<p><a rel="webmention" href="../wm?via=a">wm</a></p>')
    empty = receiver.page("/self", '<link rel="webmention" href="">')
    receiver.routes["/self"].statuses = []
    none = receiver.page("/none", "<p>No endpoint here.</p>")
    sent_issue(conn, 1, header, link, anchor, none, pick=empty)

    told = send_webmentions(settings, blogs, conn, now=SENT)

    assert len(told) == 5
    found = rows(conn)
    assert found[header] == ("sent", 202, 1, wm)
    assert found[link] == ("sent", 202, 1, wm)
    assert found[anchor] == ("sent", 202, 1, wm + "?via=a")  # resolved against the page
    assert found[none] == ("none", None, 1, None)
    assert found[empty][3] == empty  # an empty href is the page itself
    [to_self] = receiver.posts("/self")
    assert to_self.form == {"source": [f"{BASE}/archive/1"], "target": [empty]}

    posts = receiver.posts("/wm")
    assert sorted(p.form["target"][0] for p in posts) == sorted([header, link, anchor])
    for p in posts:
        assert p.form["source"] == [f"{BASE}/archive/1"]
        assert set(p.form) == {"source", "target"}
        assert p.headers["content-type"] == "application/x-www-form-urlencoded"
        assert p.headers["user-agent"].startswith("digest/") and BASE in p.headers["user-agent"]
    assert [p.path for p in posts if p.form["target"] == [anchor]] == ["/wm?via=a"]


def test_a_redirected_page_resolves_its_endpoint_against_where_it_landed(
    room: tuple[Settings, BlogsFile, Connection], receiver: Receiver
) -> None:
    settings, blogs, conn = room
    receiver.endpoint("/blog/2026/wm", 201)
    receiver.page("/blog/2026/post", '<link rel="webmention" href="wm">')
    moved = receiver.redirect("/old-post", receiver.url("/blog/2026/post"))
    sent_issue(conn, 1, moved)
    send_webmentions(settings, blogs, conn, now=SENT)
    assert rows(conn)[moved] == ("sent", 201, 1, receiver.url("/blog/2026/wm"))
    [posted] = receiver.posts("/blog/2026/wm")
    assert posted.form["target"] == [moved]  # the post as the issue links it


def test_500_is_retried_on_the_next_run_then_sent_and_400_fails(
    room: tuple[Settings, BlogsFile, Connection], receiver: Receiver
) -> None:
    settings, blogs, conn = room
    receiver.endpoint("/busy", 500, 429, 202)
    receiver.endpoint("/strict", 400)
    busy = receiver.page("/p1", links=('</busy>; rel="webmention"',))
    strict = receiver.page("/p2", links=('</strict>; rel="webmention"',))
    sent_issue(conn, 1, busy, strict)

    send_webmentions(settings, blogs, conn, now=SENT)
    assert rows(conn)[busy][:3] == ("retry", 500, 1)
    assert rows(conn)[strict][:3] == ("failed", 400, 1)
    detail = conn.execute("SELECT detail FROM webmentions WHERE target = ?", (strict,))
    assert "Bad Request" in detail.fetchone()[0]

    send_webmentions(settings, blogs, conn, now=SENT + timedelta(hours=1))
    assert rows(conn)[busy][:3] == ("retry", 429, 2)
    send_webmentions(settings, blogs, conn, now=SENT + timedelta(hours=2))
    assert rows(conn)[busy][:3] == ("sent", 202, 3)
    assert len(receiver.posts("/busy")) == 3 and len(receiver.posts("/strict")) == 1


def test_never_twice_for_the_same_issue_and_post(
    room: tuple[Settings, BlogsFile, Connection], receiver: Receiver
) -> None:
    settings, blogs, conn = room
    receiver.endpoint("/wm", 202)
    post = receiver.page("/p", links=('</wm>; rel="webmention"',))
    sent_issue(conn, 1, post)
    assert len(send_webmentions(settings, blogs, conn, now=SENT)) == 1
    assert send_webmentions(settings, blogs, conn, now=SENT) == []
    assert len(send_webmentions(settings, blogs, conn, now=SENT, issue=1)) == 0
    assert len(receiver.posts("/wm")) == 1 and len(receiver.requests("/p")) == 1


def test_a_page_that_keeps_failing_is_given_up_after_the_cap(
    room: tuple[Settings, BlogsFile, Connection], receiver: Receiver
) -> None:
    settings, blogs, conn = room
    down = receiver.page("/down", status=503)
    sent_issue(conn, 1, down)
    for run in range(MAX_ATTEMPTS + 2):
        send_webmentions(settings, blogs, conn, now=SENT + timedelta(hours=run))
    assert rows(conn)[down][:3] == ("failed", 503, MAX_ATTEMPTS)
    assert len(receiver.requests("/down")) == MAX_ATTEMPTS
    [detail] = conn.execute("SELECT detail FROM webmentions").fetchone()
    assert detail.startswith(f"gave up after {MAX_ATTEMPTS} attempts")
    assert "503 Service Unavailable" in detail


def test_a_gone_post_fails_at_once(
    room: tuple[Settings, BlogsFile, Connection], receiver: Receiver
) -> None:
    settings, blogs, conn = room
    sent_issue(conn, 1, receiver.url("/missing"))
    send_webmentions(settings, blogs, conn, now=SENT)
    assert rows(conn)[receiver.url("/missing")][:3] == ("failed", 404, 1)


def test_the_guard_refuses_a_private_endpoint(
    room: tuple[Settings, BlogsFile, Connection],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DIGEST_ALLOW_PRIVATE_TARGETS off: the blog's page (the receiver's own address, let
    through here) may name an endpoint inside the curator's network; it is never reached."""
    settings, blogs, conn = room
    monkeypatch.setattr(settings, "allow_private_targets", False)
    real = net.refusal
    monkeypatch.setattr(net, "refusal", lambda a: None if str(a) == "127.0.0.1" else real(a))
    port = receiver.httpd.server_address[1]
    inside = receiver.page("/p", links=(f'<http://127.0.0.2:{port}/wm>; rel="webmention"',))
    odd = receiver.page("/q", links=('<ftp://files.example/wm>; rel="webmention"',))
    sent_issue(conn, 1, inside, odd)
    send_webmentions(settings, blogs, conn, now=SENT)
    found = rows(conn)
    assert found[inside] == ("failed", None, 1, f"http://127.0.0.2:{port}/wm")
    assert found[odd][0] == "failed"
    details = dict(conn.execute("SELECT target, detail FROM webmentions").fetchall())
    assert "loopback address 127.0.0.2" in details[inside]
    assert "DIGEST_ALLOW_PRIVATE_TARGETS" in details[inside]
    assert "not an http(s) URL" in details[odd]
    assert receiver.posts() == []


def test_the_guard_refuses_a_private_post_page(
    room: tuple[Settings, BlogsFile, Connection],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, blogs, conn = room
    monkeypatch.setattr(settings, "allow_private_targets", False)
    post = receiver.page("/p", links=('</wm>; rel="webmention"',))
    sent_issue(conn, 1, post)
    send_webmentions(settings, blogs, conn, now=SENT)
    assert rows(conn)[post][0] == "failed"
    assert receiver.requests() == []


def test_only_issues_sent_since_they_were_turned_on_unless_asked(
    room: tuple[Settings, BlogsFile, Connection], receiver: Receiver
) -> None:
    settings, blogs, conn = room
    receiver.everywhere(links=('</wm>; rel="webmention"',))
    receiver.endpoint("/wm", 202)
    sent_issue(conn, 1, receiver.url("/old"))
    sent_issue(conn, 2, receiver.url("/latest"))
    send_webmentions(settings, blogs, conn, now=SENT)
    assert set(rows(conn)) == {receiver.url("/latest")}  # the latest issue sent counts
    sent_issue(conn, 3, receiver.url("/new"))
    send_webmentions(settings, blogs, conn, now=SENT)
    assert set(rows(conn)) == {receiver.url("/latest"), receiver.url("/new")}
    send_webmentions(settings, blogs, conn, now=SENT, issue=1)  # an older one, when asked
    assert rows(conn)[receiver.url("/old")][0] == "sent"
    sources = {p.form["target"][0]: p.form["source"][0] for p in receiver.posts("/wm")}
    assert sources[receiver.url("/old")] == f"{BASE}/archive/1"
    assert sources[receiver.url("/new")] == f"{BASE}/archive/3"


def test_refusals_in_words(
    room: tuple[Settings, BlogsFile, Connection], blogs_yaml: Path, db_path: Path
) -> None:
    settings, blogs, conn = room
    unset = Settings(blogs=blogs_yaml, db=db_path)
    with pytest.raises(ConfigError, match="DIGEST_BASE_URL is not set") as caught:
        send_webmentions(unset, blogs, conn, now=SENT)
    assert "no receiver can fetch" in caught.value.message
    off = blogs.model_copy(deep=True)
    off.newsletter.webmentions = False
    with pytest.raises(ConfigError, match="webmentions are off"):
        send_webmentions(settings, off, conn, now=SENT)
    with pytest.raises(Exception, match="issue 7 was not sent"):
        send_webmentions(settings, blogs, conn, now=SENT, issue=7)


# --- the command --------------------------------------------------------------------------------


def _env(blogs_yaml: Path, db_path: Path, **extra: str) -> dict[str, str]:
    return {"DIGEST_BLOGS": str(blogs_yaml), "DIGEST_DB": str(db_path), "COLUMNS": "300",
            "DIGEST_ALLOW_PRIVATE_TARGETS": "1", **extra}  # fmt: skip


def test_command_off_says_how_to_turn_it_on(blogs_yaml: Path, db_path: Path) -> None:
    result = CliRunner().invoke(main, ["webmentions"], env=_env(blogs_yaml, db_path))
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "webmentions are off" in out and "`webmentions: true` under `newsletter:`" in out


def test_command_without_base_url_refuses(blogs_yaml: Path, db_path: Path) -> None:
    turn_on(blogs_yaml)
    result = CliRunner().invoke(main, ["webmentions"], env=_env(blogs_yaml, db_path))
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "error: DIGEST_BASE_URL is not set" in out and "hint: set DIGEST_BASE_URL" in out
    assert "Traceback" not in out


def test_command_sends_and_lists(
    room: tuple[Settings, BlogsFile, Connection],
    receiver: Receiver,
    blogs_yaml: Path,
    db_path: Path,
) -> None:
    _, _, conn = room
    receiver.endpoint("/wm", 202)
    post = receiver.page("/p", links=('</wm>; rel="webmention"',))
    quiet = receiver.page("/q")
    sent_issue(conn, 1, post, quiet)
    env = _env(blogs_yaml, db_path, DIGEST_BASE_URL=BASE)
    result = CliRunner().invoke(main, ["webmentions"], env=env)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "webmentions: 1 sent, 1 none (sent now)" in out
    assert post in out and "accepted: HTTP 202 Accepted" in out
    assert "names no Webmention endpoint" in out
    again = CliRunner().invoke(main, ["webmentions", "--json"], env=env)
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["enabled"] is True and data["sent_now"] == 0
    assert {m["target"]: m["status"] for m in data["mentions"]} == {post: "sent", quiet: "none"}
    assert data["mentions"][0]["source"] == f"{BASE}/archive/1"
    assert len(receiver.posts()) == 1


# --- end to end -------------------------------------------------------------------------------


def on_the_receiver(newsroom: Newsroom, receiver: Receiver) -> None:
    """Every URL of blogs.yaml (feeds, homepages, highlights) on the receiver, whose every
    page names its endpoint /wm; webmentions on."""
    path = Path(newsroom.env["DIGEST_BLOGS"])
    local = re.sub(r"https?://([^/\s]+)/?", lambda m: receiver.url(f"/{m[1]}/"), path.read_text())
    path.write_text(local)
    newsroom.blogs = turn_on(path)
    receiver.everywhere(links=('</wm>; rel="webmention"',))


def test_a_real_send_then_each_featured_post_is_told(
    newsroom: Newsroom, smtp_server: SmtpServer, receiver: Receiver
) -> None:
    """`digest send` through aiosmtpd: once the issue is complete, every post it featured (the
    archive pick included) gets one webmention naming the archive page."""
    on_the_receiver(newsroom, receiver)
    receiver.endpoint("/wm", 202)
    newsroom.add_posts(1)
    newsroom.draft()
    newsroom.subscribe_many(2)
    env = {**newsroom.env, **smtp_server.env(), "DIGEST_ALLOW_PRIVATE_TARGETS": "1"}

    result = CliRunner().invoke(main, ["send", "--yes"], env=env)

    assert result.exit_code == 0, result.output
    assert len(smtp_server.messages) == 2
    featured = {r[0] for r in newsroom.conn.execute("SELECT url FROM featured WHERE issue = 1")}
    assert len(featured) >= 2 and all(u.startswith(receiver.base) for u in featured)
    posts = receiver.posts("/wm")
    assert sorted(p.form["target"][0] for p in posts) == sorted(featured)
    assert {p.form["source"][0] for p in posts} == {"https://digest.example.org/archive/1"}
    out = " ".join(result.output.split())
    assert f"webmentions: {len(featured)} sent" in out
    assert out.index("Issue 1: sent 2") < out.index("webmentions:")

    # The next send finds nothing due for issue 1: nobody is told twice.
    again = CliRunner().invoke(main, ["webmentions"], env=env)
    assert again.exit_code == 0 and "no webmention was due" in again.output
    assert len(receiver.posts("/wm")) == len(featured)


def test_a_send_never_fails_for_a_webmention(
    newsroom: Newsroom, smtp_server: SmtpServer, receiver: Receiver
) -> None:
    """Every receiver broken (the endpoints answer 500): the send is complete and exits 0."""
    on_the_receiver(newsroom, receiver)
    receiver.endpoint("/wm", 500)
    newsroom.add_posts(1)
    newsroom.draft()
    newsroom.subscribe_many(1)
    env = {**newsroom.env, **smtp_server.env(), "DIGEST_ALLOW_PRIVATE_TARGETS": "1"}
    result = CliRunner().invoke(main, ["send", "--yes"], env=env)
    assert result.exit_code == 0, result.output
    assert "complete" in result.output and "retry" in result.output
    statuses = {r[0] for r in newsroom.conn.execute("SELECT status FROM webmentions")}
    assert statuses == {"retry"}


# --- the source: what a receiver reads on the archive page -------------------------------------


def test_the_archive_page_is_an_h_entry_mentioning_each_featured_post(web: Web) -> None:
    """Parsed with mf2py, as a receiver parses the source: the issue is an h-entry (name,
    published, url, the curator as author, content) and every featured post, the archive pick
    too, a mention-of it, so the blog can show "featured in Blogs I like #2"."""
    freeze(web, 1)
    issue = freeze(web, 2, quiet=True)
    assert issue.archive_pick is not None
    for number, urls in ((1, None), (2, [issue.archive_pick.url])):
        page = web.client.get(f"/archive/{number}")
        parsed = mf2py.parse(doc=page.text, url=f"{BASE}/archive/{number}")
        [entry] = [i for i in parsed["items"] if "h-entry" in i["type"]]
        props = entry["properties"]
        assert props["name"] == [f"Blogs I like #{number}"]
        assert props["url"] == [f"{BASE}/archive/{number}"]
        assert props["published"][0].startswith("2026-")
        [author] = props["author"]
        assert author["type"] == ["h-card"] and author["properties"]["name"] == ["The curator"]
        assert props["content"][0]["html"].strip()
        mentioned = [m["properties"]["url"][0] for m in props["mention-of"]]
        if urls is None:
            featured = web.conn.execute("SELECT url FROM featured WHERE issue = 1")
            urls = [r[0] for r in featured]
        assert sorted(mentioned) == sorted(urls) and len(mentioned) >= 1
        for mention in props["mention-of"]:
            assert mention["type"] == ["h-cite"] and mention["properties"]["name"]


def test_the_weekly_job_tells_them_once_its_outcome_is_recorded(
    newsroom: Newsroom, smtp_server: SmtpServer, receiver: Receiver
) -> None:
    on_the_receiver(newsroom, receiver)
    receiver.endpoint("/wm", 503, 202)
    newsroom.add_posts(1)
    newsroom.subscribe_many(1)
    smtp = {k.removeprefix("DIGEST_").lower(): v for k, v in smtp_server.env().items()}
    settings = newsroom.settings(**smtp, allow_private_targets=True)
    outcome = run_once(settings, newsroom.blogs, newsroom.conn, now=newsroom.now)
    assert outcome.sent is not None and outcome.sent.sent == 1
    run = newsroom.conn.execute("SELECT outcome FROM runs").fetchone()
    assert run[0] == "sent"
    statuses = [r[0] for r in newsroom.conn.execute("SELECT status FROM webmentions")]
    assert statuses.count("retry") == 1 and statuses.count("sent") == len(statuses) - 1
    # The next run (a quiet week: nothing new) retries the one that got the 503.
    run_once(settings, newsroom.blogs, newsroom.conn, now=newsroom.now + timedelta(days=7))
    statuses = [r[0] for r in newsroom.conn.execute("SELECT status FROM webmentions")]
    assert set(statuses) == {"sent"}
    featured = {r[0] for r in newsroom.conn.execute("SELECT url FROM featured WHERE issue = 1")}
    assert len(receiver.posts("/wm")) == len(featured) + 1  # one 503, then each once


def test_with_click_counts_the_archive_page_still_links_each_post_itself(
    web: Web, blogs_yaml: Path
) -> None:
    """A receiver checks that the source links to the target: short links (BASE/r/...) on the
    archive page would make every webmention fail that check."""
    text = blogs_yaml.read_text()
    blogs_yaml.write_text(text.replace("newsletter:\n", "newsletter:\n  click_counts: true\n", 1))
    freeze(web, 1)
    with Web(web.root, blogs_yaml, web.limits, db=web.settings.db) as counting:
        assert counting.blogs.newsletter.click_counts
        html = counting.client.get("/archive/1").text
    parsed = mf2py.parse(doc=html, url=f"{BASE}/archive/1")
    [entry] = [i for i in parsed["items"] if "h-entry" in i["type"]]
    mentioned = sorted(m["properties"]["url"][0] for m in entry["properties"]["mention-of"])
    featured = sorted(r[0] for r in web.conn.execute("SELECT url FROM featured WHERE issue = 1"))
    assert mentioned == featured
    for url in featured:
        assert f'href="{url}"' in html
