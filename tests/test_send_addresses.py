"""Internationalised recipients in every mail digest sends, against a real SMTP server (aiosmtpd).

An address is never RFC 2047 encoded; with an ASCII local part the domain goes in IDNA, so the
mail needs no SMTPUTF8; a non-ASCII local part goes as UTF-8 (RFC 6531, 6532)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import Settings, load_blogs
from digest.send.deliver import send_issue
from digest.send.transactional import send_mail
from digest.weekly import review
from plugins.feedserver import FeedServer
from plugins.smtp import Newsroom, Received, SmtpServer

IDN = "bücher.example.net"
IDN_ASCII = "xn--bcher-kva.example.net"


def _head(raw: bytes) -> list[tuple[str, str]]:
    """(name, raw value) of each header, unfolded, exactly as on the wire."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    unfolded = re.sub(r"\r\n[ \t]+", " ", head)
    return [(n, v) for n, _, v in (line.partition(": ") for line in unfolded.split("\r\n"))]


def _value(raw: bytes, name: str) -> str:
    [value] = [v for n, v in _head(raw) if n.lower() == name.lower()]
    return value


def test_wire_address() -> None:
    from digest.send.message import wire_address

    assert wire_address("ann@example.org") == "ann@example.org"
    assert wire_address(f"joerg@{IDN}") == f"joerg@{IDN_ASCII}"
    assert wire_address("jörg@example.org") == "jörg@example.org"
    assert wire_address(f"jörg@{IDN}") == f"jörg@{IDN}"  # SMTPUTF8 either way: left readable
    assert wire_address("jo\u0308rg@example.org") == "jörg@example.org"  # NFC (RFC 6532 3.1)


def _assert_valid_to(received: Received, want: str, *envelope: str) -> None:
    """The To: header the server received holds ``want`` as a plain address, and the envelope
    names the same mailbox (``want``, or one of ``envelope``)."""
    to = _value(received.data, "To")
    assert to.rpartition("<")[2].removesuffix(">") == want, to  # no encoded word in the address
    # RFC 6532: the header is UTF-8 text (the stdlib's bytes parser would not decode it)
    msg = email.message_from_string(received.data.decode("utf-8"), policy=email.policy.default)
    [address] = msg["To"].addresses
    assert f"{address.username}@{address.domain}" == want
    assert received.rcpt_tos in ([want], *([e] for e in envelope))


def _smtp_settings(room: Newsroom, server: SmtpServer) -> Settings:
    return room.settings(**{k.removeprefix("DIGEST_").lower(): v for k, v in server.env().items()})


def test_confirmation_mails_to_international_addresses(
    newsroom: Newsroom, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {**newsroom.env, **smtp_server.env()}.items():
        monkeypatch.setenv(key, value)
    for address in ("jörg@example.org", f"joerg@{IDN}", f"jörg@{IDN}"):
        result = CliRunner().invoke(main, ["subscribers", "add", address])
        assert result.exit_code == 0, result.output
    by_rcpt = {r.rcpt_tos[0]: r for r in smtp_server.messages}
    # A non-ASCII local part: only SMTPUTF8 can carry it, as UTF-8 (RFC 6531, 6532); it was
    # once written as "=?utf-8?q?j=C3=B6rg?=@example.org", which is no address at all.
    _assert_valid_to(by_rcpt["jörg@example.org"], "jörg@example.org")
    assert "To: jörg@example.org\r\n".encode() in by_rcpt["jörg@example.org"].data
    _assert_valid_to(by_rcpt[f"jörg@{IDN}"], f"jörg@{IDN}")
    # An ASCII local part: To: and RCPT TO both in IDNA, so no SMTPUTF8 is needed.
    assert sorted(by_rcpt) == sorted(["jörg@example.org", f"joerg@{IDN_ASCII}", f"jörg@{IDN}"])
    _assert_valid_to(by_rcpt[f"joerg@{IDN_ASCII}"], f"joerg@{IDN_ASCII}")
    assert f"To: joerg@{IDN_ASCII}\r\n".encode() in by_rcpt[f"joerg@{IDN_ASCII}"].data


def test_curator_reports_to_an_idn_domain(newsroom: Newsroom, smtp_server: SmtpServer) -> None:
    send_mail(
        _smtp_settings(newsroom, smtp_server),
        newsroom.blogs.newsletter,
        to=f"curator@{IDN}",
        subject="digest: 3 deliveries deferred",
        text="See `digest status`.",
    )
    [received] = smtp_server.messages
    assert received.rcpt_tos == [f"curator@{IDN_ASCII}"]
    _assert_valid_to(received, f"curator@{IDN_ASCII}")


def test_issue_messages_to_international_addresses(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    newsroom.add_posts(1)
    newsroom.draft()
    newsroom.subscribe("jörg@example.org", name="Jörg")
    newsroom.subscribe(f"joerg@{IDN}", name="Joerg")
    newsroom.subscribe(f"ann@{IDN}")
    summary = send_issue(
        _smtp_settings(newsroom, smtp_server), newsroom.blogs, newsroom.conn, now=newsroom.now
    )
    assert (summary.sent, summary.bounced, summary.deferred) == (3, 0, 0)
    # The envelope is the send loop's: IDNA, or the U-labels with SMTPUTF8 (RFC 6531 3.2).
    by_mailbox = {r.rcpt_tos[0].replace(IDN, IDN_ASCII): r for r in smtp_server.messages}
    assert sorted(by_mailbox) == sorted(
        ["jörg@example.org", f"joerg@{IDN_ASCII}", f"ann@{IDN_ASCII}"]
    )
    _assert_valid_to(by_mailbox["jörg@example.org"], "jörg@example.org")
    joerg = by_mailbox[f"joerg@{IDN_ASCII}"]
    _assert_valid_to(joerg, f"joerg@{IDN_ASCII}", f"joerg@{IDN}")
    assert _value(joerg.data, "To") == f"Joerg <joerg@{IDN_ASCII}>"
    ann = by_mailbox[f"ann@{IDN_ASCII}"]
    _assert_valid_to(ann, f"ann@{IDN_ASCII}", f"ann@{IDN}")
    # The issue's bytes stay ASCII whenever the local part is.
    assert ann.data.isascii() and joerg.data.isascii()


@pytest.mark.parametrize("curator", ["jörg@example.org", f"curator@{IDN}"])
def test_the_review_copy_to_an_international_curator(
    newsroom: Newsroom, smtp_server: SmtpServer, feed_server: FeedServer, curator: str
) -> None:
    newsroom.local_feeds(feed_server)  # no internet: every feed is served locally
    path = Path(newsroom.env["DIGEST_BLOGS"])
    path.write_text(re.sub(r"(?m)^  reply_to: \S+", f"  reply_to: {curator}", path.read_text()))
    newsroom.blogs = load_blogs(path)
    newsroom.add_posts(1)
    review(
        _smtp_settings(newsroom, smtp_server),
        newsroom.blogs,
        newsroom.conn,
        now=newsroom.now,
        slot=newsroom.now + timedelta(hours=20),
    )
    [received] = smtp_server.messages
    want = curator.replace(IDN, IDN_ASCII)
    assert received.rcpt_tos == [want]
    _assert_valid_to(received, want)
