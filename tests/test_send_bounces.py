"""Bounces read as a mail operator reads them (RFC 3463), against a real SMTP server: a
blocklisting never unsubscribes a reader, a bad address does at once, a full mailbox only after
soft bounces on three different issues."""

from __future__ import annotations

from datetime import timedelta

import pytest

from digest.send.bounces import Bounce, classify
from digest.send.deliver import send_issue
from digest.send.summary import SendSummary
from digest.store import subscribers as subscribers_store
from plugins.smtp import Newsroom, SmtpServer

SPAMHAUS = (
    "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org; "
    "https://www.spamhaus.org/query/ip/192.0.2.1"
)


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (550, "5.1.1 <x@example.net>: Recipient address rejected: User unknown", Bounce.HARD),
        (550, "5.1.2 bad destination system address", Bounce.HARD),
        (550, "5.1.10 RESOLVER.ADR.RecipientNotFound; not found", Bounce.HARD),
        (550, "5.2.1 The email account that you tried to reach is disabled", Bounce.HARD),
        (550, "no such user here", Bounce.HARD),
        (550, "Requested action not taken: mailbox unavailable", Bounce.HARD),
        (550, SPAMHAUS.removeprefix("550 "), Bounce.POLICY),
        (550, "5.7.26 Unauthenticated email is not accepted (DMARC)", Bounce.POLICY),
        (554, "5.7.1 message content rejected", Bounce.POLICY),
        (554, "rejected: your IP is on a blocklist", Bounce.POLICY),
        (552, "5.2.2 mailbox full", Bounce.SOFT),
        (452, "4.2.2 over quota", Bounce.SOFT),
        (552, "message too big", Bounce.SOFT),
        (554, "5.3.4 message too big for system", Bounce.SOFT),
        (451, "4.3.0 try again later", Bounce.TRANSIENT),
        (421, "4.7.28 rate limited, try again later", Bounce.TRANSIENT),
        (0, "connection lost: timed out", Bounce.TRANSIENT),
        (250, "2.0.0 ok", None),
    ],
)
def test_classes(code: int, text: str, expected: Bounce | None) -> None:
    assert classify(code, text) is expected


def _send(room: Newsroom, server: SmtpServer, *, days: int = 0) -> SendSummary:
    env = {k.removeprefix("DIGEST_").lower(): v for k, v in server.env().items()}
    return send_issue(
        room.settings(**env),
        room.blogs,
        room.conn,
        now=room.now + timedelta(days=days),
        retry_delays=(0.05,),
    )


def _status(room: Newsroom, address: str) -> str:
    sub = subscribers_store.get_by_email(room.conn, address)
    assert sub is not None
    return sub.status


def _notices(server: SmtpServer) -> list[str]:
    return [
        m.message.get_content()
        for m in server.messages
        if "policy" in str(m.message["Subject"]) and m.rcpt_tos == ["curator@example.org"]
    ]


def test_a_blocklisting_at_rcpt_defers_keeps_the_reader_and_tells_the_curator_once(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    newsroom.add_posts(1)
    newsroom.draft()
    addresses = newsroom.subscribe_many(6)
    blocked = addresses[:4]  # a provider answers for its whole domain at once
    for address in blocked:
        smtp_server.handler.refuse_rcpt[address] = SPAMHAUS
    summary = _send(newsroom, smtp_server)
    assert (summary.sent, summary.deferred, summary.bounced) == (2, 4, 0)
    for address in blocked:
        assert _status(newsroom, address) == "confirmed"
        assert subscribers_store.suppression_reason(newsroom.conn, address) is None
        assert newsroom.deliveries()[address][0] == "deferred"
    [notice] = _notices(smtp_server)  # once per send, not once per refusal
    assert "zen.spamhaus.org" in notice and "nobody was unsubscribed" in notice
    assert sum(line.startswith("- reader") for line in notice.splitlines()) == 4

    # Delisted: the next send delivers them, with no second copy for the others.
    smtp_server.handler.refuse_rcpt.clear()
    summary = _send(newsroom, smtp_server, days=1)
    assert summary.finished and summary.sent == 6
    copies = smtp_server.copies()
    assert {a: copies[a] for a in addresses} == {a: 1 for a in addresses}


def test_a_bad_address_is_suppressed_at_once(newsroom: Newsroom, smtp_server: SmtpServer) -> None:
    newsroom.add_posts(1)
    newsroom.draft()
    addresses = newsroom.subscribe_many(4)
    smtp_server.handler.refuse_rcpt[addresses[0]] = "550 5.1.1 user unknown"
    smtp_server.handler.refuse_data[addresses[1]] = "550 5.2.1 account disabled"
    summary = _send(newsroom, smtp_server)
    assert (summary.sent, summary.bounced) == (2, 2)
    for address in addresses[:2]:
        assert _status(newsroom, address) == "bounced"
        assert subscribers_store.suppression_reason(newsroom.conn, address) == "bounced"
    assert _notices(smtp_server) == []


def test_a_full_mailbox_is_suppressed_after_soft_bounces_on_three_issues(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    newsroom.subscribe_many(3)
    full = "reader0@example.net"
    smtp_server.handler.refuse_data[full] = "552 5.2.2 mailbox full"
    for number in (1, 2, 3):
        newsroom.now += timedelta(days=7)
        newsroom.add_posts(1)
        newsroom.draft()
        summary = _send(newsroom, smtp_server)
        assert summary.issue == number
        # A second try within the same issue is the same soft bounce, not another one.
        _send(newsroom, smtp_server, days=1)
        expected = "bounced" if number == 3 else "confirmed"
        assert _status(newsroom, full) == expected, f"after issue {number}"
    assert newsroom.deliveries(3)[full][0] == "bounced"
    assert newsroom.deliveries(2)[full][0] == "skipped"  # retried after: suppressed
    assert subscribers_store.suppression_reason(newsroom.conn, full) == "bounced"
    assert smtp_server.copies().get(full) is None
