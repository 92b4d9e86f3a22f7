"""The whole journey against a real SMTP server (aiosmtpd): subscribe on the web, confirm from
the mail, receive an issue with only the chosen sections, one-click unsubscribe from its
List-Unsubscribe header, and receive nothing the next week."""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage

from starlette.testclient import TestClient

from digest.models import Post
from digest.send.deliver import send_issue
from digest.store import posts as posts_store
from digest.store import subscribers as subscribers_store
from digest.store import transaction
from digest.web import create_app
from digest.web.pages import Limits
from plugins.smtp import Newsroom, SmtpServer
from plugins.website import FORM_TOKEN

BASE = "https://digest.example.org"


def _form_token(client: TestClient, path: str) -> str:
    found = FORM_TOKEN.search(client.get(path).text)
    assert found, f"no form on {path}"
    return found[1]


def _to(smtp: SmtpServer, address: str) -> list[EmailMessage]:
    return [r.message for r in smtp.messages if address in r.rcpt_tos]


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _signup(client: TestClient, smtp: SmtpServer, address: str, categories: list[str]) -> str:
    """Subscribe and confirm through the pages; the subscriber's public token."""
    answer = client.post(
        "/subscribe",
        data={"email": address, "categories": categories, "form_token": _form_token(client, "/")},
    )
    assert answer.status_code == 200
    client.app.state.mailer.join()  # type: ignore[attr-defined]
    [mail] = _to(smtp, address)
    found = re.search(rf"{re.escape(BASE)}(/confirm/[\w-]+)", _text(mail))
    assert found, _text(mail)
    confirm = found[1]
    done = client.post(confirm, data={"form_token": _form_token(client, confirm)})
    assert "You are subscribed" in done.text
    token = re.search(r"/preferences/([\w-]+)", done.text)
    assert token
    return token[1]


def _posts_for_week_two(room: Newsroom) -> None:
    at = room.now - timedelta(days=2)
    with transaction(room.conn):
        for blog in room.blogs.blogs():
            url = f"{blog.homepage.rstrip('/')}/week-two"
            post = Post(
                id=f"{blog.id}-weektwo",
                blog=blog.id,
                title=f"{blog.name}: week two",
                url=url,
                author=None,
                published=at,
                first_seen=at,
                excerpt="Later news.",
            )
            posts_store.insert_post(
                room.conn, post, key=url, link_title=None, canonical=url, backlog=False,
                duplicate_of=None,
            )  # fmt: skip


def test_subscribe_confirm_receive_unsubscribe_then_nothing(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    smtp = {k.removeprefix("DIGEST_").lower(): v for k, v in smtp_server.env().items()}
    settings = newsroom.settings(**smtp)
    app = create_app(
        settings,
        newsroom.blogs,
        newsroom.db_path,
        clock=lambda: newsroom.now,
        limits=Limits(subscribe_floor=0),
    )
    everything = [c.id for c in newsroom.blogs.categories]
    with TestClient(app) as client:
        ann = _signup(client, smtp_server, "ann@example.org", everything)
        bo = _signup(client, smtp_server, "bo@example.org", everything)
        # Bo keeps only the ML section, through the preferences page.
        prefs = f"/preferences/{bo}"
        saved = client.post(
            prefs, data={"categories": ["ml"], "form_token": _form_token(client, prefs)}
        )
        assert saved.status_code == 200

        newsroom.add_posts()
        newsroom.draft()
        first = send_issue(settings, newsroom.blogs, newsroom.conn, now=newsroom.now)
        assert first.sent == 2, first
        [ann_issue] = _to(smtp_server, "ann@example.org")[1:]
        [bo_issue] = _to(smtp_server, "bo@example.org")[1:]
        assert "Optimistic Underground: post 0" in _text(ann_issue)
        assert "Sander Dieleman: post 0" in _text(bo_issue)
        assert "Optimistic Underground" not in _text(bo_issue)  # Bo's sections only
        assert "XXIIVV" not in _text(bo_issue)

        # "Read on the web" leads to the public page of the issue, the same for every reader.
        archive = f"{BASE}/archive/1"
        assert archive in _text(ann_issue) and archive in _text(bo_issue)
        html = ann_issue.get_body(("html",))
        assert html is not None
        web_links = re.findall(
            r'<a\b[^>]*href="([^"]+)"[^>]*>\s*Read on the web', html.get_content()
        )
        assert web_links and set(web_links) == {archive}
        public = client.get(archive.removeprefix(BASE))
        assert public.status_code == 200
        assert f'<link rel="canonical" href="{archive}">' in public.text
        assert "Sander Dieleman: post 0" in public.text and "Optimistic Underground" in public.text
        assert ann not in public.text and bo not in public.text

        # The mail provider's one-click: POST to the List-Unsubscribe URL, bare.
        assert ann_issue["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = re.search(r"<(https://[^>]+)>", ann_issue["List-Unsubscribe"])
        assert url and url[1] == f"{BASE}/unsubscribe/{ann}"
        client.cookies.clear()
        gone = client.post(
            url[1].removeprefix(BASE),
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        assert gone.status_code == 200
        sub = subscribers_store.get_by_email(newsroom.conn, "ann@example.org")
        assert sub is not None and sub.status == "unsubscribed"

    newsroom.now += timedelta(weeks=1)
    _posts_for_week_two(newsroom)
    newsroom.draft()
    second = send_issue(settings, newsroom.blogs, newsroom.conn, now=newsroom.now)
    assert second.sent == 1, second
    assert len(_to(smtp_server, "ann@example.org")) == 2  # the confirmation and issue 1 only
    [_, _, bo_second] = _to(smtp_server, "bo@example.org")
    assert "Sander Dieleman: week two" in _text(bo_second)
