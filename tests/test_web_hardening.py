"""The web app under bad requests: malformed tokens, Host-header redirects, stale confirmation
links, list-bombing, suppressed addresses, error pages, slow clients and a database that
cannot be written. Starlette's TestClient for the app; a real `digest serve` where the
behaviour is uvicorn's."""

from __future__ import annotations

import contextlib
import logging
import resource
import socket
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from digest import subscribers
from digest.store import subscribers as store
from digest.store import transaction
from digest.subscribers import optin
from digest.web.pages import Limits
from plugins.smtp import Newsroom, free_port
from plugins.website import Web, digest_serve

HEADERS = (
    "content-security-policy",
    "referrer-policy",
    "x-content-type-options",
    "x-frame-options",
)
OPEN = Limits(per_ip=10_000, per_address=10_000, subscribe_floor=0)  # the caps, not the limiters


def _confirmed(web: Web, address: str) -> str:
    subscribers.add(web.conn, web.settings, web.blogs, email=address, confirmed=True, now=web.now)
    return web.token(address)


def _has_security_headers(response: httpx.Response) -> bool:
    return all(name in response.headers for name in HEADERS)


# --- malformed tokens ---------------------------------------------------------------------


FORM_TOKENS = [
    "{now}.é",  # hmac.compare_digest raised on this: every form was a 500
    "{now}." + "é" * 24,
    "{now}.\u0000",
    "é",
    "{now}..x",
    "{now}." + "A" * 5000,
    "9" * 40 + ".AAAAAAAAAAAAAAAAAAAAAAAA",
]
PATH_TOKENS = ["é", "%C3%A9" * 20, "%FF%FE", "%00" * 43, "a" * 43 + "%0A", "A" * 5000, "a.b" * 8]


def test_malformed_tokens_are_a_403_or_404_never_a_500(web: Web) -> None:
    token = _confirmed(web, "t@example.org")
    web.subscribe("pending@example.org")
    confirmation = web.link(web.mails()[0], "confirm").rsplit("/", 1)[1]
    forms = (
        "/subscribe",
        f"/confirm/{confirmation}",
        f"/confirm/{confirmation}/resend",
        f"/preferences/{token}",
    )
    for form_token in FORM_TOKENS:
        value = form_token.format(now=int(time.time()))
        for path in forms:
            answer = web.client.post(
                path, data={"email": "x@example.org", "categories": ["ml"], "form_token": value}
            )
            assert answer.status_code == 403, (path, form_token[:20], answer.status_code)
            assert _has_security_headers(answer)
    assert web.status("x@example.org") is None and web.status("pending@example.org") == "pending"

    for bad in PATH_TOKENS:
        for kind in ("confirm", "unsubscribe", "preferences"):
            path = f"/{kind}/{bad}"
            form = {"form_token": web.forms_token_for(f"{kind}:{bad}")}
            for answer in (
                web.client.get(path),
                web.client.post(path, data=form),
                web.client.post(path, content=b"List-Unsubscribe=One-Click"),
            ):
                assert answer.status_code in (403, 404), (path[:40], answer.status_code)
                assert _has_security_headers(answer)
        answer = web.client.post(f"/confirm/{bad}/resend", data={"form_token": "x"})
        assert answer.status_code in (403, 404)
    assert web.client.get("/archive/" + "9" * 30).status_code == 404  # past SQLite's INTEGER


def test_tokens_never_reach_the_log(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = _confirmed(web, "quiet@example.org")
    bad = {"form_token": f"{int(time.time())}.é", "name": "x", "categories": ["ml"]}
    assert web.client.post(f"/preferences/{token}", data=bad).status_code == 403

    # A real failure behind a token URL: the database is gone. The 500 page is logged, with
    # the path, but not with the token.
    web.app.state.db.conn.close()
    for path in (f"/preferences/{token}", f"/unsubscribe/{token}", f"/unsubscribe/{token}/"):
        answer = web.client.get(path)
        assert answer.status_code == 500 and _has_security_headers(answer)
    # (The test client logs the URLs it asks for: only the app's own records count.)
    ours = [r for r in caplog.records if not r.name.startswith("httpx")]
    text = "\n".join(caplog.handler.format(r) for r in ours)
    assert "error serving /preferences/<token>" in text
    assert token not in text


# --- no redirect from the Host header -----------------------------------------------------


def test_trailing_slashes_are_served_never_redirected(web: Web) -> None:
    token = _confirmed(web, "slash@example.org")
    web.client.headers["host"] = "evil.example"
    for path in ("/archive/", "/feed.xml/", "/healthz/", "/style.css/", f"/preferences/{token}/"):
        answer = web.client.get(path, follow_redirects=False)
        assert answer.status_code == 200, (path, answer.status_code)
        assert "location" not in answer.headers and "evil.example" not in answer.text
    assert web.client.get("/nothing/here/", follow_redirects=False).status_code == 404

    page = web.client.get(f"/unsubscribe/{token}/", follow_redirects=False)
    assert page.status_code == 200 and "location" not in page.headers
    assert web.status("slash@example.org") == "confirmed"
    # RFC 8058 one-click on the slashed URL too: 200, no redirect.
    gone = web.client.post(
        f"/unsubscribe/{token}/",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert gone.status_code == 200 and "location" not in gone.headers
    assert "You are unsubscribed" in gone.text
    assert web.status("slash@example.org") == "unsubscribed"


def test_one_click_with_a_body_that_does_not_parse_still_unsubscribes(web: Web) -> None:
    token = _confirmed(web, "odd@example.org")
    answer = web.client.post(
        f"/unsubscribe/{token}",
        content=b"--x\r\nList-Unsubscribe",
        headers={"content-type": "multipart/form-data"},  # no boundary
    )
    assert answer.status_code == 200
    assert web.status("odd@example.org") == "unsubscribed"


# --- confirmation links -------------------------------------------------------------------


def test_an_older_link_never_brings_back_who_left(web: Web) -> None:
    web.subscribe("two@example.org")
    web.advance(timedelta(minutes=5))
    web.subscribe("two@example.org")
    first, second = (web.link(m, "confirm") for m in web.mails("two@example.org"))
    assert web.post_form(second).status_code == 200
    assert web.status("two@example.org") == "confirmed"
    # Confirming one link settled the request: the other one is spent too.
    assert "confirmed already" in web.client.get(first).text

    web.client.post(f"/unsubscribe/{web.token('two@example.org')}")
    assert web.status("two@example.org") == "unsubscribed"
    stale = first.rsplit("/", 1)[1]
    replay = web.client.post(first, data={"form_token": web.forms_token_for(f"confirm:{stale}")})
    assert replay.status_code == 410
    assert web.status("two@example.org") == "unsubscribed"
    assert web.client.get(first).status_code == 410

    # Only a link sent after the unsubscribe brings the address back.
    web.advance(timedelta(minutes=5))
    web.subscribe("two@example.org")
    fresh = web.link(web.mails("two@example.org")[-1], "confirm")
    assert fresh not in (first, second)
    assert web.post_form(fresh).status_code == 200
    assert web.status("two@example.org") == "confirmed"
    assert store.suppression_reason(web.conn, "two@example.org") is None


def test_a_pending_link_dies_with_an_unsubscribe(web: Web) -> None:
    web.subscribe("wait@example.org")
    link = web.link(web.mails()[0], "confirm")
    web.client.post(f"/unsubscribe/{web.token('wait@example.org')}")  # e.g. from a notice
    assert web.status("wait@example.org") == "unsubscribed"
    token = link.rsplit("/", 1)[1]
    answer = web.client.post(link, data={"form_token": web.forms_token_for(f"confirm:{token}")})
    assert answer.status_code == 410 and "no longer works" in answer.text
    assert web.status("wait@example.org") == "unsubscribed"


# --- caps and suppressed addresses --------------------------------------------------------


@pytest.mark.parametrize("web_limits", [OPEN])
def test_signup_mails_are_capped_per_mailbox(web: Web) -> None:
    variants = [f"victim+{i}@example.org" for i in range(20)]
    variants += ["Victim@Example.org", "VICTIM+X@example.org", "victim@EXAMPLE.ORG"]
    pages = {web.subscribe(address).text for address in variants}
    assert len(pages) == 1  # the same answer every time
    to_victim = [m for m in web.mails() if m["To"].split("@")[0].split("+")[0] == "victim"]
    assert len(to_victim) == web.settings.signup_mails_per_address == 3
    assert web.subscribe("someone.else@example.org").status_code == 200
    assert len(web.mails("someone.else@example.org")) == 1


@pytest.mark.parametrize("web_limits", [OPEN])
def test_a_global_hourly_cap_on_signup_mails(
    web: Web, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    web.settings.signup_mails_per_hour = 5  # the app holds this very Settings object
    monkeypatch.setattr(optin, "_warned_at", None, raising=False)  # it warns once an hour
    pages = {web.subscribe(f"reader{i}@example.net").text for i in range(12)}
    assert len(pages) == 1
    assert len(web.mails()) == 5
    assert "DIGEST_SIGNUP_MAILS_PER_HOUR" in caplog.text
    web.advance(timedelta(minutes=61))
    web.subscribe("later@example.net")
    assert len(web.mails("later@example.net")) == 1


@pytest.mark.parametrize("reason", ["bounced", "complained"])
def test_suppressed_addresses_get_no_mail_and_the_same_page(web: Web, reason: str) -> None:
    _confirmed(web, "gone@example.org")
    sub = store.get_by_email(web.conn, "gone@example.org")
    assert sub is not None
    with transaction(web.conn):
        if reason == "bounced":
            store.set_status(web.conn, sub.id, "bounced", now=web.now)
        store.suppress(web.conn, "gone@example.org", reason, now=web.now)
    fresh = web.subscribe("fresh@example.org")
    gone = web.subscribe("gone@example.org")
    assert gone.status_code == fresh.status_code == 200 and gone.text == fresh.text
    assert [m["To"] for m in web.mails()] == ["fresh@example.org"]
    # Nor through the preferences page's "Subscribe again".
    token = web.token("gone@example.org")
    web.post_form(f"/preferences/{token}", {"action": "resubscribe"})
    assert web.mails("gone@example.org") == []


def test_a_bounce_after_the_link_was_sent_stops_it(web: Web) -> None:
    web.subscribe("soon@example.org")
    link = web.link(web.mails()[0], "confirm")
    with transaction(web.conn):
        store.suppress(web.conn, "soon@example.org", "bounced", now=web.now)
    assert web.client.get(link).status_code == 410
    token = link.rsplit("/", 1)[1]
    answer = web.client.post(link, data={"form_token": web.forms_token_for(f"confirm:{token}")})
    assert answer.status_code == 410
    assert web.status("soon@example.org") == "pending"


# --- security headers on every answer -----------------------------------------------------


def test_security_headers_on_every_answer(web: Web) -> None:
    answers = {
        "200": web.client.get("/"),
        "404": web.client.get("/no/such/page"),
        "405": web.client.get("/subscribe"),
        "400": web.client.post(
            "/subscribe", content=b"x", headers={"content-type": "multipart/form-data"}
        ),
        "403": web.client.post("/subscribe", data={"email": "x@example.org"}),
        "413": web.client.post(
            "/subscribe",
            content=b"email=" + b"a" * 200_000,
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
    }
    web.app.state.db.conn.close()
    answers["500"] = web.client.get("/archive")
    for what, answer in answers.items():
        assert what.split()[0] == str(answer.status_code), (what, answer.status_code)
        missing = [h for h in HEADERS if h not in answer.headers]
        assert not missing, f"{what}: no {missing}"


# --- a real `digest serve` ----------------------------------------------------------------


@pytest.fixture
def low_file_limit(newsroom: Newsroom) -> Iterator[tuple[int, int]]:
    """(pid, port) of `digest serve` with the file limit at 256, as a small host might have."""
    port = free_port()
    low = ("sh", "-c", 'ulimit -n 256 && exec "$0" "$@"', sys.executable, "-m", "digest")
    with digest_serve(newsroom.subprocess_env(), newsroom.root, port, program=low) as process:
        yield process.pid, port


def _slow_clients(port: int, count: int) -> list[socket.socket]:
    """Connections that send half a request and then nothing."""
    out = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        out.append(sock)
    return out


def _closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slow_clients_cannot_starve_healthz(low_file_limit: tuple[int, int]) -> None:
    pid, port = low_file_limit
    socks = _slow_clients(port, 400)  # more than the file limit lets the server hold
    try:
        for _ in range(3):
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert health.status_code == 200 and health.text == "ok"
            assert _has_security_headers(health)
        assert len(list(Path(f"/proc/{pid}/fd").iterdir())) < 256
    finally:
        for sock in socks:
            sock.close()


def test_a_request_must_arrive_in_time(newsroom: Newsroom) -> None:
    port = free_port()
    with digest_serve(newsroom.subprocess_env(), newsroom.root, port, "--timeout-request", "1"):
        started = time.monotonic()
        [silent, trickle] = _slow_clients(port, 2)
        with silent, trickle:
            while time.monotonic() - started < 4 and not _closed(silent):
                with contextlib.suppress(OSError):
                    trickle.sendall(b"a")  # a byte now and then resets keep-alive's timer
                time.sleep(0.2)
            assert _closed(silent) and 0.9 < time.monotonic() - started < 4
            time.sleep(0.3)
            assert _closed(trickle)

        # Endless headers at full speed: refused at 64 KiB, not buffered.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as greedy:
            greedy.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            greedy.sendall(b"".join(b"X-Big: " + b"a" * 1000 + b"\r\n" for _ in range(70)))
            assert greedy.recv(100).startswith(b"HTTP/1.1 431")

        # A client that sends its request at once is served on a kept-alive connection.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/healthz").status_code == 200
            time.sleep(0.5)
            assert client.get("/healthz").status_code == 200


def test_access_log_shows_no_tokens(newsroom: Newsroom) -> None:
    newsroom.subscribe("logged@example.org")
    token = newsroom.conn.execute("SELECT token FROM subscribers").fetchone()[0]
    port = free_port()
    env = newsroom.subprocess_env()
    # uvicorn writes its access log to stdout: send it where the helper reads.
    to_stderr = ("sh", "-c", 'exec "$0" "$@" 1>&2', sys.executable, "-m", "digest")
    with digest_serve(env, newsroom.root, port, "--access-log", program=to_stderr) as process:
        for path in (f"/unsubscribe/{token}", f"/preferences/{token}?x=1", f"/confirm/{token}"):
            assert httpx.get(f"http://127.0.0.1:{port}{path}").status_code in (200, 404)
        process.terminate()
        process.wait(20)
        assert process.stderr is not None
        log = process.stderr.read().decode()
    assert "GET /unsubscribe/<token>" in log
    assert token not in log


@pytest.mark.sqlite_only
def test_healthz_is_503_while_the_database_cannot_be_written(newsroom: Newsroom) -> None:
    """A real write failure: the server may not grow any file (RLIMIT_FSIZE 0, as a full disk
    looks to it: SQLite's WAL writes fail with EFBIG). Root ignores file modes, not this."""
    port = free_port()
    env = newsroom.subprocess_env() | {"DIGEST_SECRET": "s" * 32}
    url = f"http://127.0.0.1:{port}/healthz"

    def wait_for(status: int) -> httpx.Response:
        deadline = time.monotonic() + 10
        while True:
            answer = httpx.get(url, timeout=5)
            if answer.status_code == status or time.monotonic() > deadline:
                return answer
            time.sleep(0.2)

    with digest_serve(env, newsroom.root, port) as process:
        _, hard = resource.prlimit(process.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (0, hard))
        try:
            failing = wait_for(503)
            assert failing.status_code == 503, failing.text
            assert failing.text.startswith("database: ") and _has_security_headers(failing)
            # Reads still work meanwhile: the archive is served.
            assert httpx.get(f"http://127.0.0.1:{port}/archive").status_code == 200
        finally:
            resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (hard, hard))
        assert wait_for(200).text == "ok"
