"""The weekly job: `digest run --once` on a fresh checkout, and run_once against SMTP."""

from __future__ import annotations

import mailbox
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from digest.send.deliver import _start_issue
from digest.store import connect, issues, transaction
from digest.store import subscribers as subscribers_store
from digest.weekly import run_once
from plugins.feedserver import FeedServer
from plugins.smtp import Newsroom, SmtpServer


def test_a_fresh_checkout_runs_once_into_the_maildir(
    tmp_path: Path, feed_server: FeedServer, write_blogs: Any
) -> None:
    now = datetime.now(UTC)
    sander = feed_server.serve_fixture("/sander.xml", "sander.atom.xml")
    xxiivv = feed_server.serve_fixture("/xxiivv.xml", "xxiivv.rss.xml")
    feed_server.add_entry(
        "/sander.xml",
        title="A fresh post",
        link="https://sander.example.org/fresh",
        published=now - timedelta(hours=3),
    )
    write_blogs({"sander": sander, "xxiivv": xxiivv})
    # Nothing but blogs.yaml and one confirmed subscriber; every setting at its default.
    conn = connect(tmp_path / "subscribers" / "digest.db")
    with transaction(conn):
        subscribers_store.insert_subscriber(
            conn,
            email="reader@example.net",
            name="Reader",
            categories=None,
            status="confirmed",
            token=secrets.token_urlsafe(32),
            source="cli",
            now=now,
        )
    conn.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "digest", "run", "--once"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "sent 1, deferred 0, bounced 0, skipped 0" in done.stdout
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    [msg] = list(box)
    assert msg["To"] == "Reader <reader@example.net>"
    assert msg["List-Unsubscribe"].startswith("<http://localhost:8000/unsubscribe/")
    body = msg.get_payload()[0].get_payload(decode=True).decode()  # type: ignore[index,union-attr]
    assert "A fresh post" in body, body
    assert (tmp_path / "drafts" / "sent" / "1.yaml").is_file()
    conn = connect(tmp_path / "subscribers" / "digest.db")
    archived = issues.get_issue(conn, 1)
    conn.close()
    assert archived is not None and archived.status == "sent"


def test_run_once_resumes_a_half_sent_issue_before_anything_else(
    newsroom: Newsroom, smtp_server: SmtpServer, feed_server: FeedServer
) -> None:
    newsroom.local_feeds(feed_server)
    newsroom.add_posts(1)
    newsroom.draft()
    addresses = newsroom.subscribe_many(5)
    env = {k.removeprefix("DIGEST_").lower(): v for k, v in smtp_server.env().items()}
    settings = newsroom.settings(**env)
    blogs = newsroom.blogs
    _start_issue(settings, blogs, newsroom.conn, now=newsroom.now)  # then "crashed"
    outcome = run_once(settings, blogs, newsroom.conn, now=newsroom.now + timedelta(minutes=5))
    assert outcome.outcome == "resumed"
    assert outcome.sent is not None and outcome.sent.sent == 5 and outcome.sent.issue == 1
    assert sorted(smtp_server.message_ids()) == sorted(addresses)
    # No new draft was written over the resumed issue's slot.
    assert not (newsroom.root / "drafts" / "2.yaml").exists()


def test_run_once_drafts_and_sends_when_there_is_no_draft(
    newsroom: Newsroom, smtp_server: SmtpServer, feed_server: FeedServer
) -> None:
    newsroom.local_feeds(feed_server)
    newsroom.add_posts(2)
    addresses = newsroom.subscribe_many(3)
    env = {k.removeprefix("DIGEST_").lower(): v for k, v in smtp_server.env().items()}
    settings = newsroom.settings(**env)
    outcome = run_once(settings, newsroom.blogs, newsroom.conn, now=newsroom.now)
    assert outcome.drafted is not None and outcome.drafted.number == 1
    assert outcome.sent is not None and outcome.sent.sent == 3
    assert sorted(smtp_server.message_ids()) == sorted(addresses)
    assert outcome.line().startswith("issue 1 sent: sent 3")
