"""`digest bounces` on real delivery reports: Postfix, Gmail, Exchange and Exim bounces and
Yahoo and AOL complaints (tests/fixtures/feedback/, with $verp, $message_id and $recipient
filled in from a real send over SMTP), from a real Maildir and, where dovecot is installed,
a real IMAP server."""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from string import Template

import pytest
from click.testing import CliRunner, Result

from digest.cli import main
from digest.feedback.reports import NotAReport, read
from digest.send.deliver import send_issue
from digest.store import subscribers as subscribers_store
from plugins.smtp import Newsroom, SmtpServer, free_port

FIXTURES = Path(__file__).parent / "fixtures" / "feedback"
BOUNCES = "bounces@example.org"

# fixture -> the reader it is about (the index of subscribe_many's readers)
REPORTS = {
    "postfix-user-unknown.eml": 0,  # 5.1.1: hard
    "gmail-dmarc-policy.eml": 1,  # 5.7.26: policy
    "exchange-mailbox-full.eml": 2,  # 5.2.2: soft
    "postfix-delayed.eml": 2,  # 4.4.1 delayed: nothing yet
    "exim-text-bounce.eml": 3,  # no DSN: flufl.bounce reads it, hard
    "yahoo-arf-abuse.eml": 4,  # ARF abuse: complaint
    "aol-arf-redacted.eml": 5,  # ARF, recipient redacted: found by VERP / Message-ID
}


class Sent:
    def __init__(self, room: Newsroom, server: SmtpServer) -> None:
        self.room = room
        self.readers = room.subscribe_many(7)
        room.add_posts(1)
        room.draft()
        env = {k.removeprefix("DIGEST_").lower(): v for k, v in server.env().items()}
        settings = room.settings(**env, bounce_address=BOUNCES)
        assert send_issue(settings, room.blogs, room.conn, now=room.now).sent == 7
        self.senders = {m.rcpt_tos[0]: m.mail_from for m in server.messages}
        self.ids = {m.rcpt_tos[0]: m.message_id for m in server.messages}
        self.env = {**room.env, "DIGEST_BOUNCE_ADDRESS": BOUNCES}

    def report(self, name: str, reader: int, **override: str) -> bytes:
        address = self.readers[reader]
        values = {"verp": self.senders[address], "message_id": self.ids[address]}
        values["recipient"] = address
        values.update(override)
        return Template((FIXTURES / name).read_text()).substitute(values).encode()

    def state(self, reader: int) -> tuple[str, str | None]:
        address = self.readers[reader]
        sub = subscribers_store.get_by_email(self.room.conn, address)
        assert sub is not None
        return sub.status, subscribers_store.suppression_reason(self.room.conn, address)

    def digest(self, *args: str, **env: str) -> Result:
        result = CliRunner().invoke(main, list(args), env={**self.env, **env})
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def sent(newsroom: Newsroom, smtp_server: SmtpServer) -> Sent:
    return Sent(newsroom, smtp_server)


def _maildir(root: Path) -> Path:
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def _expect_applied(sent: Sent) -> None:
    assert sent.state(0) == ("bounced", "bounced")
    assert sent.state(1) == ("confirmed", None)  # DMARC: ours to fix, never the reader's
    assert sent.state(2) == ("confirmed", None)  # one soft bounce
    assert sent.room.deliveries()[sent.readers[2]][0] == "sent"
    assert sent.state(3) == ("bounced", "bounced")
    assert sent.state(4) == ("unsubscribed", "complaint")
    assert sent.state(5) == ("unsubscribed", "complaint")
    assert sent.state(6) == ("confirmed", None)


def test_a_dsn_to_the_verp_address_names_its_delivery_whatever_it_says(sent: Sent) -> None:
    # A forwarded address bounced: the report names neither our reader nor our Message-ID.
    raw = sent.report(
        "postfix-user-unknown.eml",
        2,
        recipient="old-job@forward.example",
        message_id="<rewritten-by-a-relay@forward.example>",
    )
    [event] = read(raw, bounce_address=BOUNCES, id_domain="example.org")
    assert event.message_id == sent.ids[sent.readers[2]]
    assert (event.kind, event.recipient) == ("hard", "old-job@forward.example")


def test_unreadable_messages_are_refused() -> None:
    raw = (FIXTURES / "not-a-report.eml").read_bytes()
    with pytest.raises(NotAReport):
        read(raw, bounce_address=BOUNCES, id_domain="example.org")


def test_digest_bounces_reads_a_maildir_once(sent: Sent, tmp_path: Path) -> None:
    box = _maildir(tmp_path / "Maildir")
    for n, (name, reader) in enumerate(REPORTS.items()):
        (box / "new" / f"1772442000.M{n}P1.mx").write_bytes(sent.report(name, reader))
    (box / "new" / "1772442000.M99P1.mx").write_bytes((FIXTURES / "not-a-report.eml").read_bytes())

    dry = sent.digest("bounces", "--maildir", str(box), "--dry-run")
    assert "7 reports read, would apply: 2 hard, 1 soft, 1 policy, 2 complaint" in dry.output
    assert len(list((box / "new").iterdir())) == 8
    assert sent.state(0) == ("confirmed", None)

    result = sent.digest("bounces", "--maildir", str(box))
    assert "7 reports read, applied: 2 hard, 1 soft, 1 policy, 2 complaint" in result.output
    assert "1 with nothing to act on" in result.output
    assert "5.7.26" in result.output and "nobody was suppressed" in result.output
    assert "1772442000.M99P1.mx: no delivery status" in result.output
    _expect_applied(sent)
    assert [p.name for p in (box / "new").iterdir()] == ["1772442000.M99P1.mx"]
    assert len(list((box / "cur").iterdir())) == 7

    # Run again (cron): nothing new is read; a report put back is recognised as applied.
    again = sent.digest("bounces", "--maildir", str(box))
    assert "0 reports read" in again.output
    [done] = [p for p in (box / "cur").iterdir() if p.read_bytes().find(b"5.1.1") > 0][:1]
    shutil.move(done, box / "new" / "1772442000.M0P1.mx")
    third = sent.digest("bounces", "--maildir", str(box))
    assert "1 already applied" in third.output
    _expect_applied(sent)


def test_soft_bounces_from_reports_suppress_on_the_third_issue(
    newsroom: Newsroom, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    [full] = newsroom.subscribe_many(1)
    box = _maildir(tmp_path / "Maildir")
    env = {k.removeprefix("DIGEST_").lower(): v for k, v in smtp_server.env().items()}
    for number in (1, 2, 3):
        newsroom.now += timedelta(days=7)
        newsroom.add_posts(1)
        newsroom.draft()
        settings = newsroom.settings(**env, bounce_address=BOUNCES)
        assert send_issue(settings, newsroom.blogs, newsroom.conn, now=newsroom.now).sent == 1
        received = smtp_server.messages[-1]
        raw = Template((FIXTURES / "exchange-mailbox-full.eml").read_text()).substitute(
            verp=received.mail_from, message_id=received.message_id, recipient=full
        )
        # Each report has its own Message-ID, as each bounce would.
        raw = raw.replace("<8b2f1c44-", f"<{number}-8b2f1c44-")
        (box / "new" / f"{number}.M1P1.mx").write_text(raw)
        result = CliRunner().invoke(
            main,
            ["bounces", "--maildir", str(box)],
            env={**newsroom.env, "DIGEST_BOUNCE_ADDRESS": BOUNCES},
        )
        assert result.exit_code == 0, result.output
        sub = subscribers_store.get_by_email(newsroom.conn, full)
        assert sub is not None
        assert sub.status == ("bounced" if number == 3 else "confirmed"), f"issue {number}"


def test_a_folder_that_is_no_maildir_is_an_error_naming_it(sent: Sent, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bounces", "--maildir", str(tmp_path)], env=sent.env)
    assert result.exit_code == 1
    assert f"error: {tmp_path} is not a Maildir" in result.output
    assert "hint:" in result.output
    both = CliRunner().invoke(main, ["bounces"], env=sent.env)
    assert both.exit_code == 2 and "exactly one of --maildir" in both.output


# --- IMAP, against a real dovecot when it is installed ----------------------------------------

DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
)


class Dovecot:
    """A dovecot serving one user's Maildir on a loopback port, in a temporary folder. Dovecot
    refuses mail access as root: as root, the mail belongs to the dovecot user."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.uid = os.getuid() or pwd.getpwnam("dovecot").pw_uid
        self.gid = os.getgid() if os.getuid() else pwd.getpwnam("dovecot").pw_gid
        self.mail = _maildir(root / "mail" / "bounces" / "Maildir")
        self._own(root / "mail")

    def _own(self, path: Path) -> None:
        for item in [path, *path.rglob("*")]:
            os.chown(item, self.uid, self.gid)

    def deliver(self, name: str, raw: bytes) -> None:
        (self.mail / "new" / name).write_bytes(raw)
        self._own(self.mail / "new")

    def config(self) -> Path:
        root = self.root
        path = root / "dovecot.conf"
        path.write_text(
            f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{root}/mail/%u/Maildir
passdb {{
  driver = static
  args = password=imap-secret
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={root}/mail/%u
}}
first_valid_uid = {self.uid}
first_valid_gid = {self.gid}
service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
        )
        return path


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="digest-dovecot-"))
    root.chmod(0o755)  # the dovecot user must reach its mail below it
    server = Dovecot(root)
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(server.config())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = root / "dovecot.log"
                    pytest.fail(
                        f"dovecot did not start: {log.read_text()[-2000:] if log.exists() else ''}"
                    )
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def test_digest_bounces_reads_an_imap_folder(sent: Sent, dovecot: Dovecot) -> None:
    port = dovecot.port
    for n, (name, reader) in enumerate(REPORTS.items()):
        dovecot.deliver(f"1772442000.M{n}P1.mx", sent.report(name, reader))
    dovecot.deliver("1772442000.M99P1.mx", (FIXTURES / "not-a-report.eml").read_bytes())
    url = f"imap://bounces@127.0.0.1:{port}/INBOX"
    password = {"DIGEST_BOUNCES_IMAP_PASSWORD": "imap-secret"}
    dry = sent.digest("bounces", "--imap", url, "--dry-run", **password)
    assert "7 reports read, would apply" in dry.output
    result = sent.digest("bounces", "--imap", url, **password)
    assert "7 reports read, applied: 2 hard, 1 soft, 1 policy, 2 complaint" in result.output
    assert "1 messages are no report" in result.output
    _expect_applied(sent)
    again = sent.digest("bounces", "--imap", url, **password)
    assert "0 reports read" in again.output and "1 messages are no report" in again.output
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login("bounces", "imap-secret")
    client.select("INBOX")
    _, unseen = client.search(None, "UNSEEN")
    assert len(unseen[0].split()) == 1
    client.logout()
    wrong = CliRunner().invoke(
        main, ["bounces", "--imap", url], env={**sent.env, "DIGEST_BOUNCES_IMAP_PASSWORD": "no"}
    )
    assert wrong.exit_code == 1 and "error: IMAP 127.0.0.1" in wrong.output
