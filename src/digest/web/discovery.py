"""How other sites and crawlers find what the publication holds and recommends.

/.well-known/recommendations.json is Ghost's format (TryGhost/Ghost, recommendations'
WellknownService): a JSON array of ``{url, reason, created_at, updated_at}``, ``reason``
left out when there is none. The OPML blogroll is feeds/opml.py's writer; /sitemap.xml follows
sitemaps.org 0.9; /robots.txt keeps crawlers off the personal token paths.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from digest.config import BlogsFile
from digest.store.issues import ArchivedIssue

SITEMAP = "http://www.sitemaps.org/schemas/sitemap/0.9"
# Behind a personal token; and the short links of click counts, which a crawler would count.
PRIVATE = ("/confirm/", "/unsubscribe/", "/preferences/", "/r/")


def _iso(moment: datetime) -> str:
    """Ghost's stamps: JavaScript's toISOString(), milliseconds and Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def recommendations(blogs: BlogsFile, since: dict[str, datetime], *, now: datetime) -> bytes:
    """The curated blogs; ``since``: when digest started following each (else ``now``)."""
    out: list[dict[str, str]] = []
    for blog in blogs.blogs():
        stamp = _iso(since.get(blog.id, now))
        item = {"url": blog.homepage}
        reason = " ".join((blog.tagline or blog.commentary).split())
        if reason:
            item["reason"] = reason
        out.append({**item, "created_at": stamp, "updated_at": stamp})
    return json.dumps(out, ensure_ascii=False, indent=2).encode() + b"\n"


def sitemap(issues: list[ArchivedIssue], *, base_url: str) -> bytes:
    ET.register_namespace("", SITEMAP)
    root = ET.Element(f"{{{SITEMAP}}}urlset")

    def url(loc: str, modified: datetime | None) -> None:
        node = ET.SubElement(root, f"{{{SITEMAP}}}url")
        ET.SubElement(node, f"{{{SITEMAP}}}loc").text = loc
        if modified is not None:
            ET.SubElement(node, f"{{{SITEMAP}}}lastmod").text = modified.astimezone(UTC).strftime(
                "%Y-%m-%d"
            )

    newest = max((i.sent_at or i.created_at for i in issues), default=None)
    url(f"{base_url}/", newest)
    url(f"{base_url}/archive", newest)
    for issue in issues:
        url(f"{base_url}/archive/{issue.key}", issue.sent_at or issue.created_at)
    body: bytes = ET.tostring(root, encoding="utf-8")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def robots(*, base_url: str) -> str:
    prefix = urlsplit(base_url).path.rstrip("/")  # a site served under a path keeps it
    lines = ["User-agent: *", *(f"Disallow: {prefix}{p}" for p in PRIVATE), f"Allow: {prefix}/"]
    return "\n".join([*lines, "", f"Sitemap: {base_url}/sitemap.xml", ""])
