"""`digest run`, `digest hold`, `digest release` and `digest status`: the weekly job."""

from __future__ import annotations

import json
import logging

import click

from digest.cli import App, main, pass_app
from digest.cli.send import show_summary
from digest.store import utcnow


@main.command()
@click.option("--once", is_flag=True, help="Run the weekly job now, once, and exit (for cron).")
@click.option(
    "--every", default=60, show_default=True, metavar="SECONDS", help="How often to check."
)
@pass_app
def run(app: App, once: bool, every: int) -> None:
    """The weekly job: gather feeds, draft the issue if there is none, send it.

    Without --once, stays running and does it at the weekday, time and time zone set in
    blogs.yaml (catching up a slot missed while the machine was off).
    """
    if not once:
        from digest.schedule import Scheduler

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        scheduler = Scheduler(app.settings)
        zone = app.blogs.newsletter.schedule.tz
        app.console.print(
            f"digest scheduler: next run "
            f"{scheduler.next_run(app.blogs).astimezone(zone):%a %d %b %Y %H:%M %Z} "
            f"({zone.key}); checking every {every} s. Ctrl-C stops."
        )
        try:
            scheduler.run_forever(every=every)
        except KeyboardInterrupt:
            app.console.print("stopped")
        return
    from digest.weekly import run_once

    outcome = run_once(app.settings, app.blogs, app.db, now=utcnow())
    gathered = outcome.gathered
    app.console.print(gathered.summary(), highlight=False)
    if gathered.failed or any(r.error for r in gathered.skipped):
        app.console.print("  `digest status` lists the failing feeds and why")
    if outcome.sent is None:
        app.console.print(outcome.line())
    else:
        show_summary(app, outcome.sent)


@main.command()
@pass_app
def hold(app: App) -> None:
    """Keep the next issue from going out at its scheduled time."""
    from digest.weekly import hold as hold_issue

    number = hold_issue(app.settings, app.db)
    app.console.print(f"issue {number} is held: `digest release` sends it")


@main.command()
@click.option("--no-send", is_flag=True, help="Only lift the hold; the next slot sends it.")
@pass_app
def release(app: App, no_send: bool) -> None:
    """Lift a hold and send the held issue now."""
    from digest.send.deliver import send_issue
    from digest.weekly import release as release_issue

    number = release_issue(app.db)
    if number is None:
        app.console.print("nothing was held")
    else:
        app.console.print(f"issue {number} released")
    if number is not None and not no_send:
        show_summary(app, send_issue(app.settings, app.blogs, app.db, now=utcnow()))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@pass_app
def status(app: App, as_json: bool) -> None:
    """Last issue, next run, draft, subscribers and feed health."""
    from digest.status import status as gather_status

    info = gather_status(app.settings, app.blogs, app.db, now=utcnow())
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    out = app.console.print
    last = info["last_issue"]
    if last is None:
        out("Last issue: none yet")
    else:
        counts = last["deliveries"]
        out(
            f"Last issue: #{last['number']} {last['subject']!r}, {last['status']} "
            f"{last['date']['local']}: sent {counts.get('sent', 0)}, deferred "
            f"{counts.get('deferred', 0)}, bounced {counts.get('bounced', 0)}"
        )
    nxt = info["next_run"]
    out(f"Next run: {nxt['local']} ({nxt['mode']} mode)")
    if "review" in nxt:
        out(f"  review copy to the curator: {nxt['review']['local']}")
    draft = info["draft"]
    if draft is None:
        out("Draft: none (the next run drafts one)")
    else:
        state = "[red]HELD[/]" if draft["held"] else "not held"
        body = draft.get("error") or f"{draft['posts']} posts, {draft['subject']!r}"
        out(f"Draft: #{draft['number']} {draft['path']}: {body}; {state}")
    subs = info["subscribers"]
    out("Subscribers: " + ", ".join(f"{n} {state}" for state, n in subs.items()))
    feeds = info["feeds"]
    out(
        f"Feeds: {feeds['ok']} ok, {feeds['error']} failing, {feeds['gone']} gone, "
        f"{feeds['new']} not fetched yet (of {feeds['total']})"
    )
    for feed in feeds["failing"]:
        out(f"  {feed['blog']}: {feed['error'] or feed['status']} ({feed['failures']} in a row)")
    run = info["last_run"]
    if run is not None:
        when = run["finished"]["local"] if run["finished"] else "?"
        out(f"Last run: {run['outcome']} {when}" + (f": {run['error']}" if run["error"] else ""))
