"""Click counts (newsletter.click_counts): the links of each edition and how often each was
followed. Counts only: nothing here can tell who clicked, or when."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from digest.store.db import Connection, select_in, transaction


@dataclass(frozen=True, slots=True)
class LinkCount:
    """One short link of an edition and the clicks it had."""

    n: int
    url: str
    post_id: str | None
    blog: str | None
    clicks: int


def save_links(
    conn: Connection, issue: int, targets: Iterable[tuple[str, str | None, str | None]]
) -> int:
    """Store the edition's links (url, post_id, blog) as n = 1, 2, ...; inside the transaction
    that freezes it, so an edition is never sent without its map. Returns how many."""
    rows = [(issue, n, url, post, blog) for n, (url, post, blog) in enumerate(targets, start=1)]
    conn.executemany(
        "INSERT INTO links (issue, n, url, post_id, blog) VALUES (?, ?, ?, ?, ?)", rows
    )
    return len(rows)


def links(conn: Connection, issue: int) -> dict[int, str]:
    """{n: target URL} of ``issue``; empty when it was frozen with click counts off."""
    rows = conn.execute("SELECT n, url FROM links WHERE issue = ? ORDER BY n", (issue,))
    return {int(n): str(url) for n, url in rows}


def add_clicks(conn: Connection, counts: Mapping[tuple[int, int], int]) -> None:
    """Add ``{(issue, n): clicks}`` to the stored counts, in one transaction. Additive, so
    several web servers on one PostgreSQL add up; in key order, so two never deadlock."""
    rows = [(issue, n, count) for (issue, n), count in sorted(counts.items()) if count > 0]
    if not rows:
        return
    with transaction(conn):
        conn.executemany(
            "INSERT INTO clicks (issue, n, count) VALUES (?, ?, ?)"
            " ON CONFLICT (issue, n) DO UPDATE SET count = clicks.count + excluded.count",
            rows,
        )


def link_counts(conn: Connection, issue: int) -> list[LinkCount]:
    """Every link of ``issue`` with its clicks (0 when never followed), in link order."""
    rows = conn.execute(
        "SELECT l.n, l.url, l.post_id, l.blog, COALESCE(c.count, 0) FROM links l"
        " LEFT JOIN clicks c ON c.issue = l.issue AND c.n = l.n"
        " WHERE l.issue = ? ORDER BY l.n",
        (issue,),
    )
    return [LinkCount(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in rows]


def counted_issues(conn: Connection, limit: int) -> list[int]:
    """The ``limit`` latest editions frozen with click counts on, newest first (by the day
    each went out: a monthly edition's key 202611 is no later than issue 12)."""
    rows = conn.execute(
        "SELECT i.number FROM issues i WHERE EXISTS"
        " (SELECT 1 FROM links l WHERE l.issue = i.number)"
        " ORDER BY COALESCE(i.sent_at, i.created_at) DESC, i.number DESC LIMIT ?",
        (limit,),
    )
    return [int(r[0]) for r in rows]


def blog_clicks(conn: Connection, issues: Sequence[int]) -> dict[str, int]:
    """Clicks per blog over ``issues`` (its homepage, its posts, its "more" links)."""
    return _clicks_by(conn, "blog", issues)


def post_clicks(conn: Connection, issues: Sequence[int]) -> dict[str, int]:
    """Clicks per post id over ``issues`` (every link that leads to the post counts)."""
    return _clicks_by(conn, "post_id", issues)


def _clicks_by(conn: Connection, column: str, issues: Sequence[int]) -> dict[str, int]:
    """Clicks summed by one of the links' columns (``blog`` or ``post_id``) over ``issues``;
    summed again here, since select_in may split the issues over several queries."""
    assert column in ("blog", "post_id")
    found: dict[str, int] = {}
    rows = select_in(
        conn,
        f"SELECT l.{column}, SUM(c.count) FROM links l JOIN clicks c"
        " ON c.issue = l.issue AND c.n = l.n"
        f" WHERE l.{column} IS NOT NULL AND l.issue IN ({{marks}}) GROUP BY l.{column}",
        list(issues),
    )
    for key, count in rows:
        found[key] = found.get(key, 0) + int(count)
    return found


def top_posts(conn: Connection, issue: int, limit: int) -> list[tuple[str, int]]:
    """The ``limit`` most clicked posts of ``issue`` as (post_id, clicks), most first; posts
    never clicked are left out. Ties go by post id, so the order is stable."""
    ranked = sorted(post_clicks(conn, [issue]).items(), key=lambda item: (-item[1], item[0]))
    return [(post_id, count) for post_id, count in ranked if count > 0][:limit]
