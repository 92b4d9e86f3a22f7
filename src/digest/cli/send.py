"""`digest send`."""

from __future__ import annotations

import sys

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from digest.cli import App, main, pass_app
from digest.errors import DeliveryError, DraftError
from digest.issue.draft import current_draft, load_issue
from digest.send.deliver import SendSummary, send_issue, sending_issue
from digest.send.summary import edition_name
from digest.send.transport import describe_target
from digest.store import deliveries, issues, utcnow


def send_plan(app: App, *, month: str | None = None) -> str:
    """What `digest send` is about to do, for the confirmation prompt. ``month``: the monthly
    edition of that month is the draft to send."""
    try:
        return _plan(app, month)
    except DraftError:
        # Another sender on the same PostgreSQL froze the draft into an issue meanwhile: join it.
        if sending_issue(app.db) is None:
            raise
        return _plan(app, month)


def monthly_to_send(app: App) -> str:
    """The month of the monthly draft `--monthly` sends, or DraftError saying there is none."""
    from digest.issue.monthly import current_month

    month = current_month(app.settings, app.db)
    if month is None:
        raise DraftError(
            "no monthly draft to send",
            path=str(app.settings.drafts),
            hint="`digest draft --monthly` composes the last month's edition",
        )
    return month


def _monthly_plan(app: App, month: str, target: str) -> str:
    from digest.issue.monthly import load_monthly
    from digest.weekly import held_month

    issue = load_monthly(app.settings, app.blogs, app.db, month)
    held = (
        "\nHeld: yes (a hold stops only the scheduler, not `digest send`)"
        if held_month(app.db) == month
        else ""
    )
    audience = deliveries.confirmed_readers(app.db, "monthly")
    return (
        f"Monthly edition {month}: {issue.subject!r}, {len(issue.posts)} posts\n"
        f"Audience: {audience} confirmed monthly readers\nTarget: {target}{held}"
    )


def _plan(app: App, month: str | None = None) -> str:
    conn = app.db
    target = describe_target(app.settings)
    number = sending_issue(conn)
    if number is not None:
        found = deliveries.counts(conn, number)
        left = found["queued"] + found["sending"] + found["deferred"]
        archived = issues.get_issue(conn, number)
        subject = archived.subject if archived else ""
        name = edition_name(number, archived.month if archived else None)
        return (
            f"Resume {name} ({subject!r}): {left} of {sum(found.values())} deliveries "
            f"left\nTarget: {target}"
        )
    if month is not None:
        return _monthly_plan(app, month, target)
    if current_draft(app.settings, conn) is None and deliveries.pending_issues(conn):
        return f"Retry the deferred deliveries of earlier issues\nTarget: {target}"
    issue = load_issue(app.settings, app.blogs, conn)
    from digest.weekly import held_issue  # feeds and scheduling: only when asked

    audience = deliveries.confirmed_readers(conn, "weekly")
    held = (
        "\nHeld: yes (a hold stops only the scheduler, not `digest send`)"
        if held_issue(conn) == issue.number
        else ""
    )
    min_posts = app.blogs.newsletter.min_posts
    quiet = (
        f"\nNote: fewer posts than min_posts ({min_posts}); the scheduler would skip this week"
        if len(issue.posts) < min_posts
        else ""
    )
    return (
        f"Issue {issue.number}: {issue.subject!r}, {len(issue.posts)} posts\n"
        f"Audience: {audience} confirmed subscribers\nTarget: {target}{held}{quiet}"
    )


def confirm_send(app: App, *, yes: bool, force: bool, command: str) -> None:
    """Before anything goes out: refuse dead unsubscribe links (unless --force), then ask
    (unless --yes). Where nobody can answer (cron, a pipe), refuse rather than read EOF."""
    if not force:
        from digest.weekly import require_base_url

        require_base_url(app.settings)
    if yes:
        return
    if sys.stdin is None or not sys.stdin.isatty():
        raise DeliveryError(
            f"`digest {command}` asks before sending, and nobody can answer here "
            "(stdin is not a terminal); nothing was sent",
            hint=f"run `digest {command} --yes` to send without the question (cron, scripts)",
        )
    if not click.confirm("Send now?", default=False):
        raise click.Abort()


def show_summary(app: App, summary: SendSummary) -> None:
    if summary.dry_run:
        # Nothing left the machine: "sent" would be untrue.
        app.console.print(
            f"Dry run of {summary.edition}: {summary.sent_now} message(s) built in "
            f"{summary.seconds:.1f} s, nothing sent; the draft is kept",
            highlight=False,
        )
        return
    state = "complete" if summary.finished else "incomplete: run `digest send` again to resume"
    app.console.print(
        f"{summary.edition.capitalize()}: {summary.line()} "
        f"({summary.sent_now} sent in {summary.seconds:.1f} s, {state})"
    )
    if summary.deferred:
        app.console.print(
            f"{summary.deferred} deferred (temporary failures): the next `digest send` retries them"
        )


@main.command()
@click.option("--yes", "-y", is_flag=True, help="Send without asking for confirmation.")
@click.option(
    "--dry-run", is_flag=True, help="Build every message but send nothing (the draft is kept)."
)
@click.option(
    "--force",
    is_flag=True,
    help="Send through SMTP even while DIGEST_BASE_URL is unset (links to localhost).",
)
@click.option(
    "--join",
    is_flag=True,
    help="Only help send an issue already being sent (another machine froze it, on a shared "
    "PostgreSQL); with none, say so and exit. For worker machines, from a timer.",
)
@click.option(
    "--monthly",
    is_flag=True,
    help="Send the monthly edition's draft (drafts/monthly-YYYY-MM.yaml) to the monthly readers.",
)
@pass_app
def send(app: App, yes: bool, dry_run: bool, force: bool, join: bool, monthly: bool) -> None:
    """Send the current draft as the next issue, or resume an interrupted send."""
    if join and sending_issue(app.db) is None:
        app.console.print("Nothing to join: no issue is being sent")
        return
    month = monthly_to_send(app) if monthly and sending_issue(app.db) is None else None
    app.console.print(send_plan(app, month=month), markup=False)
    if not dry_run:
        confirm_send(app, yes=yes, force=force, command="send")
    with Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=app.console,
        transient=True,
    ) as bar:
        task = bar.add_task("send", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = send_issue(
            app.settings,
            app.blogs,
            app.db,
            now=utcnow(),
            dry_run=dry_run,
            progress=progress,
            join=join,
            month=month,
        )
    show_summary(app, summary)
    if summary.finished and not summary.dry_run:
        from digest.webmention import after_send  # never raises: the send's outcome stands

        line = after_send(app.settings, app.blogs, app.db, now=utcnow())
        if line is not None:
            app.console.print(line, markup=False)
