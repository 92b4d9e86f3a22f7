"""`digest subscribers ...`: add, remove, list, import and export subscribers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Column, Table

from digest import subscribers as service
from digest.cli import App, main, pass_app
from digest.errors import DeliveryError, DigestError
from digest.store import subscribers as store
from digest.store.db import utcnow

STATUSES = ("pending", "confirmed", "unsubscribed", "bounced")


@main.group()
def subscribers() -> None:
    """Add, remove, list, import and export subscribers."""


def _send(app: App, mail: service.Mail) -> None:
    from digest.send.transport import describe_target

    try:
        service.send(app.settings, app.blogs, mail)
    except DeliveryError as exc:
        raise DeliveryError(
            f"{mail.to} is pending, but the confirmation mail was not sent: {exc.message}",
            recipient=mail.to,
            hint="fix the SMTP settings and run the same `digest subscribers add` again",
        ) from None
    app.console.print(f"confirmation mail sent to {mail.to} via {describe_target(app.settings)}")


@subscribers.command()
@click.argument("email")
@click.option("--name", help="How to greet them (no line breaks or control characters).")
@click.option("--categories", metavar="A,B", help="Category ids to receive (default: all).")
@click.option(
    "--cadence",
    type=click.Choice(service.CADENCES),
    default="weekly",
    show_default=True,
    help="Every weekly issue, or only the monthly edition (the month's best).",
)
@click.option(
    "--confirmed",
    is_flag=True,
    help="They already agreed (you hold their consent): no confirmation mail.",
)
@click.option("--force", is_flag=True, help="Re-add an address on the suppression list (logged).")
@pass_app
def add(
    app: App,
    email: str,
    name: str | None,
    categories: str | None,
    cadence: str,
    confirmed: bool,
    force: bool,
) -> None:
    """Add EMAIL. Without --confirmed it is pending and gets a confirmation mail."""
    added = service.add(
        app.db,
        app.settings,
        app.blogs,
        email=email,
        name=name,
        categories=service.parse_categories(categories),
        cadence=cadence,
        confirmed=confirmed,
        force=force,
        now=utcnow(),
    )
    sub = added.subscriber
    app.console.print(f"{sub.email}: {'confirmed' if added.mail is None else 'pending'}")
    if added.mail is not None:
        _send(app, added.mail)


@subscribers.command()
@click.argument("email")
@pass_app
def remove(app: App, email: str) -> None:
    """Unsubscribe EMAIL and put it on the suppression list (the consent record stays)."""
    sub = service.remove(app.db, email, now=utcnow())
    app.console.print(f"{sub.email}: unsubscribed and suppressed")


@subscribers.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only subscribers in this state.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@pass_app
def list_(app: App, status: str | None, as_json: bool) -> None:
    """Subscribers with their status, categories, cadence and consent times."""
    rows = store.export_rows(app.db, status=status)
    if as_json:
        for row in rows:
            click.echo(json.dumps(dict(zip(store.EXPORT_COLUMNS, row, strict=True))))
        return
    email_column = Column("email", overflow="fold")  # never cut an address short
    table = Table(
        email_column,
        "name",
        Column("status", no_wrap=True, min_width=7),
        Column("categories", overflow="fold"),
        "cadence",
        "source",
        Column("requested", overflow="fold"),  # a cut date ("2026-11-2…") says nothing
        Column("confirmed", overflow="fold"),
    )
    count = 0
    for row in rows:
        item = dict(zip(store.EXPORT_COLUMNS, row, strict=True))
        table.add_row(
            escape(str(item["email"])),
            escape(item["name"] or ""),
            item["status"],
            item["categories"] or "all",
            item["cadence"],
            item["source"],
            _minute(item["requested_at"]),
            _minute(item["confirmed_at"]),
        )
        count += 1
    app.console.print(table)
    counts = store.counts_by_status(app.db)
    app.console.print(f"{count} shown; " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES))


def _minute(stamp: str | None) -> str:
    """'2026-11-29T12:08:16Z' -> '2026-11-29 12:08' (UTC): the table's width is scarce; the
    exact times are in `--json` and `export`."""
    return stamp[:16].replace("T", " ") if stamp else ""


@subscribers.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--dry-run", is_flag=True, help="Check the file and show the summary; change nothing."
)
@click.option(
    "--confirmed",
    is_flag=True,
    help="The file's people already agreed: import them confirmed, without mails.",
)
@pass_app
def import_(app: App, file: Path, dry_run: bool, confirmed: bool) -> None:
    """Import FILE.csv (header row with `email`; `name`, `categories`, `cadence` optional).
    All or nothing: one invalid row rejects the file. Existing and suppressed addresses are
    skipped."""
    report = service.import_csv(
        app.db, app.settings, app.blogs, file, now=utcnow(), dry_run=dry_run, confirmed=confirmed
    )
    verb = "would add" if dry_run else "added"
    state = "confirmed" if confirmed else "pending, with a confirmation mail each"
    app.console.print(
        f"{file}: {report.rows} rows; {verb} {report.added} ({state}); skipped "
        f"{report.existing} existing, {report.suppressed} suppressed, "
        f"{report.duplicates} duplicates; {report.left} unsubscribed in the file suppressed"
    )
    if report.invalid:
        app.console.print(f"[red]{len(report.invalid)} invalid row(s):[/red]")
        for line, problem in report.invalid:
            app.console.print(f"  line {line}: {problem}", markup=False)
        raise DigestError(
            f"{file}: {len(report.invalid)} invalid row(s): nothing would be imported",
            hint="fix or delete those rows, then import again",
        )
    failed = 0
    for mail in report.mails:
        try:
            service.send(app.settings, app.blogs, mail)
        except DeliveryError as exc:  # one bad recipient never stops the others
            failed += 1
            app.console.print(f"[red]not sent[/red] {escape(mail.to)}: {escape(exc.message)}")
    if report.mails:
        app.console.print(
            f"{len(report.mails) - failed} confirmation mail(s) sent, {failed} failed"
        )


@subscribers.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file instead of standard output.",
)
@pass_app
def export(app: App, output: Path | None) -> None:
    """Every subscriber as CSV, consent record included (request and confirmation time, IP,
    user agent, source, the consent text). Tokens are not exported."""
    if output is None:
        service.export_csv(app.db, sys.stdout)
        return
    with output.open("w", encoding="utf-8", newline="") as handle:
        count = service.export_csv(app.db, handle)
    click.echo(f"{count} subscriber(s) written to {output}", err=True)
