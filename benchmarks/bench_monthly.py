"""Composing the monthly edition from 5 weekly issues, beside rendering one weekly issue.

Five weekly issues of 30 posts each (the real fixture feeds' titles and excerpts, as
bench_render.py builds them, a note on one post in five), sent in November and frozen in a real
SQLite file with their short links and click counts (newsletter.click_counts on). Measured:

- compose: issue/monthly.py's ranking and per-category cap on the five Issues (pure);
- draft: what `digest draft --monthly` does after reading its arguments: read the month's
  issues back from the database, the clicks, compose, write drafts/monthly-2026-11.yaml with
  ruamel, read it back and validate it against blogs.yaml and the stored posts;

and, as the reference in the same run, rendering one of the weekly issues (Jinja2 + premailer),
the step every send already pays. Target: the draft in under 200 ms.

    python benchmarks/bench_monthly.py
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.config import BlogsFile, Settings, load_blogs
from digest.issue.monthly import compose, draft_path, refresh_monthly
from digest.models import Issue, Post
from digest.render import render_issue
from digest.store import connect, transaction
from digest.store import posts as posts_store
from digest.store.clicks import save_links
from digest.store.db import Connection
from digest.store.issues import freeze_issue, set_issue_status

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import best_of, peak_rss_mb, ratio, table  # noqa: E402
from bench_render import BASE, thirty_post_issue  # noqa: E402

MONDAYS = [datetime(2026, 11, d, 7, 0, tzinfo=UTC) for d in (2, 9, 16, 23, 30)]
TARGET = 0.200


def weekly_issues() -> list[Issue]:
    """Five different 30-post issues: the same shape, their own ids, URLs and notes."""
    template = thirty_post_issue()
    weeks = []
    for w, sent in enumerate(MONDAYS, start=1):
        posts = [
            p.model_copy(
                update={
                    "id": f"{p.id}-w{w}",
                    "url": f"{p.url.rstrip('/')}/w{w}",
                    "note": "A keeper, the curator says." if (i + w) % 5 == 0 else "",
                }
            )
            for i, p in enumerate(template.posts)
        ]
        weeks.append(
            template.model_copy(
                update={
                    "number": w,
                    "subject": f"Blogs I like #{w}",
                    "since": sent - timedelta(weeks=1),
                    "until": sent,
                    "posts": posts,
                    "archive_pick": None,
                }
            )
        )
    return weeks


def store(conn: Connection, weeks: list[Issue]) -> None:
    """The weeks as sending left them: posts stored, issues frozen and sent, links, clicks."""
    with transaction(conn):
        for week, sent in zip(weeks, MONDAYS, strict=True):
            for p in week.posts:
                posts_store.insert_post(
                    conn,
                    Post(
                        id=p.id,
                        blog=p.blog,
                        title=p.title,
                        url=p.url,
                        author=p.author,
                        published=p.date,
                        first_seen=sent - timedelta(days=1),
                        excerpt=p.excerpt,
                    ),
                    key=p.id,
                    link_title=None,
                    canonical=p.url,
                    backlog=False,
                    duplicate_of=None,
                )
            freeze_issue(conn, week, html="<p>sent</p>", text="sent", status="sending", now=sent)
            set_issue_status(conn, week.number, "sent", sent_at=sent + timedelta(minutes=5))
            save_links(conn, week.number, [(p.url, p.id, p.blog) for p in week.posts])
            conn.executemany(
                "INSERT INTO clicks (issue, n, count) VALUES (?, ?, ?)",
                [(week.number, n, (n * 7 + week.number) % 23) for n in range(1, 31)],
            )


def with_click_counts(tmp: Path) -> BlogsFile:
    path = tmp / "blogs.yaml"
    text = (ROOT / "blogs.yaml").read_text(encoding="utf-8")
    path.write_text(text.replace("newsletter:\n", "newsletter:\n  click_counts: true\n", 1))
    blogs = load_blogs(path)
    assert blogs.newsletter.click_counts
    return blogs


def main() -> None:
    weeks = weekly_issues()
    with tempfile.TemporaryDirectory(prefix="bench-monthly-") as folder:
        tmp = Path(folder)
        blogs = with_click_counts(tmp)
        settings = Settings(base_url=BASE, drafts=tmp / "drafts", outbox=tmp / "outbox")
        conn = connect(tmp / "digest.db")
        try:
            store(conn, weeks)
            clicks = {p.id: 1 + i % 9 for w in weeks for i, p in enumerate(w.posts)}
            compose_s = best_of(50, lambda: compose(weeks, blogs, clicks=clicks))

            def draft() -> None:
                draft_path(settings, "2026-11").unlink(missing_ok=True)  # a fresh draft each time
                summary = refresh_monthly(settings, blogs, conn, month="2026-11")
                assert summary.path is not None and summary.weekly == [1, 2, 3, 4, 5]

            draft()  # warm up: imports, the YAML machinery, SQLite's page cache
            draft_s = best_of(10, draft)
            summary = refresh_monthly(settings, blogs, conn, month="2026-11")
        finally:
            conn.close()

    render_issue(weeks[0], blogs, base_url=BASE)  # warm up: templates compiled
    render_s = best_of(10, lambda: render_issue(weeks[0], blogs, base_url=BASE))

    def verdict(value: float) -> str:
        return "ok" if value < TARGET else "MISSED"

    table(
        "the monthly edition from 5 weekly issues of 30 posts (digest) vs rendering one weekly "
        "issue (reference)",
        [
            (
                "compose (rank, cap per category)",
                f"{compose_s * 1e3:.2f} ms",
                f"{render_s * 1e3:.1f} ms",
                ratio(render_s, compose_s),
                f"< 200 ms: {verdict(compose_s)}",
            ),
            (
                "digest draft --monthly (store, clicks, compose, YAML, validate)",
                f"{draft_s * 1e3:.1f} ms",
                f"{render_s * 1e3:.1f} ms",
                ratio(render_s, draft_s),
                f"< 200 ms: {verdict(draft_s)}",
            ),
            (
                "posts in the edition",
                f"{summary.included} of {sum(len(w.posts) for w in weeks)}",
                "-",
                "-",
                f"<= {blogs.newsletter.monthly.max_per_category} per category",
            ),
            ("peak RSS", f"{peak_rss_mb():.0f} MB", "-", "-", "-"),
        ],
    )


if __name__ == "__main__":
    main()
