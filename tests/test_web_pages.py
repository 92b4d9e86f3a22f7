"""Pages other than signup: home, preferences, archive, feed, health, errors, headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

import pytest

from digest import subscribers
from digest.models import Issue, IssuePost, Subscriber
from digest.store import transaction
from digest.store.issues import freeze_issue, set_issue_status
from digest.store.subscribers import iter_subscribers
from plugins.website import BASE, Web

ATOM = "{http://www.w3.org/2005/Atom}"


def _confirmed(web: Web, address: str, name: str | None = None) -> str:
    subscribers.add(
        web.conn, web.settings, web.blogs, email=address, name=name, confirmed=True, now=web.now
    )
    return web.token(address)


def _issue(web: Web, number: int, *, status: str = "sent", title: str = "A post") -> str:
    since = datetime(2026, 11, 23, tzinfo=UTC) + timedelta(weeks=number)
    issue = Issue(
        number=number,
        subject=f"Blogs I like #{number}",
        since=since,
        until=since + timedelta(weeks=1),
        posts=[
            IssuePost(
                id=f"sander-{number:08x}",
                title=title,
                url=f"https://sander.ai/{number}.html",
                blog="sander-dieleman",
                category="ml",
            )
        ],
    )
    html = f"<!doctype html><html><body><h1 style='color:red'>Issue {number}</h1></body></html>"
    with transaction(web.conn):
        freeze_issue(web.conn, issue, html=html, text="text", status=status, now=since)
        if status == "sent":
            set_issue_status(web.conn, number, "sent", sent_at=since + timedelta(hours=1))
    return html


def test_home_shows_the_newsletter_and_the_form(web: Web) -> None:
    page = web.client.get("/")
    assert page.status_code == 200
    text = page.text
    assert "Blogs I like" in text and "The curator" in text
    for category in web.blogs.categories:
        assert category.title in text
        assert f'name="categories" value="{category.id}" checked' in text
    for blog in web.blogs.blogs():
        assert f'href="{blog.homepage}"' in text
    assert "An inspiring corner of the internet" in text  # the curator's commentary
    assert 'name="website"' in text  # the honeypot
    assert subscribers.consent_text(web.blogs.newsletter) in text
    assert "<script" not in text  # works without JavaScript: there is none


def test_home_escapes_blogs_yaml_text(web: Web) -> None:
    web.blogs.categories[0].blogs[0].commentary = "<b onclick=x>bold</b> & more"
    page = web.client.get("/")
    assert "&lt;b onclick=x&gt;bold&lt;/b&gt; &amp; more" in page.text
    assert "<b onclick" not in page.text


def test_preferences_change_name_and_categories(web: Web) -> None:
    token = _confirmed(web, "p@example.org")
    page = web.client.get(f"/preferences/{token}")
    assert page.status_code == 200 and "p@example.org" in page.text
    assert page.text.count("checked") == len(web.blogs.categories) + 1  # and "Weekly"

    saved = web.post_form(f"/preferences/{token}", {"name": "Pat", "categories": ["music"]})
    assert saved.status_code == 200 and "Saved." in saved.text
    [sub] = [s for s in subscribers_by_status(web, "confirmed")]
    assert sub.name == "Pat" and sub.categories == frozenset({"music"})
    assert 'value="music" checked' in saved.text and 'value="ml" checked' not in saved.text

    everything = [c.id for c in web.blogs.categories]
    web.post_form(f"/preferences/{token}", {"name": "", "categories": everything})
    [sub] = subscribers_by_status(web, "confirmed")
    assert sub.name is None and sub.categories is None  # all, including categories added later


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Pat", "categories": []}, "no category"),
        ({"name": "Pat\nBcc: x@example.org", "categories": ["ml"]}, "control character"),
        ({"name": "Pat", "categories": ["nope"]}, "unknown category"),
    ],
)
def test_preferences_refuse_bad_input(web: Web, fields: dict[str, object], message: str) -> None:
    token = _confirmed(web, "p@example.org", name="Old")
    answer = web.post_form(f"/preferences/{token}", fields)
    assert answer.status_code == 400 and message in answer.text
    [sub] = subscribers_by_status(web, "confirmed")
    assert sub.name == "Old" and sub.categories is None


def test_preferences_unsubscribe_and_subscribe_again(web: Web) -> None:
    token = _confirmed(web, "p@example.org")
    page = web.client.get(f"/preferences/{token}")
    assert f'action="{BASE}/unsubscribe/{token}"' in page.text
    web.client.post(f"/unsubscribe/{token}")
    assert web.status("p@example.org") == "unsubscribed"
    again = web.client.get(f"/preferences/{token}")
    assert "Subscribe again" in again.text
    # The token is in every issue, forwarded ones too: coming back takes a fresh confirmation.
    back = web.post_form(f"/preferences/{token}", {"action": "resubscribe"})
    assert back.status_code == 200 and "Check your inbox" in back.text
    assert web.status("p@example.org") == "unsubscribed"
    [mail] = web.mails("p@example.org")
    assert web.post_form(web.link(mail, "confirm")).status_code == 200
    assert web.status("p@example.org") == "confirmed"
    assert web.conn.execute("SELECT COUNT(*) FROM suppressions").fetchone()[0] == 0


def test_preferences_refuse_cross_site_posts(web: Web) -> None:
    token = _confirmed(web, "p@example.org")
    answer = web.post_form(
        f"/preferences/{token}",
        {"name": "Mallory", "categories": ["ml"]},
        headers={"origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    [sub] = subscribers_by_status(web, "confirmed")
    assert sub.name is None


def test_pages_escape_subscriber_data(web: Web) -> None:
    token = _confirmed(web, "x@example.org", name='<script>alert("x")</script>')
    page = web.client.get(f"/preferences/{token}").text
    assert "<script>" not in page
    assert 'value="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"' in page


def test_archive_lists_sent_issues_and_serves_each_as_a_page(web: Web) -> None:
    assert "No issue has been sent yet" in web.client.get("/archive").text
    first = _issue(web, 1)
    _issue(web, 3, title="Noise & <schedules>")
    listing = web.client.get("/archive")
    assert f'href="{BASE}/archive/1"' in listing.text and f'href="{BASE}/archive/3"' in listing.text
    assert "/archive/2" not in listing.text  # numbers are not invented
    page = web.client.get("/archive/1")
    # Built from the frozen content for the web (tests/test_web_publication.py), not the mail.
    assert page.status_code == 200 and first not in page.text
    assert '<h1 class="p-name">Blogs I like #1</h1>' in page.text
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert web.client.get("/archive/2").status_code == 404
    assert web.client.get("/archive/99").status_code == 404
    assert web.client.get("/archive/nope").status_code == 404
    assert "Blogs I like #3" in web.client.get("/").text  # recent issues on the home page


def test_feed_is_atom_of_the_archive(web: Web) -> None:
    empty = ET.fromstring(web.client.get("/feed.xml").content)
    assert empty.tag == f"{ATOM}feed" and empty.findall(f"{ATOM}entry") == []
    _issue(web, 1)
    _issue(web, 2, title="Noise & <schedules>")
    answer = web.client.get("/feed.xml")
    assert answer.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(answer.content)
    assert feed.findtext(f"{ATOM}title") == "Blogs I like"
    assert feed.findtext(f"{ATOM}id") == f"{BASE}/"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}id") for e in entries] == [f"{BASE}/archive/2", f"{BASE}/archive/1"]
    assert entries[0].findtext(f"{ATOM}updated") == "2026-12-07T01:00:00Z"
    content = entries[0].findtext(f"{ATOM}content")  # the issue as its archive page shows it
    assert content is not None and "Noise &amp; &lt;schedules&gt;" in content
    assert ">Sander Dieleman</a>" in content


def test_healthz_errors_and_headers(web: Web) -> None:
    health = web.client.get("/healthz")
    assert health.status_code == 200 and health.text == "ok"
    missing = web.client.get("/no/such/page")
    assert missing.status_code == 404 and "does not exist" in missing.text
    assert web.client.get("/subscribe").status_code == 405
    huge = web.client.post(
        "/subscribe",
        content=b"email=" + b"a" * 200_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413
    home = web.client.get("/")
    assert home.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert home.headers["x-frame-options"] == "DENY"
    assert f"form-action {BASE}" in home.headers["content-security-policy"]
    assert "set-cookie" not in home.headers
    css = web.client.get("/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def subscribers_by_status(web: Web, status: str) -> list[Subscriber]:
    return list(iter_subscribers(web.conn, status=status))
