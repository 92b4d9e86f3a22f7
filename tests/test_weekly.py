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


def test_run_once_names_each_failing_feed_with_its_reason(
    tmp_path: Path, feed_server: FeedServer, write_blogs: Any
) -> None:
    """`make run` offline: every feed fails; each is named with why, and the week is quiet."""
    from plugins.smtp import free_port

    refused = f"http://127.0.0.1:{free_port()}/feed.xml"  # nothing listens there
    write_blogs(
        {
            "down": feed_server.fail("/down.xml", 503),
            "blocked": feed_server.fail("/blocked.xml", 403, headers={"Server": "cloudflare"}),
            "refused": refused,
            "fine": feed_server.serve_fixture("/colah.xml", "colah.rss.xml"),
        }
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "digest", "run", "--once"],
        cwd=tmp_path,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "fetched 4 of 4 feeds: 0 new post(s), 3 failing" in out
    lines = {line.split(":", 1)[0].strip(): line for line in out.splitlines() if ": " in line}
    assert "503" in lines["down"]
    assert "403" in lines["blocked"] and "Cloudflare" in lines["blocked"]
    assert "refused" in lines["refused"].split(":", 1)[1].lower()
    assert "fine" not in lines  # a healthy feed is not listed
    assert "`digest feeds check`" in out
    assert "a quiet week" in out


def test_run_once_over_smtp_refuses_dead_unsubscribe_links(
    newsroom: Newsroom, smtp_server: SmtpServer, feed_server: FeedServer
) -> None:
    from click.testing import CliRunner

    from digest.cli import main

    newsroom.local_feeds(feed_server)
    newsroom.add_posts(1, at=datetime.now(UTC) - timedelta(hours=2))  # the CLI reads the clock
    newsroom.subscribe_many(2)
    env = {k: v for k, v in newsroom.env.items() if k != "DIGEST_BASE_URL"} | smtp_server.env()
    result = CliRunner().invoke(main, ["run", "--once"], env=env)
    assert result.exit_code == 1
    assert "error: DIGEST_BASE_URL is not set" in result.output
    assert "Traceback" not in result.output
    assert smtp_server.messages == []
    assert newsroom.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    forced = CliRunner().invoke(main, ["run", "--once", "--force"], env=env)
    assert forced.exit_code == 0, forced.output
    assert sorted(smtp_server.message_ids()) == ["reader0@example.net", "reader1@example.net"]
    assert all(len(ids) == 1 for ids in smtp_server.message_ids().values())
