"""Commentary rhythm: in full the first time a blog is featured and after the curator rewrites
it, otherwise its tagline; `always` every time; never twice in one issue."""

from __future__ import annotations

from datetime import timedelta

from digest.config import BlogsFile
from digest.issue import rhythm
from digest.issue.draft import load_issue, refresh_draft
from digest.models import Issue
from digest.render import render_issue
from digest.store import issues as store_issues
from digest.store import transaction
from plugins.drafting import NOW, Week, entry
from test_render_email import BASE, make_issue, make_post

CURRENT = {"a": "Why A matters.", "b": "Why B  matters.\n", "c": ""}


def test_first_issue_shows_every_featured_blogs_commentary_once() -> None:
    shown = rhythm.decide(["a", "b", "a", "c"], CURRENT, {}, "first")
    assert shown == {"a": "Why A matters.", "b": "Why B matters."}  # c has none


def test_later_issues_skip_what_readers_have_read_until_it_changes() -> None:
    seen = rhythm.history([_frozen(1, {"a": "Why A matters.", "b": "Why B matters."})], CURRENT)
    assert rhythm.decide(["a", "b"], CURRENT, seen, "first") == {}
    # re-wrapping the YAML is no rewrite; new words are
    rewrapped = {"a": "Why A\n  matters.", "b": "Why B matters, and more."}
    assert rhythm.decide(["a", "b"], rewrapped, seen, "first") == {
        "b": "Why B matters, and more."
    }
    assert rhythm.decide(["a", "b"], CURRENT, seen, "always") == {
        "a": "Why A matters.",
        "b": "Why B matters.",
    }


def test_history_takes_the_latest_showing_and_legacy_issues_count_as_current() -> None:
    older = _frozen(1, {"a": "Old words."})
    newer = _frozen(2, {"a": "Why A matters."})
    seen = rhythm.history([newer, older], CURRENT)  # any order: by number
    assert seen["a"] == rhythm.fingerprint("Why A matters.")
    legacy = make_issue([make_post("b", "x", 1)], number=3)  # commentary None
    assert rhythm.history([legacy], CURRENT) == {"b": rhythm.fingerprint("Why B matters.")}


def _frozen(number: int, commentary: dict[str, str]) -> Issue:
    posts = [make_post(blog, "x", number) for blog in commentary]
    return make_issue(posts, number=number, commentary=commentary)


def test_a_rendered_issue_shows_the_tagline_for_blogs_already_introduced(
    blogs: BlogsFile,
) -> None:
    issue = make_issue(
        [make_post("xxiivv", "permacomputing", 1), make_post("chris-olah", "ml", 2)],
        commentary={"chris-olah": "Where I first learned about RNNs."},
    )
    rendered = render_issue(issue, blogs, base_url=BASE)
    assert "An inspiring corner" not in rendered.html
    assert "A personal wiki on low-tech computing" in rendered.html  # XXIIVV's tagline
    assert "Where I first learned about RNNs." in rendered.html
    assert "A personal wiki on low-tech computing" in rendered.text
    assert "An inspiring corner" not in rendered.text


def test_the_second_issue_does_not_repeat_the_first_ones_commentary(week: Week) -> None:
    refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    first = load_issue(week.settings, week.blogs, week.conn)
    assert first.commentary is not None
    featured = rhythm.featured_blogs(first)
    assert set(first.commentary) == set(featured)
    rendered = render_issue(first, week.blogs, base_url=BASE)
    dieleman = "Works at Google DeepMind"
    assert rendered.html.count(dieleman) == 1 and rendered.text.count(dieleman) == 1
    with transaction(week.conn):
        store_issues.freeze_issue(
            week.conn, first, html=rendered.html, text=rendered.text, status="sent", now=NOW
        )

    later = NOW + timedelta(days=7)
    week.add("sander-dieleman", entry("New one", "https://sander.ai/new"), at=later)
    week.add("delayed", entry("A mix", "https://www.delayed.nyc/mix"), at=later)
    refresh_draft(week.settings, week.blogs, week.conn, now=later + timedelta(hours=1))
    second = load_issue(week.settings, week.blogs, week.conn)
    assert second.number == 2
    assert second.commentary is not None and "sander-dieleman" not in second.commentary
    assert "delayed" in second.commentary  # featured for the first time
    html = render_issue(second, week.blogs, base_url=BASE).html
    assert dieleman not in html and "Amazing music recommendations" in html
