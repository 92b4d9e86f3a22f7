"""`digest draft` and `digest preview` end to end: a real feed server, SQLite file and SMTP."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.store import connect
from plugins.drafting import cli_env as env_for
from plugins.drafting import seed_week
from plugins.feedserver import FeedServer
from plugins.smtp import SmtpServer

FEEDS = {
    "xxiivv": ("https://wiki.xxiivv.com/links/rss.xml", "xxiivv.rss.xml"),
    "hundred-rabbits": ("https://100r.co/links/rss.xml", "100r.rss.xml"),
    "sander-dieleman": ("https://sander.ai/feed.xml", "sander.atom.xml"),
    "lilianweng": ("https://lilianweng.github.io/index.xml", "lilianweng.index.xml"),
    "chris-olah": ("https://colah.github.io/rss.xml", "colah.rss.xml"),
    "optimistic-underground": ("https://optimisticunderground.com/feed/", None),
}


def test_draft_fetches_then_drafts_and_reports_feed_health(
    tmp_path: Path, blogs_yaml: Path, db_path: Path, feed_server: FeedServer
) -> None:
    text = blogs_yaml.read_text()
    for blog, (url, fixture) in FEEDS.items():
        path = f"/{blog}.xml"
        if fixture is None:
            local = feed_server.fail(path, 503)  # failing feed
        elif blog == "hundred-rabbits":
            local = feed_server.fail(path, 410)  # gone for good
        else:
            local = feed_server.serve_fixture(path, fixture)
        text = text.replace(url, local)
    # Delayed. has no feed: key; its homepage links no feed either
    home = feed_server.serve("/delayed/", "<html><head><title>Delayed</title></head></html>")
    text = text.replace("homepage: https://www.delayed.nyc/", f"homepage: {home}")
    blogs_yaml.write_text(text)
    fresh = datetime.now(UTC) - timedelta(hours=2)
    feed_server.add_entry(
        "/sander-dieleman.xml",
        title="A fresh post on flow matching",
        link="https://sander.ai/2026/flow.html",
        published=fresh,
        summary="<p>Flows, <b>matched</b>.</p>",
    )
    env = env_for(tmp_path, blogs_yaml, db_path)
    result = CliRunner().invoke(main, ["draft"], env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "drafts/1.yaml" in out and "Created" in out
    assert "A fresh post on flow matching" in out
    assert "Feed health" in out
    assert re.search(r"Optimistic Underground: failing for 1 run.*503", out)
    assert re.search(r"Hundred Rabbits: gone", out)
    draft = (tmp_path / "drafts" / "1.yaml").read_text()
    assert "title: A fresh post on flow matching" in draft
    assert "Hundred Rabbits: gone" in draft  # feed health is in the draft too, for the curator

    # Running it again keeps the draft and adds nothing new.
    again = CliRunner().invoke(main, ["draft", "--no-fetch"], env=env)
    assert again.exit_code == 0, again.output
    assert "Refreshed" in again.output and "0 added by this run" in again.output


@pytest.fixture
def this_week(db_path: Path) -> None:
    """The fixture feeds, their newest posts first seen yesterday (the CLI reads the clock)."""
    conn = connect(db_path)
    seed_week(conn, now=datetime.now(UTC).replace(microsecond=0))
    conn.close()


@pytest.mark.usefixtures("this_week")
def test_preview_writes_checks_and_sends_a_test_copy(
    tmp_path: Path, blogs_yaml: Path, db_path: Path, smtp_server: SmtpServer
) -> None:
    env = env_for(tmp_path, blogs_yaml, db_path, **smtp_server.env())
    runner = CliRunner()
    drafted = runner.invoke(main, ["draft", "--no-fetch"], env=env)
    assert drafted.exit_code == 0, drafted.output
    path = tmp_path / "drafts" / "1.yaml"
    text = path.read_text()
    path.write_text(text.replace("subject: 'Blogs I like #1'", "subject: 'Caf\u00e9 week #1'"))

    out_dir = tmp_path / "pv"
    result = runner.invoke(
        main,
        ["preview", "--out", str(out_dir), "--check", "--text", "--to", "curator@example.org"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    out = result.output
    for name in ("preview.html", "preview.txt", "preview.eml"):
        assert (out_dir / name).is_file() and str(out_dir / name) in out
    assert re.search(r"HTML: \d+\.\d KB encoded, of Gmail's 102 KB", out)
    words = int(re.search(r"Words: (\d+)", out).group(1))  # type: ignore[union-attr]
    assert words == len((out_dir / "preview.txt").read_text().split())
    assert "Posts: Permacomputing 4, ML 6, Music 2 + archive pick" in out
    assert "check passed" in out
    assert "PERMACOMPUTING\n--------------" in out  # --text printed the text part

    eml = email.message_from_bytes(
        (out_dir / "preview.eml").read_bytes(), policy=email.policy.default
    )
    assert str(eml["Subject"]) == "Caf\u00e9 week #1"
    assert eml["To"].addresses[0].addr_spec == "reader@example.org"
    assert eml["List-Unsubscribe"].startswith("<https://digest.example.org/unsubscribe/")
    html_part = eml.get_body(("html",))
    assert html_part is not None
    sent_html = html_part.get_content().replace("\r\n", "\n")
    assert sent_html == (out_dir / "preview.html").read_text()

    [sent] = smtp_server.messages
    assert sent.rcpt_tos == ["curator@example.org"]
    assert str(sent.message["Subject"]) == "[Preview] Caf\u00e9 week #1"

    # --check fails, listing each problem: an intro far too long for Gmail
    intro = "A long intro, far too long for one email. " * 2600
    path.write_text(path.read_text().replace("intro: ''", f"intro: '{intro}'"))
    checked = runner.invoke(main, ["preview", "--out", str(out_dir), "--check"], env=env)
    assert checked.exit_code == 1
    assert re.search(
        r"check failed: size: the HTML is \d+\.\d KB encoded, over the 90 KB", checked.output
    )
    assert (out_dir / "preview.html").stat().st_size > 90 * 1024  # written all the same, to look at


@pytest.mark.usefixtures("this_week")
@pytest.mark.parametrize("broken", ["include: maybe", "include: [1"])
def test_preview_of_a_broken_draft_names_line_and_field(
    tmp_path: Path, blogs_yaml: Path, db_path: Path, broken: str
) -> None:
    env = env_for(tmp_path, blogs_yaml, db_path)
    runner = CliRunner()
    assert runner.invoke(main, ["draft", "--no-fetch"], env=env).exit_code == 0
    path = tmp_path / "drafts" / "1.yaml"
    text = path.read_text()
    path.write_text(text.replace("include: true", broken, 1))
    line = text[: text.index("include: true")].count("\n") + 1
    result = runner.invoke(main, ["preview", "--out", str(tmp_path / "pv")], env=env)
    assert result.exit_code == 1
    assert "1.yaml, line " in result.output and "Traceback" not in result.output
    assert re.search(rf"\bline {line}\b", result.output)  # the edited line is named
    if broken == "include: maybe":
        assert "field posts[0].include" in result.output


def test_preview_without_a_draft_says_what_to_do(
    tmp_path: Path, blogs_yaml: Path, db_path: Path
) -> None:
    env = env_for(tmp_path, blogs_yaml, db_path)
    result = CliRunner().invoke(main, ["preview"], env=env)
    assert result.exit_code == 1
    assert "no draft of the next issue" in result.output and "digest draft" in result.output


@pytest.mark.usefixtures("this_week")
def test_preview_check_flags_what_the_mail_would_show_as_typed(
    tmp_path: Path, blogs_yaml: Path, db_path: Path
) -> None:
    """A placeholder nobody fills, a relative link and a Markdown image: the mail shows each as
    typed (the link unlinked, the image as words), so --check names each, and where it is."""
    env = env_for(tmp_path, blogs_yaml, db_path)
    runner = CliRunner()
    assert runner.invoke(main, ["draft", "--no-fetch"], env=env).exit_code == 0
    path = tmp_path / "drafts" / "1.yaml"
    text = path.read_text()
    intro = (
        "Hello {{ name }}! See [my notes](/notes/week-1) and this:"
        " ![a diagram](https://example.org/diagram.png)"
    )
    text = text.replace("intro: ''", f"intro: '{intro}'", 1)
    text = text.replace("note: ''", "note: 'More in [the archive](archive.html), %%NAME%%.'", 1)
    path.write_text(text)
    title = re.search(r"(?m)^    title: (.+)$", text).group(1).strip("'\"")  # type: ignore[union-attr]

    result = runner.invoke(main, ["preview", "--out", str(tmp_path / "pv"), "--check"], env=env)
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("check failed: ")]
    joined = "\n".join(failed)
    for expected in (
        "placeholder: %%NAME%%, {{ name }} left in the HTML",
        "placeholder: %%NAME%%, {{ name }} left in the text",
        "link: '/notes/week-1' in the intro is not an absolute http(s) URL",
        f"link: 'archive.html' in the note on {title!r} is not an absolute http(s) URL",
        "image: the intro has a Markdown image ('https://example.org/diagram.png')",
    ):
        assert expected in joined, (expected, failed)
    assert len(failed) == 5, failed


def test_placeholder_check_knows_braces_and_percents_from_placeholders() -> None:
    from digest.render.lint import placeholder_problems

    assert placeholder_problems("<p>100% sure, {a: 1} {this week}</p>", "50%% off, 50 %") == []
    unclosed = "<p>Hello {{ name, see you</p>"
    assert placeholder_problems(unclosed, "") == ["placeholder: {{ left in the HTML"]
    assert placeholder_problems("", "Dear {{ first_name }}, {% if x %}%%FNAME%%") == [
        "placeholder: %%FNAME%%, {% if x %}, {{ first_name }} left in the text"
    ]
