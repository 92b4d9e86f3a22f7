"""Single mails outside an issue: confirmation requests, notices, the curator's reports.

They go through the same transport as issues (SMTP, or the Maildir outbox without
DIGEST_SMTP_HOST) and the same DKIM signer. No List-Unsubscribe: these are not list mail.

The recipient is written by ``wire_address`` in ``To:`` and in RCPT TO alike. The stdlib's
SMTP policy would turn a non-ASCII local part into an RFC 2047 encoded word (no address at all),
so such a mail is built with ``utf8=True``: an RFC 6532 message, sent with SMTPUTF8.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid, parseaddr

from digest.config import Newsletter, Settings
from digest.send.dkim import load_signer
from digest.send.message import address_header, date_header, wire_address
from digest.send.transport import adeliver_one, run_sync


def build_mail(
    settings: Settings,
    newsletter: Newsletter,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
) -> bytes:
    """The exact bytes of a single mail: text (plus HTML), quoted-printable, CRLF."""
    to = wire_address(to)
    msg = EmailMessage(policy=SMTP if to.isascii() else SMTP.clone(utf8=True))
    from_name, from_addr = parseaddr(newsletter.from_)
    reply_name, reply_addr = parseaddr(newsletter.reply_to)
    msg["From"] = address_header(from_name, from_addr, "From")
    msg["Reply-To"] = address_header(reply_name, reply_addr, "Reply-To")
    msg["To"] = to
    msg["Subject"] = " ".join(subject.split())
    msg["Date"] = date_header()
    msg["Message-ID"] = make_msgid(domain=from_addr.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    # Quoted-printable keeps every line <= 76 whatever the text holds (RFC 5322: <= 998).
    msg.set_content(text, cte="quoted-printable")
    if html is not None:
        msg.add_alternative(html, subtype="html", cte="quoted-printable")
    data = msg.as_bytes()
    signer = load_signer(settings)
    return data if signer is None else signer(data)


async def asend_mail(
    settings: Settings,
    newsletter: Newsletter,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
) -> None:
    """Send one mail now; DeliveryError (naming ``to``) if the server does not take it."""
    data = build_mail(settings, newsletter, to=to, subject=subject, text=text, html=html)
    await adeliver_one(settings, sender=newsletter.from_address, to=wire_address(to), message=data)


def send_mail(
    settings: Settings,
    newsletter: Newsletter,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
) -> None:
    """Sync ``asend_mail``, for the web's mail thread and the CLI."""
    run_sync(asend_mail(settings, newsletter, to=to, subject=subject, text=text, html=html))
