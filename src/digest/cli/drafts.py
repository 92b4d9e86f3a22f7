"""`digest draft` and `digest preview`: the curator's side of an issue."""

from __future__ import annotations

import webbrowser
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from digest.cli import App, main, pass_app
from digest.errors import DeliveryError, RenderError
from digest.files import write_hint
from digest.store.db import utcnow

if TYPE_CHECKING:
    from digest.issue.draft import DraftSummary
    from digest.models import Issue

# The heavy parts (premailer, httpx, the SMTP client) are imported inside the commands: every
# other `digest` command starts without paying for them.

# The sample subscriber of preview.eml: a token of the real length (43 characters) keeps the
# List-Unsubscribe header as long as the real ones (REFERENCE.md section 3).
SAMPLE_EMAIL = "reader@example.org"
SAMPLE_NAME = "Sample Reader"
SAMPLE_TOKEN = "preview" + "0" * 36


def _month(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from digest.issue.monthly import parse_month

    try:
        return parse_month(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.option("--no-fetch", is_flag=True, help="Do not fetch the feeds first: use what is stored.")
@click.option("--force", is_flag=True, help="Fetch every feed, even those not due yet.")
@click.option(
    "--monthly",
    is_flag=True,
    help="Draft the monthly edition instead, from the weekly issues sent in the month "
    "(no fetching): drafts/monthly-YYYY-MM.yaml.",
)
@click.option(
    "--month",
    metavar="YYYY-MM",
    callback=_month,
    help="With --monthly: the month it covers (default: the month before this one).",
)
@pass_app
def draft(app: App, no_fetch: bool, force: bool, monthly: bool, month: str | None) -> None:
    """Fetch the feeds and create or refresh the draft of the next issue.

    The draft is a YAML file (drafts/<number>.yaml) to edit by hand: subject, intro, the order of
    the posts, a note on each, which to include, the archive pick. Running this again adds the
    posts found since, keeping every edit.
    """
    from digest.feeds.gather import gather_sync
    from digest.issue.draft import refresh_draft

    now = utcnow()
    if month is not None and not monthly:
        raise click.UsageError("--month goes with --monthly: `digest draft --monthly --month "
                               f"{month}`")  # fmt: skip
    if monthly:
        _draft_monthly(app, month, now=now)
        return
    if not no_fetch:
        report = gather_sync(app.settings, app.blogs, app.db, now=now, force=force)
        line = report.summary()
        app.console.print(line[0].upper() + line[1:], highlight=False, markup=False)
        if report.failed:
            app.console.print("  `digest feeds check` fetches them again and says why they fail")
        if report.skipped:
            app.console.print("  `digest draft --force` fetches every feed now")
    summary = refresh_draft(app.settings, app.blogs, app.db, now=now)
    _print_summary(app, summary)


def _draft_monthly(app: App, month: str | None, *, now: datetime) -> None:
    from digest.issue.monthly import previous_month, refresh_monthly

    month = month or previous_month(now, app.blogs.newsletter.schedule.tz)
    summary = refresh_monthly(app.settings, app.blogs, app.db, month=month)
    console = app.console
    if summary.path is None:
        console.print(summary.reason[0].upper() + summary.reason[1:], highlight=False, markup=False)
        return
    verb = "Created" if summary.created else "Refreshed"
    console.print(f"{verb} [bold]{escape(str(summary.path))}[/]", highlight=False)
    console.print(
        f"From weekly issue(s) {', '.join(map(str, summary.weekly))}: {summary.included} of "
        f"{summary.entries} post(s) included; {summary.added} added by this run",
        highlight=False,
    )
    if summary.top_posts is not None:
        console.print("The last issue's most-clicked posts (for you only):")
        for line in summary.top_posts or ["no clicks counted yet"]:
            console.print(f"  - {line}", highlight=False, markup=False)
    console.print("Edit the draft, then run `digest preview --monthly`.")


def _print_summary(app: App, summary: DraftSummary) -> None:
    from digest.render.view import date_range

    console = app.console
    blogs = app.blogs
    zone = blogs.newsletter.schedule.tz
    verb = "Created" if summary.created else "Refreshed"
    console.print(f"{verb} [bold]{escape(str(summary.path))}[/]")
    window = date_range(summary.since, summary.until, zone)
    console.print(f"Issue {summary.number}, posts first seen {window} ({zone.key})")
    if summary.skipped_weeks:
        console.print(f"{summary.skipped_weeks} quiet week(s) roll into this issue")
    table = Table(show_header=True, box=None, pad_edge=False)
    table.add_column("category")
    table.add_column("included", justify="right")
    for cat in blogs.categories:
        table.add_row(escape(cat.title), str(summary.per_category.get(cat.id, 0)))
    console.print(table)
    console.print(
        f"{summary.included} of {summary.entries} post(s) included; "
        f"{len(summary.added)} added by this run"
    )
    for post in summary.added[:8]:
        blog = blogs.blog(post.blog)
        name = escape(blog.name if blog else post.blog)
        console.print(f"  + {escape(post.title)} [dim]({name})[/]")
    if len(summary.added) > 8:
        console.print(f"  ... and {len(summary.added) - 8} more")
    pick = summary.archive_pick
    console.print(
        f"From the archive: {pick.title} [dim]({pick.url})[/]" if pick else "No archive pick"
    )
    if summary.health:
        console.print("[yellow]Feed health[/] (for you only, never in the email):")
        for note in summary.health:
            console.print(f"  - {note.text}", markup=False)
    console.print("Edit the draft, then run `digest preview`.")


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("preview"),
    show_default=True,
    help="Folder for preview.html, preview.txt and preview.eml.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML in the web browser.")
@click.option("--text", "show_text", is_flag=True, help="Print the text part.")
@click.option("--to", "to", metavar="ADDRESS", help="Send one test copy to ADDRESS.")
@click.option("--check", is_flag=True, help="Lint the issue; exit 1 listing every problem.")
@click.option("--monthly", is_flag=True, help="Preview the monthly edition's draft instead.")
@pass_app
def preview(
    app: App,
    out: Path,
    open_browser: bool,
    show_text: bool,
    to: str | None,
    check: bool,
    monthly: bool,
) -> None:
    """Render the current draft exactly as a subscriber gets it."""
    from digest.issue.draft import load_issue
    from digest.issue.monthly import load_monthly
    from digest.render import GMAIL_CLIP, HTML_BUDGET, encoded_size, render_issue
    from digest.render.caniemail import check as email_clients
    from digest.render.lint import base_url_problems, lint, markdown_problems
    from digest.send.message import MessageTemplate, message_id
    from digest.send.transport import deliver_one

    settings, blogs = app.settings, app.blogs
    issue = (load_monthly if monthly else load_issue)(settings, blogs, app.db)
    rendered = render_issue(issue, blogs, base_url=settings.base_url, templates=settings.templates)
    base = settings.base_url
    unsubscribe_url = f"{base}/unsubscribe/{SAMPLE_TOKEN}"
    html, text = rendered.fill(
        unsubscribe_url=unsubscribe_url,
        preferences_url=f"{base}/preferences/{SAMPLE_TOKEN}",
        web_url=f"{base}/archive/{issue.key}",
        name=SAMPLE_NAME,
    )
    template = MessageTemplate.build(
        rendered,
        newsletter=blogs.newsletter,
        settings=settings,
        issue_number=issue.number,
        archive_key=issue.key,
    )
    domain = blogs.newsletter.from_address.rpartition("@")[2]
    eml = template.message(
        to=SAMPLE_EMAIL, name=SAMPLE_NAME, token=SAMPLE_TOKEN, message_id=message_id(domain)
    )
    paths = {"html": out / "preview.html", "txt": out / "preview.txt", "eml": out / "preview.eml"}
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths["html"].write_text(html, encoding="utf-8")
        paths["txt"].write_text(text, encoding="utf-8")
        paths["eml"].write_bytes(eml)
    except OSError as exc:
        raise RenderError(
            f"{out}: cannot write the preview: {exc.strerror or exc}",
            hint=write_hint(exc, setting="--out"),
        ) from None

    console = app.console
    for path in paths.values():
        console.print(f"wrote {path}", markup=False)
    size = encoded_size(html)
    colour = "green" if size <= HTML_BUDGET else "red"
    console.print(
        f"HTML: [{colour}]{size / 1024:.1f} KB[/] encoded, of Gmail's {GMAIL_CLIP // 1024} KB "
        f"clipping limit (budget {HTML_BUDGET // 1024} KB)"
        + (
            f"; excerpts cut to {rendered.excerpt_limit} characters"
            if rendered.excerpt_limit is not None and rendered.excerpt_limit < 300
            else ""
        )
        + (f"; {rendered.posts - rendered.shown} posts collapsed" if rendered.per_blog else "")
    )
    console.print(f"Words: {len(text.split())}")
    _print_categories(app, issue)

    if show_text:
        click.echo(text)
    if open_browser:
        webbrowser.open(paths["html"].resolve().as_uri())
    if to:
        address = to.strip()
        if "@" not in address or any(c.isspace() for c in address):
            raise DeliveryError(f"{to!r} is not an email address", recipient=to)
        message = template.message(
            to=address,
            name=None,
            token=SAMPLE_TOKEN,
            message_id=message_id(domain),
            subject_prefix="[Preview] ",
        )
        reply = deliver_one(
            settings, sender=blogs.newsletter.from_address, to=address, message=message
        )
        console.print(f"sent a test copy to {address}: {reply}", markup=False)
    if check:
        problems = lint(html, text, unsubscribe_url=unsubscribe_url)
        problems += markdown_problems(issue)
        problems += base_url_problems(settings.base_url, explicit=settings.base_url_set)
        clients, skipped = email_clients(html, Path.cwd())
        problems += clients
        if skipped:
            console.print(f"[yellow]{escape(skipped)}[/]", highlight=False)
        if problems:
            for problem in problems:
                click.secho(f"check failed: {problem}", err=True, fg="red")
            raise click.exceptions.Exit(1)
        console.print("[green]check passed[/]")


def _print_categories(app: App, issue: Issue) -> None:
    counts: dict[str, int] = {}
    for post in issue.posts:
        counts[post.category] = counts.get(post.category, 0) + 1
    parts = []
    for cat in app.blogs.categories:
        if counts.get(cat.id):
            parts.append(f"{cat.title} {counts[cat.id]}")
    pick = " + archive pick" if issue.archive_pick else ""
    console_line = ", ".join(parts) if parts else "no new posts"
    app.console.print(f"Posts: {console_line}{pick}", markup=False)
