"""Newsletters as sources: real DKIM signatures (dkimpy, a key made here), a real Maildir, the
real aiosmtpd listener (in-process, and `digest inbound` as a process for SIGTERM), the web app's
archived copy through TestClient, on SQLite and PostgreSQL (db_path).

The DKIM keys are published through a local ``dnsfunc`` (the TXT record dkimpy would look up),
the one part with no local real counterpart: no test reaches the internet's DNS.
"""

from __future__ import annotations

import asyncio
import base64
import json
import mailbox
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.testclient import TestClient

from digest.cli import main
from digest.config import BlogsFile, Settings, load_blogs
from digest.feeds.gather import gather
from digest.feeds.opml import export_opml
from digest.inbound.listener import serve
from digest.inbound.receive import receive
from digest.issue.draft import refresh_draft
from digest.status import status
from digest.store import connect
from digest.store.db import Connection
from digest.store.feeds import feed_states
from digest.web import create_app
from plugins.browser import NEEDS_CHROMIUM, Chromium, axe_report, axe_violations, screenshot
from plugins.smtp import free_port
from plugins.website import digest_serve

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://digest.example.org"
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
SENT = NOW - timedelta(days=1)


class Keys:
    """RSA keys for a few signing domains and the DNS answers that publish them."""

    def __init__(self) -> None:
        self.private: dict[str, bytes] = {}
        self.records: dict[bytes, bytes] = {}
        self.lookups: list[bytes] = []

    def add(self, domain: str, selector: str = "s1") -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private[domain] = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        name = f"{selector}._domainkey.{domain}.".encode()
        self.records[name] = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def sign(self, raw: bytes, domain: str, selector: str = "s1") -> bytes:
        header = dkim.sign(
            raw,
            selector.encode(),
            domain.encode(),
            self.private[domain],
            canonicalize=(b"relaxed", b"relaxed"),
        )
        return bytes(header) + raw

    def dnsfunc(self, name: bytes, timeout: int = 5) -> bytes | None:
        self.lookups.append(name)
        return self.records.get(name)


@pytest.fixture(scope="module")
def keys() -> Keys:
    made = Keys()
    for domain in ("letters.example", "news.example", "esp.example"):
        made.add(domain)
    return made


LETTER_HTML = """<!doctype html><html><head><title>Issue 12</title>
<style>p {{ color: red }}</style><script>alert("head")</script></head>
<body><div style="display:none;max-height:0">Preview text no reader should see as the lede</div>
<table><tr><td><p><a href="{view}">View this email in your browser</a></p></td></tr></table>
<h1>Sundays are for: slow mornings</h1>
<p>Hi,</p>
<p>This week I kept returning to slow ambient records while the kettle warmed, and to the
quiet of a town before anyone is up.</p>
<p>Three of them are below, with a few words on why each one stayed with me all week.</p>
<img src="https://tracker.example/open.gif?u=42" width="1" height="1" alt="">
<p><img src="https://cdn.example/cover.jpg" alt="The cover of Music for Airports"></p>
<form action="https://letters.example/poll"><input name="vote"><button>Vote</button></form>
<p onclick="steal()"><a href="javascript:alert(1)">a trap</a> and
<a href="https://music.example/album">an album</a>.</p>
<script>document.write("body")</script>
<p><a href="https://letters.example/unsubscribe?u=42">Unsubscribe</a></p>
</body></html>
"""


def letter(
    *,
    sender: str = "Ann <ann@letters.example>",
    to: str = "in+ann@digest.example",
    subject: str = "Sundays are for: slow mornings",
    message_id: str = "<issue-12@letters.example>",
    view: str | None = "https://letters.example/p/slow-mornings",
    html: str | None = None,
    date: datetime = SENT,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message.set_content("Slow mornings, in plain text.\n")
    body = html if html is not None else LETTER_HTML.format(view=view or "")
    if view is None and html is None:
        body = body.replace("View this email in your browser", "Hello from Ann")
    message.add_alternative(body, subtype="html")
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


CONFIRM_HTML = """<html><body><p>Thanks for signing up to Bob's notes!</p>
<p>Please confirm your subscription: we only send letters to people who asked.</p>
<p><a href="https://news.example/subscribe/confirm?t=abc123">Yes, subscribe me</a></p>
<p><a href="https://news.example/">Bob's notes</a></p></body></html>"""


def write_blogs(path: Path, homepage: str = "https://ann.example/") -> Path:
    path.write_text(
        f"""
newsletter:
  title: Test digest
  curator: Tester
  from: Test <digest@example.org>
  reply_to: curator@example.org
categories:
  - id: main
    blogs:
      - name: Ann's letters
        id: ann
        homepage: {homepage}
        email:
          from: [Ann <ann@letters.example>]
      - name: Bob's notes
        id: bob
        homepage: https://bob.example/
        email:
          from: [bob@news.example]
      - name: Feedy
        id: feedy
        homepage: https://feedy.example/
        feed: https://feedy.example/feed.xml
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def blogs_file(tmp_path: Path) -> Path:
    return write_blogs(tmp_path / "blogs.yaml")


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    mailbox.Maildir(path, create=True).close()
    return path


def deliver(inbox: Path, raw: bytes) -> str:
    """Into new/, as a delivery agent writes it."""
    box = mailbox.Maildir(inbox, create=False)
    try:
        return box.add(mailbox.MaildirMessage(raw))
    finally:
        box.close()


def posts(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, blog, title, url, excerpt, published, backlog FROM posts ORDER BY id"
    )
    return [
        dict(zip(("id", "blog", "title", "url", "excerpt", "published", "backlog"), r, strict=True))
        for r in rows
    ]


def mail_rows(conn: Connection) -> list[tuple[str, str, str | None]]:
    rows = conn.execute("SELECT blog, status, reason FROM inbound_mail ORDER BY received_at, id")
    return [(r[0], r[1], r[2]) for r in rows]


def run_gather(
    settings: Settings, blogs: BlogsFile, conn: Connection, keys: Keys, **kw: Any
) -> Any:
    return asyncio.run(gather(settings, blogs, conn, now=NOW, dnsfunc=keys.dnsfunc, **kw))


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)
    return result.exit_code, " ".join((result.stdout + result.stderr).split())


# --- the Maildir -------------------------------------------------------------------------------


def test_a_signed_letter_from_a_listed_sender_becomes_a_post_once(
    tmp_path: Path, inbox: Path, keys: Keys, db_path: Any, feed_server: Any
) -> None:
    feed = feed_server.serve_fixture("/feed.xml", "sander.atom.xml")
    homepage = feed_server.url("/ann/")  # were it discovered, the server would see it
    blogs_path = write_blogs(tmp_path / "blogs.yaml", homepage=homepage)
    blogs_path.write_text(blogs_path.read_text().replace("https://feedy.example/feed.xml", feed))
    blogs = load_blogs(blogs_path)
    settings = Settings(base_url=BASE, inbox=inbox)
    raw = keys.sign(letter(), "letters.example")
    name = deliver(inbox, raw)
    conn = connect(db_path)
    try:
        report = run_gather(settings, blogs, conn, keys)
        [post] = [p for p in posts(conn) if p["blog"] == "ann"]
        assert post["title"] == "Sundays are for: slow mornings"
        assert post["url"] == "https://letters.example/p/slow-mornings"
        # The lede: the first real paragraphs, not the preheader, "view online" or "Hi,".
        assert post["excerpt"].startswith("This week I kept returning to slow ambient records")
        assert "Three of them are below" in post["excerpt"]
        assert "Preview text" not in post["excerpt"] and "browser" not in post["excerpt"]
        assert post["published"] == "2026-11-29T08:00:00Z" and not post["backlog"]
        by_blog = {r.blog: r for r in report.results}
        assert by_blog["ann"].status == "email" and by_blog["ann"].new_posts == 1
        assert by_blog["feedy"].status == "ok"
        # Email blogs are never fetched nor discovered: no feed state, no request.
        assert "ann" not in feed_states(conn) and "bob" not in feed_states(conn)
        assert feed_server.hits("/ann/") == []
        assert "1 mail(s) read from DIGEST_INBOX" in report.summary()
        # Processed once: moved to cur/ with the Seen flag.
        assert os.listdir(inbox / "new") == []
        assert os.listdir(inbox / "cur") == [f"{name}:2,S"]

        # Read again, and the same message delivered a second time: still one post.
        run_gather(settings, blogs, conn, keys)
        deliver(inbox, raw)
        again = run_gather(settings, blogs, conn, keys)
        assert len([p for p in posts(conn) if p["blog"] == "ann"]) == 1
        assert {r.blog: r for r in again.results}["ann"].new_posts == 0
        assert mail_rows(conn) == [("ann", "post", None)]
    finally:
        conn.close()


def test_a_letter_without_a_web_copy_is_archived_and_served_sanitised(
    blogs_file: Path, inbox: Path, keys: Keys, db_path: Any
) -> None:
    blogs = load_blogs(blogs_file)
    settings = Settings(base_url=BASE, inbox=inbox)
    deliver(inbox, keys.sign(letter(view=None), "letters.example"))
    conn = connect(db_path)
    try:
        run_gather(settings, blogs, conn, keys)
        [post] = posts(conn)
    finally:
        conn.close()
    found = re.fullmatch(re.escape(BASE) + r"/letters/([0-9a-f]{64})", post["url"])
    assert found, post["url"]
    app = create_app(settings, blogs, db_path)
    with TestClient(app, base_url=BASE) as client:
        page = client.get(f"/letters/{found[1]}")
        assert page.status_code == 200
        body = page.text
        assert "Sundays are for: slow mornings" in body and "Ann&#39;s letters" in body
        # The letter's own heading repeats the subject, which the page shows: once only.
        assert body.count("Sundays are for: slow mornings</h1>") == 1
        assert "slow ambient records while the kettle warmed" in body
        assert '<a href="https://music.example/album" rel="nofollow noopener noreferrer">' in body
        assert "The cover of Music for Airports" in body  # an image's alt text stays
        for gone in (
            "<script",
            "alert(",
            "tracker.example",
            "cdn.example",
            "<img",
            "<form",
            "<input",
            "<button",
            "onclick",
            "javascript:",
            "Preview text",
            "<style",
            "Unsubscribe",  # it would act for the curator's own subscription
            "u=42",
        ):
            assert gone not in body, gone
        assert "img-src 'self' data:" in page.headers["content-security-policy"]
        assert client.get("/letters/" + "0" * 64).status_code == 404
        assert client.get("/letters/not-an-id").status_code == 404


# --- what is quarantined ------------------------------------------------------------------------


def test_a_subject_written_as_terminal_markup_is_shown_as_written(
    tmp_path: Path, blogs_file: Path, inbox: Path, keys: Keys, db_path: Any
) -> None:
    # Anyone can mail the inbox: a subject such as "[/]" must neither crash `digest feeds
    # check` (Rich reads brackets as markup) nor restyle the curator's terminal.
    blogs = load_blogs(blogs_file)
    settings = Settings(base_url=BASE, inbox=inbox, drafts=tmp_path / "drafts")
    deliver(inbox, letter(subject="[bold red]Win[/] a prize [/]", message_id="<x@letters.example>"))
    conn = connect(db_path)
    try:
        run_gather(settings, blogs, conn, keys)
    finally:
        conn.close()
    code, out = invoke("--blogs", str(blogs_file), "--db", str(db_path), "feeds", "check", "ann")
    assert code == 0, out
    assert "quarantined '[bold red]Win[/] a prize [/]' from ann@letters.example" in out



def test_unlisted_unsigned_forged_and_misaligned_mail_is_quarantined_and_shown(
    tmp_path: Path, blogs_file: Path, inbox: Path, keys: Keys, db_path: Any
) -> None:
    blogs = load_blogs(blogs_file)
    settings = Settings(base_url=BASE, inbox=inbox, drafts=tmp_path / "drafts")
    signed = keys.sign(letter(message_id="<forged@letters.example>"), "letters.example")
    cases = {
        "unlisted": keys.sign(
            letter(sender="mallory@letters.example", message_id="<m1@letters.example>"),
            "letters.example",
        ),
        "unsigned": letter(message_id="<m2@letters.example>"),
        "forged": signed.replace(b"slow ambient records", b"fast ambient records"),
        "misaligned": keys.sign(letter(message_id="<m3@letters.example>"), "esp.example"),
    }
    for raw in cases.values():
        deliver(inbox, raw)
    conn = connect(db_path)
    try:
        run_gather(settings, blogs, conn, keys)
        assert posts(conn) == []
        reasons = sorted(reason or "" for _, status, reason in mail_rows(conn))
        assert [status for _, status, _ in mail_rows(conn)] == ["quarantined"] * 4
        assert reasons == [
            "DKIM does not verify: body hash mismatch",
            "DKIM domain does not match From (d=esp.example, From letters.example)",
            "DKIM signature missing",
            "not from a listed sender (mallory@letters.example)",
        ]
        # The feed health of the draft (and so of the review mail) names each one.
        summary = refresh_draft(settings, blogs, conn, now=NOW)
        notes = [n.text for n in summary.health if n.kind == "quarantined"]
        assert len(notes) == 4
        assert any(
            "Ann's letters: quarantined 'Sundays are for: slow mornings' from "
            "ann@letters.example: DKIM signature missing" == n
            for n in notes
        )
        assert not [n for n in summary.health if n.blog in ("ann", "bob") and n.kind == "unfetched"]
        # The real letter after a forged copy under its Message-ID: the letter wins.
        deliver(inbox, signed)
        run_gather(settings, blogs, conn, keys)
        assert [p["title"] for p in posts(conn)] == ["Sundays are for: slow mornings"]
    finally:
        conn.close()
    code, out = invoke(
        "--blogs", str(blogs_file), "--db", str(db_path), "feeds", "check", "ann", "bob"
    )
    assert code == 0
    assert (
        "ann: quarantined 'Sundays are for: slow mornings' from ann@letters.example: "
        "DKIM does not verify: body hash mismatch" not in out
    )  # superseded by the letter
    assert "DKIM signature missing" in out and "d=esp.example" in out
    assert "not from a listed sender (mallory@letters.example)" in out
    assert "email" in out  # the status of ann and bob in the table


# --- the SMTP listener --------------------------------------------------------------------------


@contextmanager
def listening(settings: Settings, blogs: BlogsFile, conn: Connection, keys: Keys) -> Iterator[int]:
    """`digest inbound`'s serve() on a free port, in a thread with its own loop."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def run() -> None:
        box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()

        def on_ready(host: str, port: int) -> None:
            box["port"] = port
            ready.set()

        box["result"] = await serve(
            settings,
            blogs,
            conn,
            host="127.0.0.1",
            port=0,
            dnsfunc=keys.dnsfunc,
            on_ready=on_ready,
            stop=box["stop"],
            signals=False,
        )

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    assert ready.wait(10)
    try:
        yield int(box["port"])
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        assert not thread.is_alive()


def test_the_listener_takes_mail_only_at_a_blogs_address(
    blogs_file: Path, keys: Keys, db_path: Any
) -> None:
    blogs = load_blogs(blogs_file)
    settings = Settings(base_url=BASE, fetch_max_bytes=40_000)
    raw = keys.sign(letter(), "letters.example")
    conn = connect(db_path)
    try:
        with (
            listening(settings, blogs, conn, keys) as port,
            smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp,
        ):
            smtp.ehlo()
            assert smtp.esmtp_features["size"] == "40000"
            for wrong in (
                "curator@digest.example",
                "in+feedy@digest.example",
                "in+nobody@digest.example",
            ):
                with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                    smtp.sendmail("ann@letters.example", [wrong], raw)
                code, reason = refused.value.recipients[wrong]
                assert code == 550 and b"in+<blog-id>@ for a blog with `email:`" in reason
            assert smtp.sendmail("ann@letters.example", ["in+ann@digest.example"], raw) == {}
            # One blog per message: the second blog's address is deferred, not lost.
            refused_one = smtp.sendmail(
                "x@letters.example",
                ["in+ann@mx.example", "in+bob@mx.example"],
                letter(message_id="<two@letters.example>"),
            )
            assert refused_one["in+bob@mx.example"][0] == 452
            with pytest.raises(smtplib.SMTPSenderRefused) as big:
                smtp.sendmail(
                    "ann@letters.example",
                    ["in+ann@digest.example"],
                    letter(html="<p>" + "x" * 50_000 + "</p>", message_id="<big@letters.example>"),
                )
            assert big.value.smtp_code == 552
            smtp.rset()
            # The same message again (a retried delivery): one post.
            smtp.sendmail("ann@letters.example", ["IN+ANN@Digest.Example"], raw)
        [post] = posts(conn)
        assert post["blog"] == "ann" and post["url"] == "https://letters.example/p/slow-mornings"
        assert sorted(s for _, s, _ in mail_rows(conn)) == ["post", "quarantined"]
    finally:
        conn.close()


def test_a_newsletters_confirmation_mail_is_shown_with_its_link_never_posted(
    tmp_path: Path, blogs_file: Path, keys: Keys, db_path: Any
) -> None:
    blogs = load_blogs(blogs_file)
    settings = Settings(base_url=BASE, drafts=tmp_path / "drafts")
    raw = keys.sign(
        letter(
            sender="Bob <bob@news.example>",
            to="in+bob@digest.example",
            subject="Confirm your subscription to Bob's notes",
            html=CONFIRM_HTML,
            message_id="<confirm-1@news.example>",
        ),
        "news.example",
    )
    conn = connect(db_path)
    try:
        with (
            listening(settings, blogs, conn, keys) as port,
            smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp,
        ):
            smtp.sendmail("bounce@news.example", ["in+bob@digest.example"], raw)
        assert posts(conn) == []
        assert mail_rows(conn) == [("bob", "confirmation", None)]
        summary = refresh_draft(settings, blogs, conn, now=datetime.now(UTC))
        [note] = [n.text for n in summary.health if n.kind == "confirmation"]
        assert note == (
            "Bob's notes: the newsletter asks to confirm the subscription: "
            "https://news.example/subscribe/confirm?t=abc123"
        )
    finally:
        conn.close()
    code, out = invoke(
        "--blogs", str(blogs_file), "--db", str(db_path), "feeds", "check", "bob", "--json"
    )
    assert code == 0
    [mail] = json.loads(out)["mail"]
    assert mail["status"] == "confirmation" and mail["blog"] == "bob"
    assert mail["confirm_url"] == "https://news.example/subscribe/confirm?t=abc123"
    code, out = invoke("--blogs", str(blogs_file), "--db", str(db_path), "feeds", "check", "bob")
    assert (
        "asks to confirm the subscription: https://news.example/subscribe/confirm?t=abc123" in out
    )


def test_sigterm_stops_digest_inbound_cleanly(blogs_file: Path, db_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digest",
            "--blogs",
            str(blogs_file),
            "--db",
            str(db_path),
            "inbound",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.match(r"listening on 127\.0\.0\.1:(\d+) \(SMTP\)", line)
        assert found, line + proc.stderr.read() if proc.stderr else line
        assert "in+ann@..." in proc.stdout.readline()
        with smtplib.SMTP("127.0.0.1", int(found[1]), timeout=10) as smtp:
            # Unsigned: quarantined without any DNS lookup (no test reaches real DNS).
            smtp.sendmail("ann@letters.example", ["in+ann@digest.example"], letter())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGTERM  # ended as by the signal: systemd's clean stop
    assert "digest inbound: stopped, 1 message(s) taken" in err and "Traceback" not in err
    conn = connect(db_path)
    try:
        assert mail_rows(conn) == [("ann", "quarantined", "DKIM signature missing")]
    finally:
        conn.close()


# --- the other views ----------------------------------------------------------------------------


def test_opml_and_status_treat_email_blogs_as_having_no_feed(
    blogs_file: Path, db_path: Any
) -> None:
    blogs = load_blogs(blogs_file)
    conn = connect(db_path)
    try:
        info = status(Settings(base_url=BASE), blogs, conn, now=NOW)
        assert info["feeds"]["email"] == 2 and info["feeds"]["new"] == 1
        assert info["feeds"]["mail"] == {"post": 0, "quarantined": 0, "confirmation": 0}
    finally:
        conn.close()
    opml = export_opml(blogs, {}, now=NOW)
    [ann] = [
        line
        for line in opml.splitlines()
        if "Ann&apos;s letters" in line or "Ann's letters" in line
    ]
    assert "xmlUrl" not in ann and 'htmlUrl="https://ann.example/"' in ann
    code, out = invoke(
        "--blogs", str(blogs_file), "--db", str(db_path), "feeds", "list", env={"COLUMNS": "200"}
    )
    assert code == 0 and "email from ann@letters.example" in out


def test_digest_inbound_refuses_without_email_blogs(
    tmp_path: Path, db_path: Any, blogs_yaml: Path
) -> None:
    code, out = invoke("--blogs", str(blogs_yaml), "--db", str(db_path), "inbound")
    assert code == 1
    assert "publishes by email" in out and "email: {from:" in out


def test_a_missing_or_odd_inbox_never_stops_gathering(
    tmp_path: Path, blogs_file: Path, inbox: Path, keys: Keys, db_path: Any
) -> None:
    blogs = load_blogs(blogs_file)
    conn = connect(db_path)
    try:
        missing = Settings(base_url=BASE, inbox=tmp_path / "no-such-maildir")
        report = run_gather(missing, blogs, conn, keys, only={"ann", "bob"})
        ann = {r.blog: r for r in report.results}["ann"]
        assert ann.status == "email" and "not a readable Maildir" in (ann.error or "")
        settings = Settings(base_url=BASE, inbox=inbox, fetch_max_bytes=30_000)
        big = deliver(inbox, letter(html="<p>" + "x" * 40_000 + "</p>"))
        deliver(inbox, b"\x00\xff not a mail at all \r\n\r\n\xfe")
        deliver(inbox, keys.sign(letter(message_id="<fine@letters.example>"), "letters.example"))
        report = run_gather(settings, blogs, conn, keys, only={"ann", "bob"})
        assert report.inbox.unreadable == [f"{big}: larger than DIGEST_FETCH_MAX_BYTES"]
        assert "1 left unread in DIGEST_INBOX" in report.summary()
        assert [p["blog"] for p in posts(conn)] == ["ann"]
        assert ("", "quarantined", "not from a listed sender") in [
            (b or "", s, r) for b, s, r in mail_rows(conn)
        ]
        assert os.listdir(inbox / "new") == [big]  # left for the curator to look at
    finally:
        conn.close()


def test_the_sanitised_copy_survives_sloppy_html() -> None:
    from digest.inbound.html import read_html

    read = read_html(
        "<html><head><title>Issue</title><body>"  # a <head> never closed
        "<table><tr><td style='display:none'>preheader<td>Shown cell</tr></table>"
        "<ul><li style='display:none'>hidden item<li>Kept item</ul>"
        "<p>one<p>two &lt;3 <a href=' javascript:x()'>trap</a>"
        "<a href='https://ok.example/?a=1&amp;b=&quot;2'>ok</a>"
    )
    assert read.paragraphs == ["Shown cell", "Kept item", "one", "two <3 trapok"]
    assert read.safe == (
        "<table><tr><td>Shown cell</td></tr></table><ul><li>Kept item</li></ul><p>one</p>"
        '<p>two &lt;3 trap<a href="https://ok.example/?a=1&amp;b=&quot;2" '
        'rel="nofollow noopener noreferrer">ok</a></p>'
    )


@pytest.mark.browser
@NEEDS_CHROMIUM
def test_an_archived_letter_reads_well_and_passes_axe(
    chromium: Chromium, tmp_path: Path, blogs_file: Path, keys: Keys, db_path: Any
) -> None:
    """The letter page as `digest serve` serves it, at 375 and 1200 px, light and dark."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    blogs = load_blogs(blogs_file)
    conn = connect(db_path)
    try:
        raw = keys.sign(letter(view=None), "letters.example")
        got = receive(conn, blogs, raw, now=NOW, base_url=base, dnsfunc=keys.dnsfunc)
        assert got.status == "post"
    finally:
        conn.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env |= {"DIGEST_BLOGS": str(blogs_file), "DIGEST_DB": str(db_path), "DIGEST_BASE_URL": base}
    failures = []
    with digest_serve(env, tmp_path, port):
        for width in (375, 1200):
            for scheme, dark in (("light", False), ("dark", True)):
                page = chromium.page(width=width, dark=dark)
                response = page.goto(f"{base}/letters/{got.id}")
                assert response is not None and response.status == 200
                assert page.locator("h1").first.inner_text() == "Sundays are for: slow mornings"
                assert screenshot(page, f"letter-{width}-{scheme}").stat().st_size > 5_000
                if violations := axe_violations(page):
                    failures.append(f"{width} px, {scheme}:\n{axe_report(violations)}")
    assert not failures, "axe-core, WCAG 2.x A/AA, on the letter page:\n" + "\n".join(failures)


@pytest.mark.parametrize(
    ("host", "hint"),
    [("256.1.1.1", "--host takes an address of this machine"), ("127.0.0.1", "another --port")],
)
def test_a_listener_that_cannot_listen_says_why_and_what_to_do(
    blogs_file: Path, db_path: Any, host: str, hint: str
) -> None:
    from digest.errors import ConfigError

    blogs = load_blogs(blogs_file)
    settings = Settings(base_url=BASE)
    conn = connect(db_path)
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            asyncio.run(serve(settings, blogs, conn, host=host, port=port, signals=False))
        assert f"cannot listen on {host}:{port}" in caught.value.message
        assert caught.value.hint is not None and hint in caught.value.hint
    finally:
        taken.close()
        conn.close()
