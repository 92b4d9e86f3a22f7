"""The `digest` command. Commands only parse arguments and print; the library does the work.

Every DigestError is caught here, once, and shown as `error: ...` plus a hint: no tracebacks for
mistakes a user can fix.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console

from digest import __version__
from digest.config import BlogsFile, Settings, load_blogs, load_settings
from digest.errors import DigestError
from digest.files import WRITE_ERRNOS, write_hint
from digest.send.stop import Stopped, handle_stops
from digest.store import connect
from digest.store.db import Connection, DbError, store_error


class App:
    """What every command needs, loaded on first use (so `--help` never touches the disk)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.console = Console(highlight=False)
        self._blogs: BlogsFile | None = None
        self._db: Connection | None = None

    @property
    def blogs(self) -> BlogsFile:
        if self._blogs is None:
            self._blogs = load_blogs(self.settings.blogs)
        return self._blogs

    @property
    def db(self) -> Connection:
        if self._db is None:
            self._db = connect(self.settings.db)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class CliError(click.ClickException):
    def __init__(self, error: DigestError) -> None:
        super().__init__(error.message)
        self.hint = error.hint

    def show(self, file: IO[Any] | None = None) -> None:
        click.secho(f"error: {self.message}", err=True, fg="red")
        if self.hint:
            click.echo(f"hint: {self.hint}", err=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        # SIGTERM, SIGINT and SIGHUP stop any command cleanly; a send finishes what is in
        # flight first (digest.send.stop).
        try:
            with handle_stops():
                return super().invoke(ctx)
        except DigestError as exc:
            raise CliError(exc) from None
        except DbError as exc:  # a write outside `transaction`, which converts its own
            app = ctx.find_object(App)
            error = store_error(exc, app.settings.db if app else "the database")
            if error is None:
                raise  # not the user's doing: a bug, worth its traceback
            raise CliError(error) from None
        except OSError as exc:  # a file digest writes: an export, the lock, a folder
            if exc.filename is None or exc.errno not in WRITE_ERRNOS:
                raise
            raise CliError(
                DigestError(f"{exc.filename}: {exc.strerror}", hint=write_hint(exc))
            ) from None
        except Stopped as stop:
            click.echo(stop.line, err=True)
            sys.stdout.flush()
            stop.exit_by_signal()
            raise  # not reached


pass_app = click.make_pass_decorator(App)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digest")
@click.option(
    "--blogs",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The curator's list (default: $DIGEST_BLOGS or blogs.yaml).",
)
@click.option(
    "--db",
    metavar="PATH|URL",
    help="The SQLite file or postgresql:// URL (default: $DIGEST_DB or subscribers/digest.db).",
)
@click.pass_context
def main(ctx: click.Context, blogs: Path | None, db: str | None) -> None:
    """digest: a weekly email digest of personal blogs."""
    try:
        settings = load_settings(blogs=blogs, db=db)
    except DigestError as exc:
        raise CliError(exc) from None
    app = App(settings)
    ctx.obj = app
    ctx.call_on_close(app.close)


from digest.cli import bounces as _bounces  # noqa: E402,F401  (registers `digest bounces`)
from digest.cli import db as _db  # noqa: E402,F401  (registers `digest db copy`)
from digest.cli import drafts as _drafts  # noqa: E402,F401  (`digest draft`, `digest preview`)
from digest.cli import feeds as _feeds  # noqa: E402,F401  (registers `digest feeds`)
from digest.cli import inbound as _inbound  # noqa: E402,F401  (registers `digest inbound`)
from digest.cli import send as _send  # noqa: E402,F401  (registers `digest send`)
from digest.cli import serve as _serve  # noqa: E402,F401  (registers `digest serve`)
from digest.cli import stats as _stats  # noqa: E402,F401  (registers `digest stats`)
from digest.cli import subscribers as _subscribers  # noqa: E402,F401  (`digest subscribers`)
from digest.cli import webmentions as _webmentions  # noqa: E402,F401  (`digest webmentions`)
from digest.cli import weekly as _weekly  # noqa: E402,F401  (`digest run`, `hold`, `release`, `status`)
