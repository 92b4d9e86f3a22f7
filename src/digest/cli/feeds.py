"""`digest feeds ...`: check, list, discover, import-opml, export-opml."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from digest.cli import App, main, pass_app
from digest.errors import ConfigError
from digest.feeds.discover import discover_sync
from digest.feeds.gather import FeedResult, GatherReport, gather_sync
from digest.feeds.opml import export_opml, import_opml, read_opml
from digest.store.db import utcnow
from digest.store.feeds import feed_states
from digest.store.inbound import InboundMail, problems_since

_STYLE = {
    "ok": "green",
    "not_modified": "green",
    "skipped": "dim",
    "error": "red",
    "gone": "red",
    "email": "cyan",
}


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


@main.group()
def feeds() -> None:
    """Fetch, inspect and exchange the blogs' feeds."""


@feeds.command()
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.argument("blog_ids", nargs=-1, metavar="[BLOG]...")
@pass_app
def check(app: App, as_json: bool, blog_ids: tuple[str, ...]) -> None:
    """Fetch every feed now (or only the BLOG ids given) and show how each one did.

    Exits 0 when the run completed, whatever single feeds did: their failures are in the table.
    """
    blogs = app.blogs
    unknown = [b for b in blog_ids if blogs.blog(b) is None]
    if unknown:
        raise ConfigError(
            f"no blog with id {', '.join(unknown)} in {app.settings.blogs}",
            hint="see `digest feeds list` for the ids",
        )
    report = gather_sync(
        app.settings, blogs, app.db, now=utcnow(), force=True, only=set(blog_ids) or None
    )
    # Mail for the blogs that publish by email, from DIGEST_INBOX or `digest inbound`.
    since = utcnow() - timedelta(days=app.blogs.newsletter.lookback_days)
    mail = problems_since(app.db, since)
    if as_json:
        out = _report_json(report) | {
            "mail": [_mail_json(m) for m in mail],
            "inbox_unread": report.inbox.unreadable,
        }
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    _print_report(app, report)
    for note in mail:
        _print_mail(app, note)
    for unread in report.inbox.unreadable:
        app.console.print(f"[red]DIGEST_INBOX[/]: left unread: {unread}")


def _report_json(report: GatherReport) -> dict[str, object]:
    return {
        "feeds": [r.to_json() for r in report.results],
        "duplicates": [
            {"post": d.post_id, "blog": d.blog, "url": d.url, "duplicate_of": d.duplicate_of}
            for d in report.duplicates
        ],
        "new_posts": report.new_posts,
        "failed": len(report.failed),
    }


def _print_report(app: App, report: GatherReport) -> None:
    table = Table(title="Feeds")
    for name in ("blog", "status", "HTTP", "new", "newest post", "failures", "next poll"):
        # fold, never "hundred-rab…": the blog id is what the curator types next
        table.add_column(
            name,
            justify="right" if name in ("HTTP", "new", "failures") else "left",
            overflow="fold" if name == "blog" else "ellipsis",
            no_wrap=name == "status",
        )
    for r in report.results:
        table.add_row(
            r.blog,
            f"[{_STYLE.get(r.status, '')}]{r.status}[/]",
            str(r.http_status or "-"),
            str(r.new_posts),
            _when(r.newest),
            str(r.failures),
            "-" if r.status == "email" else _when(r.next_poll) if r.status != "gone" else "never",
        )
    app.console.print(table)
    for r in report.results:
        _print_problem(app, r)
    for d in report.duplicates:
        app.console.print(
            f"duplicate: {d.post_id} ({d.url}) was already seen as {d.duplicate_of}", markup=False
        )
    app.console.print(f"{report.new_posts} new post(s), {len(report.failed)} feed(s) failing")


def _mail_json(mail: InboundMail) -> dict[str, object]:
    return {
        "blog": mail.blog,
        "status": mail.status,
        "sender": mail.sender,
        "subject": mail.subject,
        "received": mail.received_at.isoformat().replace("+00:00", "Z"),
        "reason": mail.reason,
        "confirm_url": mail.confirm_url,
    }


def _print_mail(app: App, mail: InboundMail) -> None:
    # Subject, sender and link are whatever a stranger mailed: escaped, never read as markup.
    who = mail.blog or "DIGEST_INBOX"
    what = escape(f"{mail.subject!r} from {mail.sender or 'no sender'}")
    if mail.status == "confirmation":
        unverified = escape(f" (unverified: {mail.reason})") if mail.reason else ""
        app.console.print(
            f"[cyan]{who}[/]: {what} asks to confirm the subscription{unverified}: "
            f"{escape(mail.confirm_url or '')}",
            soft_wrap=True,  # the link whole, so a terminal can open it
        )
    else:
        app.console.print(f"[yellow]{who}[/]: quarantined {what}: {escape(mail.reason or '')}")


def _print_problem(app: App, r: FeedResult) -> None:
    if r.status == "gone":
        app.console.print(
            f"[red]{r.blog}[/]: {escape(r.error or '')}. Polling stopped: fix or remove its "
            "feed in blogs.yaml."
        )
    elif r.error and r.status != "skipped":
        app.console.print(f"[red]{r.blog}[/]: {escape(r.error)}")
    elif r.warning:
        app.console.print(f"[yellow]{r.blog}[/]: parsed with a warning: {escape(r.warning)}")


@feeds.command("list")
@pass_app
def list_(app: App) -> None:
    """List the blogs, the feed each is fetched from and how it is doing."""
    states = feed_states(app.db)
    table = Table()
    for name in ("blog", "category", "feed", "status", "failures", "last success"):
        table.add_column(name, overflow="fold")  # ids and URLs whole, even at 80 columns
    for blog in app.blogs.blogs():
        state = None if blog.email else states.get(blog.id)
        url = (state.url if state else None) or blog.feed or f"(discover on {blog.homepage})"
        if blog.email:
            url = "email from " + ", ".join(blog.email.from_)
        table.add_row(
            blog.id,
            blog.category,
            escape(url),
            "email" if blog.email else state.status if state else "new",
            str(state.failures) if state else "0",
            _when(state.last_success if state else None),
        )
    app.console.print(table)


@feeds.command("discover")
@click.argument("url")
@pass_app
def discover_cmd(app: App, url: str) -> None:
    """Find the feed of a site from its URL (a feed URL is kept as it is)."""
    found = discover_sync(app.settings, url)
    click.echo(found.url)
    how = {"given": "the URL is a feed", "link": "linked from the page", "probe": "probed"}
    title = f" ({found.title})" if found.title else ""
    click.echo(f"{how[found.how]}{title}", err=True)


@feeds.command("import-opml")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--category", help="Put every imported blog into this category id.")
@pass_app
def import_opml_cmd(app: App, file: Path, category: str | None) -> None:
    """Add the feeds of an OPML file (from any feed reader) to blogs.yaml."""
    app.blogs  # noqa: B018 - a broken blogs.yaml is reported before it is edited
    # The feeds found by discovery or followed after a permanent move live in the database:
    # an OPML exported by digest lists those URLs, and importing it back must add nothing.
    fetched = {blog: state.url for blog, state in feed_states(app.db).items() if state.url}
    result = import_opml(
        app.settings.blogs,
        read_opml(file.read_bytes(), path=str(file)),
        category=category,
        fetched=fetched,
    )
    for blog_id, cat in result.added:
        click.echo(f"added {blog_id} to {cat}")
    for url, why in result.skipped:
        click.echo(f"skipped {url}: {why}")
    click.echo(f"{len(result.added)} added, {len(result.skipped)} skipped")


@feeds.command("export-opml")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout."
)
@pass_app
def export_opml_cmd(app: App, output: Path | None) -> None:
    """Write the blogs as OPML, for any feed reader."""
    text = export_opml(app.blogs, feed_states(app.db), now=utcnow())
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
