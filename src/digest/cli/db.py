"""`digest db copy`: move a database to another engine (SQLite to a shared PostgreSQL)."""

from __future__ import annotations

import click

from digest.cli import App, main, pass_app
from digest.errors import StoreError
from digest.store import connect
from digest.store.copy import copy_database
from digest.store.db import database_file
from digest.store.postgres import is_url, shown


@main.group()
def db() -> None:
    """The database: SQLite by default, PostgreSQL when several machines share it."""


@db.command("copy")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL|PATH",
    help="The empty database to copy into: postgresql://user:password@host/db (or a file).",
)
@pass_app
def copy(app: App, target: str) -> None:
    """Copy every row of DIGEST_DB (or --db) into an empty database, then compare the counts.

    Subscribers keep their tokens (every link already mailed still works), and the delivery
    ledger keeps its Message-IDs and states: a send interrupted before the copy resumes
    afterwards without a second copy to anyone. Stop digest (scheduler, web app, senders)
    first, then point DIGEST_DB at the new database.
    """
    if target == app.settings.db:
        raise StoreError(f"{target}: the source and the target are the same database")
    if not is_url(target) and not target.endswith((".db", ".sqlite", ".sqlite3")):
        raise StoreError(
            f"{target}: not a postgresql:// URL or a SQLite file name",
            hint="for example --to postgresql://digest:secret@db.example.org/digest",
        )
    source = app.db
    into = connect(target)
    try:
        copied = copy_database(source, into)
    finally:
        into.close()
    for table, rows in copied.items():
        app.console.print(f"  {table:<16} {rows:>9,} rows")
    app.console.print(
        f"copied {sum(copied.values()):,} rows from {database_file(source)} to "
        f"{shown(target) if is_url(target) else target}; counts verified"
    )
    app.console.print(f"next: set DIGEST_DB={shown(target) if is_url(target) else target}")
