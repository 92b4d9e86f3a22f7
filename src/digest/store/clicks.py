"""Click counts (newsletter.click_counts): the links of each edition and how often each was
followed. Counts only: nothing here can tell who clicked."""

from __future__ import annotations

from collections.abc import Sequence

from digest.store.db import Connection, select_in


def post_clicks(conn: Connection, issues: Sequence[int]) -> dict[str, int]:
    """Clicks per post id over ``issues`` (every link that leads to the post counts)."""
    if not issues:
        return {}
    found: dict[str, int] = {}
    rows = select_in(
        conn,
        "SELECT l.post_id, SUM(c.count) FROM links l JOIN clicks c"
        " ON c.issue = l.issue AND c.n = l.n"
        " WHERE l.post_id IS NOT NULL AND l.issue IN ({marks}) GROUP BY l.post_id",
        list(issues),
    )
    for post_id, count in rows:
        found[post_id] = found.get(post_id, 0) + int(count)
    return found


def top_posts(conn: Connection, issue: int, limit: int) -> list[tuple[str, int]]:
    """The ``limit`` most clicked posts of ``issue`` as (post_id, clicks), most first; posts
    never clicked are left out. Ties go by post id, so the order is stable."""
    ranked = sorted(post_clicks(conn, [issue]).items(), key=lambda item: (-item[1], item[0]))
    return [(post_id, count) for post_id, count in ranked if count > 0][:limit]
