"""`digest send` and `digest run` as the curator types them."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.store import issues
from plugins.smtp import Newsroom, SmtpServer


def _invoke(
    room: Newsroom, server: SmtpServer, *args: str, answer: str | None = None
) -> tuple[int, str]:
    env = {**room.env, **server.env()}
    result = CliRunner().invoke(main, list(args), env=env, input=answer)
    return result.exit_code, result.output


@pytest.fixture
def ready(newsroom: Newsroom) -> Newsroom:
    newsroom.add_posts(1)
    newsroom.draft()
    newsroom.subscribe_many(3)
    newsroom.subscribe("later@example.net", status="pending")
    return newsroom


def test_send_shows_the_plan_and_asks(ready: Newsroom, smtp_server: SmtpServer) -> None:
    code, out = _invoke(ready, smtp_server, "send", answer="n\n")
    assert code == 1
    assert "Issue 1: 'Blogs I like #1'" in out
    assert "Audience: 3 confirmed subscribers" in out
    assert f"Target: smtp 127.0.0.1:{smtp_server.port} (none)" in out
    assert "Send now?" in out and "Aborted" in out
    assert smtp_server.messages == []
    assert issues.get_issue(ready.conn, 1) is None


def test_send_yes_sends_and_prints_the_summary(ready: Newsroom, smtp_server: SmtpServer) -> None:
    code, out = _invoke(ready, smtp_server, "send", "--yes")
    assert code == 0, out
    assert "Issue 1: sent 3, deferred 0, bounced 0, skipped 0" in out
    assert "complete" in out
    assert len(smtp_server.messages) == 3


def test_send_answering_yes(ready: Newsroom, smtp_server: SmtpServer) -> None:
    code, out = _invoke(ready, smtp_server, "send", answer="y\n")
    assert code == 0, out
    assert len(smtp_server.messages) == 3


def test_dry_run_sends_nothing(ready: Newsroom, smtp_server: SmtpServer) -> None:
    code, out = _invoke(ready, smtp_server, "send", "--dry-run")
    assert code == 0, out
    assert "Dry run of issue 1: 3 message(s) built" in out and "nothing sent" in out
    assert "sent 3" not in out
    assert smtp_server.messages == []
    assert (ready.root / "drafts" / "1.yaml").exists()


def test_no_draft_is_a_clear_error(newsroom: Newsroom, smtp_server: SmtpServer) -> None:
    code, out = _invoke(newsroom, smtp_server, "send", "--yes")
    assert code == 1
    assert "error:" in out and "no draft" in out and "digest draft" in out
