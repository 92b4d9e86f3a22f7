"""`digest run`, `digest hold`, `digest release` and `digest status`: the weekly job."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import click
from rich.markup import escape

from digest.cli import App, main, pass_app
from digest.cli.send import confirm_send, send_plan, show_summary
from digest.errors import DeliveryError, DraftError, ScheduleError
from digest.feeds.gather import GatherReport
from digest.send.deliver import send_issue, sending_issue
from digest.store import utcnow


@main.command()
@click.option("--once", is_flag=True, help="Run the weekly job now, once, and exit (for cron).")
@click.option(
    "--every", default=60, show_default=True, metavar="SECONDS", help="How often to check."
)
@click.option(
    "--force",
    is_flag=True,
    help="Send through SMTP even while DIGEST_BASE_URL is unset (links to localhost).",
)
@pass_app
def run(app: App, once: bool, every: int, force: bool) -> None:
    """The weekly job: gather feeds, draft the issue if there is none, send it.

    Without --once, stays running and does it at the weekday, time and time zone set in
    blogs.yaml (catching up a slot missed while the machine was off).
    """
    if not once:
        from digest.schedule import Scheduler

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        scheduler = Scheduler(app.settings, force=force)
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
    from digest.weekly import require_base_url, run_once

    if not force:
        require_base_url(app.settings)
    outcome = run_once(app.settings, app.blogs, app.db, now=utcnow())
    _print_gathered(app, outcome.gathered)
    if outcome.sent is None:
        app.console.print(outcome.line(), markup=False)
    else:
        show_summary(app, outcome.sent)
        if outcome.monthly:  # what became of the monthly edition, after the weekly issue
            monthly = outcome.monthly[0].upper() + outcome.monthly[1:]
            app.console.print(monthly, highlight=False, markup=False)


def _print_gathered(app: App, gathered: GatherReport) -> None:
    """The fetch line, then every failing feed by name with its reason (offline, every one)."""
    app.console.print(gathered.summary(), highlight=False)
    failing = [r for r in gathered.results if r.status in ("error", "gone") or r.error]
    for result in failing:
        reason = result.error or result.status
        if result.status == "skipped":
            reason = f"{reason} (backing off: next try {_when(app, result.next_poll)})"
        elif result.status == "gone":
            reason += "; polling stopped: fix or remove its feed in blogs.yaml"
        app.console.print(f"  {result.blog}: {reason}", highlight=False, markup=False)
    if failing:
        app.console.print("  `digest feeds check` fetches every feed again now")


def _when(app: App, moment: datetime | None) -> str:
    if moment is None:
        return "later"
    return f"{moment.astimezone(app.blogs.newsletter.schedule.tz):%a %d %b %H:%M %Z}"


@main.command()
@click.option("--monthly", is_flag=True, help="Hold the next monthly edition instead.")
@pass_app
def hold(app: App, monthly: bool) -> None:
    """Keep the next issue from going out at its scheduled time.

    Works before the issue is drafted too: the hold is on the issue number.
    """
    from digest.issue.draft import current_draft
    from digest.weekly import hold as hold_issue

    if monthly:
        _hold_monthly(app)
        return
    number = hold_issue(app.db)
    if current_draft(app.settings, app.db) is None:
        app.console.print(
            f"issue {number} is held (not drafted yet: the next run drafts it and keeps it "
            "back): `digest release` lets it go"
        )
    else:
        app.console.print(f"issue {number} is held: `digest release` sends it")


def _hold_monthly(app: App) -> None:
    from digest.issue.monthly import draft_path, label
    from digest.weekly import hold_monthly

    month = hold_monthly(app.settings, app.blogs, app.db, now=utcnow())
    drafted = draft_path(app.settings, month).is_file()
    state = "" if drafted else " (not drafted yet: the run that drafts it keeps it back)"
    app.console.print(
        f"the monthly edition of {label(month)} is held{state}: `digest release --monthly` "
        "lets it go",
        highlight=False,
    )


@main.command()
@click.option("--no-send", is_flag=True, help="Only lift the hold; the next slot sends it.")
@click.option("--yes", "-y", is_flag=True, help="Send without asking for confirmation.")
@click.option(
    "--force",
    is_flag=True,
    help="Send a quiet week too (fewer posts than min_posts), or with DIGEST_BASE_URL unset.",
)
@click.option("--monthly", is_flag=True, help="Release the held monthly edition instead.")
@pass_app
def release(app: App, no_send: bool, yes: bool, force: bool, monthly: bool) -> None:
    """Lift a hold and send the held issue now (showing it and asking first)."""
    from digest.weekly import held_issue
    from digest.weekly import release as release_issue

    if monthly:
        _release_monthly(app, no_send=no_send, yes=yes, force=force)
        return
    number = held_issue(app.db)
    if number is None:
        release_issue(app.db)  # a spent hold is cleared
        app.console.print("nothing was held")
        return
    if no_send:
        release_issue(app.db)
        app.console.print(f"issue {number} released: its scheduled run sends it")
        return
    _check_release(app, number, force=force)
    app.console.print(send_plan(app), markup=False)
    confirm_send(app, yes=yes, force=force, command="release")
    release_issue(app.db)
    app.console.print(f"issue {number} released")
    show_summary(app, send_issue(app.settings, app.blogs, app.db, now=utcnow()))


def _release_monthly(app: App, *, no_send: bool, yes: bool, force: bool) -> None:
    """`digest release --monthly`: as the weekly release, for the held monthly edition."""
    from digest.issue.monthly import draft_path, label
    from digest.weekly import held_month, release_monthly

    month = held_month(app.db)
    if month is None:
        release_monthly(app.db)  # a spent hold is cleared
        app.console.print("no monthly edition was held")
        return
    name = f"the monthly edition of {label(month)}"
    if no_send:
        release_monthly(app.db)
        app.console.print(f"{name} released: its scheduled run sends it", highlight=False)
        return
    half_sent = sending_issue(app.db)
    if half_sent is not None:
        raise DeliveryError(
            f"issue {half_sent} is still being sent: {name} stays held",
            hint="`digest send` finishes the interrupted issue; then `digest release --monthly` "
            "again",
        )
    if not draft_path(app.settings, month).is_file():
        raise DraftError(
            f"{name} is held but not drafted yet",
            hint=f"`digest draft --monthly --month {month}` creates it; `digest release "
            "--monthly --no-send` only lifts the hold",
        )
    app.console.print(send_plan(app, month=month), markup=False)
    confirm_send(app, yes=yes, force=force, command="release --monthly")
    release_monthly(app.db)
    app.console.print(f"{name} released", highlight=False)
    show_summary(app, send_issue(app.settings, app.blogs, app.db, now=utcnow(), month=month))


def _check_release(app: App, number: int, *, force: bool) -> None:
    """What must hold before `digest release` sends; the hold stays when it refuses."""
    from digest.issue.draft import current_draft, load_issue
    from digest.weekly import quiet_week

    half_sent = sending_issue(app.db)
    if half_sent is not None:
        raise DeliveryError(
            f"issue {half_sent} is still being sent: issue {number} stays held",
            hint="`digest send` finishes the interrupted issue; then `digest release` again",
        )
    if current_draft(app.settings, app.db) is None:
        raise DraftError(
            f"issue {number} is held but not drafted yet",
            hint="`digest draft` creates it; `digest release --no-send` only lifts the hold",
        )
    quiet = quiet_week(load_issue(app.settings, app.blogs, app.db), app.blogs)
    if quiet and not force:
        raise ScheduleError(
            f"issue {number} is not sent: {quiet}, which the scheduler skips",
            hint="add posts and `digest draft` again; `digest release --force` sends it "
            "anyway; `--no-send` only lifts the hold",
        )


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
        out(
            f"Last issue: #{last['number']} {escape(repr(last['subject']))}, {last['status']} "
            f"{last['date']['local']}: {_deliveries(last['deliveries'])}"
        )
    nxt = info["next_run"]
    out(f"Next run: {nxt['local']} ({nxt['mode']} mode)")
    if "review" in nxt:
        out(f"  review copy to the curator: {nxt['review']['local']}")
    draft = info["draft"]
    if draft is None:
        from digest.weekly import held_issue

        held = held_issue(app.db)
        out(
            "Draft: none (the next run drafts one)"
            + (f"; issue {held} [red]HELD[/]" if held is not None else "")
        )
    else:
        state = "[red]HELD[/]" if draft["held"] else "not held"
        out(f"Draft: #{draft['number']} {escape(draft['path'])}: {_draft_body(draft)}; {state}")
    _print_monthly(app, info["monthly"])
    out(_subscribers(info["subscribers"], info["cadence"]))
    _print_feeds(app, info["feeds"])
    late = info["feedback"]
    if any(late.values()):
        kinds = ", ".join(f"{n} {kind}" for kind, n in late.items())
        note = "; a policy refusal is about the sender, not the reader" if late["policy"] else ""
        out(f"Reported after sending (30 days): {kinds}{note}")
    mentions = info["webmentions"]
    if mentions is not None:
        pending = f", {mentions['pending']} pending" if mentions["pending"] else ""
        out(
            f"Webmentions (30 days): {mentions['sent']} sent, {mentions['none']} without "
            f"endpoint, {mentions['retry']} to retry, {mentions['failed']} failed{pending}"
        )
    if info["clicks"] is not None:
        _print_clicks(app, info["clicks"])
    run = info["last_run"]
    if run is not None:
        when = run["finished"]["local"] if run["finished"] else "?"
        error = f": {escape(run['error'])}" if run["error"] else ""
        out(f"Last run: {run['outcome']} {when}{error}")


def _subscribers(subs: dict[str, int], cadence: dict[str, int]) -> str:
    """`Subscribers: 0 pending, 5 confirmed (3 weekly, 2 monthly), 1 unsubscribed, 0 bounced`."""
    parts = []
    for state, n in subs.items():
        part = f"{n} {state}"
        if state == "confirmed" and n:
            part += f" ({cadence['weekly']} weekly, {cadence['monthly']} monthly)"
        parts.append(part)
    return "Subscribers: " + ", ".join(parts)


def _deliveries(counts: dict[str, int]) -> str:
    return (
        f"sent {counts.get('sent', 0)}, deferred {counts.get('deferred', 0)}, bounced "
        f"{counts.get('bounced', 0)}"
    )


def _draft_body(draft: dict[str, Any]) -> str:
    """A draft's posts and subject, or what is wrong with it (outside text, escaped)."""
    if "error" in draft:
        return escape(draft["error"])
    return f"{draft['posts']} posts, {escape(repr(draft['subject']))}"


def _print_monthly(app: App, edition: dict[str, Any]) -> None:
    """`digest status`: the last monthly edition, then the next, its slot and its draft."""
    out = app.console.print
    last = edition["last"]
    if last is None:
        out("Last monthly: none yet")
    else:
        out(
            f"Last monthly: {last['month']} {escape(repr(last['subject']))}, {last['status']} "
            f"{last['date']['local']}: {_deliveries(last['deliveries'])}"
        )
    nxt, draft = edition["next"], edition["draft"]
    if draft is None:
        body = "none (that run drafts it)"
    else:
        body = f"{escape(draft['path'])}: {_draft_body(draft)}"
    state = "[red]HELD[/]" if nxt["held"] else "not held"
    out(f"Next monthly: {nxt['label']}, {nxt['local']}; draft {body}; {state}")


def _print_feeds(app: App, feeds: dict[str, Any]) -> None:
    """`digest status`: feed health, the failing feeds by name, and the newsletters' mail."""
    out = app.console.print
    email = f", {feeds['email']} by email" if feeds["email"] else ""
    out(
        f"Feeds: {feeds['ok']} ok, {feeds['error']} failing, {feeds['gone']} gone, "
        f"{feeds['new']} not fetched yet{email} (of {feeds['total']})"
    )
    for feed in feeds["failing"]:
        reason = escape(feed["error"] or feed["status"])
        out(f"  {escape(feed['blog'])}: {reason} ({feed['failures']} in a row)")
    mail = feeds["mail"]
    if any(mail.values()):
        out(
            f"  mail (30 days): {mail['post']} posts, {mail['quarantined']} quarantined, "
            f"{mail['confirmation']} confirmations: see `digest feeds check`"
        )


def _print_clicks(app: App, clicks: dict[str, Any]) -> None:
    """`digest status`: the latest counted edition's clicks and its most clicked post."""
    if clicks["issue"] is None:
        app.console.print("Clicks: no edition counted yet")
        return
    line = f"Clicks: issue {clicks['issue']}, {clicks['clicks']} in all"
    top = clicks["top_post"]
    if top is not None:
        title, name = escape(repr(top["title"])), escape(top["name"])
        line += f"; top post {title} ({name}): {top['clicks']}"
    app.console.print(line)
