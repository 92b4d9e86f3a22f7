"""The draft of the next issue: an editable YAML file, ``drafts/<number>.yaml``.

The curator owns ``subject``, ``intro``, ``posts`` (order, ``note``, ``include``, titles) and
``archive_pick``; ``number``, ``since``, ``until`` and ``feed_health`` are written by digest. The
file is round-tripped with ruamel.yaml: a re-draft inserts the posts found since at the end of
their category and touches nothing else the curator wrote (comments, quoting, order).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from digest.config import BlogsFile, Settings
from digest.errors import DraftError
from digest.feeds.page import cache_ledes, with_ledes
from digest.files import OverBound, load_yaml, read_capped, write_hint
from digest.issue import rhythm, select
from digest.issue.validate import DraftFile, parse_ts_value, validate
from digest.models import Issue, IssuePost
from digest.store import feeds as store_feeds
from digest.store import inbound as store_inbound
from digest.store import issues as store_issues
from digest.store import posts as store_posts
from digest.store import runs as store_runs
from digest.store.db import Connection, ts

POST_KEYS = ("id", "title", "url", "blog", "category", "note", "include")

HEADER = """\
Issue {number} of {title}: edit this file, then `digest preview` (and `digest send`).
subject and intro (Markdown, the week's note) are yours to write.
posts: the order is the display order within each category. note: Markdown shown under the
  post. include: false leaves a post out; keep its entry (a deleted entry comes back on the
  next `digest draft`). Titles may be edited.
archive_pick: a post from the back catalogue or a highlight; replace it (title, url, blog) or
  set it to null.
number, since, until and feed_health are written by digest: edits there are ignored.
`digest draft` again adds posts found since at the end of their category, keeping your edits."""

TOO_BIG_HINT = (
    "a draft holds one week's posts, a few KB: move this file aside and run `digest draft` "
    "to write a fresh one"
)


@dataclass(slots=True)
class DraftSummary:
    path: Path
    number: int
    since: datetime
    until: datetime
    created: bool  # False: an existing draft was refreshed
    added: list[IssuePost]  # posts added by this run
    entries: int  # posts listed in the draft
    per_category: dict[str, int]  # included posts per category id, blogs.yaml order
    archive_pick: IssuePost | None
    health: list[select.HealthNote] = field(default_factory=list)
    skipped_weeks: int = 0

    @property
    def included(self) -> int:
        return sum(self.per_category.values())


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never re-wrap the curator's long lines
    yaml.preserve_quotes = True
    return yaml


def draft_path(settings: Settings, number: int) -> Path:
    return settings.drafts / f"{number}.yaml"


def current_draft(settings: Settings, conn: Connection) -> Path | None:
    """The draft of the next issue, if there is one."""
    path = draft_path(settings, store_issues.next_number(conn))
    return path if path.is_file() else None


def previous_cutoff(conn: Connection) -> tuple[datetime | None, int]:
    """(since of the next issue, quiet weeks rolled into it).

    A quiet week is skipped by keeping the draft (same number) for the next run: its window
    still starts where the last issue ended, so the skipped week's posts roll into it.
    """
    last = store_issues.last_issue(conn)
    number = store_issues.next_number(conn)
    return (None if last is None else last.until), store_runs.skipped_weeks(conn, number)


# --- reading ---------------------------------------------------------------------------------


def read_document(
    path: Path, *, missing: str = "no draft of the next issue", command: str = "digest draft"
) -> Any:
    """The draft's ruamel round-trip document (the weekly and the monthly draft alike)."""
    try:
        text = read_capped(path, hint=TOO_BIG_HINT)
        return load_yaml(_yaml(), text)
    except FileNotFoundError:
        raise DraftError(missing, path=str(path), hint=f"run `{command}` to create it") from None
    except OverBound as exc:
        raise DraftError(exc.message, path=str(path), line=exc.line, hint=exc.hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DraftError(f"cannot read: {exc}", path=str(path)) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.context_mark and exc.problem_mark:
            # the parser notices late: name where the construct began, often the edited line
            problem = f"{exc.context} from line {exc.context_mark.line + 1}: {exc.problem}"
        raise DraftError(
            f"not valid YAML: {problem}",
            path=str(path),
            line=mark.line + 1 if mark else None,
            hint="check the indentation and quoting around that line",
        ) from None


def _load(path: Path, blogs: BlogsFile, conn: Connection) -> DraftFile:
    doc = read_document(path)
    ids: list[str] = []
    if isinstance(doc, Mapping):
        nodes = doc.get("posts")
        nodes = [*(nodes if isinstance(nodes, list) else []), doc.get("archive_pick")]
        ids = [n["id"] for n in nodes if isinstance(n, Mapping) and isinstance(n.get("id"), str)]
    known = with_ledes(conn, blogs, store_posts.get_posts(conn, ids))  # excerpt: page
    return validate(doc, path=str(path), blogs=blogs, known=known)


def load_issue(settings: Settings, blogs: BlogsFile, conn: Connection) -> Issue:
    """The current draft as an Issue (included posts only), validated against blogs.yaml and
    the stored posts. DraftError, naming file, line and field, when it is broken or missing."""
    number = store_issues.next_number(conn)
    path = draft_path(settings, number)
    draft = _load(path, blogs, conn)
    if draft.number is not None and draft.number != number:
        raise DraftError(
            f"this draft is for issue {draft.number}, but the next issue is {number}",
            path=str(path),
            line=draft.lines.get("number"),
            field="number",
            hint="move the file aside and run `digest draft`",
        )
    _, skipped = previous_cutoff(conn)
    issue = Issue(
        number=number,
        subject=draft.subject,
        intro=draft.intro,
        since=draft.since,
        until=draft.until,
        posts=[p for p, included in draft.posts if included],
        archive_pick=draft.archive_pick,
        skipped_weeks=skipped,
    )
    frozen = [archived.content for archived in store_issues.list_issues(conn, kind="weekly")]
    issue.commentary = rhythm.commentary_for(issue, blogs, frozen)
    if blogs.newsletter.images == "cached":
        from digest.images import attach_thumbnails  # stored at draft time: no network here

        attach_thumbnails(issue, conn)
    return issue


def consume_draft(settings: Settings, number: int) -> None:
    """Move ``drafts/<n>.yaml`` to ``drafts/sent/`` once the issue is frozen: the curator's
    notes stay on disk, and the next `digest draft` starts afresh."""
    consume_file(settings, draft_path(settings, number))


def consume_file(settings: Settings, path: Path) -> None:
    """Move a draft that became an edition (weekly or monthly) to ``drafts/sent/``."""
    if not path.is_file():
        return
    target = settings.drafts / "sent" / path.name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    except OSError as exc:
        raise _write_error(target, exc) from None


# --- writing ---------------------------------------------------------------------------------


def draft_entry(post: IssuePost) -> CommentedMap:
    entry = CommentedMap()
    entry["id"] = post.id
    entry["title"] = post.title
    entry["url"] = post.url
    entry["blog"] = post.blog
    entry["category"] = post.category
    entry["note"] = post.note
    entry["include"] = True
    return entry


def _health_list(health: list[select.HealthNote]) -> CommentedSeq:
    return CommentedSeq(note.text for note in health)


def _new_document(
    number: int,
    window: select.Window,
    blogs: BlogsFile,
    posts: list[IssuePost],
    pick: IssuePost | None,
    health: list[select.HealthNote],
) -> CommentedMap:
    doc = CommentedMap()
    doc["number"] = number
    doc["since"] = ts(window.since)
    doc["until"] = ts(window.until)
    doc["subject"] = f"{blogs.newsletter.title} #{number}"
    doc["intro"] = ""
    doc["posts"] = CommentedSeq(draft_entry(p) for p in posts)
    doc["archive_pick"] = draft_entry(pick) if pick is not None else None
    doc["feed_health"] = _health_list(health)
    doc.yaml_set_start_comment(HEADER.format(number=number, title=blogs.newsletter.title))
    doc.yaml_set_comment_before_after_key(
        "feed_health", before="For you only, never in the email: how the feeds are doing."
    )
    return doc


def _write_error(path: Path, exc: OSError) -> DraftError:
    return DraftError(
        f"cannot write: {exc.strerror or exc}",
        path=str(path),
        hint=write_hint(exc, setting="DIGEST_DRAFTS"),
    )


def write_document(path: Path, doc: Any) -> None:
    buffer = StringIO()
    _yaml().dump(doc, buffer)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
        os.replace(tmp, path)  # an editor or a crash never sees half a draft
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # half a draft left by a full disk
        raise _write_error(path, exc) from None


def set_readonly(doc: CommentedMap, key: str, value: Any, *, after: str | None = None) -> None:
    if key in doc:
        doc[key] = value
    else:
        keys = list(doc)
        position = keys.index(after) + 1 if after in keys else len(keys)
        doc.insert(position, key, value)


def add_entries(doc: CommentedMap, posts: list[IssuePost], blogs: BlogsFile) -> list[IssuePost]:
    """Add to the draft's ``posts`` those of ``posts`` it does not list yet, each at the end of
    its category (blogs.yaml order), touching nothing the curator wrote; returns them."""
    entries = doc.get("posts")
    if not isinstance(entries, CommentedSeq):  # `posts:` left empty by the curator
        entries = CommentedSeq()
        set_readonly(doc, "posts", entries, after="intro")
    have = {str(e.get("id")) for e in entries if isinstance(e, Mapping)}
    added = [p for p in posts if p.id not in have]
    order = [c.id for c in blogs.categories]
    for post in added:
        categories = [str(e.get("category")) for e in entries]
        entries.insert(select.insertion_index(categories, post.category, order), draft_entry(post))
    return added


def _image_health(
    settings: Settings, blogs: BlogsFile, conn: Connection, ids: list[str], now: datetime
) -> list[select.HealthNote]:
    """newsletter.images: cached: fetch the thumbnails of the draft's posts now (the step that
    already uses the network: preview and send stay offline); say which were skipped."""
    if blogs.newsletter.images != "cached":
        return []
    from digest.images import cache_thumbnails

    posts = store_posts.get_posts(conn, ids)
    notes = []
    for skipped in cache_thumbnails(settings, conn, posts.values(), now=now):
        blog = blogs.blog(skipped.post.blog)
        name = blog.name if blog else skipped.post.blog
        notes.append(
            select.HealthNote(
                skipped.post.blog,
                "image",
                f"{name}: no thumbnail for \u201c{skipped.post.title}\u201d: {skipped.reason}",
            )
        )
    return notes


def refresh_draft(
    settings: Settings, blogs: BlogsFile, conn: Connection, *, now: datetime
) -> DraftSummary:
    """Create the draft of the next issue, or add the posts found since to the existing one.

    No fetching here: `digest draft` gathers first. A broken draft is reported, never
    overwritten: the curator's edits are worth more than the new posts.
    """
    number = store_issues.next_number(conn)
    path = draft_path(settings, number)
    existing = _load(path, blogs, conn) if path.exists() else None
    previous_until, skipped = previous_cutoff(conn)
    window = select.issue_window(
        previous_until=previous_until,
        draft_since=existing.since if existing else None,
        now=max(now, existing.until - select.STORED_RESOLUTION) if existing else now,
        lookback_days=blogs.newsletter.lookback_days,
    )
    featured = store_issues.featured_urls(conn)
    seen = {select.same_url(u) for u in featured}
    fresh = [
        p
        for p in select.arrange(store_posts.posts_between(conn, window.since, window.until), blogs)
        if select.same_url(p.url) not in seen  # never repeat what an issue already featured
    ]
    health = select.feed_health(
        blogs,
        states=store_feeds.feed_states(conn),
        newest={b.id: store_posts.newest_date(conn, b.id) for b in blogs.blogs()},
        duplicates=store_posts.duplicates_between(conn, window.since, window.until),
        now=now,
        dormant_days=blogs.newsletter.dormant_days,
        mail=store_inbound.problems_since(conn, window.since),  # blogs that publish by email
    )

    if existing is None:
        highlights, back = select.archive_candidates(
            blogs,
            {b.id: store_posts.catalogue(conn, b.id) for b in blogs.blogs()},
            featured=featured,
            exclude=[p.url for p in fresh],
        )
        pick = select.pick_archive(number, highlights, back)
        ids = [p.id for p in fresh] + ([pick.id] if pick else [])
        health += _image_health(settings, blogs, conn, ids, now)
        health += cache_ledes(settings, blogs, conn, ids, now=now)
        doc = _new_document(number, window, blogs, fresh, pick, health)
        added = fresh
    else:
        doc = read_document(path)
        added = add_entries(doc, fresh, blogs)
        ids = [p.id for p in fresh] + [p.id for p, included in existing.posts if included]
        if existing.archive_pick is not None:
            ids.append(existing.archive_pick.id)
        health += _image_health(settings, blogs, conn, list(dict.fromkeys(ids)), now)
        left_out = {p.id for p, included in existing.posts if not included}
        wanted = [i for i in dict.fromkeys(ids) if i not in left_out]
        health += cache_ledes(settings, blogs, conn, wanted, now=now)
        set_readonly(doc, "until", ts(window.until), after="since")
        set_readonly(doc, "feed_health", _health_list(health))
    write_document(path, doc)

    draft = _load(path, blogs, conn)
    per_category = {c.id: 0 for c in blogs.categories}
    for post, included in draft.posts:
        if included:
            per_category[post.category] = per_category.get(post.category, 0) + 1
    return DraftSummary(
        path=path,
        number=number,
        since=draft.since,
        until=draft.until,
        created=existing is None,
        added=added,
        entries=len(draft.posts),
        per_category=per_category,
        archive_pick=draft.archive_pick,
        health=health,
        skipped_weeks=skipped,
    )


__all__ = [
    "DraftSummary",
    "consume_draft",
    "consume_file",
    "current_draft",
    "draft_entry",
    "draft_path",
    "load_issue",
    "parse_ts_value",
    "read_document",
    "refresh_draft",
    "set_readonly",
    "write_document",
]
