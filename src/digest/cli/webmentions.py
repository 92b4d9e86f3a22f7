"""`digest webmentions`: tell the featured posts that an issue mentions them, and list how."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Column, Table

from digest.cli import App, main, pass_app
from digest.store import utcnow
from digest.store import webmentions as store
from digest.store.db import ts
from digest.store.webmentions import Mention
from digest.webmention import send_webmentions, tally

TURN_ON = (
    "webmentions are off: add `webmentions: true` under `newsletter:` in blogs.yaml to tell "
    "each featured post, once its issue is sent, that the archive page mentions it"
)


@main.command()
@click.option("--issue", type=int, metavar="N", help="Only this issue (an older one too).")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@pass_app
def webmentions(app: App, issue: int | None, as_json: bool) -> None:
    """Send the webmentions that are due (posts of issues sent since they were turned on, and
    retries of 429s and 5xx), then list each post's outcome."""
    if not app.blogs.newsletter.webmentions:
        if as_json:
            click.echo(json.dumps({"enabled": False, "hint": TURN_ON, "mentions": []}))
        else:
            app.console.print(TURN_ON)
        return
    told = send_webmentions(app.settings, app.blogs, app.db, now=utcnow(), issue=issue)
    shown = told
    if not told:
        latest = issue if issue is not None else store.latest_issue(app.db)
        shown = store.mentions(app.db, [] if latest is None else [latest])
    if as_json:
        rows = [_json(m) for m in shown]
        click.echo(json.dumps({"enabled": True, "sent_now": len(told), "mentions": rows}))
        return
    app.console.print(tally(told) + " (sent now)" if told else "no webmention was due")
    if shown:
        app.console.print(_table(shown))


def _json(mention: Mention) -> dict[str, object]:
    return {
        "issue": mention.issue,
        "target": mention.target,
        "source": mention.source,
        "endpoint": mention.endpoint,
        "status": mention.status,
        "http_status": mention.http_status,
        "detail": mention.detail,
        "attempts": mention.attempts,
        "updated_at": ts(mention.updated_at),
    }


def _table(shown: list[Mention]) -> Table:
    table = Table(
        "issue",
        Column("post", overflow="fold"),
        Column("status", no_wrap=True),
        Column("endpoint", overflow="fold"),
        Column("detail", overflow="fold"),
        "tries",
    )
    for m in shown:
        table.add_row(
            str(m.issue),
            escape(m.target),
            m.status,
            escape(m.endpoint or ""),
            escape(m.detail or ""),
            str(m.attempts),
        )
    return table
