"""Cadence on the reader's side: weekly (the default) or monthly, chosen on the signup and
preferences pages, by `digest subscribers add --cadence`, and in the CSV column `cadence`."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest import subscribers
from digest.cli import main
from digest.config import BlogsFile, Settings
from digest.errors import SubscriberError
from digest.store import connect, transaction
from digest.store import subscribers as store
from digest.store.deliveries import snapshot_audience
from plugins.website import Tags, Web, freeze

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
MONTHLY_LABEL = "Monthly: the month's best, once a month"


def _cadence(conn: sqlite3.Connection, address: str) -> str:
    row = conn.execute("SELECT cadence FROM subscribers WHERE email = ?", (address,)).fetchone()
    assert row is not None, address
    return str(row[0])


def _words(html: str) -> str:
    """A page's text as a reader sees it, whitespace folded."""
    body = html[html.index("<body>") :]
    return " ".join("".join(Tags(body).text).split())


def _radios(html: str) -> dict[str, bool]:
    """The cadence radios of a page: value -> checked."""
    return {
        a["value"]: "checked" in a for a in Tags(html).find("input", type="radio", name="cadence")
    }


# --- values and the service ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "weekly"),
        ("", "weekly"),
        ("  ", "weekly"),
        ("weekly", "weekly"),
        (" Monthly ", "monthly"),
        ("MONTHLY", "monthly"),
    ],
)
def test_clean_cadence(given: str | None, expected: str) -> None:
    assert subscribers.clean_cadence(given) == expected


@pytest.mark.parametrize("bad", ["daily", "fortnightly", "week", "1"])
def test_clean_cadence_names_the_bad_value(bad: str) -> None:
    with pytest.raises(SubscriberError) as caught:
        subscribers.clean_cadence(bad)
    assert repr(bad) in caught.value.message
    assert caught.value.hint == "choose weekly or monthly"


def test_the_cadence_asked_for_becomes_the_subscribers_on_confirmation(
    conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    """Like categories: a request never changes a consent record until it is confirmed."""
    added = subscribers.add(conn, settings, blogs, email="ann@example.org", confirmed=True, now=NOW)
    assert added.subscriber.cadence == "weekly"  # the default
    subscribers.unsubscribe_by_token(conn, added.subscriber.token, now=NOW)

    mail = subscribers.subscribe(
        conn, settings, blogs, email="ann@example.org", cadence="monthly", now=NOW
    )
    assert mail is not None
    assert "the monthly edition of Blogs I like, the month's best" in mail.text
    assert _cadence(conn, "ann@example.org") == "weekly"  # not yet: unconfirmed
    token = mail.text.split("/confirm/")[1].split()[0]
    assert subscribers.check_confirmation(conn, token, now=NOW).cadence == "monthly"

    state = subscribers.confirm(conn, token, now=NOW)
    assert state.status == "confirmed" and state.subscriber is not None
    assert state.subscriber.cadence == "monthly" and state.cadence == "monthly"
    assert _cadence(conn, "ann@example.org") == "monthly"

    # Subscribed already: the notice says which cadence they have and where to change it.
    notice = subscribers.subscribe(
        conn, settings, blogs, email="ann@example.org", cadence="weekly", now=NOW
    )
    assert notice is not None and "subscribed already" in notice.text
    assert "the monthly edition of Blogs I like" in notice.text
    assert "weekly or monthly" in notice.text and "/preferences/" in notice.text
    assert _cadence(conn, "ann@example.org") == "monthly"


def test_a_new_signup_and_a_fresh_link_keep_the_cadence(
    conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    mail = subscribers.subscribe(
        conn, settings, blogs, email="bo@example.org", cadence="monthly", now=NOW
    )
    assert mail is not None
    sub = store.get_by_email(conn, "bo@example.org")
    assert sub is not None and sub.status == "pending" and sub.cadence == "monthly"
    # The link expires; the fresh one asks for what the first asked for.
    token = mail.text.split("/confirm/")[1].split()[0]
    later = NOW + subscribers.CONFIRM_TTL
    fresh = subscribers.resend_confirmation(conn, settings, blogs, token, now=later)
    assert fresh is not None and "monthly edition" in fresh.text
    new_token = fresh.text.split("/confirm/")[1].split()[0]
    assert subscribers.confirm(conn, new_token, now=later).cadence == "monthly"
    with pytest.raises(SubscriberError, match="unknown cadence 'daily'"):
        subscribers.subscribe(
            conn, settings, blogs, email="cy@example.org", cadence="daily", now=NOW
        )
    assert store.get_by_email(conn, "cy@example.org") is None


def test_preferences_change_the_cadence_and_none_keeps_it(
    conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    sub = subscribers.add(
        conn, settings, blogs, email="d@example.org", confirmed=True, cadence="monthly", now=NOW
    ).subscriber
    assert sub.cadence == "monthly"
    kept = subscribers.update_preferences(
        conn, blogs, sub.token, name="D", categories=None, now=NOW
    )
    assert kept is not None and kept.cadence == "monthly" and kept.name == "D"
    weekly = subscribers.update_preferences(
        conn, blogs, sub.token, name="D", categories=None, cadence="weekly", now=NOW
    )
    assert weekly is not None and weekly.cadence == "weekly"
    [event] = conn.execute(
        "SELECT detail FROM events WHERE kind = 'preferences' AND detail LIKE '%cadence%'"
    ).fetchall()
    assert "cadence monthly -> weekly" in event[0]
    with pytest.raises(SubscriberError, match="unknown cadence"):
        subscribers.update_preferences(
            conn, blogs, sub.token, name="D", categories=None, cadence="yearly", now=NOW
        )
    assert _cadence(conn, "d@example.org") == "weekly"


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def run(blogs_yaml: Path, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIGEST_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("DIGEST_BASE_URL", "https://digest.example.org")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(
            main, ["--blogs", str(blogs_yaml), "--db", str(db_path), *args], catch_exceptions=False
        )

    return invoke


def test_cli_add_with_cadence_and_list_shows_it(run, db_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert (
        run("subscribers", "add", "m@example.org", "--cadence", "monthly", "--confirmed").exit_code
        == 0
    )
    assert run("subscribers", "add", "w@example.org", "--confirmed").exit_code == 0
    pending = run("subscribers", "add", "p@example.org", "--cadence", "monthly")
    assert pending.exit_code == 0 and "pending" in pending.output

    listed = run("subscribers", "list", "--json")
    items = {i["email"]: i for i in map(json.loads, listed.output.splitlines())}
    assert {e: i["cadence"] for e, i in items.items()} == {
        "m@example.org": "monthly",
        "w@example.org": "weekly",
        "p@example.org": "monthly",
    }
    table = run("subscribers", "list")
    assert table.exit_code == 0
    header = " ".join(table.output.split())
    assert "cadence" in header and "monthly" in header and "weekly" in header

    bad = run("subscribers", "add", "x@example.org", "--cadence", "daily")
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "'daily' is not one of 'weekly', 'monthly'" in " ".join(bad.output.split())
    conn = connect(db_path)
    try:
        assert store.get_by_email(conn, "x@example.org") is None
    finally:
        conn.close()
    assert "--cadence [weekly|monthly]" in run("subscribers", "add", "--help").output


def test_cli_import_names_a_bad_cadence(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "list.csv"
    path.write_text("email,cadence\na@example.org,monthly\nb@example.org,biweekly\n")
    failed = run("subscribers", "import", str(path), "--confirmed")
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    text = " ".join(failed.output.split())
    assert "line 3: unknown cadence 'biweekly'" in text and "nothing imported" in text
    path.write_text("email,cadence\na@example.org,monthly\nb@example.org,\n")
    done = run("subscribers", "import", str(path), "--confirmed")
    assert done.exit_code == 0, done.output
    exported = run("subscribers", "export")
    rows = {r["email"]: r["cadence"] for r in csv.DictReader(io.StringIO(exported.output))}
    assert rows == {"a@example.org": "monthly", "b@example.org": "weekly"}


# --- CSV ------------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_import_reads_cadence_missing_or_empty_is_weekly(
    tmp_path: Path, conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    path = _write(
        tmp_path,
        "email,Cadence,name\na@example.org,Monthly,A\nb@example.org,,B\nc@example.org,weekly,C\n",
    )
    report = subscribers.import_csv(conn, settings, blogs, path, now=NOW, confirmed=True)
    assert report.added == 3
    assert [_cadence(conn, f"{x}@example.org") for x in "abc"] == ["monthly", "weekly", "weekly"]
    without = _write(tmp_path, "email\nd@example.org\n")
    subscribers.import_csv(conn, settings, blogs, without, now=NOW)
    assert _cadence(conn, "d@example.org") == "weekly"
    # Pending rows: the confirmation asks for the row's cadence.
    pending = _write(tmp_path, "email,cadence\ne@example.org,monthly\n")
    [mail] = subscribers.import_csv(conn, settings, blogs, pending, now=NOW).mails
    assert "monthly edition" in mail.text
    token = mail.text.split("/confirm/")[1].split()[0]
    assert subscribers.confirm(conn, token, now=NOW).cadence == "monthly"


def test_csv_bad_cadence_names_row_and_value_and_imports_nothing(
    tmp_path: Path, conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    path = _write(
        tmp_path,
        "email,cadence\nok@example.org,monthly\nbad@example.org,fortnightly\n"
        "also@example.org,weekly\n",
    )
    dry = subscribers.import_csv(conn, settings, blogs, path, now=NOW, dry_run=True)
    assert dry.invalid == [(3, "unknown cadence 'fortnightly'")]
    with pytest.raises(SubscriberError) as caught:
        subscribers.import_csv(conn, settings, blogs, path, now=NOW, confirmed=True)
    assert "line 3: unknown cadence 'fortnightly'" in caught.value.message
    assert "nothing imported" in caught.value.message
    assert conn.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0] == 0


def test_csv_export_has_cadence_and_imports_back(
    tmp_path: Path, conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    subscribers.add(
        conn, settings, blogs, email="m@example.org", cadence="monthly", confirmed=True, now=NOW
    )
    subscribers.add(conn, settings, blogs, email="w@example.org", confirmed=True, now=NOW)
    out = io.StringIO()
    assert subscribers.export_csv(conn, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {r["email"]: r["cadence"] for r in rows} == {
        "m@example.org": "monthly",
        "w@example.org": "weekly",
    }
    # Into a fresh database: the cadence comes back with everything else.
    path = tmp_path / "export.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    other = connect(tmp_path / "other.db")
    try:
        report = subscribers.import_csv(other, settings, blogs, path, now=NOW, confirmed=True)
        assert report.added == 2
        assert _cadence(other, "m@example.org") == "monthly"
        assert _cadence(other, "w@example.org") == "weekly"
    finally:
        other.close()


# --- the web pages --------------------------------------------------------------------------


def test_signup_choosing_monthly_says_so_on_every_page_and_mail(web: Web) -> None:
    home = web.client.get("/")
    assert _radios(home.text) == {"weekly": True, "monthly": False}
    assert "How often" in _words(home.text) and MONTHLY_LABEL in _words(home.text)

    page = web.subscribe("ann@example.org", cadence="monthly")
    assert page.status_code == 200
    assert "start receiving the monthly edition of Blogs I like" in _words(page.text)
    [mail] = web.mails()
    assert "the monthly edition of Blogs I like, the month's best" in mail.get_content()
    link = web.link(mail, "confirm")
    shown = web.client.get(link)
    assert "the monthly edition of Blogs I like: the month's best" in _words(shown.text)
    done = web.post_form(link)
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert "You get the monthly edition of Blogs I like" in _words(done.text)
    assert _cadence(web.conn, "ann@example.org") == "monthly"

    web.subscribe("bo@example.org")  # no choice sent (an old page): weekly
    [_, weekly] = web.mails()
    assert "Blogs I like every week" in weekly.get_content()
    done = web.post_form(web.link(weekly, "confirm"))
    assert "The next issue of Blogs I like arrives on" in _words(done.text)
    assert _cadence(web.conn, "bo@example.org") == "weekly"


def test_a_bad_cadence_is_a_400_form_error(web: Web) -> None:
    page = web.subscribe("ann@example.org", cadence="daily")
    assert page.status_code == 400
    [error] = Tags(page.text).classes("error")
    assert "unknown cadence 'daily' (choose weekly or monthly)" in _words(page.text)
    assert error.get("role") == "alert"
    assert web.status("ann@example.org") is None and web.mails() == []
    # Another mistake keeps the choice made: the form comes back with Monthly checked.
    again = web.subscribe("not an address", cadence="monthly")
    assert again.status_code == 400 and _radios(again.text) == {"weekly": False, "monthly": True}


def test_the_subscribe_box_of_an_archived_issue_offers_the_choice(web: Web) -> None:
    freeze(web, 1)
    page = web.client.get("/archive/1")
    assert page.status_code == 200
    assert _radios(page.text) == {"weekly": True, "monthly": False}
    legend = [t for t, _ in Tags(page.text).tags if t == "legend"]
    assert legend, "the radios are in a fieldset with a legend"


def _confirmed(web: Web, address: str, cadence: str) -> str:
    web.subscribe(address, cadence=cadence)
    mail = web.mails(to=address)[-1]
    web.post_form(web.link(mail, "confirm"))
    return web.token(address)


def test_preferences_show_and_change_the_cadence(web: Web) -> None:
    token = _confirmed(web, "p@example.org", "monthly")
    path = f"/preferences/{token}"
    assert _radios(web.client.get(path).text) == {"weekly": False, "monthly": True}
    everything = [c.id for c in web.blogs.categories]

    saved = web.post_form(path, {"categories": everything, "cadence": "weekly"})
    assert saved.status_code == 200
    assert "Saved. You get every weekly issue, from the next one on." in _words(saved.text)
    assert _radios(saved.text) == {"weekly": True, "monthly": False}
    assert _cadence(web.conn, "p@example.org") == "weekly"

    bad = web.post_form(path, {"categories": everything, "cadence": "hourly"})
    assert bad.status_code == 400 and "unknown cadence 'hourly'" in _words(bad.text)
    assert _cadence(web.conn, "p@example.org") == "weekly"

    # A form without the radios (a page from before they existed) keeps the cadence.
    web.post_form(path, {"categories": everything, "cadence": "monthly"})
    kept = web.post_form(path, {"categories": everything, "name": "Pat"})
    assert kept.status_code == 200 and _cadence(web.conn, "p@example.org") == "monthly"


def test_a_change_during_a_send_counts_from_the_next_edition(web: Web) -> None:
    """The audience of a send is copied into `deliveries` when it starts: a reader who switches
    to monthly mid-send still gets this week's issue, once; the change counts from the next."""
    token = _confirmed(web, "mid@example.org", "weekly")
    freeze(web, 1)
    with transaction(web.conn):
        assert snapshot_audience(web.conn, 1, domain="digest.example.org", now=NOW) == 1
    everything = [c.id for c in web.blogs.categories]
    web.post_form(f"/preferences/{token}", {"categories": everything, "cadence": "monthly"})
    assert _cadence(web.conn, "mid@example.org") == "monthly"
    rows = web.conn.execute("SELECT email, status FROM deliveries WHERE issue = 1").fetchall()
    assert [tuple(r) for r in rows] == [("mid@example.org", "queued")]
