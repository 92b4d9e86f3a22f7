from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from digest.errors import DraftError
from digest.issue.draft import (
    consume_draft,
    current_draft,
    draft_path,
    load_issue,
    refresh_draft,
)
from digest.models import Issue
from digest.store import transaction
from digest.store.issues import featured_urls, freeze_issue
from digest.store.runs import finish_run, start_run
from plugins.drafting import NOW, Week, entry

SECOND = timedelta(seconds=1)  # windows end a second after `now` (see issue_window)


def entry_block(text: str, post_id: str) -> str:
    """The lines of one post entry in the draft, as the curator sees them."""
    match = re.search(rf"(?m)^  - id: {re.escape(post_id)}\n(?:    .*\n)*", text)
    assert match, post_id
    return match.group(0)


def set_field(text: str, post_id: str, key: str, value: str) -> str:
    block = entry_block(text, post_id)
    edited, count = re.subn(rf"(?m)^    {key}: .*$", f"    {key}: {value}", block)
    assert count == 1
    return text.replace(block, edited)


def ids_of(text: str) -> list[str]:
    return re.findall(r"(?m)^  - id: (\S+)$", text)


def test_a_draft_lists_the_weeks_posts_in_order_with_an_archive_pick(week: Week) -> None:
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    assert summary.created and summary.number == 1
    assert summary.path == week.settings.drafts / "1.yaml"
    assert current_draft(week.settings, week.conn) == summary.path
    assert summary.since == NOW - timedelta(days=7) and summary.until == NOW + SECOND
    assert sorted(p.id for p in summary.added) == sorted(week.new_ids)
    assert summary.per_category == {"permacomputing": 4, "ml": 6, "music": 2}
    text = summary.path.read_text()
    # grouped by category then blog, in blogs.yaml order
    blog_order = [re.sub(r"-[0-9a-f]{8}\d*$", "", i) for i in ids_of(text)]
    assert list(dict.fromkeys(blog_order)) == [
        "xxiivv",
        "hundred-rabbits",
        "sander-dieleman",
        "lilianweng",
        "chris-olah",
        "optimistic-underground",
    ]
    for key in ("subject:", "intro:", "posts:", "archive_pick:", "feed_health:", "until:"):
        assert re.search(rf"(?m)^{key}", text), key
    # the pick is back catalogue or a highlight, never one of this week's posts
    pick = summary.archive_pick
    assert pick is not None and pick.id not in week.new_ids
    issue = load_issue(week.settings, week.blogs, week.conn)
    assert isinstance(issue, Issue)
    assert issue.number == 1 and len(issue.posts) == 12 and issue.archive_pick == pick
    assert all(p.excerpt and p.date for p in issue.posts if p.blog != "lilianweng")
    # feed health is for the curator: in the draft, never in the Issue
    assert "not fetched yet" in text
    assert "not fetched" not in issue.model_dump_json()


def test_curator_edits_survive_a_redraft_with_new_posts(week: Week) -> None:
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    path = summary.path
    text = path.read_text()
    ids = ids_of(text)
    sander_latent, harness, visual = (
        next(
            i
            for i in ids
            if i.startswith("sander-")
            and i in entry_block(text, i)
            and "latents" in entry_block(text, i)
        ),
        next(i for i in ids if "harness" in entry_block(text, i)),
        next(i for i in ids if "Visual-Information" in entry_block(text, i)),
    )
    # The curator: a non-ASCII subject, a Markdown intro with a comment, a note, a reorder
    # (Lil'Log's post first in ML), an exclusion, their own archive pick, a comment on a post.
    text = text.replace(
        "subject: 'Blogs I like #1'", 'subject: "Blogs I like #1 \u2014 caf\u00e9, Zo\u00eb"'
    )
    text = text.replace(
        "intro: ''",
        "intro: |  # my words\n  A week of *diffusion*: see [Sander](https://sander.ai/).\n",
    )
    text = set_field(
        text, sander_latent, "note", "'**Read** this one [first](https://sander.ai/).'"
    )
    text = set_field(text, visual, "include", "false")
    harness_block = entry_block(text, harness)
    text = text.replace(harness_block, "")
    first_ml = entry_block(text, next(i for i in ids if i.startswith("sander-")))
    text = text.replace(first_ml, harness_block + first_ml)
    text = text.replace(entry_block(text, visual), "  # old but gold\n" + entry_block(text, visual))
    pick_start = text.index("\narchive_pick:") + 1
    pick_end = text.index("# For you only")
    text = (
        text[:pick_start]
        + "archive_pick:\n  title: ORCA\n  url: https://100r.co/site/orca.html\n"
        + "  blog: hundred-rabbits\n  note: My favourite release.\n"
        + text[pick_end:]
    )
    path.write_text(text)
    edited = text

    # New posts arrive in ML and music, and in permacomputing; then a re-draft.
    later = NOW + timedelta(hours=1)
    new_ml = week.add("sander-dieleman", entry("Flow matching", "https://sander.ai/flow"), at=later)
    new_music = week.add(
        "optimistic-underground",
        entry("New mix", "https://optimisticunderground.com/mix"),
        at=later,
    )
    new_perma = week.add("xxiivv", entry("Uxn news", "https://wiki.xxiivv.com/uxn"), at=later)
    second = refresh_draft(week.settings, week.blogs, week.conn, now=NOW + timedelta(hours=2))
    assert not second.created
    assert [p.id for p in second.added] == [new_perma, new_ml, new_music]
    assert second.until == NOW + timedelta(hours=2) + SECOND and second.since == summary.since
    after = path.read_text()

    # Nothing the curator wrote was lost, reordered or reformatted: removing the inserted
    # entries and restoring `until` gives back their file byte for byte.
    stripped = after
    for post_id in (new_perma, new_ml, new_music):
        stripped = stripped.replace(entry_block(after, post_id), "")
    stripped = stripped.replace("2026-07-06T10:00:01Z", "2026-07-06T08:00:01Z")
    assert stripped == edited

    # Each new post sits at the end of its category.
    order = ids_of(after)
    categories = [re.search(r"category: (\S+)", entry_block(after, i)).group(1) for i in order]  # type: ignore[union-attr]
    for post_id, category in ((new_perma, "permacomputing"), (new_ml, "ml"), (new_music, "music")):
        position = order.index(post_id)
        assert categories[position] == category
        assert category not in categories[position + 1 :]

    issue = load_issue(week.settings, week.blogs, week.conn)
    assert issue.subject == "Blogs I like #1 \u2014 caf\u00e9, Zo\u00eb"
    assert issue.intro.startswith("A week of *diffusion*")
    ml = [p.id for p in issue.posts if p.category == "ml"]
    assert ml[0] == harness and ml[-1] == new_ml
    assert visual not in [p.id for p in issue.posts]
    assert next(p for p in issue.posts if p.id == sander_latent).note.startswith("**Read**")
    assert issue.archive_pick is not None
    assert (issue.archive_pick.title, issue.archive_pick.category) == ("ORCA", "permacomputing")
    assert issue.until == NOW + timedelta(hours=2) + SECOND


def test_a_week_without_new_posts_still_has_an_archive_pick(week: Week) -> None:
    quiet = NOW + timedelta(days=60)  # the fixture posts are long outside the look-back
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=quiet)
    assert summary.entries == 0 and summary.included == 0
    assert "posts: []" in summary.path.read_text()
    issue = load_issue(week.settings, week.blogs, week.conn)
    assert issue.posts == [] and issue.archive_pick is not None
    # the curator may drop the pick too; the draft still loads
    path = summary.path
    text = path.read_text()
    cut = text.index("\narchive_pick:") + 1
    text = text[:cut] + "archive_pick:\n" + text[text.index("# For you") :]
    path.write_text(text)
    assert load_issue(week.settings, week.blogs, week.conn).archive_pick is None


def test_the_next_issue_starts_at_the_last_cutoff_and_never_repeats(week: Week) -> None:
    refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    first = load_issue(week.settings, week.blogs, week.conn)
    with transaction(week.conn):
        freeze_issue(week.conn, first, html="", text="", status="sent", now=NOW)
    consume_draft(week.settings, 1)
    assert not draft_path(week.settings, 1).exists()
    assert (week.settings.drafts / "sent" / "1.yaml").is_file()
    assert current_draft(week.settings, week.conn) is None
    with pytest.raises(DraftError, match="no draft") as info:
        load_issue(week.settings, week.blogs, week.conn)
    assert "digest draft" in (info.value.hint or "")

    # A post first seen at the cutoff belongs to issue 2, none of issue 1's posts do.
    cutoff = NOW + SECOND
    at_cutoff = week.add("lilianweng", entry("At the cutoff", "https://l.example/a"), at=cutoff)
    second = refresh_draft(week.settings, week.blogs, week.conn, now=NOW + timedelta(days=7))
    assert second.number == 2 and second.since == cutoff
    assert [p.id for p in second.added] == [at_cutoff]
    featured = featured_urls(week.conn)
    assert second.archive_pick is not None and second.archive_pick.url not in featured


def test_skipped_quiet_weeks_roll_into_the_next_issue(week: Week) -> None:
    refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    # The weekly job skips a quiet week by keeping the draft and recording the skip.
    with transaction(week.conn):
        run = start_run(week.conn, NOW, now=NOW)
        finish_run(week.conn, run, "skipped", issue=1, now=NOW)
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW + timedelta(days=7))
    # the skipped week's posts are still in issue 1, which says it covers two weeks
    assert summary.number == 1 and summary.skipped_weeks == 1
    assert summary.since == NOW - timedelta(days=7) and summary.included == 12
    assert summary.until == NOW + timedelta(days=7) + SECOND
    assert load_issue(week.settings, week.blogs, week.conn).skipped_weeks == 1


def test_posts_that_vanished_from_their_feed_stay_in_the_draft(week: Week) -> None:
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    gone = next(i for i in week.new_ids if i.startswith("chris-olah"))
    # The feed dropped the post: its row (the record that it was published) stays, so the
    # draft still shows it and a re-draft keeps it where the curator put it.
    again = refresh_draft(week.settings, week.blogs, week.conn, now=NOW + timedelta(hours=1))
    assert again.added == [] and gone in ids_of(summary.path.read_text())
    assert gone in [p.id for p in load_issue(week.settings, week.blogs, week.conn).posts]
    # If the post is gone from the database too (a fresh database), the draft says which line.
    with transaction(week.conn):
        week.conn.execute("DELETE FROM posts WHERE id = ?", (gone,))
    text = summary.path.read_text()
    line = text[: text.index(f"id: {gone}")].count("\n") + 1
    with pytest.raises(DraftError) as info:
        load_issue(week.settings, week.blogs, week.conn)
    assert info.value.line == line and info.value.field is not None
    assert info.value.field.endswith(".id") and gone in str(info.value)
    assert "include: false" in (info.value.hint or "")
    # Excluding it is enough.
    summary.path.write_text(set_field(text, gone, "include", "false"))
    assert gone not in [p.id for p in load_issue(week.settings, week.blogs, week.conn).posts]


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (
            lambda t: t.replace("\nposts:\n", "\nposts:\n  - id: [unclosed\n"),
            None,
            "not valid YAML",
        ),
        (
            lambda t: t.replace("include: true", "include: yes", 1),
            "posts[0].include",
            "true or false",
        ),
        (lambda t: t.replace("include: true", "incude: true", 1), "posts[0].incude", "unknown key"),
        (
            lambda t: re.sub(r"(?m)^  - id: \S+", "  - id: nobody-00000000", t, count=1),
            "posts[0].id",
            "unknown post id",
        ),
        (
            lambda t: re.sub(r"(?m)^    url: \S+", "    url: javascript:alert(1)", t, count=1),
            "posts[0].url",
            "absolute http(s) URL",
        ),
        (
            lambda t: re.sub(r"(?m)^    blog: \S+", "    blog: nosuchblog", t, count=1),
            "posts[0].blog",
            "unknown blog",
        ),
        (
            lambda t: re.sub(r"(?m)^    category: \S+", "    category: 7", t, count=1),
            "posts[0].category",
            "unknown category",
        ),
        (
            lambda t: t.replace("subject: 'Blogs I like #1'", "subject: 42"),
            "subject",
            "expected text",
        ),
        (
            lambda t: t.replace("subject: 'Blogs I like #1'", 'subject: "a\\nBcc: x@y.org"'),
            "subject",
            "single line",
        ),
        (lambda t: re.sub(r"(?m)^posts:\n(?:  .*\n)*", "posts: 3\n", t), "posts", "list of posts"),
        (lambda t: t + "archive_pick: 5\n", None, "duplicate key"),
    ],
)
def test_broken_edits_name_file_line_and_field(week: Week, edit, field, message) -> None:  # type: ignore[no-untyped-def]
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    broken = edit(summary.path.read_text())
    summary.path.write_text(broken)
    with pytest.raises(DraftError, match=re.escape(message)) as info:
        load_issue(week.settings, week.blogs, week.conn)
    error = info.value
    assert error.path == str(summary.path) and str(summary.path) in str(error)
    assert error.line is not None and f"line {error.line}" in str(error)
    if field is not None:
        assert error.field == field and f"field {field}" in str(error)
    # a re-draft refuses to touch a broken draft: the curator's work is not overwritten
    with pytest.raises(DraftError):
        refresh_draft(week.settings, week.blogs, week.conn, now=NOW + timedelta(hours=1))
    assert summary.path.read_text() == broken


def test_a_post_listed_twice_is_reported_at_its_second_line(week: Week) -> None:
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    text = summary.path.read_text()
    first = ids_of(text)[0]
    text = text.replace("\narchive_pick:", "\n" + entry_block(text, first) + "archive_pick:")
    summary.path.write_text(text)
    with pytest.raises(DraftError, match="listed twice") as info:
        load_issue(week.settings, week.blogs, week.conn)
    assert info.value.line == text[: text.rindex(f"id: {first}")].count("\n") + 1


def test_consuming_a_missing_draft_is_harmless(tmp_path: Path, week: Week) -> None:
    consume_draft(week.settings, 9)
    assert not (week.settings.drafts / "sent").exists()


def test_a_category_edit_moves_the_post_to_that_category(week: Week) -> None:
    from digest.render import render_issue

    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    text = summary.path.read_text()
    moved = next(i for i in ids_of(text) if i.startswith("sander-"))
    summary.path.write_text(set_field(text, moved, "category", "music"))

    issue = load_issue(week.settings, week.blogs, week.conn)
    post = next(p for p in issue.posts if p.id == moved)
    assert post.category == "music" and post.blog == "sander-dieleman"
    rendered = render_issue(issue, week.blogs, base_url="https://digest.example.org")
    music = rendered.text.index("MUSIC\n-----")
    assert rendered.text.index(post.title) > music  # shown in Music, not in ML
    assert rendered.text.count(post.title) == 1
    # the readers of Music get it, the readers of ML only do not
    only_music = frozenset({"music"})
    only_ml = frozenset({"ml"})
    base = "https://digest.example.org"
    assert post.title in render_issue(issue, week.blogs, base_url=base, categories=only_music).text
    assert post.title not in render_issue(issue, week.blogs, base_url=base, categories=only_ml).text
    # a re-draft keeps the edit, and counts the post where it now is
    again = refresh_draft(week.settings, week.blogs, week.conn, now=NOW + timedelta(hours=1))
    assert again.per_category == {"permacomputing": 4, "ml": 5, "music": 3}
    assert "category: music" in entry_block(again.path.read_text(), moved)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("Music", "the id of the category 'Music' is 'music' (blogs.yaml: permacomputing, ml,"),
        ("ML", "the id of the category 'ML' is 'ml'"),
        ("jazz", "use a category id from blogs.yaml: permacomputing, ml, music"),
    ],
)
def test_a_category_not_in_blogs_yaml_is_refused_naming_the_valid_ones(
    week: Week, value: str, hint: str
) -> None:
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    text = summary.path.read_text()
    edited = next(i for i in ids_of(text) if i.startswith("sander-"))
    index = ids_of(text).index(edited)
    text = set_field(text, edited, "category", value)
    summary.path.write_text(text)
    with pytest.raises(DraftError) as info:
        load_issue(week.settings, week.blogs, week.conn)
    error = info.value
    assert error.field == f"posts[{index}].category"
    assert error.line == text.splitlines().index(f"    category: {value}") + 1
    assert f"unknown category {value!r}" in error.message and str(summary.path) in error.message
    assert error.hint is not None and hint in error.hint
