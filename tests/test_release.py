"""`digest hold` and `digest release` as the curator types them: release shows what goes out
and asks like `send`, refuses where nobody can answer, and keeps the quiet-week rule."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import load_blogs
from digest.store import issues
from digest.weekly import held_issue
from plugins.smtp import Newsroom, SmtpServer
from plugins.terminal import in_terminal


def cli(room: Newsroom, server: SmtpServer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={**room.env, **server.env()})
    return result.exit_code, result.output


def copies(server: SmtpServer) -> Counter[str]:
    """recipient -> how many copies it received."""
    return Counter(rcpt for m in server.messages for rcpt in m.rcpt_tos)


@pytest.fixture
def held(newsroom: Newsroom, smtp_server: SmtpServer) -> Newsroom:
    """Issue 1 drafted with one post per blog, three confirmed readers, and held."""
    newsroom.add_posts(1)
    newsroom.draft()
    newsroom.subscribe_many(3)
    code, out = cli(newsroom, smtp_server, "hold")
    assert code == 0 and "issue 1 is held" in out
    return newsroom


def min_posts(room: Newsroom, value: int) -> None:
    path = Path(room.env["DIGEST_BLOGS"])
    text = re.sub(r"^  min_posts:.*$", f"  min_posts: {value}", path.read_text(), flags=re.M)
    path.write_text(text)
    room.blogs = load_blogs(path)
    assert room.blogs.newsletter.min_posts == value


def test_release_where_nobody_can_answer_refuses_and_keeps_the_hold(
    held: Newsroom, smtp_server: SmtpServer
) -> None:
    code, out = cli(held, smtp_server, "release")
    assert code == 1
    assert "Issue 1: 'Blogs I like #1'" in out and "Audience: 3 confirmed subscribers" in out
    assert "error: `digest release` asks before sending" in out and "not a terminal" in out
    assert "hint: run `digest release --yes`" in out
    assert smtp_server.messages == []
    assert held_issue(held.conn) == 1  # still held: nothing happened


def test_release_shows_the_plan_asks_and_sends_once(
    held: Newsroom, smtp_server: SmtpServer
) -> None:
    env = {**held.subprocess_env(), **smtp_server.env()}
    code, out = in_terminal(["release"], env=env, cwd=held.root, answer="n\n")
    assert code == 1, out
    assert "Issue 1: 'Blogs I like #1'" in out and "Audience: 3 confirmed subscribers" in out
    assert f"Target: smtp 127.0.0.1:{smtp_server.port}" in out
    assert "Send now?" in out and "Aborted" in out
    assert smtp_server.messages == [] and held_issue(held.conn) == 1

    code, out = in_terminal(["release"], env=env, cwd=held.root, answer="y\n")
    assert code == 0, out
    assert "issue 1 released" in out and "sent 3" in out
    assert sorted(copies(smtp_server).values()) == [1, 1, 1]
    assert held_issue(held.conn) is None
    assert issues.get_issue(held.conn, 1) is not None


def test_release_yes_sends_without_asking(held: Newsroom, smtp_server: SmtpServer) -> None:
    code, out = cli(held, smtp_server, "release", "--yes")
    assert code == 0, out
    assert "Send now?" not in out and "issue 1 released" in out
    assert sorted(copies(smtp_server).values()) == [1, 1, 1]
    # Released and sent: a second release has nothing to do, and sends nothing.
    code, out = cli(held, smtp_server, "release", "--yes")
    assert code == 0 and "nothing was held" in out
    assert sorted(copies(smtp_server).values()) == [1, 1, 1]


def test_release_keeps_the_quiet_week_rule_unless_forced(
    held: Newsroom, smtp_server: SmtpServer
) -> None:
    per_blog = len(list(held.blogs.blogs()))
    min_posts(held, per_blog + 1)  # one post per blog: a quiet week
    code, out = cli(held, smtp_server, "release", "--yes")
    assert code == 1
    assert re.search(r"error: issue 1 is not sent: a quiet week: \d+ new post\(s\), fewer", out)
    assert "--force" in out and "--no-send" in out
    assert smtp_server.messages == [] and held_issue(held.conn) == 1

    code, out = cli(held, smtp_server, "release", "--yes", "--force")
    assert code == 0, out
    assert sorted(copies(smtp_server).values()) == [1, 1, 1]


def test_a_quiet_week_of_no_posts_is_never_released_by_accident(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    """The incident: `digest release` sent "A quiet week: no new posts" to every reader."""
    newsroom.draft()  # nothing new at all
    newsroom.subscribe_many(2)
    assert cli(newsroom, smtp_server, "hold")[0] == 0
    code, out = cli(newsroom, smtp_server, "release", "--yes")
    assert code == 1 and "a quiet week: 0 new post(s)" in out
    assert smtp_server.messages == []


def test_release_no_send_only_lifts_the_hold(held: Newsroom, smtp_server: SmtpServer) -> None:
    code, out = cli(held, smtp_server, "release", "--no-send")
    assert code == 0, out
    assert "issue 1 released" in out
    assert smtp_server.messages == [] and held_issue(held.conn) is None
    assert issues.get_issue(held.conn, 1) is None


def test_release_refuses_dead_unsubscribe_links_over_smtp(
    held: Newsroom, smtp_server: SmtpServer
) -> None:
    env = {k: v for k, v in held.env.items() if k != "DIGEST_BASE_URL"} | smtp_server.env()
    result = CliRunner().invoke(main, ["release", "--yes"], env=env)
    assert result.exit_code == 1
    assert "error: DIGEST_BASE_URL is not set" in result.output
    assert smtp_server.messages == [] and held_issue(held.conn) == 1


def test_hold_before_the_draft_then_release_asks_for_the_draft(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    newsroom.add_posts(1)
    newsroom.subscribe_many(1)
    code, out = cli(newsroom, smtp_server, "hold")
    assert code == 0, out
    assert "issue 1 is held (not drafted yet" in out
    code, out = cli(newsroom, smtp_server, "release", "--yes")
    assert code == 1
    assert "issue 1 is held but not drafted yet" in out and "hint: `digest draft`" in out
    assert held_issue(newsroom.conn) == 1
    newsroom.draft()  # the draft made after the hold is the held issue
    code, out = cli(newsroom, smtp_server, "status")
    assert "Draft: #1" in out and "HELD" in out
    code, out = cli(newsroom, smtp_server, "release", "--yes")
    assert code == 0, out
    assert list(copies(smtp_server).values()) == [1]
