"""The signup flow over HTTP: subscribe, confirm, one-click unsubscribe; abuse limits; CSRF."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from digest import subscribers
from digest.store import subscribers as store
from digest.store.copy import tables
from digest.web.pages import Limits
from plugins.website import BASE, FORM_TOKEN, Web


def test_journey_subscribe_confirm_then_one_click_unsubscribe(web: Web) -> None:
    page = web.subscribe("Ann@Example.org", name="Ann", categories=["ml", "music"])
    assert page.status_code == 200 and "Check your inbox" in page.text
    [mail] = web.mails()
    assert mail["To"] == "ann@example.org"
    assert "Confirm your subscription" in mail["Subject"]
    assert web.status("ann@example.org") == "pending"

    link = web.link(mail, "confirm")
    shown = web.client.get(link)
    assert shown.status_code == 200 and "Confirm my subscription" in shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert web.status("ann@example.org") == "pending"  # a GET (a mail scanner) never confirms

    done = web.post_form(link, headers={"user-agent": "journey-browser/1.0"})
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert web.status("ann@example.org") == "confirmed"
    row = web.conn.execute("SELECT * FROM subscribers WHERE email = 'ann@example.org'").fetchone()
    assert row["name"] == "Ann" and row["categories"] == '["ml", "music"]'
    assert row["source"] == "web" and row["request_ip"] == "testclient"
    assert row["requested_at"] == "2026-11-30T08:00:00Z" and row["confirmed_at"]
    assert row["confirm_ua"] == "journey-browser/1.0" and row["confirm_ip"] == "testclient"
    assert row["consent_text"] == subscribers.consent_text(web.blogs.newsletter)

    # RFC 8058: a bare POST, no cookie, no Origin, no form token; 200, never a redirect.
    token = web.token("ann@example.org")
    web.client.cookies.clear()
    gone = web.client.post(
        f"/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert gone.status_code == 200 and "You are unsubscribed" in gone.text
    assert "set-cookie" not in gone.headers
    assert web.status("ann@example.org") == "unsubscribed"
    assert store.suppression_reason(web.conn, "ann@example.org") == "unsubscribed"
    assert len(web.mails()) == 1  # nothing else was sent


def test_same_answer_whatever_the_address_state(web: Web) -> None:
    web.subscribe("pending@example.org")
    subscribers.add(
        web.conn,
        web.settings,
        web.blogs,
        email="confirmed@example.org",
        confirmed=True,
        now=web.now,
    )
    subscribers.add(
        web.conn, web.settings, web.blogs, email="left@example.org", confirmed=True, now=web.now
    )
    subscribers.unsubscribe_by_token(web.conn, web.token("left@example.org"), now=web.now)
    web.mails()

    answers = {
        state: web.subscribe(f"{state}@example.org")
        for state in ("new", "pending", "confirmed", "left")
    }
    bodies = {a.text for a in answers.values()}
    assert len(bodies) == 1, "the page must not reveal the address's state"
    assert {a.status_code for a in answers.values()} == {200}
    assert {tuple(sorted(a.headers.keys())) for a in answers.values()} == {
        tuple(sorted(answers["new"].headers.keys()))
    }
    # Behind the identical page: a confirmation for new, pending and unsubscribed, a notice
    # with the preferences link for the confirmed one; the unsubscribed stays out until it
    # confirms.
    subjects = {m["To"]: m["Subject"] for m in web.mails()[1:]}
    assert subjects["new@example.org"].startswith("Confirm")
    assert subjects["pending@example.org"].startswith("Confirm")
    assert subjects["left@example.org"].startswith("Confirm")
    assert subjects["confirmed@example.org"].startswith("You are subscribed")
    assert web.status("left@example.org") == "unsubscribed"


@pytest.mark.parametrize("web_limits", [Limits(subscribe_floor=0.15)])
def test_same_time_whatever_the_state(web: Web) -> None:
    subscribers.add(
        web.conn, web.settings, web.blogs, email="old@example.org", confirmed=True, now=web.now
    )
    timings = {}
    for address in ("new@example.org", "old@example.org", "bad@@example.org"):
        token = web.form_token("/")
        started = time.perf_counter()
        web.client.post(
            "/subscribe",
            data={"email": address, "categories": ["ml"], "form_token": token},
        )
        timings[address] = time.perf_counter() - started
    # Valid addresses, new or known, take the floor however little work they needed; only an
    # invalid address (which reveals nothing about anyone) answers at once.
    assert timings["new@example.org"] >= 0.15 and timings["old@example.org"] >= 0.15
    assert abs(timings["new@example.org"] - timings["old@example.org"]) < 0.1
    assert timings["bad@@example.org"] < 0.15


@pytest.mark.parametrize("web_limits", [Limits(per_ip=3, per_address=100, subscribe_floor=0)])
def test_rate_limit_per_ip(web: Web) -> None:
    codes = [web.subscribe(f"user{i}@example.org").status_code for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert web.status("user3@example.org") is None
    assert len(web.mails()) == 3


@pytest.mark.parametrize("web_limits", [Limits(per_ip=100, per_address=2, subscribe_floor=0)])
def test_rate_limit_per_address(web: Web) -> None:
    codes = [
        web.subscribe(a).status_code for a in ("a@example.org", "A@EXAMPLE.ORG", "a@example.org")
    ]
    assert codes == [200, 200, 429]
    assert web.subscribe("b@example.org").status_code == 200


@pytest.mark.parametrize("web_limits", [Limits(per_ip=100, per_address=100, subscribe_floor=0)])
def test_confirmation_mails_capped_per_address_per_day(web: Web) -> None:
    for _ in range(5):
        assert web.subscribe("bombed@example.org").status_code == 200
    assert len(web.mails("bombed@example.org")) == subscribers.MAILS_PER_DAY
    web.advance(timedelta(hours=25))
    web.subscribe("bombed@example.org")
    assert len(web.mails("bombed@example.org")) == subscribers.MAILS_PER_DAY + 1


def test_honeypot_answers_the_same_and_does_nothing(web: Web) -> None:
    normal = web.subscribe("person@example.org")
    bot = web.subscribe("bot@example.org", website="http://spam.example")
    assert bot.status_code == 200 and bot.text == normal.text
    assert web.status("bot@example.org") is None
    assert [m["To"] for m in web.mails()] == ["person@example.org"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "not an address"}, "not a valid address"),
        ({"email": ""}, "no address given"),
        ({"email": "x@example.org", "name": "Eve\r\nBcc: victim@example.org"}, "control"),
        ({"email": "x@example.org", "name": "Eve\x00"}, "control"),
        ({"email": "x@example.org", "categories": []}, "no category"),
        ({"email": "x@example.org", "categories": ["ml", "cooking"]}, "unknown category"),
    ],
)
def test_bad_input_shows_the_form_again(web: Web, fields: dict[str, object], message: str) -> None:
    address = str(fields.pop("email"))
    answer = web.subscribe(address, **fields)  # type: ignore[arg-type]
    assert answer.status_code == 400
    assert message in answer.text
    assert 'name="form_token"' in answer.text  # the form is back, ready to fix
    assert web.conn.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] == 0
    assert web.mails() == []


def test_error_page_escapes_what_was_typed(web: Web) -> None:
    answer = web.subscribe("<script>alert(1)</script>@x", name='"><img src=x onerror=alert(1)>')
    assert answer.status_code == 400
    assert "<script>alert(1)</script>" not in answer.text
    assert "&lt;script&gt;" in answer.text
    assert "<img src=x" not in answer.text


def test_expired_confirmation_offers_a_fresh_mail(web: Web) -> None:
    web.subscribe("late@example.org")
    [first] = web.mails()
    web.advance(subscribers.CONFIRM_TTL + timedelta(seconds=1))
    old = web.link(first, "confirm")
    page = web.client.get(old)
    assert page.status_code == 410 and "expired" in page.text
    token = old.rsplit("/", 1)[1]
    late_post = web.client.post(old, data={"form_token": web.forms_token_for(f"confirm:{token}")})
    assert late_post.status_code == 410  # a POST cannot use it either
    assert web.status("late@example.org") == "pending"

    resend_token = web.form_token(old)  # the expired page's form asks for a fresh mail
    fresh = web.client.post(f"{old}/resend", data={"form_token": resend_token})
    assert fresh.status_code == 200 and "Check your inbox" in fresh.text
    second = web.mails("late@example.org")[-1]
    assert web.link(second, "confirm") != old
    assert web.post_form(web.link(second, "confirm")).status_code == 200
    assert web.status("late@example.org") == "confirmed"


def test_confirmation_link_is_single_use(web: Web) -> None:
    web.subscribe("once@example.org")
    link = web.link(web.mails()[0], "confirm")
    form_token = web.form_token(link)
    assert "You are subscribed" in web.client.post(link, data={"form_token": form_token}).text
    again = web.client.post(link, data={"form_token": form_token})
    assert again.status_code == 200 and "confirmed already" in again.text

    subscribers.unsubscribe_by_token(web.conn, web.token("once@example.org"), now=web.now)
    reused = web.client.post(link, data={"form_token": form_token})
    assert reused.status_code == 410 and "used already" in reused.text
    assert web.status("once@example.org") == "unsubscribed"  # an old link never brings back


def test_confirmation_token_is_stored_hashed(web: Web) -> None:
    web.subscribe("hash@example.org")
    token = web.link(web.mails()[0], "confirm").rsplit("/", 1)[1]
    assert len(token) == 43
    rows = (row for table in tables(web.conn) for row in web.conn.execute(f"SELECT * FROM {table}"))
    dump = "\n".join(str(tuple(row)) for row in rows)
    assert token not in dump
    assert subscribers.hash_token(token) in dump


@pytest.mark.parametrize(
    "path",
    [
        "/confirm/{forged}",
        "/unsubscribe/{forged}",
        "/preferences/{forged}",
        "/confirm/{subscriber}",  # a token of another kind is no confirmation token
        "/unsubscribe/{confirmation}",
        "/preferences/{confirmation}",
        "/unsubscribe/1",  # never a row id
        "/unsubscribe/" + "A" * 5000,
    ],
)
def test_forged_and_misused_tokens_get_a_404_page(web: Web, path: str) -> None:
    web.subscribe("real@example.org")
    confirmation = web.link(web.mails()[0], "confirm").rsplit("/", 1)[1]
    subscribers.add(
        web.conn, web.settings, web.blogs, email="sub@example.org", confirmed=True, now=web.now
    )
    url = path.format(
        forged=subscribers.new_token(),
        subscriber=web.token("sub@example.org"),
        confirmation=confirmation,
    )
    kind, token = url.strip("/").split("/")
    form = {"form_token": web.forms_token_for(f"{kind}:{token}")}  # past CSRF, to the lookup
    for response in (web.client.get(url), web.client.post(url, data=form)):
        assert response.status_code == 404
        assert "does not exist" in response.text
    assert web.status("sub@example.org") == "confirmed"
    assert web.status("real@example.org") == "pending"


def test_one_click_accepts_multipart_and_is_idempotent(web: Web) -> None:
    subscribers.add(
        web.conn, web.settings, web.blogs, email="mp@example.org", confirmed=True, now=web.now
    )
    token = web.token("mp@example.org")
    for _ in range(2):
        answer = web.client.post(
            f"/unsubscribe/{token}",
            files={"List-Unsubscribe": (None, "One-Click")},
            follow_redirects=False,
        )
        assert answer.status_code == 200 and "You are unsubscribed" in answer.text
    assert web.status("mp@example.org") == "unsubscribed"
    events = web.conn.execute("SELECT detail FROM events WHERE kind = 'unsubscribe'").fetchall()
    assert [e[0] for e in events] == ["subscriber 1 one-click"]


def test_unsubscribe_page_get_changes_nothing(web: Web) -> None:
    subscribers.add(
        web.conn, web.settings, web.blogs, email="g@example.org", confirmed=True, now=web.now
    )
    page = web.client.get(f"/unsubscribe/{web.token('g@example.org')}")
    assert page.status_code == 200 and "<form" in page.text and "g@example.org" in page.text
    assert web.status("g@example.org") == "confirmed"


def test_cross_site_posts_are_refused_but_one_click_works_bare(web: Web) -> None:
    token = web.form_token("/")
    data = {"email": "x@example.org", "categories": ["ml"], "form_token": token}
    evil = web.client.post("/subscribe", data=data, headers={"origin": "https://evil.example"})
    assert evil.status_code == 403
    fetch = web.client.post("/subscribe", data=data, headers={"sec-fetch-site": "cross-site"})
    assert fetch.status_code == 403
    sandboxed = web.client.post("/subscribe", data=data, headers={"origin": "null"})
    assert sandboxed.status_code == 403  # a sandboxed iframe or a data: URL
    no_token = web.client.post("/subscribe", data={"email": "x@example.org"})
    assert no_token.status_code == 403
    wrong_purpose = web.client.post(
        "/subscribe", data={**data, "form_token": web.forms_token_for("confirm:abc")}
    )
    assert wrong_purpose.status_code == 403
    assert web.status("x@example.org") is None

    same_site = web.client.post("/subscribe", data=data, headers={"origin": BASE})
    assert same_site.status_code == 200

    subscribers.add(
        web.conn, web.settings, web.blogs, email="oc@example.org", confirmed=True, now=web.now
    )
    one_click = web.client.post(
        f"/unsubscribe/{web.token('oc@example.org')}",
        content=b"List-Unsubscribe=One-Click",
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "origin": "https://mail.provider.example",
        },
    )
    assert one_click.status_code == 200
    assert web.status("oc@example.org") == "unsubscribed"


def test_form_tokens_expire_and_are_bound_to_their_purpose() -> None:
    from digest.web.security import FORM_TOKEN_MAX_AGE, FormTokens

    forms = FormTokens(b"k" * 32)
    token = forms.issue("subscribe", 1_000_000.0)
    assert forms.valid(token, "subscribe", 1_000_000.0 + 60)
    assert not forms.valid(token, "subscribe", 1_000_000.0 + FORM_TOKEN_MAX_AGE + 1)
    assert not forms.valid(token, "preferences:x", 1_000_000.0 + 60)
    assert not FormTokens(b"other" * 8).valid(token, "subscribe", 1_000_000.0 + 60)
    assert not forms.valid(token + "x", "subscribe", 1_000_000.0 + 60)
    assert not forms.valid("", "subscribe", 0) and not forms.valid("a.b.c", "subscribe", 0)


def test_links_come_from_the_base_url_never_the_host_header(web: Web) -> None:
    web.client.headers["host"] = "evil.example"
    home = web.client.get("/")
    assert "evil.example" not in home.text and f'action="{BASE}/subscribe"' in home.text
    token = FORM_TOKEN.search(home.text)[1]  # type: ignore[index]
    web.client.post(
        "/subscribe",
        data={"email": "h@example.org", "categories": ["ml"], "form_token": token},
        headers={"host": "evil.example", "x-forwarded-host": "evil.example"},
    )
    [mail] = web.mails()
    assert "evil.example" not in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert web.link(mail, "confirm")
