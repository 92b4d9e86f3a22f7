"""Late bounces and complaints onto the store, with the send loop's rules: a hard bounce
suppresses at once, soft bounces on three different issues do, a policy report never does, a
complaint unsubscribes for good; each event once, however often it is delivered."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from digest.cli import main
from digest.feedback import Event, Kind
from digest.feedback.apply import apply
from digest.feedback.verp import envelope_sender, token_from
from digest.send.deliver import send_issue
from digest.send.summary import SendSummary
from digest.store import subscribers as subscribers_store
from digest.store import utcnow
from plugins.smtp import Newsroom, SmtpServer


def _send(room: Newsroom, server: SmtpServer, **extra: str) -> SendSummary:
    env = {k.removeprefix("DIGEST_").lower(): v for k, v in server.env().items()}
    return send_issue(room.settings(**env, **extra), room.blogs, room.conn, now=room.now)


def _issue(room: Newsroom, server: SmtpServer, **extra: str) -> SendSummary:
    room.now += timedelta(days=7)
    room.add_posts(1)
    room.draft()
    summary = _send(room, server, **extra)
    assert summary.finished
    return summary


def _status(room: Newsroom, address: str) -> tuple[str, str | None]:
    sub = subscribers_store.get_by_email(room.conn, address)
    assert sub is not None
    return sub.status, subscribers_store.suppression_reason(room.conn, address)


def _event(event_id: str, kind: Kind, **kw: str | None) -> Event:
    return Event(
        source="test",
        event_id=event_id,
        kind=kind,
        recipient=kw.get("recipient"),
        message_id=kw.get("message_id"),
        detail=kw.get("detail") or "",
    )


def test_hard_complaint_and_policy_each_do_what_the_send_loop_would(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    hard, complained, blocked, kept = newsroom.subscribe_many(4)
    _issue(newsroom, smtp_server)
    ids = {a: newsroom.deliveries()[a][1] for a in (hard, complained, blocked)}
    events = [
        _event("h1", Kind.HARD, message_id=ids[hard], detail="5.1.1 user unknown"),
        _event("c1", Kind.COMPLAINT, recipient=complained.upper(), detail="abuse"),
        _event("p1", Kind.POLICY, message_id=ids[blocked], detail="5.7.1 spamhaus"),
        _event("u1", Kind.HARD, recipient="stranger@example.com"),
    ]
    outcomes = [apply(newsroom.conn, e, now=newsroom.now).outcome for e in events]
    assert outcomes == [
        "suppressed: hard bounce",
        "unsubscribed: complaint",
        "policy: reported, nobody suppressed",
        "unknown recipient",
    ]
    assert _status(newsroom, hard) == ("bounced", "bounced")
    assert newsroom.deliveries()[hard][0] == "bounced"
    assert _status(newsroom, complained) == ("unsubscribed", "complaint")
    assert _status(newsroom, blocked) == ("confirmed", None)
    assert _status(newsroom, kept) == ("confirmed", None)
    # Delivered twice (a provider's retry): applied once.
    again = apply(newsroom.conn, events[1], now=newsroom.now)
    assert (again.new, again.outcome) == (False, "already applied")
    rows = newsroom.conn.execute("SELECT COUNT(*) FROM feedback_events").fetchone()[0]
    assert rows == 4
    # The next issue goes to neither the bounced nor the complaining reader.
    _issue(newsroom, smtp_server)
    assert set(newsroom.deliveries(2)) == {blocked, kept}


def test_soft_bounces_suppress_on_the_third_issue_only(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    [full] = newsroom.subscribe_many(1)
    for number in (1, 2, 3):
        _issue(newsroom, smtp_server)
        message_id = newsroom.deliveries(number)[full][1]
        for copy in ("a", "b"):  # two reports of the same issue count once
            event = _event(f"s{number}{copy}", Kind.SOFT, message_id=message_id)
            apply(newsroom.conn, event, now=newsroom.now)
        expected = ("bounced", "bounced") if number == 3 else ("confirmed", None)
        assert _status(newsroom, full) == expected, f"after issue {number}"


def test_verp_sender_carries_the_delivery_token(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    readers = newsroom.subscribe_many(2)
    _issue(newsroom, smtp_server, bounce_address="bounces@example.org")
    ledger = newsroom.deliveries()
    for received in smtp_server.messages:
        [to] = received.rcpt_tos
        message_id = ledger[to][1]
        assert received.message_id == message_id
        assert received.mail_from == envelope_sender("bounces@example.org", message_id, default="-")
        token = token_from(received.mail_from, "bounces@example.org")
        assert token and message_id.startswith(f"<{token}@")
        assert newsroom.blogs.newsletter.from_address in str(received.message["From"])
    assert {m.rcpt_tos[0] for m in smtp_server.messages} == set(readers)


def test_without_a_bounce_address_the_sender_is_the_from_address(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    newsroom.subscribe_many(1)
    _issue(newsroom, smtp_server)
    [received] = smtp_server.messages
    assert received.mail_from == newsroom.blogs.newsletter.from_address


def test_a_bounce_address_with_a_tag_is_refused(newsroom: Newsroom) -> None:
    with pytest.raises(ValidationError, match="without a \\+tag"):
        newsroom.settings(bounce_address="bounces+x@example.org")
    assert newsroom.settings(bounce_address=" bounces@example.org ").bounce_address == (
        "bounces@example.org"
    )


def test_digest_status_counts_what_was_reported_after_sending(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    hard, blocked = newsroom.subscribe_many(2)
    _issue(newsroom, smtp_server)
    ids = {a: newsroom.deliveries()[a][1] for a in (hard, blocked)}
    received = utcnow()  # `digest status` counts the last 30 days of the real clock
    apply(newsroom.conn, _event("h1", Kind.HARD, message_id=ids[hard]), now=received)
    apply(newsroom.conn, _event("p1", Kind.POLICY, message_id=ids[blocked]), now=received)
    env = {**newsroom.subprocess_env()}
    shown = CliRunner().invoke(main, ["status"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Reported after sending (30 days): 1 hard, 0 soft, 1 policy, 0 complaint" in (
        shown.output.replace("\n", " ")
    )
    info = json.loads(CliRunner().invoke(main, ["status", "--json"], env=env).output)
    assert info["feedback"] == {"hard": 1, "soft": 0, "policy": 1, "complaint": 0}
