"""/feed.xml: the archive as an Atom feed (RFC 4287)."""

from __future__ import annotations

from datetime import datetime
from html import escape
from xml.etree import ElementTree as ET

from digest.config import BlogsFile
from digest.store.db import ts
from digest.store.issues import ArchivedIssue

ATOM = "http://www.w3.org/2005/Atom"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    element.text = text
    return element


def _summary_html(issue: ArchivedIssue, blogs: BlogsFile) -> str:
    items = []
    for post in issue.content.posts:
        blog = blogs.blog(post.blog)
        by = f" ({escape(blog.name)})" if blog else ""
        items.append(f'<li><a href="{escape(post.url)}">{escape(post.title)}</a>{by}</li>')
    return f"<ul>{''.join(items)}</ul>"


def atom_feed(
    issues: list[ArchivedIssue], blogs: BlogsFile, *, base_url: str, now: datetime
) -> bytes:
    ET.register_namespace("", ATOM)
    newsletter = blogs.newsletter
    root = ET.Element(f"{{{ATOM}}}feed")
    _sub(root, "id", f"{base_url}/")
    _sub(root, "title", newsletter.title)
    if newsletter.description:
        _sub(root, "subtitle", newsletter.description)
    stamps = [i.sent_at or i.created_at for i in issues]
    _sub(root, "updated", ts(max(stamps) if stamps else now))
    author = _sub(root, "author")
    _sub(author, "name", newsletter.curator)
    _sub(root, "link", rel="self", href=f"{base_url}/feed.xml")
    _sub(root, "link", rel="alternate", type="text/html", href=f"{base_url}/archive")
    for issue in issues:
        url = f"{base_url}/archive/{issue.number}"
        entry = _sub(root, "entry")
        _sub(entry, "id", url)
        _sub(entry, "title", issue.subject)
        _sub(entry, "updated", ts(issue.sent_at or issue.created_at))
        _sub(entry, "published", ts(issue.sent_at or issue.created_at))
        _sub(entry, "link", rel="alternate", type="text/html", href=url)
        _sub(entry, "summary", _summary_html(issue, blogs), type="html")
    body: bytes = ET.tostring(root, encoding="utf-8")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body
