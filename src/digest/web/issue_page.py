"""An archived issue for the web: the email's own view model, read back from the frozen content.

The page is built from the Issue kept in the ``issues`` table, never from the frozen mail HTML:
that copy greets a subscriber, carries their links and keeps the base URL of the day it was sent.
The grouping (categories, blocks, commentary as the issue showed it, "In this issue") is
render/view.py's, called as the email calls it but with every post in full, and with links from
the current DIGEST_BASE_URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from digest.config import BlogsFile
from digest.issue.monthly import label
from digest.render import markdown
from digest.render.text import shorten
from digest.render.view import IssueView, build_view
from digest.store.issues import ArchivedIssue

DESCRIPTION_CHARS = 200  # OpenGraph and feed summaries: a sentence or two


@dataclass(frozen=True, slots=True)
class Neighbour:
    number: int
    subject: str
    url: str
    text: str  # the link's words: "Issue 12: SUBJECT", or "October 2026" for a monthly edition


@dataclass(frozen=True, slots=True)
class IssuePage:
    view: IssueView
    published: datetime
    url: str  # canonical
    description: str


def web_view(
    issue: ArchivedIssue,
    blogs: BlogsFile,
    *,
    base_url: str,
    categories: frozenset[str] | None = None,
) -> IssuePage:
    base = base_url.rstrip("/")
    view = build_view(issue.content, blogs, base_url=base, categories=categories)
    return IssuePage(
        view=view,
        published=issue.sent_at or issue.created_at,
        url=f"{base}/archive/{issue.key}",
        description=describe(view, blogs),
    )


def describe(view: IssueView, blogs: BlogsFile) -> str:
    """One or two sentences for OpenGraph, Twitter cards and feed summaries: never empty."""
    text = markdown.to_plain(view.intro) or view.preheader
    return shorten(text or blogs.newsletter.description or view.subject, DESCRIPTION_CHARS)


def neighbour(found: tuple[int, str] | None, base_url: str) -> Neighbour | None:
    """A weekly issue's neighbour, from store.issues.neighbours."""
    if found is None:
        return None
    number, subject = found
    url = f"{base_url.rstrip('/')}/archive/{number}"
    return Neighbour(number, subject, url, f"Issue {number}: {subject}")


def monthly_neighbours(
    editions: Sequence[ArchivedIssue], month: str, base_url: str
) -> tuple[Neighbour | None, Neighbour | None]:
    """The monthly editions just before and after ``month``, by month (never a weekly issue:
    "Issue 202611" would be no name at all). Named by their month; a subject the curator wrote
    that does not name the month is shown beside it."""
    months = sorted((e for e in editions if e.month is not None), key=lambda e: str(e.month))
    before = [e for e in months if str(e.month) < month]
    after = [e for e in months if str(e.month) > month]
    base = base_url.rstrip("/")

    def link(edition: ArchivedIssue) -> Neighbour:
        name = label(str(edition.month))
        text = name if name in edition.subject else f"{name}: {edition.subject}"
        return Neighbour(edition.number, edition.subject, f"{base}/archive/{edition.month}", text)

    return (link(before[-1]) if before else None, link(after[0]) if after else None)
