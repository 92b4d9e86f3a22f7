"""The four provider webhooks through the real app (Starlette's TestClient) on a database
that sent a real issue over SMTP: each provider's documented payload, signed with test keys;
unsigned, forged, stale and replayed calls refused with nothing recorded; retries applied once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from starlette.testclient import TestClient

from digest.send.deliver import send_issue
from digest.store import subscribers as subscribers_store
from digest.web import create_app
from plugins.smtp import Newsroom, SmtpServer

TOPIC = "arn:aws:sns:us-west-2:123456789012:digest-feedback"
CERT_URL = "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
POSTMARK_AUTH = "postmark:correct-horse-battery"


class Sent:
    """Three readers who got issue 1 over SMTP; the web app on the same database."""

    def __init__(self, room: Newsroom, server: SmtpServer) -> None:
        self.room = room
        self.readers = room.subscribe_many(3)
        room.add_posts(1)
        room.draft()
        env = {k.removeprefix("DIGEST_").lower(): v for k, v in server.env().items()}
        assert send_issue(room.settings(**env), room.blogs, room.conn, now=room.now).sent == 3
        self.message_ids = {a: room.deliveries()[a][1] for a in self.readers}
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.fetched: list[str] = []

    def client(self, **settings: Any) -> TestClient:
        app = create_app(self.room.settings(**settings), self.room.blogs, self.room.db_path)
        client = TestClient(app)
        sns = app.state.webhooks.sns
        sns.certs[CERT_URL] = _certificate(self.rsa)

        async def fetch(url: str) -> bytes:
            self.fetched.append(url)
            return b"<ConfirmSubscriptionResponse/>"

        sns.fetch = fetch
        return client

    def state(self, address: str) -> tuple[str, str | None]:
        sub = subscribers_store.get_by_email(self.room.conn, address)
        assert sub is not None
        return sub.status, subscribers_store.suppression_reason(self.room.conn, address)

    def recorded(self) -> int:
        return int(self.room.conn.execute("SELECT COUNT(*) FROM feedback_events").fetchone()[0])

    def sendgrid_key(self) -> str:
        der = self.ec.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()


@pytest.fixture
def sent(newsroom: Newsroom, smtp_server: SmtpServer) -> Iterator[Sent]:
    yield Sent(newsroom, smtp_server)


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# --- Amazon SES through SNS --------------------------------------------------------------------


def _sns(sent: Sent, kind: str, version: str = "1", **fields: str) -> dict[str, str]:
    """An SNS message as AWS documents it, signed the way AWS describes: each field of the
    type's list, present ones only, as "Name\\nvalue\\n", RSA PKCS#1 v1.5, SHA1 (v1) or SHA256."""
    message = {
        "Type": kind,
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Timestamp": "2026-03-02T09:00:06.655Z",
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        **fields,
    }
    order = {
        "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    }.get(kind, ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"])
    text = "".join(f"{k}\n{message[k]}\n" for k in order if k in message)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = sent.rsa.sign(text.encode(), padding.PKCS1v15(), digest)
    message["Signature"] = base64.b64encode(signature).decode()
    return message


def _ses_bounce(sent: Sent, address: str, status: str, code: str, bounce_type: str) -> str:
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": bounce_type,
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": address,
                        "action": "failed",
                        "status": status,
                        "diagnosticCode": f"smtp; {code}",
                    }
                ],
                "timestamp": "2026-03-02T09:00:05.237Z",
                "feedbackId": f"0100017a-{address}-000000",
                "remoteMtaIp": "192.0.2.10",
                "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
            },
            "mail": {
                "timestamp": "2026-03-02T08:59:38.237Z",
                "source": "digest@example.org",
                "messageId": "0100017a1b2c3d4e-5f6a7b8c-0000-0000-0000-000000000000-000000",
                "destination": [address],
                "headersTruncated": False,
                "commonHeaders": {
                    "from": ["Blogs I like <digest@example.org>"],
                    "to": [address],
                    "messageId": sent.message_ids[address],
                    "subject": "Blogs I like #1",
                },
            },
        }
    )


def test_ses_subscription_is_confirmed_and_bounces_and_complaints_apply(sent: Sent) -> None:
    hard, blocked, complained = sent.readers
    client = sent.client(ses_topic_arns=f"arn:aws:sns:eu-west-1:1:other, {TOPIC}")
    subscribe = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=2336"
    confirm = _sns(
        sent,
        "SubscriptionConfirmation",
        Message=f"You have chosen to subscribe to the topic {TOPIC}.",
        SubscribeURL=subscribe,
        Token="2336412f37fb687f5d51e6e2425c464",
    )
    answer = client.post("/webhooks/ses", content=json.dumps(confirm))
    assert (answer.status_code, answer.text) == (200, "subscription confirmed")
    assert sent.fetched == [subscribe]

    bounce = _sns(
        sent,
        "Notification",
        Message=_ses_bounce(sent, hard, "5.1.1", "550 5.1.1 user unknown", "Permanent"),
        Subject="Amazon SES Email Event",
    )
    assert (
        client.post("/webhooks/ses", content=json.dumps(bounce)).text
        == "ok: 1 applied, 0 already applied"
    )
    # SNS retries until it gets a 2xx: the same notification again changes nothing.
    assert (
        client.post("/webhooks/ses", content=json.dumps(bounce)).text
        == "ok: 0 applied, 1 already applied"
    )
    policy = _ses_bounce(
        sent, blocked, "5.7.1", "554 5.7.1 blocked using zen.spamhaus.org", "Permanent"
    )
    answer = client.post(
        "/webhooks/ses", content=json.dumps(_sns(sent, "Notification", "2", Message=policy))
    )
    assert answer.status_code == 200
    complaint = json.dumps(
        {
            "notificationType": "Complaint",
            "complaint": {
                "userAgent": "AnyCompany Feedback Loop (V0.01)",
                "complainedRecipients": [{"emailAddress": complained}],
                "complaintFeedbackType": "abuse",
                "arrivalDate": "2026-03-02T09:10:38.237Z",
                "timestamp": "2026-03-02T09:10:40.000Z",
                "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000",
            },
            "mail": {"commonHeaders": {"messageId": sent.message_ids[complained]}},
        }
    )
    answer = client.post(
        "/webhooks/ses", content=json.dumps(_sns(sent, "Notification", Message=complaint))
    )
    assert answer.status_code == 200
    assert sent.state(hard) == ("bounced", "bounced")
    assert sent.state(blocked) == ("confirmed", None)  # a blocklisting is never the reader's fault
    assert sent.state(complained) == ("unsubscribed", "complaint")
    assert sent.recorded() == 3


def test_ses_refuses_forgeries_other_topics_and_foreign_certificates(sent: Sent) -> None:
    client = sent.client(ses_topic_arns=TOPIC)
    body = _ses_bounce(sent, sent.readers[0], "5.1.1", "550 5.1.1 user unknown", "Permanent")
    good = _sns(sent, "Notification", Message=body)

    def post(message: dict[str, str]) -> tuple[int, str]:
        answer = client.post("/webhooks/ses", content=json.dumps(message))
        return answer.status_code, answer.text

    tampered = dict(good, Message=body.replace("5.1.1", "5.1.2"))
    assert post(tampered) == (403, "bad signature")
    unsigned = {k: v for k, v in good.items() if k not in ("Signature", "SignatureVersion")}
    assert post(unsigned)[0] == 401
    assert post(dict(good, TopicArn="arn:aws:sns:us-west-2:999999999999:theirs")) == (
        403,
        "topic not in DIGEST_SES_TOPIC_ARNS",
    )
    for url in (
        "https://sns.us-west-2.amazonaws.com.evil.example/cert.pem",
        "http://sns.us-west-2.amazonaws.com/cert.pem",
        "https://example.org/SimpleNotificationService.pem",
        "https://sns.us-west-2.amazonaws.com/cert.txt",
    ):
        status, reason = post(dict(good, SigningCertURL=url))
        assert (status, reason) == (
            403,
            "SigningCertURL is not an https://sns.<region>.amazonaws.com URL",
        )
    confirm = _sns(
        sent,
        "SubscriptionConfirmation",
        Message="You have chosen to subscribe.",
        SubscribeURL="https://evil.example/?Action=ConfirmSubscription",
        Token="t",
    )
    assert post(confirm)[0] == 403
    assert sent.fetched == []  # nothing fetched: neither certificate nor URL
    assert sent.recorded() == 0
    assert sent.state(sent.readers[0]) == ("confirmed", None)
    # Without the setting the endpoint takes nothing, however well signed.
    unconfigured = sent.client()
    answer = unconfigured.post("/webhooks/ses", content=json.dumps(good))
    assert answer.status_code == 403 and "not configured" in answer.text


# --- Postmark ------------------------------------------------------------------------------------


def _postmark(record: str, kind: str, address: str, id_: int, details: str) -> dict[str, Any]:
    return {
        "RecordType": record,
        "MessageStream": "outbound",
        "ID": id_,
        "Type": kind,
        "TypeCode": {"HardBounce": 1, "SoftBounce": 4096, "SpamComplaint": 512}[kind],
        "Name": kind,
        "Tag": "digest",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": details,
        "Email": address,
        "From": "digest@example.org",
        "BouncedAt": "2026-03-02T09:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Blogs I like #1",
    }


def test_postmark_needs_its_basic_auth_and_maps_bounces_and_complaints(sent: Sent) -> None:
    hard, soft, complained = sent.readers
    client = sent.client(postmark_webhook_auth=POSTMARK_AUTH)
    good = ("postmark", "correct-horse-battery")
    record = _postmark(
        "Bounce", "HardBounce", hard, 4323372036854775807, "smtp;550 5.1.1 no such user"
    )
    assert client.post("/webhooks/postmark", json=record).status_code == 401
    assert (
        client.post("/webhooks/postmark", json=record, auth=("postmark", "guess")).status_code
        == 403
    )
    assert sent.recorded() == 0
    answer = client.post("/webhooks/postmark", json=record, auth=good)
    assert (answer.status_code, answer.text) == (200, "ok: 1 applied, 0 already applied")
    for payload in (
        _postmark("Bounce", "SoftBounce", soft, 11, "mailbox full"),
        _postmark("SpamComplaint", "SpamComplaint", complained, 42, "Test spam complaint details"),
        _postmark("SpamComplaint", "SpamComplaint", complained, 42, "Test spam complaint details"),
    ):
        assert client.post("/webhooks/postmark", json=payload, auth=good).status_code == 200
    assert sent.state(hard) == ("bounced", "bounced")
    assert sent.state(soft) == ("confirmed", None)  # one soft bounce is not three
    assert sent.room.deliveries()[soft][0] == "sent"
    assert sent.state(complained) == ("unsubscribed", "complaint")
    assert sent.recorded() == 3


# --- Mailgun ------------------------------------------------------------------------------------


def _mailgun(
    event: dict[str, Any],
    *,
    key: str = MAILGUN_KEY,
    at: float | None = None,
    token: str = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
) -> dict[str, Any]:
    timestamp = str(int(time.time() if at is None else at))
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event,
    }


def _mailgun_failed(sent: Sent, address: str, id_: str, code: int, message: str) -> dict[str, Any]:
    return {
        "event": "failed",
        "timestamp": 1772442195.375624,
        "id": id_,
        "log-level": "error",
        "severity": "permanent",
        "reason": "bounce",
        "recipient": address,
        "recipient-domain": address.partition("@")[2],
        "envelope": {"sender": "digest@example.org", "transport": "smtp", "targets": address},
        "message": {
            "headers": {
                "to": address,
                "message-id": sent.message_ids[address].strip("<>"),
                "from": "Blogs I like <digest@example.org>",
                "subject": "Blogs I like #1",
            },
            "attachments": [],
            "size": 111,
        },
        "delivery-status": {
            "attempt-no": 1,
            "code": code,
            "message": message,
            "description": "",
            "session-seconds": 0.1,
        },
        "flags": {"is-routed": False, "is-authenticated": True, "is-test-mode": False},
        "tags": [],
        "user-variables": {},
    }


def test_mailgun_checks_the_hmac_the_timestamp_and_single_use_tokens(sent: Sent) -> None:
    hard, blocked, complained = sent.readers
    client = sent.client(mailgun_signing_key=MAILGUN_KEY)
    event = _mailgun_failed(
        sent, hard, "G9Bn5sl1TC6ZhsJ7uW6uqQ", 550, "5.1.1 The email account does not exist"
    )
    assert client.post("/webhooks/mailgun", json={"event-data": event}).status_code == 401
    assert (
        client.post("/webhooks/mailgun", json=_mailgun(event, key="key-wrong")).text
        == "bad signature"
    )
    stale = _mailgun(event, at=time.time() - 3600)
    assert (client.post("/webhooks/mailgun", json=stale).text) == "stale timestamp"
    assert sent.recorded() == 0
    signed = _mailgun(event)
    assert client.post("/webhooks/mailgun", json=signed).text == "ok: 1 applied, 0 already applied"
    replay = client.post("/webhooks/mailgun", json=signed)
    assert (replay.status_code, replay.text) == (406, "token already used")
    policy = _mailgun_failed(
        sent, blocked, "Ia9bX", 550, "5.7.1 Message rejected due to DMARC policy"
    )
    complaint = {
        "event": "complained",
        "id": "-Agny091SquKnsrW2NEKUA",
        "timestamp": 1772443195.1,
        "recipient": complained,
        "message": {"headers": {"message-id": "x@y"}},
    }
    temporary = dict(
        _mailgun_failed(sent, blocked, "Tmp1", 452, "4.2.2 over quota"), severity="temporary"
    )
    for n, item in enumerate((policy, complaint, temporary)):
        assert (
            client.post("/webhooks/mailgun", json=_mailgun(item, token=f"tok{n:048d}")).status_code
            == 200
        )
    assert sent.state(hard) == ("bounced", "bounced")
    assert sent.state(blocked) == ("confirmed", None)
    assert sent.state(complained) == ("unsubscribed", "complaint")
    assert sent.recorded() == 3  # the temporary failure is Mailgun's to retry: not recorded


# --- SendGrid -----------------------------------------------------------------------------------


def _sendgrid_post(
    sent: Sent,
    client: TestClient,
    events: list[dict[str, Any]],
    *,
    sign: bool = True,
    tamper: bool = False,
) -> tuple[int, str]:
    body = json.dumps(events).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json"}
    if sign:
        signature = sent.ec.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers["X-Twilio-Email-Event-Webhook-Signature"] = base64.b64encode(signature).decode()
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = timestamp
    if tamper:
        body = body.replace(b"bounce", b"bounca")
    answer = client.post("/webhooks/sendgrid", content=body, headers=headers)
    return answer.status_code, answer.text


def test_sendgrid_signed_event_webhook(sent: Sent) -> None:
    hard, blocked, complained = sent.readers
    client = sent.client(sendgrid_public_key=sent.sendgrid_key())
    events = [
        {
            "email": hard,
            "timestamp": 1772442569,
            "smtp-id": sent.message_ids[hard],
            "event": "bounce",
            "category": "digest",
            "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            "reason": "500 unknown recipient",
            "status": "5.0.0",
            "type": "bounce",
            "bounce_classification": "Invalid Address",
        },
        {
            "email": blocked,
            "timestamp": 1772442570,
            "smtp-id": sent.message_ids[blocked],
            "event": "bounce",
            "sg_event_id": "rWVYmVk90MjZJ9iohOBa3w==",
            "reason": "550 5.7.1 blocked using zen.spamhaus.org",
            "status": "5.7.1",
            "type": "blocked",
            "bounce_classification": "Reputation",
        },
        {
            "email": complained,
            "timestamp": 1772442571,
            "smtp-id": sent.message_ids[complained],
            "event": "spamreport",
            "sg_event_id": "37nvH5QBz858KGVYCM4uOA==",
        },
        {
            "email": hard,
            "timestamp": 1772442572,
            "event": "delivered",
            "sg_event_id": "rWVYmVk90MjZJ9iohOBa3x==",
            "response": "250 OK",
        },
    ]
    assert _sendgrid_post(sent, client, events, sign=False)[0] == 401
    assert _sendgrid_post(sent, client, events, tamper=True) == (403, "bad signature")
    assert sent.recorded() == 0
    assert _sendgrid_post(sent, client, events) == (200, "ok: 3 applied, 0 already applied")
    assert _sendgrid_post(sent, client, events) == (200, "ok: 0 applied, 3 already applied")
    assert sent.state(hard) == ("bounced", "bounced")
    assert sent.state(blocked) == ("confirmed", None)
    assert sent.state(complained) == ("unsubscribed", "complaint")


def test_webhook_bodies_are_bounded_above_the_forms_limit(sent: Sent) -> None:
    client = sent.client(sendgrid_public_key=sent.sendgrid_key())
    filler = {"event": "processed", "sg_event_id": "p", "email": "x@example.org", "pad": "x" * 1000}
    assert _sendgrid_post(sent, client, [filler] * 200)[0] == 200  # 200 KB: a normal batch
    assert _sendgrid_post(sent, client, [filler] * 1100)[0] == 413


def test_a_bad_sendgrid_key_stops_the_app_at_start(sent: Sent) -> None:
    from digest.errors import ConfigError

    with pytest.raises(ConfigError, match="DIGEST_SENDGRID_PUBLIC_KEY"):
        sent.client(sendgrid_public_key="bm90IGEga2V5")
