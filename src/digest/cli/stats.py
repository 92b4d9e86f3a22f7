"""`digest stats`: what the click counts say (newsletter.click_counts), per post and per blog."""

from __future__ import annotations

import json

import click
from rich import box
from rich.markup import escape
from rich.table import Table

from digest.cli import App, main, pass_app
from digest.clickstats import LAST, IssueClicks, issue_clicks

OFF = (
    "Click counts are off: links in the mail lead straight to the posts, and nothing is "
    "counted. To count clicks (per link, never per reader), set `click_counts: true` under "
    "`newsletter:` in blogs.yaml; issues sent after that are counted."
)


@main.command()
@click.argument("issue", type=int, required=False)
@click.option(
    "--last",
    "last",
    type=click.IntRange(1, 520),
    default=LAST,
    show_default=True,
    help="Issues in each blog's share of clicks.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@pass_app
def stats(app: App, issue: int | None, last: int, as_json: bool) -> None:
    """Clicks per post and per blog for ISSUE (default: the last sent), and each blog's share
    of the clicks over the last issues."""  # fmt: skip
    counting = app.blogs.newsletter.click_counts
    found = issue_clicks(app.db, app.blogs, issue, last=last) if counting or issue else None
    if as_json:
        if found is None:
            click.echo(json.dumps({"click_counts": counting, "issue": None}, indent=2))
        else:
            click.echo(json.dumps({"click_counts": counting, **found.as_json()}, indent=2))
        return
    if found is None:
        app.console.print(OFF if not counting else "No issue has been sent with click counts yet.")
        return
    if not counting:
        app.console.print(OFF)
    _show(app, found)


def _table(*headers: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(headers[0], justify="right")
    for header in headers[1:]:
        table.add_column(header)
    return table


def _show(app: App, found: IssueClicks) -> None:
    out = app.console.print
    out(f"Issue {found.issue} {found.subject!r}: {found.clicks} clicks on its links")
    posts = _table("clicks", "post", "blog")
    for post in found.posts:
        known = app.blogs.blog(post.blog)
        name = known.name if known else post.blog
        posts.add_row(str(post.clicks), escape(post.title), escape(name))
    out(posts)
    out("Per blog (its home page and its posts):")
    blogs = _table("clicks", "blog")
    for blog in found.blogs:
        blogs.add_row(str(blog.clicks), escape(blog.name))
    out(blogs)
    span = len(found.shares_over)
    out(f"Each blog's share of the clicks, last {span} {'issue' if span == 1 else 'issues'}:")
    shares = _table("share", "clicks", "blog")
    for blog in found.shares:
        shares.add_row(f"{blog.share:.0%}", str(blog.clicks), escape(blog.name))
    out(shares)
