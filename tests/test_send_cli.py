"""`digest send` and `digest run` as the curator types them."""

from __future__ import annotations

import mailbox
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.store import issues
from plugins.smtp import Newsroom, SmtpServer
from plugins.terminal import in_terminal


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


def copies(server: SmtpServer) -> Counter[str]:
    """recipient -> how many copies it received."""
    return Counter(rcpt for m in server.messages for rcpt in m.rcpt_tos)


def test_send_shows_the_plan_and_asks(ready: Newsroom, smtp_server: SmtpServer) -> None:
    env = {**ready.subprocess_env(), **smtp_server.env()}
    code, out = in_terminal(["send"], env=env, cwd=ready.root, answer="n\n")
    assert code == 1, out
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
    env = {**ready.subprocess_env(), **smtp_server.env()}
    code, out = in_terminal(["send"], env=env, cwd=ready.root, answer="y\n")
    assert code == 0, out
    assert "Send now?" in out and "sent 3" in out
    assert sorted(copies(smtp_server).values()) == [1, 1, 1]


def test_send_where_nobody_can_answer_refuses_instead_of_asking(
    ready: Newsroom, smtp_server: SmtpServer
) -> None:
    """Cron, a pipe, CliRunner: stdin is no terminal, so the question is not asked (EOF would
    abort with a bare "Aborted!"); the error says why and how to send from a script."""
    code, out = _invoke(ready, smtp_server, "send")
    assert code == 1
    assert "Issue 1: 'Blogs I like #1'" in out  # the plan is still shown
    assert "error: `digest send` asks before sending" in out and "not a terminal" in out
    assert "hint: run `digest send --yes`" in out
    assert "Aborted" not in out and "Traceback" not in out
    assert smtp_server.messages == []
    assert issues.get_issue(ready.conn, 1) is None


def _without_base_url(room: Newsroom) -> dict[str, str]:
    return {k: v for k, v in room.env.items() if k != "DIGEST_BASE_URL"}


def test_smtp_send_with_the_default_base_url_refuses_to_start(
    ready: Newsroom, smtp_server: SmtpServer
) -> None:
    env = {**_without_base_url(ready), **smtp_server.env()}
    result = CliRunner().invoke(main, ["send", "--yes"], env=env)
    assert result.exit_code == 1
    out = result.output
    assert "error: DIGEST_BASE_URL is not set" in out
    assert "http://localhost:8000" in out and "unsubscribe" in out
    assert "hint: set DIGEST_BASE_URL" in out and "--force" in out
    assert smtp_server.messages == []
    assert issues.get_issue(ready.conn, 1) is None

    # The same with the relays given as a list.
    relays = {"DIGEST_SMTP_HOSTS": f"127.0.0.1:{smtp_server.port} security=none"}
    listed = CliRunner().invoke(main, ["send", "--yes"], env={**_without_base_url(ready), **relays})
    assert listed.exit_code == 1 and "error: DIGEST_BASE_URL is not set" in listed.output
    assert "through 127.0.0.1 would carry" in listed.output
    assert smtp_server.messages == []

    forced = CliRunner().invoke(main, ["send", "--yes", "--force"], env=env)
    assert forced.exit_code == 0, forced.output
    assert sorted(copies(smtp_server).values()) == [1, 1, 1]
    [message, *_] = smtp_server.messages
    assert message.message["List-Unsubscribe"].startswith("<http://localhost:8000/unsubscribe/")


@pytest.mark.parametrize("how", ["environment", ".env"])
def test_a_base_url_set_on_purpose_is_trusted_even_local(
    ready: Newsroom, smtp_server: SmtpServer, how: str, tmp_path: Path
) -> None:
    env = {**_without_base_url(ready), **smtp_server.env()}
    if how == "environment":
        env["DIGEST_BASE_URL"] = "http://localhost:8000"
    else:  # the working directory's .env (the tests run in tmp_path)
        (tmp_path / ".env").write_text("DIGEST_BASE_URL=http://127.0.0.1:8000\n")
    result = CliRunner().invoke(main, ["send", "--yes"], env=env)
    assert result.exit_code == 0, result.output
    assert sorted(copies(smtp_server).values()) == [1, 1, 1]


def test_the_outbox_is_never_refused_for_the_default_base_url(ready: Newsroom) -> None:
    result = CliRunner().invoke(main, ["send", "--yes"], env=_without_base_url(ready))
    assert result.exit_code == 0, result.output
    box = mailbox.Maildir(ready.root / "outbox", create=False)
    assert sorted(Counter(m["To"] for m in box).values()) == [1, 1, 1]


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
