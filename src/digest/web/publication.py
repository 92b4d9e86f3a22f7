"""The public publication: the home page, the archive, the feeds and the discovery files.

Nothing here is personal: no page carries a token, and every link is built from the current
DIGEST_BASE_URL, so the archive follows the site when it moves. Monthly editions live at
/archive/2026-11, beside the weekly issues in the archive list and the feeds; /archive/<n> is
for weekly issues only (202611 is a key, not an issue number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from digest.feeds.opml import export_opml
from digest.issue.monthly import MONTH
from digest.store.db import Connection
from digest.store.feeds import feed_states
from digest.store.images import EXTENSIONS, image_bytes
from digest.store.issues import ArchivedIssue, get_issue, get_monthly, list_issues, neighbours
from digest.store.posts import followed_since
from digest.web import discovery
from digest.web.feed import FeedEntry, atom_feed
from digest.web.issue_page import Neighbour, monthly_neighbours, neighbour, web_view
from digest.web.pages import Site

Around = tuple[tuple[int, str] | None, tuple[int, str] | None]
RECENT = 5  # past issues listed on the home page
ATOM_TYPE = "application/atom+xml; charset=utf-8"
# Entries per feed: each carries a whole issue, so the feed stays small; the archive and the
# sitemap list every issue.
FEED_ENTRIES = 20
CACHE = {"cache-control": "public, max-age=3600"}
# A thumbnail's name is a hash of its source URL, and a stored thumbnail is never replaced:
# mail clients and proxies may keep it for a year.
IMAGE_NAME = re.compile(r"([0-9a-f]{32})\.(jpg|png)")
IMAGE_CACHE = {"cache-control": "public, max-age=31536000, immutable"}


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
        cadence: str = "weekly",
    ) -> HTMLResponse:
        site = self.site
        issues = await site.db.run(lambda c: list_issues(c, kind="weekly")[:RECENT])
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
            cadence=cadence,
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

        def load(conn: Connection) -> tuple[ArchivedIssue | None, Around]:
            return get_issue(conn, number, kind="weekly"), neighbours(conn, number)

        issue, (before, after) = await self.site.db.run(load)
        if issue is None:
            return self.site.not_found("issue")
        base = self.site.settings.base_url
        return self._issue_page(issue, neighbour(before, base), neighbour(after, base))

    async def monthly_edition(self, request: Request) -> Response:
        month = request.path_params["month"]
        if not MONTH.fullmatch(month):
            return self.site.not_found("issue")

        def load(conn: Connection) -> tuple[ArchivedIssue | None, list[ArchivedIssue]]:
            return get_monthly(conn, month), list_issues(conn, kind="monthly")

        edition, editions = await self.site.db.run(load)
        if edition is None:
            return self.site.not_found("issue")
        base = self.site.settings.base_url
        return self._issue_page(edition, *monthly_neighbours(editions, month, base))

    def _issue_page(
        self,
        issue: ArchivedIssue,
        before: Neighbour | None,
        after: Neighbour | None,
    ) -> Response:
        base = self.site.settings.base_url
        return self.site.render(
            "issue.html",
            page=web_view(issue, self.site.blogs, base_url=base),
            previous=before,
            next=after,
            form_token=self.site.token_for("subscribe"),
        )

    async def image(self, request: Request) -> Response:
        """A post's thumbnail (digest/images.py), from the database, the same for everyone."""
        match = IMAGE_NAME.fullmatch(request.path_params["name"])
        if match is None:
            return self.site.not_found("image")
        key, ext = match[1], match[2]
        found = await self.site.db.run(lambda conn: image_bytes(conn, key))
        if found is None or EXTENSIONS.get(found[0]) != ext:
            return self.site.not_found("image")
        return Response(found[1], media_type=found[0], headers=IMAGE_CACHE)

    def _entries(
        self, issues: list[ArchivedIssue], categories: frozenset[str] | None = None
    ) -> list[FeedEntry]:
        site = self.site
        out: list[FeedEntry] = []
        template = site.env.get_template("issue_content.html")
        for issue in issues:
            if len(out) == FEED_ENTRIES:
                break
            page = web_view(
                issue, site.blogs, base_url=site.settings.base_url, categories=categories
            )
            if categories is not None and not page.view.categories and not page.view.archive:
                continue  # nothing of this category in that issue
            content = template.render(page=page, view=page.view)
            out.append(
                FeedEntry(page.url, issue.subject, page.published, page.description, content)
            )
        return out

    async def feed(self, request: Request) -> Response:
        site = self.site
        issues = await site.db.run(list_issues)
        body = atom_feed(
            self._entries(issues), site.blogs, base_url=site.settings.base_url, now=site.clock()
        )
        return Response(body, media_type=ATOM_TYPE)

    async def category_feed(self, request: Request) -> Response:
        site = self.site
        category = site.blogs.category(request.path_params["category"])
        if category is None:
            return site.not_found("feed")
        issues = await site.db.run(list_issues)
        body = atom_feed(
            self._entries(issues, frozenset({category.id})),
            site.blogs,
            base_url=site.settings.base_url,
            now=site.clock(),
            path=f"/feed/{category.id}.xml",
            title=f"{site.blogs.newsletter.title}: {category.title}",
            subtitle=category.description or None,
        )
        return Response(body, media_type=ATOM_TYPE)

    async def blogroll(self, request: Request) -> Response:
        site = self.site
        states = await site.db.run(feed_states)
        text = export_opml(
            site.blogs,
            states,
            now=site.clock(),
            commentary=True,
            owner_url=f"{site.settings.base_url}/",
        )
        return Response(text, media_type="text/x-opml; charset=utf-8", headers=CACHE)

    async def recommendations(self, request: Request) -> Response:
        site = self.site
        since = await site.db.run(followed_since)
        body = discovery.recommendations(site.blogs, since, now=site.clock())
        return Response(body, media_type="application/json", headers=CACHE)

    async def sitemap(self, request: Request) -> Response:
        issues = await self.site.db.run(list_issues)
        body = discovery.sitemap(issues, base_url=self.site.settings.base_url)
        return Response(body, media_type="application/xml; charset=utf-8", headers=CACHE)

    async def robots(self, request: Request) -> Response:
        text = discovery.robots(base_url=self.site.settings.base_url)
        return PlainTextResponse(text, headers=CACHE)
