"""`digest send`."""

from __future__ import annotations

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from digest.cli import App, main, pass_app
from digest.issue.draft import current_draft, load_issue
from digest.send.deliver import SendSummary, send_issue, sending_issue
from digest.send.transport import describe_target
from digest.store import deliveries, issues, utcnow
from digest.store import subscribers as subscribers_store


def _plan(app: App) -> str:
    """What `digest send` is about to do, for the confirmation prompt."""
    conn = app.db
    target = describe_target(app.settings)
    number = sending_issue(conn)
    if number is not None:
        found = deliveries.counts(conn, number)
        left = found["queued"] + found["sending"] + found["deferred"]
        archived = issues.get_issue(conn, number)
        subject = archived.subject if archived else ""
        return (
            f"Resume issue {number} ({subject!r}): {left} of {sum(found.values())} deliveries "
            f"left\nTarget: {target}"
        )
    if current_draft(app.settings, conn) is None and deliveries.pending_issues(conn):
        return f"Retry the deferred deliveries of earlier issues\nTarget: {target}"
    issue = load_issue(app.settings, app.blogs, conn)
    audience = subscribers_store.counts_by_status(conn).get("confirmed", 0)
    return (
        f"Issue {issue.number}: {issue.subject!r}, {len(issue.posts)} posts\n"
        f"Audience: {audience} confirmed subscribers\nTarget: {target}"
    )


def show_summary(app: App, summary: SendSummary) -> None:
    what = "Dry run of issue" if summary.dry_run else "Issue"
    state = "complete" if summary.finished else "incomplete: run `digest send` again to resume"
    app.console.print(
        f"{what} {summary.issue}: {summary.line()} "
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
@pass_app
def send(app: App, yes: bool, dry_run: bool) -> None:
    """Send the current draft as the next issue, or resume an interrupted send."""
    app.console.print(_plan(app))
    if not yes and not dry_run and not click.confirm("Send now?", default=False):
        raise click.Abort()
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
            app.settings, app.blogs, app.db, now=utcnow(), dry_run=dry_run, progress=progress
        )
    show_summary(app, summary)
