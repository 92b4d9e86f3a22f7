"""The bytes of one issue message (REFERENCE.md section 3), built from the real renderer."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digest.errors import ConfigError
from digest.issue.draft import load_issue
from digest.render import Rendered, render_issue
from digest.send.message import MessageTemplate
from digest.send.transactional import build_mail
from plugins.smtp import Newsroom

TOKEN = secrets.token_urlsafe(32)  # 43 characters, as subscribers get


def _template(room: Newsroom, **settings: object) -> tuple[MessageTemplate, Rendered]:
    room.add_posts(2)
    room.draft()
    st = room.settings(**settings)
    issue = load_issue(st, room.blogs, room.conn)
    rendered = render_issue(issue, room.blogs, base_url=st.base_url)
    template = MessageTemplate.build(
        rendered, newsletter=room.blogs.newsletter, settings=st, issue_number=issue.number
    )
    return template, rendered


def _headers(raw: bytes) -> list[tuple[str, str]]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    unfolded = re.sub(r"\r\n[ \t]+", " ", head)
    return [tuple(line.split(": ", 1)) for line in unfolded.split("\r\n")]  # type: ignore[misc]


def _content(part: object) -> str:
    """A decoded body with the wire's CRLF line ends back to \n, as the renderer wrote it."""
    assert isinstance(part, EmailMessage)
    return str(part.get_content()).replace("\r\n", "\n")


def _parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_raw_bytes_follow_the_rules(newsroom: Newsroom) -> None:
    template, rendered = _template(newsroom)
    raw = template.message(
        to="reader@example.net", name="Ada", token=TOKEN, message_id="<m1@example.org>"
    )
    headers = _headers(raw)
    names = [n.lower() for n, _ in headers]
    for name in (
        "from",
        "reply-to",
        "to",
        "subject",
        "date",
        "message-id",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "mime-version",
        "content-type",
        "precedence",
        "auto-submitted",
    ):
        assert names.count(name) == 1, name
    values = dict((n.lower(), v) for n, v in headers)
    assert values["list-unsubscribe"] == f"<https://digest.example.org/unsubscribe/{TOKEN}>"
    assert values["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
    assert values["list-id"] == "Blogs I like <blogs-i-like.example.org>"
    assert values["to"] == "Ada <reader@example.net>"
    assert values["message-id"] == "<m1@example.org>"
    assert values["precedence"] == "bulk"
    # No header is folded into encoded words, and the raw lines stay within RFC 5322's limit.
    assert b"=?" not in raw
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    msg = _parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    text_part, html_part = msg.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    for part in (text_part, html_part):
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    # The decoded bodies are exactly what the renderer fills in for this subscriber.
    want_html, want_text = rendered.fill(
        unsubscribe_url=f"https://digest.example.org/unsubscribe/{TOKEN}",
        preferences_url=f"https://digest.example.org/preferences/{TOKEN}",
        web_url="https://digest.example.org/archive/1",
        name="Ada",
    )
    assert _content(text_part) == want_text
    assert _content(html_part) == want_html
    # Both parts carry the unsubscribe link (REFERENCE.md section 3).
    assert f"https://digest.example.org/unsubscribe/{TOKEN}" in _content(text_part)
    assert f'href="https://digest.example.org/unsubscribe/{TOKEN}"' in _content(html_part)
    assert "Hello Ada," in _content(text_part)
    body_lines = raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76


def test_names_and_subjects_that_need_encoding(newsroom: Newsroom) -> None:
    template, rendered = _template(newsroom, unsubscribe_mailto="leave@example.org")
    name = 'Zoë "the <reader>" & co'
    raw = template.message(
        to="zoe@example.net",
        name=name,
        token=TOKEN,
        message_id="<m2@example.org>",
        subject_prefix="[Ünïcode] ",
    )
    msg = _parse(raw)
    assert msg["To"].addresses[0].display_name == name
    assert str(msg["Subject"]) == "[Ünïcode] " + rendered.subject
    values = dict((n.lower(), v) for n, v in _headers(raw))
    # The subject and name use RFC 2047; the unsubscribe header never does.
    assert values["subject"].startswith("=?utf-8?")
    assert values["list-unsubscribe"] == (
        f"<https://digest.example.org/unsubscribe/{TOKEN}>, "
        "<mailto:leave@example.org?subject=unsubscribe>"
    )
    html_part = list(msg.iter_parts())[1]
    assert "Hello Zoë &quot;the &lt;reader&gt;&quot; &amp; co," in _content(html_part)


def test_without_a_name_the_greeting_goes(newsroom: Newsroom) -> None:
    template, rendered = _template(newsroom)
    for name in (None, "   "):
        raw = template.message(
            to="x@example.net", name=name, token=TOKEN, message_id="<m3@example.org>"
        )
        text_part, html_part = _parse(raw).iter_parts()
        want_html, want_text = rendered.fill(
            unsubscribe_url=f"https://digest.example.org/unsubscribe/{TOKEN}",
            preferences_url=f"https://digest.example.org/preferences/{TOKEN}",
            web_url="https://digest.example.org/archive/1",
            name=None,
        )
        assert _content(text_part) == want_text
        assert _content(html_part) == want_html
        assert _parse(raw)["To"] == "x@example.net"


def test_each_recipient_differs_only_where_it_should(newsroom: Newsroom) -> None:
    template, _ = _template(newsroom)
    one = template.message(to="a@example.net", name=None, token="A" * 43, message_id="<a@x>")
    two = template.message(to="b@example.net", name=None, token="B" * 43, message_id="<b@x>")
    assert one != two
    assert "A" * 43 in _content(_parse(one).get_body(("plain",)))
    assert "B" * 43 not in one.decode()


class _Odd:
    """A renderer whose fill() is not a plain substitution: the slow path must still be right."""

    subject = "Odd"
    html = "<p>x</p>"
    text = "x"

    def fill(
        self, *, unsubscribe_url: str, preferences_url: str, web_url: str, name: str | None
    ) -> tuple[str, str]:
        return f"<p>{(name or 'friend').upper()} {unsubscribe_url}</p>", f"{len(unsubscribe_url)}"


def test_a_fill_that_is_not_a_substitution_falls_back(newsroom: Newsroom) -> None:
    template = MessageTemplate.build(
        _Odd(),
        newsletter=newsroom.blogs.newsletter,
        settings=newsroom.settings(),
        issue_number=None,
    )
    assert template.fast is None
    raw = template.message(to="a@example.net", name="ann", token=TOKEN, message_id="<o@x>")
    text, html = _parse(raw).iter_parts()
    assert _content(html) == f"<p>ANN https://digest.example.org/unsubscribe/{TOKEN}</p>"
    assert _content(text) == str(len(f"https://digest.example.org/unsubscribe/{TOKEN}"))


def _key(tmp: object) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_dkim_signs_the_exact_bytes_and_both_unsubscribe_headers(newsroom: Newsroom) -> None:
    private, public = _key(None)
    key_file = newsroom.root / "dkim.pem"
    key_file.write_bytes(private)
    template, _ = _template(
        newsroom, dkim_domain="example.org", dkim_selector="digest", dkim_key_file=key_file
    )
    raw = template.message(to="a@example.net", name=None, token=TOKEN, message_id="<d@x>")
    assert raw.startswith(b"DKIM-Signature:")
    signature = _parse(raw)["DKIM-Signature"]
    signed = re.search(r"h=([^;]+)", str(signature).replace(" ", ""))
    assert signed is not None
    assert {"list-unsubscribe", "list-unsubscribe-post", "from"} <= set(signed[1].split(":"))
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"digest._domainkey.example.org."
        return record

    assert dkim.verify(raw, dnsfunc=dns)
    tampered = raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"X: y")
    assert not dkim.verify(tampered, dnsfunc=dns)
    # Transactional mails are signed the same way.
    single = build_mail(
        newsroom.settings(
            dkim_domain="example.org", dkim_selector="digest", dkim_key_file=key_file
        ),
        newsroom.blogs.newsletter,
        to="a@example.net",
        subject="Confirm",
        text="Please confirm.",
    )
    assert dkim.verify(single, dnsfunc=dns)


def test_a_bad_dkim_key_is_a_config_error(newsroom: Newsroom) -> None:
    bad = newsroom.root / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="DKIM"):
        _template(newsroom, dkim_domain="example.org", dkim_selector="s", dkim_key_file=bad)


def test_transactional_mail_lines_and_headers(newsroom: Newsroom) -> None:
    raw = build_mail(
        newsroom.settings(),
        newsroom.blogs.newsletter,
        to="a@example.net",
        subject="Please confirm your subscription to Blogs I like",
        text="x" * 3000 + "\nhttps://digest.example.org/confirm/" + TOKEN,
        html="<p>" + "y" * 3000 + "</p>",
    )
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = _parse(raw)
    assert msg["From"] == "Blogs I like <digest@example.org>"
    assert "List-Unsubscribe" not in msg
    assert TOKEN in _content(msg.get_body(("plain",)))


def test_every_date_header_has_a_numeric_utc_zone(newsroom: Newsroom) -> None:
    # RFC 5322 section 4.3: "GMT" is an obsolete zone; 3.3: "-0000" means "zone unknown".
    template, _ = _template(newsroom)
    issue = template.message(to="a@example.net", name=None, token=TOKEN, message_id="<d@x>")
    single = build_mail(
        newsroom.settings(), newsroom.blogs.newsletter, to="a@x.net", subject="Hi", text="x"
    )
    for raw in (issue, single):
        date = dict((n.lower(), v) for n, v in _headers(raw))["date"]
        assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000", date), date
        assert parsedate_to_datetime(date).utcoffset() == timedelta(0)


DnsFunc = Callable[..., bytes]


@pytest.fixture
def dkim_key(newsroom: Newsroom) -> tuple[Path, DnsFunc]:
    """A fresh RSA key file and a dnsfunc answering digest._domainkey.example.org with its
    public half, for dkimpy's verifier."""
    private, public = _key(None)
    path = newsroom.root / "dkim.pem"
    path.write_bytes(private)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"digest._domainkey.example.org."
        return record

    return path, dns


def _dkim(key: Path) -> dict[str, object]:
    return {"dkim_domain": "example.org", "dkim_selector": "digest", "dkim_key_file": key}


def _h(raw: bytes) -> list[str]:
    """The signature's h= list, lowercased."""
    h = re.search(r"\bh=([^;]+)", re.sub(r"\s+", "", str(_parse(raw)["DKIM-Signature"])))
    assert h is not None
    return h[1].lower().split(":")


OVERSIGNED = ("from", "subject", "list-unsubscribe", "list-unsubscribe-post")


def test_dkim_signs_every_header_and_oversigns_the_risky_ones(
    newsroom: Newsroom, dkim_key: tuple[Path, DnsFunc]
) -> None:
    key, dns = dkim_key
    template, _ = _template(newsroom, **_dkim(key), unsubscribe_mailto="leave@example.org")
    raw = template.message(to="a@example.net", name="Ann", token=TOKEN, message_id="<d@x>")
    assert dkim.verify(raw, dnsfunc=dns)
    signed = _h(raw)
    written = [n.lower() for n, _ in _headers(raw) if n.lower() != "dkim-signature"]
    for name in ("feedback-id", "precedence", "auto-submitted", "list-id", "reply-to"):
        assert name in written, name  # there, and so checked below
    for name in set(written) | set(OVERSIGNED):
        # RFC 6376 8.15: one more than it occurs, so that no copy can be added above ours
        assert signed.count(name) == written.count(name) + (name in OVERSIGNED), name


@pytest.mark.parametrize(
    "forged",
    [
        b"List-Unsubscribe: <https://evil.example/unsubscribe>\r\n",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        b"Subject: You won a prize\r\n",
        # dkimpy's verifier hashes one From more than h= names whatever the signer did (its
        # bug 644046), so this case holds even without oversigning; other verifiers do not
        # (the h= count is checked above).
        b"From: Your bank <security@bank.example>\r\n",
    ],
)
def test_a_prepended_copy_breaks_the_issue_signature(
    newsroom: Newsroom, dkim_key: tuple[Path, DnsFunc], forged: bytes
) -> None:
    key, dns = dkim_key
    template, _ = _template(newsroom, **_dkim(key))
    raw = template.message(to="a@example.net", name=None, token=TOKEN, message_id="<d@x>")
    assert dkim.verify(raw, dnsfunc=dns)
    assert not dkim.verify(forged + raw, dnsfunc=dns)


def test_transactional_mails_are_signed_and_oversigned_too(
    newsroom: Newsroom, dkim_key: tuple[Path, DnsFunc]
) -> None:
    key, dns = dkim_key
    raw = build_mail(
        newsroom.settings(**_dkim(key)),
        newsroom.blogs.newsletter,
        to="jörg@example.org",
        subject="Bitte bestätigen",
        text="Hallo Jörg",
    )
    assert dkim.verify(raw, dnsfunc=dns)
    signed = _h(raw)
    for name in ("auto-submitted", "date", "message-id", "to", "reply-to", "mime-version"):
        assert signed.count(name) == 1, name
    assert signed.count("from") == signed.count("subject") == 2
    # Not list mail, so no List-Unsubscribe, and none can be added: its absence is signed.
    assert signed.count("list-unsubscribe") == 1
    assert not dkim.verify(b"List-Unsubscribe: <https://evil.example/u>\r\n" + raw, dnsfunc=dns)
    assert not dkim.verify(b"Subject: urgent\r\n" + raw, dnsfunc=dns)
