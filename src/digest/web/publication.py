"""The public publication: the home page, the archive, the feeds and the discovery files.

Nothing here is personal: no page carries a token, and every link is built from the current
DIGEST_BASE_URL, so the archive follows the site when it moves.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.store.issues import ArchivedIssue, get_issue, list_issues, neighbours
from digest.web.feed import atom_feed
from digest.web.issue_page import neighbour, web_view
from digest.web.pages import Site

Around = tuple[tuple[int, str] | None, tuple[int, str] | None]
RECENT = 5  # past issues listed on the home page


@dataclass
class Publication:
    site: Site

    async def home_page(
        self,
        *,
        status: int = 200,
        error: str | None = None,
        email: str = "",
        name: str = "",
        chosen: set[str] | None = None,
    ) -> HTMLResponse:
        site = self.site
        issues = await site.db.run(lambda c: list_issues(c)[:RECENT])
        base = site.settings.base_url
        latest = web_view(issues[0], site.blogs, base_url=base) if issues else None
        return self.site.render(
            "home.html",
            status,
            issues=issues,
            latest=latest,
            blog_count=sum(len(c.blogs) for c in site.blogs.categories),
            error=error,
            email=email,
            name=name,
            chosen=chosen if chosen is not None else {c.id for c in self.site.blogs.categories},
            form_token=self.site.token_for("subscribe"),
        )

    async def home(self, request: Request) -> Response:
        return await self.home_page()

    async def archive(self, request: Request) -> Response:
        issues = await self.site.db.run(list_issues)
        return self.site.render("archive.html", issues=issues)

    async def archived_issue(self, request: Request) -> Response:
        number = request.path_params["number"]
        if number >= 2**63:  # past SQLite's INTEGER: no such issue (not an OverflowError)
            return self.site.not_found("issue")

        def load(conn: sqlite3.Connection) -> tuple[ArchivedIssue | None, Around]:
            return get_issue(conn, number), neighbours(conn, number)

        issue, (before, after) = await self.site.db.run(load)
        if issue is None:
            return self.site.not_found("issue")
        base = self.site.settings.base_url
        return self.site.render(
            "issue.html",
            page=web_view(issue, self.site.blogs, base_url=base),
            previous=neighbour(before, base),
            next=neighbour(after, base),
            form_token=self.site.token_for("subscribe"),
        )

    async def feed(self, request: Request) -> Response:
        site = self.site
        issues = await site.db.run(list_issues)
        body = atom_feed(issues, site.blogs, base_url=site.settings.base_url, now=site.clock())
        return Response(body, media_type="application/atom+xml; charset=utf-8")
