"""The public publication: the home page, the archive, the feeds and the discovery files.

Nothing here is personal: no page carries a token, and every link is built from the current
DIGEST_BASE_URL, so the archive follows the site when it moves.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from digest.store.issues import ArchivedIssue, get_issue, list_issues
from digest.web.feed import atom_feed
from digest.web.pages import Site

# The stored issue is premailer output: inline styles only, images from anywhere over https.
ISSUE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)
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
        issues = await self.site.db.run(lambda c: list_issues(c)[:RECENT])
        return self.site.render(
            "home.html",
            status,
            issues=issues,
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
        issue: ArchivedIssue | None = await self.site.db.run(lambda c: get_issue(c, number))
        if issue is None:
            return self.site.not_found("issue")
        # The stored web copy, rendered when sending started (see the interfaces file).
        return HTMLResponse(issue.html, headers={"content-security-policy": ISSUE_CSP})

    async def feed(self, request: Request) -> Response:
        site = self.site
        issues = await site.db.run(list_issues)
        body = atom_feed(issues, site.blogs, base_url=site.settings.base_url, now=site.clock())
        return Response(body, media_type="application/atom+xml; charset=utf-8")
