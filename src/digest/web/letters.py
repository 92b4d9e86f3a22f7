"""BASE/letters/<id>: the archived copy of a newsletter that has no web copy of its own.

A letter from a blog that publishes by email becomes a post; when the mail links no "view
online" page (nor a canonical or Archived-At one), the post's URL is this page. The HTML was
sanitised on arrival (inbound/html.py: an allow-list, no scripts, forms, images or styles), and
the site's Content-Security-Policy still applies on top, so even a sanitiser bug could neither
run a script nor load a tracking pixel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from digest.store.inbound import letter_html
from digest.web.pages import Site

LETTER_ID = re.compile(r"[0-9a-f]{64}")  # inbound_mail.id: a sha256
CACHE = {"cache-control": "public, max-age=3600"}


@dataclass
class Letters:
    site: Site

    async def letter(self, request: Request) -> Response:
        site = self.site
        letter_id = str(request.path_params.get("id", ""))
        if not LETTER_ID.fullmatch(letter_id):
            return site.not_found("letter")
        found = await site.db.run(lambda c: letter_html(c, letter_id))
        blog = site.blogs.blog(found[0].blog or "") if found else None
        if found is None or blog is None:  # a blog removed from blogs.yaml takes its letters
            return site.not_found("letter")
        mail, html = found
        return site.render(
            "letter.html",
            200,
            CACHE,
            subject=mail.subject or "(no subject)",
            blog=blog,
            received=mail.received_at,
            body=Markup(html),  # noqa: S704 - sanitised on arrival (inbound/html.py)
        )
