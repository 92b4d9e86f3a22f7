"""The SMTP seam against aiosmtpd: STARTTLS and AUTH, the rate limit, the Maildir outbox."""

from __future__ import annotations

import email
import email.policy
import mailbox
import time
from pathlib import Path

import pytest

from digest.config import Settings
from digest.errors import DeliveryError
from digest.send import transport
from digest.send.deliver import send_issue
from digest.send.transactional import send_mail
from digest.send.transport import Reply, deliver_one, describe_target
from plugins.smtp import PASSWORD, USER, Newsroom, SmtpServer

MESSAGE = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture(autouse=True)
def _quick_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "CONNECT_RETRIES", (0.01,))


def _settings(server: SmtpServer, security: str, **extra: object) -> Settings:
    values = {k.removeprefix("DIGEST_").lower(): v for k, v in server.env(security).items()}
    return Settings(**values, **extra)  # type: ignore[arg-type]


def test_starttls_and_auth(smtp_tls_server: SmtpServer) -> None:
    settings = _settings(smtp_tls_server, "starttls", smtp_username=USER, smtp_password=PASSWORD)
    reply = deliver_one(settings, sender="a@example.org", to="b@example.net", message=MESSAGE)
    assert reply.startswith("250")
    [got] = smtp_tls_server.messages
    assert got.rcpt_tos == ["b@example.net"] and b"hello" in got.data


def test_wrong_password_is_a_clear_error(smtp_tls_server: SmtpServer) -> None:
    settings = _settings(smtp_tls_server, "starttls", smtp_username=USER, smtp_password="nope")
    with pytest.raises(DeliveryError, match="AUTH refused for digest") as info:
        deliver_one(settings, sender="a@example.org", to="b@example.net", message=MESSAGE)
    assert info.value.hint and "DIGEST_SMTP_PASSWORD" in info.value.hint
    assert smtp_tls_server.messages == []


def test_starttls_is_required_never_silently_plaintext(smtp_server: SmtpServer) -> None:
    # This server offers no STARTTLS: sending must fail rather than go out in clear text.
    settings = _settings(smtp_server, "starttls")
    with pytest.raises(DeliveryError, match="STARTTLS"):
        deliver_one(settings, sender="a@example.org", to="b@example.net", message=MESSAGE)
    assert smtp_server.messages == []


def test_an_untrusted_certificate_is_refused(
    smtp_tls_server: SmtpServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    import trustme

    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    settings = _settings(smtp_tls_server, "starttls", smtp_username=USER, smtp_password=PASSWORD)
    with pytest.raises(DeliveryError, match="(?i)certificate"):
        deliver_one(settings, sender="a@example.org", to="b@example.net", message=MESSAGE)


def test_the_rate_limit_is_respected(newsroom: Newsroom, smtp_server: SmtpServer) -> None:
    newsroom.add_posts(1)
    newsroom.draft()
    newsroom.subscribe_many(9)
    env = {k.removeprefix("DIGEST_").lower(): v for k, v in smtp_server.env().items()}
    settings = newsroom.settings(**env, send_rate="20/s")
    started = time.monotonic()
    summary = send_issue(settings, newsroom.blogs, newsroom.conn, now=newsroom.now)
    elapsed = time.monotonic() - started
    assert summary.sent == 9
    # 9 messages at 20/s: the 9th leaves 8 intervals (0.4 s) after the first, whatever the pool.
    assert elapsed >= 0.4
    arrivals = sorted(r.at for r in smtp_server.messages)
    assert arrivals[-1] - arrivals[0] >= 0.35


def test_the_rate_limiter_spaces_sends() -> None:
    import asyncio

    limiter = transport.RateLimiter(50.0)

    async def go() -> list[float]:
        stamps = []
        for _ in range(6):
            await limiter.wait()
            stamps.append(time.monotonic())
        return stamps

    stamps = asyncio.run(go())
    # Slots are 20 ms apart from the first: the k-th send never leaves before k * 20 ms.
    for k, stamp in enumerate(stamps):
        assert stamp - stamps[0] >= k * 0.02 - 0.001
    assert transport.RateLimiter(None).interval == 0


def test_without_smtp_host_mail_goes_to_the_maildir_outbox(tmp_path: Path) -> None:
    settings = Settings(outbox=tmp_path / "outbox")
    assert "Maildir" in describe_target(settings)
    reply = deliver_one(settings, sender="a@example.org", to="b@example.net", message=MESSAGE)
    assert reply.startswith("250 2.0.0 stored as")
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    [msg] = list(box)
    assert msg["Subject"] == "hi"


def test_send_mail_through_smtp(newsroom: Newsroom, smtp_server: SmtpServer) -> None:
    settings = _settings(smtp_server, "none")
    send_mail(
        settings,
        newsroom.blogs.newsletter,
        to="new@example.net",
        subject="Confirm your subscription",
        text="Open https://digest.example.org/confirm/abc",
    )
    [got] = smtp_server.messages
    assert got.mail_from == "digest@example.org" and got.rcpt_tos == ["new@example.net"]
    assert got.message["Subject"] == "Confirm your subscription"


def test_a_refused_single_mail_names_the_recipient(smtp_server: SmtpServer) -> None:
    smtp_server.handler.refuse_rcpt["x@example.net"] = "550 5.1.1 unknown"
    with pytest.raises(DeliveryError, match="x@example.net") as info:
        deliver_one(
            _settings(smtp_server, "none"),
            sender="a@example.org",
            to="x@example.net",
            message=MESSAGE,
        )
    assert info.value.recipient == "x@example.net"


@pytest.mark.parametrize(
    ("reply", "transient", "hard"),
    [
        (Reply(451, "4.3.0 later"), True, False),
        (Reply(0, "connection lost", "connection"), True, False),
        (Reply(550, "5.1.1 no such user"), False, True),
        (Reply(550, "no such user", "rcpt"), False, True),
        (Reply(550, "5.7.1 rejected for policy"), False, False),
        (Reply(552, "message too big"), False, False),
        (Reply(553, "invalid address", "local"), False, False),
    ],
)
def test_reply_classes(reply: Reply, transient: bool, hard: bool) -> None:
    assert reply.transient is transient
    assert reply.hard_bounce is hard


def test_an_existing_empty_outbox_folder_works_and_files_have_lf_line_ends(
    newsroom: Newsroom,
) -> None:
    # The README's systemd unit makes outbox/ beforehand (ReadWritePaths needs it to exist).
    (newsroom.root / "outbox").mkdir()
    newsroom.add_posts(1)
    newsroom.draft()
    addresses = newsroom.subscribe_many(3)
    summary = send_issue(newsroom.settings(), newsroom.blogs, newsroom.conn, now=newsroom.now)
    assert summary.sent == 3 and summary.finished
    files = sorted((newsroom.root / "outbox" / "new").iterdir())
    assert len(files) == 3
    for path in files:
        raw = path.read_bytes()
        assert b"\r\n" not in raw  # mutt shows ^M on CRLF header lines
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg["To"].addresses[0].addr_spec in addresses
        html = msg.get_body(("html",))
        assert html is not None and "\xff" not in html.get_content()


def test_an_unwritable_outbox_names_the_folder_with_a_true_hint(newsroom: Newsroom) -> None:
    (newsroom.root / "outbox").write_text("a file where the folder should be")
    newsroom.add_posts(1)
    newsroom.draft()
    newsroom.subscribe_many(1)
    with pytest.raises(DeliveryError) as info:
        send_issue(newsroom.settings(), newsroom.blogs, newsroom.conn, now=newsroom.now)
    assert str(newsroom.root / "outbox") in info.value.message
    assert info.value.hint is not None and "disk" not in info.value.hint
