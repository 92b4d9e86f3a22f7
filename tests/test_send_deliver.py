"""Exactly-once sending of an issue against a real SMTP server (aiosmtpd) and a real database."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from digest.errors import DeliveryError, DraftError, LockedError
from digest.send.deliver import send_issue
from digest.send.lock import send_lock
from digest.store import connect, deliveries, issues
from digest.store import subscribers as subscribers_store
from digest.store.db import transaction
from plugins.smtp import Newsroom, SmtpServer

FAST_RETRY = (0.05, 0.1)


def _ready(room: Newsroom, n: int) -> list[str]:
    room.add_posts(2)
    room.draft()
    return room.subscribe_many(n)


def _send(room: Newsroom, server: SmtpServer | None, **kw: object):  # type: ignore[no-untyped-def]
    env = (
        {}
        if server is None
        else {k.removeprefix("DIGEST_").lower(): v for k, v in server.env().items()}
    )
    settings = room.settings(**env, **{k: v for k, v in kw.items() if k.startswith("smtp_")})
    rest = {k: v for k, v in kw.items() if not k.startswith("smtp_")}
    rest.setdefault("retry_delays", FAST_RETRY)
    return send_issue(settings, room.blogs, room.conn, now=room.now, **rest)  # type: ignore[arg-type]


def test_every_confirmed_subscriber_gets_one_copy(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    addresses = _ready(newsroom, 50)
    newsroom.subscribe("pending@example.net", status="pending")
    newsroom.subscribe("gone@example.net", status="unsubscribed")
    summary = _send(newsroom, smtp_server, batch=16)
    assert (summary.sent, summary.deferred, summary.bounced, summary.skipped) == (50, 0, 0, 0)
    assert summary.finished and summary.issue == 1
    got = smtp_server.message_ids()
    assert sorted(got) == sorted(addresses)
    stored = newsroom.deliveries()
    for address in addresses:
        assert got[address] == [stored[address][1]]  # the Message-ID recorded is the one sent
        assert stored[address][0] == "sent"
    assert len({ids[0] for ids in got.values()}) == 50  # unique per recipient
    assert all(r.mail_from == "digest@example.org" for r in smtp_server.messages)
    archived = issues.get_issue(newsroom.conn, 1)
    assert archived is not None and archived.status == "sent" and archived.sent_at is not None
    # The web-archive copy carries no subscriber's token.
    assert "https://digest.example.org/archive/1" in archived.html
    assert "/unsubscribe/" not in archived.html
    # The draft was consumed, the summary kept.
    assert not (newsroom.root / "drafts" / "1.yaml").exists()
    assert (newsroom.root / "drafts" / "sent" / "1.yaml").exists()
    events = [
        r[0] for r in newsroom.conn.execute("SELECT detail FROM events WHERE kind = 'issue_sent'")
    ]
    assert events == ["issue 1: sent 50, deferred 0, bounced 0, skipped 0"]
    # Sending again sends nothing: there is no draft for issue 2.
    with pytest.raises(DraftError, match="no draft"):
        _send(newsroom, smtp_server)
    assert len(smtp_server.messages) == 50


def test_451_then_250_is_delivered_once(newsroom: Newsroom, smtp_server: SmtpServer) -> None:
    addresses = _ready(newsroom, 5)
    smtp_server.handler.transient[addresses[2]] = 2
    summary = _send(newsroom, smtp_server)
    assert summary.sent == 5 and summary.deferred == 0
    assert smtp_server.message_ids()[addresses[2]] == [newsroom.deliveries()[addresses[2]][1]]
    status, _, attempts = newsroom.deliveries()[addresses[2]]
    assert (status, attempts) == ("sent", 3)


def test_4xx_beyond_the_runs_retries_is_deferred_then_sent_next_run(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    addresses = _ready(newsroom, 3)
    smtp_server.handler.transient[addresses[0]] = 10
    first = _send(newsroom, smtp_server)
    assert (first.sent, first.deferred) == (2, 1)
    assert first.finished  # nothing queued: issue 'sent', the deferred row waits for a run
    assert newsroom.deliveries()[addresses[0]][0] == "deferred"
    smtp_server.handler.transient[addresses[0]] = 0
    second = _send(newsroom, smtp_server)
    assert (second.issue, second.sent, second.deferred, second.sent_now) == (1, 3, 0, 1)
    assert smtp_server.message_ids()[addresses[0]] == [newsroom.deliveries()[addresses[0]][1]]


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("rcpt", "421 4.7.0 too many connections from your IP, slow down"),
        ("rcpt", "450 4.2.1 mailbox busy, try again later"),
        ("rcpt", "451 4.7.1 greylisted, come back later"),
        ("rcpt", "454 4.7.0 temporary authentication failure"),
        ("data", "421 4.7.28 unusual rate of mail, try again later"),
        ("data", "450 4.2.0 try again later"),
        ("data", "454 4.7.0 TLS not available due to temporary reason"),
    ],
)
def test_throttling_replies_are_retried_never_bounced(
    newsroom: Newsroom, smtp_server: SmtpServer, stage: str, reply: str
) -> None:
    # listmonk lost half of some campaigns by not retrying these (REFERENCE.md section 6).
    addresses = _ready(newsroom, 4)
    smtp_server.handler.throttle[addresses[1]] = [(stage, reply)] * 2
    summary = _send(newsroom, smtp_server)
    assert (summary.sent, summary.deferred, summary.bounced) == (4, 0, 0)
    status, message_id, attempts = newsroom.deliveries()[addresses[1]]
    assert (status, attempts) == ("sent", 3)
    assert smtp_server.message_ids()[addresses[1]] == [message_id]  # the same id on each try
    assert sorted(smtp_server.message_ids()) == sorted(addresses)
    sub = subscribers_store.get_by_email(newsroom.conn, addresses[1])
    assert sub is not None and sub.status == "confirmed"
    assert subscribers_store.suppression_reason(newsroom.conn, addresses[1]) is None


def test_550_is_bounced_and_suppressed_and_the_others_still_get_it(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    addresses = _ready(newsroom, 6)
    smtp_server.handler.refuse_data[addresses[1]] = "550 5.1.1 no such user"
    smtp_server.handler.refuse_rcpt[addresses[3]] = "550 no mailbox here"
    smtp_server.handler.refuse_data[addresses[4]] = "554 5.7.1 message content rejected"
    summary = _send(newsroom, smtp_server)
    assert (summary.sent, summary.bounced, summary.deferred) == (3, 2, 1)
    stored = newsroom.deliveries()
    for address in (addresses[1], addresses[3]):  # the address itself is bad: suppressed
        assert stored[address][0] == "bounced"
        sub = subscribers_store.get_by_email(newsroom.conn, address)
        assert sub is not None and sub.status == "bounced"
        assert subscribers_store.suppression_reason(newsroom.conn, address) == "bounced"
    # A policy refusal (5.7.x) is about the sender: deferred, the subscriber kept.
    assert stored[addresses[4]][0] == "deferred"
    sub = subscribers_store.get_by_email(newsroom.conn, addresses[4])
    assert sub is not None and sub.status == "confirmed"
    got = smtp_server.message_ids()
    assert sorted(a for a in got if a in addresses) == sorted(addresses[i] for i in (0, 2, 5))
    # ... and the curator is told, once, with the server's words.
    notices = [m.message for m in smtp_server.messages if "policy" in str(m.message["Subject"])]
    assert len(notices) == 1
    assert "554 5.7.1 message content rejected" in notices[0].get_content()
    reply = newsroom.conn.execute(
        "SELECT reply FROM deliveries WHERE email = ?", (addresses[1],)
    ).fetchone()[0]
    assert reply == "550 5.1.1 no such user"


def test_a_non_ascii_address_goes_out_with_smtputf8(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    # REFERENCE.md section 3: non-ASCII local parts need SMTPUTF8 (RFC 6531).
    newsroom.add_posts(2)
    newsroom.draft()
    newsroom.subscribe("zoë@example.net", name="Zoë")  # first on the connection, and after
    addresses = newsroom.subscribe_many(2)
    newsroom.subscribe("ñandú@example.net")
    addresses += ["ñandú@example.net"]
    summary = _send(newsroom, smtp_server, smtp_pool=1)
    assert (summary.sent, summary.bounced) == (4, 0)
    assert sorted(smtp_server.message_ids()) == sorted([*addresses, "zoë@example.net"])
    received = next(r for r in smtp_server.messages if r.rcpt_tos == ["zoë@example.net"])
    assert "<zoë@example.net>\r\n".encode() in received.data  # RFC 6532: UTF-8 in the header


def test_a_dropped_connection_mid_batch_delivers_everyone_once(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    addresses = _ready(newsroom, 40)
    smtp_server.handler.drop_at = {5, 17, 18}
    summary = _send(newsroom, smtp_server, smtp_pool=2, batch=10)
    assert summary.sent == 40
    got = smtp_server.message_ids()
    assert sorted(got) == sorted(addresses)
    assert all(len(ids) == 1 for ids in got.values())


def test_reconnects_every_n_messages(newsroom: Newsroom, smtp_server: SmtpServer) -> None:
    _ready(newsroom, 12)
    _send(newsroom, smtp_server, smtp_pool=1, smtp_reconnect_every=5)
    peers = [r.peer for r in smtp_server.messages]
    assert len(peers) == 12
    assert len(set(peers)) == 3  # 5 + 5 + 2 over three connections


def test_an_unsubscribe_mid_send_is_honoured(newsroom: Newsroom, smtp_server: SmtpServer) -> None:
    addresses = _ready(newsroom, 30)
    smtp_server.handler.delay = 0.01
    leaver = addresses[-1]

    def leave() -> None:
        while len(smtp_server.messages) < 5:
            time.sleep(0.005)
        conn = connect(newsroom.db_path)
        sub = subscribers_store.get_by_email(newsroom.conn, leaver)
        assert sub is not None
        with transaction(conn):
            subscribers_store.set_status(conn, sub.id, "unsubscribed", now=newsroom.now)
        conn.close()

    thread = threading.Thread(target=leave)
    thread.start()
    summary = _send(newsroom, smtp_server, smtp_pool=1, batch=8)
    thread.join()
    assert leaver not in smtp_server.message_ids()
    assert newsroom.deliveries()[leaver][0] == "skipped"
    assert (summary.sent, summary.skipped) == (29, 1)


def test_an_unsubscribe_after_the_row_was_claimed_is_honoured_too(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    # One batch claims everyone at once (a slow, rate-limited send keeps rows claimed for
    # minutes): a leaver whose row is claimed but not yet sent must still get nothing.
    addresses = _ready(newsroom, 20)
    smtp_server.handler.delay = 0.05
    leavers = (addresses[-1], addresses[-2])

    def leave() -> None:
        while len(smtp_server.messages) < 3:
            time.sleep(0.005)
        conn = connect(newsroom.db_path)
        with transaction(conn):
            first = subscribers_store.get_by_email(conn, leavers[0])
            assert first is not None
            subscribers_store.set_status(conn, first.id, "unsubscribed", now=newsroom.now)
            subscribers_store.suppress(conn, leavers[1], "unsubscribed", now=newsroom.now)
        conn.close()

    thread = threading.Thread(target=leave)
    thread.start()
    summary = _send(newsroom, smtp_server, smtp_pool=1, batch=200)
    thread.join()
    assert not set(leavers) & set(smtp_server.message_ids())
    assert {newsroom.deliveries()[a][0] for a in leavers} == {"skipped"}
    assert (summary.sent, summary.skipped) == (18, 2)
    assert summary.finished


def test_rows_left_sending_by_a_crash_are_retried_with_the_same_message_id(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    addresses = _ready(newsroom, 4)
    settings = newsroom.settings(
        **{k.removeprefix("DIGEST_").lower(): v for k, v in smtp_server.env().items()}
    )
    # Freeze and snapshot, then "crash" with two rows claimed but no reply recorded.
    from digest.send.deliver import _start_issue

    _start_issue(settings, newsroom.blogs, newsroom.conn, now=newsroom.now)
    with transaction(newsroom.conn):
        claimed, _ = deliveries.claim(
            newsroom.conn, [1], 2, now=newsroom.now, worker="crashed", lease_until=newsroom.now
        )
    before = newsroom.deliveries()
    assert [before[c.email][0] for c in claimed] == ["sending", "sending"]
    summary = _send(newsroom, smtp_server)
    assert summary.resumed and summary.sent == 4
    after = newsroom.deliveries()
    for address in addresses:
        assert after[address][1] == before[address][1]
        assert smtp_server.message_ids()[address] == [before[address][1]]


def test_categories_pick_the_variant_and_empty_variants_are_skipped(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    newsroom.add_posts(1)
    newsroom.draft()
    cats = [c.id for c in newsroom.blogs.categories]
    newsroom.subscribe("all@example.net")
    newsroom.subscribe("one@example.net", categories=[cats[0]])
    newsroom.subscribe("none@example.net", categories=["no-such-category"])
    summary = _send(newsroom, smtp_server)
    assert (summary.sent, summary.skipped) == (2, 1)
    by_rcpt = {r.rcpt_tos[0]: r.message for r in smtp_server.messages}
    everything = by_rcpt["all@example.net"].get_body(("plain",))
    only_one = by_rcpt["one@example.net"].get_body(("plain",))
    assert everything is not None and only_one is not None
    # The section heading is a line of its own: "ML" can also occur inside a random token.
    second_title = newsroom.blogs.categories[1].title.upper()
    assert second_title in everything.get_content().splitlines()
    assert second_title not in only_one.get_content().splitlines()


def test_premailer_runs_once_per_variant_never_per_subscriber(
    newsroom: Newsroom, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.render import email as render_email

    calls: list[int] = []
    real = render_email.inline_css
    monkeypatch.setattr(render_email, "inline_css", lambda html: calls.append(1) or real(html))
    newsroom.add_posts(1)
    newsroom.draft()
    newsroom.subscribe_many(20)
    ml = newsroom.blogs.categories[1].id
    for i in range(5):
        newsroom.subscribe(f"ml{i}@example.net", categories=[ml])
    summary = _send(newsroom, smtp_server)
    assert summary.sent == 25
    # REFERENCE.md section 4: the web-archive copy, every category, and the ML-only variant.
    assert len(calls) == 3


def test_dry_run_builds_everything_and_changes_nothing(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    _ready(newsroom, 10)
    summary = _send(newsroom, smtp_server, dry_run=True)
    assert summary.dry_run and summary.sent == 10 and summary.issue == 1
    assert smtp_server.messages == []
    assert issues.get_issue(newsroom.conn, 1) is None
    assert newsroom.conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 0
    assert (newsroom.root / "drafts" / "1.yaml").exists()


def test_every_reply_is_committed_before_its_connection_sends_again(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    """What a kill -9 can cost: for each message the server accepted, the ledger already says
    'sent' by the time the same connection starts its next MAIL FROM."""
    addresses = _ready(newsroom, 40)
    unrecorded: list[str] = []
    reader = connect(newsroom.db_path)
    original = smtp_server.handler.handle_RCPT

    async def check_then_rcpt(server: Any, session: Any, envelope: Any, address: str,
                              options: list[str]) -> str:  # fmt: skip
        previous = getattr(session, "last_rcpt", None)
        if previous is not None:
            status = reader.execute(
                "SELECT status FROM deliveries WHERE email = ?", (previous,)
            ).fetchone()[0]
            if status != "sent":
                unrecorded.append(previous)
        session.last_rcpt = address
        return await original(server, session, envelope, address, options)

    smtp_server.handler.handle_RCPT = check_then_rcpt  # type: ignore[method-assign]
    summary = _send(newsroom, smtp_server, batch=20)
    reader.close()
    assert summary.sent == 40
    assert sorted(smtp_server.message_ids()) == sorted(addresses)
    assert unrecorded == []


@pytest.mark.sqlite_only
def test_a_second_sender_is_refused_naming_the_holder(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    _ready(newsroom, 2)
    settings = newsroom.settings()
    with send_lock(settings), pytest.raises(LockedError, match=r"pid \d+ on "):
        _send(newsroom, smtp_server)
    assert smtp_server.messages == []


def test_an_unreachable_server_keeps_everything_for_the_next_run(
    newsroom: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.send import transport

    monkeypatch.setattr(transport, "CONNECT_RETRIES", (0.01, 0.02))
    _ready(newsroom, 3)
    from plugins.smtp import free_port

    with pytest.raises(DeliveryError, match="cannot connect"):
        send_issue(
            newsroom.settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_security="none"),
            newsroom.blogs,
            newsroom.conn,
            now=newsroom.now,
        )
    assert {s for s, _, _ in newsroom.deliveries().values()} <= {"queued", "sending"}
    archived = issues.get_issue(newsroom.conn, 1)
    assert archived is not None and archived.status == "sending"
