"""The web app under test: a real SQLite file, the real Maildir outbox, Starlette's TestClient;
sent issues frozen as sending freezes them (freeze) and a small HTML reader for pages (Tags).

def test_x(web):
    web.subscribe("ann@example.org")
    [mail] = web.mails()
    web.confirm(web.link(mail, "confirm"))
"""

from __future__ import annotations

import email
import mailbox
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from digest.config import BlogsFile, Settings, load_blogs
from digest.models import Issue, IssuePost
from digest.send.deliver import send_issue
from digest.store import connect, transaction
from digest.store.issues import freeze_issue, set_issue_status
from digest.web import create_app
from digest.web.pages import Limits
from plugins.smtp import Newsroom, free_port

BASE = "https://digest.example.org"
START = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


def _delivery_order(key: str) -> tuple[int, int, str]:
    # stdlib Maildir names start "<seconds>.M<microseconds>P<pid>Q<counter>."
    found = re.match(r"(\d+)\.M(\d+)", key)
    return (int(found[1]), int(found[2]), key) if found else (0, 0, key)


class Web:
    def __init__(
        self,
        tmp_path: Path,
        blogs_yaml: Path,
        limits: Limits,
        *,
        base_url: str = BASE,
        db: Path | str | None = None,
    ) -> None:
        self.root = tmp_path
        self.limits = limits
        self.settings = Settings(
            base_url=base_url,
            blogs=blogs_yaml,
            db=db or tmp_path / "subscribers" / "digest.db",
            outbox=tmp_path / "outbox",
            drafts=tmp_path / "drafts",
        )
        self.blogs: BlogsFile = load_blogs(blogs_yaml)
        self.now = START
        self.app = create_app(
            self.settings, self.blogs, self.settings.db, clock=lambda: self.now, limits=limits
        )
        self.client = TestClient(self.app, base_url="http://testserver")
        self.conn: sqlite3.Connection = connect(self.settings.db)

    def advance(self, delta: timedelta) -> None:
        self.now += delta

    def form_token(self, path: str) -> str:
        page = self.client.get(path)
        found = FORM_TOKEN.search(page.text)
        assert found, f"no form on {path}: {page.status_code} {page.text[:300]}"
        return found[1]

    def subscribe(
        self,
        address: str,
        *,
        name: str = "",
        categories: list[str] | None = None,
        **extra: Any,
    ) -> Any:
        data: dict[str, Any] = {
            "email": address,
            "name": name,
            "categories": categories
            if categories is not None
            else [c.id for c in self.blogs.categories],
            "form_token": self.form_token("/"),
            "website": "",
        }
        data.update(extra)
        return self.client.post("/subscribe", data=data)

    def forms_token_for(self, purpose: str) -> str:
        """A valid form token for another purpose than the form posted (CSRF tests)."""
        return str(self.app.state.site.forms.issue(purpose, time.time()))

    def post_form(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        fields = {"form_token": self.form_token(path), **(data or {})}
        return self.client.post(path, data=fields, **kw)

    def mails(self, to: str | None = None) -> list[EmailMessage]:
        self.app.state.mailer.join()
        path = self.settings.outbox
        if not path.exists():
            return []
        box = mailbox.Maildir(path, factory=None, create=False)
        out = []
        for key in sorted(box.keys(), key=_delivery_order):
            message = email.message_from_bytes(box.get_bytes(key), policy=default)
            assert isinstance(message, EmailMessage)
            if to is None or message["To"] == to:
                out.append(message)
        return out

    @staticmethod
    def link(mail: EmailMessage, kind: str) -> str:
        """The path of the first {BASE}/<kind>/<token> link in a mail's text."""
        body = mail.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        found = re.search(rf"{re.escape(BASE)}(/{kind}/[A-Za-z0-9_-]+)", text)
        assert found, f"no /{kind}/ link in:\n{text}"
        return found[1]

    def status(self, address: str) -> str | None:
        row = self.conn.execute(
            "SELECT status FROM subscribers WHERE email = ?", (address,)
        ).fetchone()
        return None if row is None else str(row[0])

    def token(self, address: str) -> str:
        row = self.conn.execute(
            "SELECT token FROM subscribers WHERE email = ?", (address,)
        ).fetchone()
        assert row is not None
        return str(row[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Web:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)
        self.close()


# What the mail as sent looked like: a greeting, personal links, the base URL of that day.
SENT_HTML = (
    "<!doctype html><html><body><p>Hello Ann,</p><p>You get Blogs I like because you subscribed"
    ' at localhost:8000.</p><a href="http://localhost:8000/unsubscribe/SENTTOKENSENTTOKENSENT">'
    "Unsubscribe</a></body></html>"
)


def _issue_post(number: int, blog: str, category: str, n: int, **extra: str) -> IssuePost:
    return IssuePost(
        id=f"{blog}-{number:04x}{n:04x}",
        title=f"{blog} post {n} of issue {number}",
        url=f"https://{blog}.example/{number}/{n}.html",
        blog=blog,
        category=category,
        date=datetime(2026, 11, 20, tzinfo=UTC) + timedelta(weeks=number),
        excerpt=f"What {blog} wrote in post {n}.",
        **extra,
    )


def freeze(web: Web, number: int, *, quiet: bool = False, intro: str = "") -> Issue:
    since = datetime(2026, 11, 23, tzinfo=UTC) + timedelta(weeks=number)
    posts = (
        []
        if quiet
        else [
            _issue_post(number, "sander-dieleman", "ml", 1, note="Read this one *slowly*."),
            _issue_post(number, "sander-dieleman", "ml", 2, author="Guest <author>"),
            _issue_post(number, "lilianweng", "ml", 1),
            _issue_post(number, "xxiivv", "permacomputing", 1),
        ]
    )
    pick = _issue_post(number, "chris-olah", "ml", 9) if quiet else None
    issue = Issue(
        number=number,
        subject=f"Blogs I like #{number}",
        intro=intro,
        since=since,
        until=since + timedelta(weeks=1),
        posts=posts,
        archive_pick=pick,
    )
    with transaction(web.conn):
        freeze_issue(web.conn, issue, html=SENT_HTML, text="text", status="sending", now=since)
        set_issue_status(web.conn, number, "sent", sent_at=since + timedelta(hours=1))
    return issue


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **want: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in want.items())
        ]

    def classes(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.tags if name in a.get("class", "").split()]

    def links(self) -> list[str]:
        return [a["href"] for t, a in self.tags if t in ("a", "link") and "href" in a]


@pytest.fixture
def web_limits() -> Limits:
    """Override in a test module to change the abuse limits; no timing floor by default."""
    return Limits(subscribe_floor=0.0)


@pytest.fixture
def web(tmp_path: Path, blogs_yaml: Path, web_limits: Limits, db_path: Path) -> Iterator[Web]:
    harness = Web(tmp_path, blogs_yaml, web_limits, db=db_path)
    with harness.client:
        yield harness
    harness.close()


@contextmanager
def digest_serve(
    env: dict[str, str], cwd: Path, port: int, *extra: str, program: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """`digest serve` in a subprocess on localhost:`port`, yielded once /healthz answers.
    ``program``: the command to run (default: this interpreter's ``-m digest``)."""
    process = subprocess.Popen(
        [*(program or (sys.executable, "-m", "digest")), "serve", "--host", "127.0.0.1"]
        + ["--port", str(port), *extra],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                err = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"digest serve did not start: {err}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(20)
        if process.stderr:
            process.stderr.close()


@pytest.fixture
def served(newsroom: Newsroom) -> Iterator[str]:
    """`digest serve` in a subprocess on a free localhost port, with one issue archived."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    newsroom.env["DIGEST_BASE_URL"] = base
    newsroom.subscribe("reader@example.org", name="Reader")
    newsroom.add_posts()
    newsroom.draft()
    send_issue(newsroom.settings(), newsroom.blogs, newsroom.conn, now=newsroom.now)
    with digest_serve(newsroom.subprocess_env(), newsroom.root, port):
        yield base


def mail_to(outbox: Path, address: str, timeout: float = 10.0) -> EmailMessage:
    """The first mail to ``address`` that lands in the Maildir ``outbox``, within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if outbox.exists():
            box = mailbox.Maildir(outbox, factory=None, create=False)
            for key in box.keys():
                message = email.message_from_bytes(box.get_bytes(key), policy=default)
                if isinstance(message, EmailMessage) and message["To"] == address:
                    return message
        time.sleep(0.1)
    raise AssertionError(f"no mail to {address} in {outbox}")
