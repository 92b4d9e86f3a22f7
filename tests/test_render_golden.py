"""Golden files: the HTML and text of a fixed issue built from the shared fixture feeds.

A change to the templates, the CSS or the text layout shows up here as a diff to review.
Refresh after an intended change with:

    DIGEST_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render_golden.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from digest.issue.draft import load_issue, refresh_draft
from digest.models import Issue
from digest.render import render_issue
from plugins.drafting import NOW, Week

GOLDEN = Path(__file__).resolve().parent / "golden"
BASE = "https://digest.example.org"
TOKEN = "T" * 43
# Read at import: the autouse fixture in conftest.py clears DIGEST_* before each test runs.
UPDATE = bool(os.environ.get("DIGEST_UPDATE_GOLDEN"))


def fixed_issue(week: Week) -> Issue:
    """The fixture feeds' week, drafted, with the curator's usual edits."""
    path = refresh_draft(week.settings, week.blogs, week.conn, now=NOW).path
    text = path.read_text()
    text = text.replace(
        "subject: 'Blogs I like #1'", "subject: 'Blogs I like #1: latents and logs'"
    )
    text = text.replace(
        "intro: ''",
        "intro: |\n  Two weeks of *diffusion* reading, and [Hundred Rabbits](https://100r.co/)"
        " logging their year.\n\n  Enjoy.\n",
    )
    text = re.sub(
        r"(title: Generative modelling in latent space\n(?:    .*\n)*?    note: )''",
        r"\1'The **one** to read first.'",
        text,
    )
    path.write_text(text)
    return load_issue(week.settings, week.blogs, week.conn)


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"{path} is missing: run with DIGEST_UPDATE_GOLDEN=1 and review the file")
    assert actual == path.read_text(encoding="utf-8"), (
        f"{name} differs from the golden file; if intended, refresh with DIGEST_UPDATE_GOLDEN=1"
    )


def test_issue_html_and_text_match_the_golden_files(week: Week) -> None:
    issue = fixed_issue(week)
    assert issue.posts[0].note == "" and any(p.note for p in issue.posts)
    rendered = render_issue(issue, week.blogs, base_url=BASE)
    html, text = rendered.fill(
        unsubscribe_url=f"{BASE}/unsubscribe/{TOKEN}",
        preferences_url=f"{BASE}/preferences/{TOKEN}",
        web_url=f"{BASE}/archive/1",
        name="Zo\u00eb",
    )
    check_golden("issue.html", html)
    check_golden("issue.txt", text)


def test_a_category_variant_matches_its_golden_file(week: Week) -> None:
    issue = fixed_issue(week)
    rendered = render_issue(issue, week.blogs, base_url=BASE, categories=frozenset({"music"}))
    _, text = rendered.fill(
        unsubscribe_url=f"{BASE}/unsubscribe/{TOKEN}",
        preferences_url=f"{BASE}/preferences/{TOKEN}",
        web_url=f"{BASE}/archive/1",
        name=None,
    )
    check_golden("issue-music.txt", text)
