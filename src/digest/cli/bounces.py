"""`digest bounces`: read delivery reports and complaints from a Maildir or an IMAP folder."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli import App, main, pass_app
from digest.feedback.inbox import Folder, Imap, Maildir, Summary, collect
from digest.store.db import utcnow

KINDS = ("hard", "soft", "policy", "complaint")


@main.command()
@click.option(
    "--maildir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The Maildir the bounce address is delivered to; read messages move from new/ to cur/.",
)
@click.option(
    "--imap",
    "imap_url",
    metavar="URL",
    help="imaps://user@host/folder (password: DIGEST_BOUNCES_IMAP_PASSWORD); read ones are \\Seen.",
)
@click.option("--dry-run", is_flag=True, help="Classify and print; change nothing.")
@pass_app
def bounces(app: App, maildir: Path | None, imap_url: str | None, dry_run: bool) -> None:
    """Apply the bounces (RFC 3464 DSNs) and complaints (RFC 5965 ARF) in a mail folder.

    Hard bounces and complaints suppress the reader; soft bounces on three different issues do;
    policy refusals (a blocklisting, DMARC) are listed for you and never suppress anyone.
    Messages that are no report are left unread and listed."""
    if (maildir is None) == (imap_url is None):
        raise click.UsageError("give exactly one of --maildir PATH and --imap URL")
    settings = app.settings
    folder: Folder
    if maildir is not None:
        folder = Maildir(maildir)
    else:
        assert imap_url is not None
        password = settings.bounces_imap_password
        folder = Imap(imap_url, password.get_secret_value() if password else None)
    try:
        summary = collect(
            app.db,
            folder,
            bounce_address=settings.bounce_address,
            id_domain=app.blogs.newsletter.from_address.rpartition("@")[2],
            now=utcnow(),
            dry_run=dry_run,
        )
    finally:
        folder.close()
    _print(app, summary, dry_run=dry_run)


def _print(app: App, summary: Summary, *, dry_run: bool) -> None:
    out = app.console
    verb = "would apply" if dry_run else "applied"
    counts = ", ".join(f"{summary.kinds[k]} {k}" for k in KINDS)
    out.print(f"{summary.reports} reports read, {verb}: {counts}")
    if summary.nothing_to_do:
        out.print(f"{summary.nothing_to_do} with nothing to act on (delays, warnings)")
    for outcome, n in sorted(summary.outcomes.items()):
        out.print(f"  {n} {outcome}")
    if summary.policy:
        out.print("refused for policy reasons (the sender's problem, nobody was suppressed):")
        for line in summary.policy:
            out.print(f"  {line}", markup=False)
    if summary.unreadable:
        out.print(f"{len(summary.unreadable)} messages are no report and were left unread:")
        for key, why in summary.unreadable:
            out.print(f"  {key}: {why}", markup=False)
