"""What the curator reads on the routine's rough edges: a second fetch within the hour, an
undated page in a feed, a duplicated blog id, a hold spent by a manual send."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import Settings, load_blogs, load_settings
from digest.errors import ConfigError
from digest.feeds.gather import gather_sync
from digest.store import connect, issues
from plugins.feedserver import FeedServer
from plugins.smtp import Newsroom, SmtpServer

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_newest_post_ignores_an_undated_page(
    feed_server: FeedServer, write_blogs: Any, db_path: Path
) -> None:
    # Lil'Log's feed carries its FAQ page dated year 1 (Hugo's zero date), so it is undated;
    # the day digest first saw it is not a post date and must not hide a dormant blog.
    url = feed_server.serve_fixture("/lil.xml", "lilianweng.index.xml")
    path = write_blogs({"lil": url})
    conn = connect(db_path)
    try:
        report = gather_sync(Settings(blogs=path, db=db_path), load_blogs(path), conn, now=NOW)
        (result,) = report.results
        assert result.status == "ok"
        assert result.newest == datetime(2026, 7, 4, tzinfo=UTC)
        undated = conn.execute("SELECT COUNT(*) FROM posts WHERE published IS NULL").fetchone()
        assert undated[0] >= 1
    finally:
        conn.close()


def test_a_second_fetch_within_the_hour_says_the_feeds_were_not_due(
    feed_server: FeedServer, write_blogs: Any, db_path: Path
) -> None:
    ok = feed_server.serve_fixture("/ok.xml", "colah.rss.xml")
    broken = feed_server.fail("/broken.xml", 500)
    path = write_blogs({"ok": ok, "broken": broken})
    settings, blogs = Settings(blogs=path, db=db_path), load_blogs(path)
    conn = connect(db_path)
    try:
        first = gather_sync(settings, blogs, conn, now=NOW)
        assert first.summary() == "fetched 2 of 2 feeds: 0 new post(s), 1 failing"
        second = gather_sync(settings, blogs, conn, now=NOW)
        assert [r.status for r in second.results] == ["skipped", "skipped"]
        assert second.summary() == (
            "fetched 0 of 2 feeds: 0 new post(s); 2 not due yet (1 backing off after failures)"
        )
    finally:
        conn.close()


def test_draft_says_which_feeds_were_not_fetched_and_how_to_fetch_them(
    feed_server: FeedServer, write_blogs: Any, tmp_path: Path
) -> None:
    url = feed_server.serve_fixture("/ok.xml", "colah.rss.xml")
    write_blogs({"ok": url})
    runner = CliRunner()
    first = runner.invoke(main, ["draft"])
    assert first.exit_code == 0, first.output
    assert "Fetched 1 of 1 feeds" in first.output
    again = runner.invoke(main, ["draft"])
    assert again.exit_code == 0, again.output
    assert "Fetched 0 of 1 feeds: 0 new post(s); 1 not due yet" in again.output
    assert "`digest draft --force` fetches every feed now" in again.output


def test_a_duplicate_blog_id_names_the_second_entry_and_its_line(blogs_yaml: Path) -> None:
    text = blogs_yaml.read_text()
    assert "      - name: Chris Olah\n" in text
    blogs_yaml.write_text(text.replace("      - name: Chris Olah\n", "      - name: XXIIVV\n"))
    lines = blogs_yaml.read_text().splitlines()
    line = lines.index("      - name: XXIIVV", lines.index("      - name: XXIIVV") + 1) + 1
    with pytest.raises(ConfigError) as caught:
        load_blogs(blogs_yaml)
    message = str(caught.value)
    assert f"categories[1].blogs[2] (line {line}): blog id 'xxiivv' appears twice" in message
    assert "also categories[0].blogs[0]" in message
    assert "CommentedMap" not in message


def test_a_bad_setting_says_what_was_found_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SEND_RATE", "fast")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).count("'fast'") == 1
    assert "DIGEST_SEND_RATE" in str(caught.value)


def _cli(room: Newsroom, server: SmtpServer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={**room.env, **server.env()})
    return result.exit_code, result.output


def test_a_hold_spent_by_a_manual_send_never_releases_the_next_issue(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    newsroom.add_posts(1)
    newsroom.draft()
    newsroom.subscribe("reader@example.net")
    assert _cli(newsroom, smtp_server, "hold")[0] == 0

    code, out = _cli(newsroom, smtp_server, "send", "--yes")
    assert code == 0, out
    assert "Held: yes (a hold stops only the scheduler, not `digest send`)" in out
    assert len(smtp_server.messages) == 1

    newsroom.add_posts(1, at=newsroom.now)
    newsroom.draft()  # issue 2, never held
    code, out = _cli(newsroom, smtp_server, "release")
    assert code == 0, out
    assert "nothing was held" in out
    assert issues.get_issue(newsroom.conn, 2) is None
    assert len(smtp_server.messages) == 1
    code, out = _cli(newsroom, smtp_server, "status")
    assert "Draft: #2" in out and "not held" in out
