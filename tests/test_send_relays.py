"""DIGEST_SMTP_HOSTS: several relays, per-relay pools and rates, failover when one refuses."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import Settings, SmtpRelay, load_settings, parse_relays
from digest.errors import ConfigError, DeliveryError
from digest.send import relays, transport
from digest.send.deliver import send_issue
from digest.send.transport import Transport, deliver_one
from plugins.smtp import PASSWORD, USER, Newsroom, SmtpServer, free_port

Start = Callable[..., SmtpServer]
MESSAGE = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "CONNECT_RETRIES", (0.01,))
    monkeypatch.setattr(relays, "REST", (0.3, 0.6))


def _hosts(*entries: tuple[int, str]) -> str:
    return ", ".join(f"127.0.0.1:{port} {options}".strip() for port, options in entries)


def _send(room: Newsroom, hosts: str, **extra: object):  # type: ignore[no-untyped-def]
    settings = room.settings(smtp_hosts=hosts, smtp_security="none", **extra)
    return send_issue(settings, room.blogs, room.conn, now=room.now, retry_delays=())


def _ready(room: Newsroom, n: int) -> list[str]:
    room.add_posts(1)
    room.draft()
    return room.subscribe_many(n)


def copies(*servers: SmtpServer) -> Counter[str]:
    """recipient -> copies received over all the relays."""
    return Counter(rcpt for s in servers for m in s.messages for rcpt in m.rcpt_tos)


# --- the setting ------------------------------------------------------------------------


def test_the_syntax_and_its_defaults() -> None:
    got = parse_relays(
        "smtp-a.example.org:587 pool=8 rate=20/s, smtp-b.example.org pool=2 security=tls,"
        " [::1]:2525 user=me password=a%2Cb",
        port=None,
        security="starttls",
        pool=4,
    )
    assert got[0] == SmtpRelay("smtp-a.example.org", 587, 8, 20.0)
    assert got[1] == SmtpRelay("smtp-b.example.org", 465, 2, None, "tls")
    assert (got[2].host, got[2].port, got[2].pool, got[2].username) == ("::1", 2525, 4, "me")
    assert got[2].password is not None and got[2].password.get_secret_value() == "a,b"
    assert str(got[0]) == "smtp-a.example.org:587"


@pytest.mark.parametrize(
    ("hosts", "says"),
    [
        ("a.example.org pool=8, b.example.org:http", "entry 2, found 'b.example.org:http'"),
        ("a.example.org pool=0", "pool: expected 1 to 32"),
        ("a.example.org rate=fast", "expected a rate such as 14/s"),
        ("a.example.org speed=2", "unknown option 'speed'"),
        ("a.example.org, , b.example.org", "entry 2, found '': empty entry"),
        ("a.example.org password=hunter2 pool", "found 'a.example.org password=*** pool'"),
    ],
)
def test_a_bad_entry_is_named_with_an_example(
    hosts: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SMTP_HOSTS", hosts)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "DIGEST_SMTP_HOSTS: entry" in info.value.message
    assert says in info.value.message
    assert "for example 'smtp-a.example.org:587 pool=8 rate=20/s" in info.value.message
    assert "hunter2" not in info.value.message


def test_host_and_hosts_together_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SMTP_HOST", "smtp.example.org")
    monkeypatch.setenv("DIGEST_SMTP_HOSTS", "smtp-a.example.org, smtp-b.example.org")
    with pytest.raises(ConfigError, match="DIGEST_SMTP_HOST is set too: set one of them"):
        load_settings()


def test_the_one_relay_form_is_one_relay() -> None:
    settings = Settings(smtp_host="smtp.example.org", smtp_pool=3)
    assert settings.smtp_relays == [SmtpRelay("smtp.example.org", 587, 3)]
    assert Settings().smtp_relays == []


# --- sending ----------------------------------------------------------------------------


def test_mail_is_spread_over_the_relays_by_pool(newsroom: Newsroom, smtp_servers: Start) -> None:
    a, b = smtp_servers(), smtp_servers()
    a.handler.delay = b.handler.delay = 0.01
    addresses = _ready(newsroom, 60)
    summary = _send(newsroom, _hosts((a.port, "pool=3"), (b.port, "pool=1")))
    assert summary.sent == 60
    assert copies(a, b) == Counter(addresses)
    # Three connections to one: both carry mail, the bigger pool most of it.
    assert len(a.messages) > len(b.messages) > 0


def test_a_relay_down_from_the_start(newsroom: Newsroom, smtp_servers: Start) -> None:
    b = smtp_servers()
    addresses = _ready(newsroom, 30)
    started = time.monotonic()
    summary = _send(newsroom, _hosts((free_port(), "pool=4"), (b.port, "pool=2")))
    assert summary.sent == 30
    assert copies(b) == Counter(addresses)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "going_bad",
    [
        {"refuse_greeting": "421 4.3.2 shutting down", "refuse_mail": "421 4.3.2 shutting down"},
        {"drop_mail": True},
        {"refuse_mail": "550 5.7.1 sender blocked by policy"},
        {"refuse_mail": "451 4.7.1 too many messages, slow down"},
    ],
    ids=["421", "dropped", "sender-refused", "throttled"],
)
def test_a_relay_going_bad_mid_send_fails_over(
    newsroom: Newsroom, smtp_servers: Start, going_bad: dict[str, object]
) -> None:
    a, b = smtp_servers(), smtp_servers()
    a.handler.delay = b.handler.delay = 0.005
    for knob, value in going_bad.items():
        setattr(a.handler, knob, value)
    a.handler.refuse_after = 10
    addresses = _ready(newsroom, 60)
    summary = _send(
        newsroom, _hosts((a.port, "pool=3"), (b.port, "pool=2")), smtp_reconnect_every=4
    )
    assert summary.sent == 60 and summary.deferred == 0
    assert copies(a, b) == Counter(addresses)  # none missing, none twice
    assert 10 <= len(a.messages) < 15
    statuses = Counter(status for status, _, _ in newsroom.deliveries().values())
    assert statuses == {"sent": 60}


def test_a_relay_that_rested_is_tried_again(smtp_servers: Start) -> None:
    b = smtp_servers()
    port_a = free_port()  # nothing listens there yet
    hosts = _hosts((port_a, "pool=1"), (b.port, "pool=1"))
    settings = Settings(smtp_hosts=hosts, smtp_security="none")

    async def go() -> SmtpServer:
        async with Transport(settings) as t:
            assert (await t.send(0, "a@example.org", "one@example.net", MESSAGE)).ok
            a = smtp_servers(port_a)
            await asyncio.sleep(0.35)  # REST[0]: the relay is tried again
            assert (await t.send(0, "a@example.org", "two@example.net", MESSAGE)).ok
            return a

    a = asyncio.run(go())
    assert copies(b) == {"one@example.net": 1}
    assert copies(a) == {"two@example.net": 1}


def test_a_refusal_after_data_is_never_sent_elsewhere(
    newsroom: Newsroom, smtp_servers: Start
) -> None:
    a, b = smtp_servers(), smtp_servers()
    addresses = _ready(newsroom, 6)
    a.handler.refuse_data = {addresses[0]: "554 5.7.1 looks like spam"}
    a.handler.drop_at = {2}  # the connection dies waiting for the final reply: ambiguous
    summary = _send(newsroom, _hosts((a.port, "pool=1"), (b.port, "pool=1")))
    assert copies(b)[addresses[0]] == 0
    got = newsroom.deliveries()
    assert got[addresses[0]][0] == "deferred"  # a 5.7.x is about the sender: kept, not bounced
    lost = [e for e, (status, _, _) in got.items() if status == "deferred" and e != addresses[0]]
    assert len(lost) == 1 and copies(a, b)[lost[0]] == 0  # deferred for a later run, not resent
    assert summary.sent == 4


def test_the_rate_of_each_relay_and_the_total(newsroom: Newsroom, smtp_servers: Start) -> None:
    a, b = smtp_servers(), smtp_servers()
    _ready(newsroom, 30)
    _send(newsroom, _hosts((a.port, "pool=2 rate=10/s"), (b.port, "pool=2")), send_rate="25/s")
    times_a = sorted(m.at for m in a.messages)
    times_all = sorted(m.at for m in a.messages + b.messages)
    assert len(times_a) >= 5
    assert (len(times_a) - 1) / (times_a[-1] - times_a[0]) <= 10 * 1.15
    assert (len(times_all) - 1) / (times_all[-1] - times_all[0]) <= 25 * 1.15
    # The unlimited relay took the rest, faster than the limited one.
    assert len(b.messages) > len(a.messages)


def test_every_relay_down_is_the_error_of_today(newsroom: Newsroom) -> None:
    _ready(newsroom, 3)
    port_a, port_b = free_port(), free_port()
    with pytest.raises(DeliveryError) as info:
        _send(newsroom, _hosts((port_a, ""), (port_b, "")))
    message = info.value.message
    assert message.startswith("every relay of DIGEST_SMTP_HOSTS refused: ")
    assert f"cannot connect to 127.0.0.1:{port_a}" in message
    assert f"cannot connect to 127.0.0.1:{port_b}" in message
    assert info.value.hint and "DIGEST_SMTP_HOSTS" in info.value.hint
    statuses = Counter(status for status, _, _ in newsroom.deliveries().values())
    assert statuses == {"queued": 3}  # kept for the next `digest send`


def test_digest_send_yes_over_two_relays(newsroom: Newsroom, smtp_servers: Start) -> None:
    a, b = smtp_servers(), smtp_servers()
    a.handler.refuse_greeting = "421 4.3.2 not today"
    addresses = _ready(newsroom, 5)
    env = {
        **newsroom.env,
        "DIGEST_SMTP_HOSTS": _hosts((a.port, "pool=2"), (b.port, "pool=1 rate=50/s")),
        "DIGEST_SMTP_SECURITY": "none",
    }
    result = CliRunner().invoke(main, ["send", "--yes"], env=env)
    assert result.exit_code == 0, result.output
    assert "sent 5, deferred 0, bounced 0, skipped 0" in result.output
    assert f"smtp 127.0.0.1:{a.port} (none), 127.0.0.1:{b.port} (none)" in result.output
    assert copies(a, b) == Counter(addresses) and a.messages == []


def test_digest_send_yes_with_every_relay_down(newsroom: Newsroom) -> None:
    _ready(newsroom, 3)
    env = {
        **newsroom.env,
        "DIGEST_SMTP_HOSTS": _hosts((free_port(), ""), (free_port(), "")),
        "DIGEST_SMTP_SECURITY": "none",
    }
    result = CliRunner().invoke(main, ["send", "--yes"], env=env)
    assert result.exit_code != 0
    assert "every relay of DIGEST_SMTP_HOSTS refused: cannot connect to 127.0.0.1:" in result.output
    assert "Traceback" not in result.output


def test_tls_trouble_fails_over_to_a_relay_with_its_own_login(
    smtp_server: SmtpServer, smtp_tls_server: SmtpServer
) -> None:
    # The first relay offers no STARTTLS (never downgraded: refused); the second wants AUTH
    # with credentials of its own, the way a second provider would.
    hosts = (
        f"127.0.0.1:{smtp_server.port} security=starttls, "
        f"127.0.0.1:{smtp_tls_server.port} security=starttls user={USER} password={PASSWORD}"
    )
    settings = Settings(smtp_hosts=hosts, smtp_security="none")
    reply = deliver_one(settings, sender="a@example.org", to="b@example.net", message=MESSAGE)
    assert reply.startswith("250")
    assert smtp_server.messages == [] and copies(smtp_tls_server) == {"b@example.net": 1}


def test_every_relay_dropping_trips_the_breaker(newsroom: Newsroom, smtp_servers: Start) -> None:
    a, b = smtp_servers(), smtp_servers()
    a.handler.drop_mail = b.handler.drop_mail = True
    _ready(newsroom, 20)
    with pytest.raises(DeliveryError, match="stopped answering: connection lost"):
        _send(newsroom, _hosts((a.port, "pool=1"), (b.port, "pool=1")))
    assert copies(a, b) == {}


def test_a_message_lost_during_data_is_retried_on_the_same_relay(smtp_servers: Start) -> None:
    a, b = smtp_servers(), smtp_servers()
    a.handler.drop_at = {1}  # the first DATA on A never gets its final reply
    settings = Settings(
        smtp_hosts=_hosts((a.port, "pool=1"), (b.port, "pool=1")), smtp_security="none"
    )

    async def go() -> list[transport.Reply]:
        async with Transport(settings) as t:
            # Lane 0 is at home on A, lane 1 on B: the retry comes on B's lane.
            return [
                await t.send(lane, "a@example.org", "x@example.net", MESSAGE) for lane in (0, 1)
            ]

    lost, retried = asyncio.run(go())
    assert (lost.code, lost.stage, lost.failover) == (0, "connection", False)
    assert retried.ok
    assert copies(a) == {"x@example.net": 1} and copies(b) == {}


def test_a_pinned_message_waits_for_its_relay(smtp_servers: Start) -> None:
    a, b = smtp_servers(), smtp_servers()
    a.handler.drop_at = {1}
    settings = Settings(
        smtp_hosts=_hosts((a.port, "pool=1"), (b.port, "pool=1")), smtp_security="none"
    )

    async def go() -> list[transport.Reply]:
        async with Transport(settings) as t:
            lost = await t.send(0, "a@example.org", "x@example.net", MESSAGE)
            a.handler.refuse_greeting = "421 4.3.2 going down"
            return [lost, await t.send(1, "a@example.org", "x@example.net", MESSAGE)]

    lost, retried = asyncio.run(go())
    assert lost.stage == "connection"
    assert retried.code == 451 and retried.transient  # deferred: the loop tries again later
    assert f"kept for 127.0.0.1:{a.port}" in retried.text
    assert copies(a, b) == {}
