"""OPML 2.0 import and export, the list format every feed reader speaks.

Export: one outline per category holding its blogs (xmlUrl is the feed we actually fetch, after
discovery and permanent moves). Import: new feeds are appended to blogs.yaml (comments and order
kept, ruamel round trip), checked against the blogs.yaml schema before the file is replaced.
"""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from digest.config import BlogsFile, slugify
from digest.errors import ConfigError
from digest.feeds.record import canonical_url
from digest.models import FeedState


@dataclass(slots=True)
class OpmlFeed:
    title: str
    xml_url: str
    html_url: str | None
    category: str | None  # the enclosing outline's text, if any


@dataclass(slots=True)
class ImportResult:
    added: list[tuple[str, str]] = field(default_factory=list)  # (blog id, category id)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (feed URL, why)


def export_opml(
    blogs: BlogsFile,
    states: dict[str, FeedState],
    *,
    now: datetime,
    commentary: bool = False,
    owner_url: str | None = None,
) -> str:
    """``commentary``: each blog's commentary as its ``description`` (the web's /blogroll.opml);
    ``owner_url``: the site publishing the list (OPML 2.0 ``ownerId``)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = blogs.newsletter.title
    ET.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    ET.SubElement(head, "ownerName").text = blogs.newsletter.curator
    if owner_url:
        ET.SubElement(head, "ownerId").text = owner_url
    body = ET.SubElement(root, "body")
    for category in blogs.categories:
        group = ET.SubElement(body, "outline", text=category.title, title=category.title)
        for blog in category.blogs:
            state = states.get(blog.id)
            # A blog that publishes by email has no feed to give a reader: its homepage only
            # (and never a feed it had before it moved to email: that state is stale).
            url = None if blog.email else (state.url if state else None) or blog.feed
            attrs = {"text": blog.name, "title": blog.name, "htmlUrl": blog.homepage}
            if url:
                attrs = {"type": "rss", **attrs, "xmlUrl": url}
            if commentary and blog.commentary:
                attrs["description"] = " ".join(blog.commentary.split())
            ET.SubElement(group, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def read_opml(data: bytes, *, path: str) -> list[OpmlFeed]:
    # OPML has no use for a DTD; refusing one rules out entity expansion attacks outright.
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise ConfigError(f"{path}: OPML with a DOCTYPE or entities is not accepted", path=path)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ConfigError(
            f"{path}: not valid OPML (XML error: {exc})",
            path=path,
            hint="export the list again from your feed reader",
        ) from None
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise ConfigError(f"{path}: not OPML (no <opml><body>)", path=path)
    out: list[OpmlFeed] = []

    def walk(node: ET.Element, category: str | None) -> None:
        for child in node.findall("outline"):
            xml_url = (child.get("xmlUrl") or "").strip()
            label = (child.get("title") or child.get("text") or "").strip()
            if xml_url:
                out.append(OpmlFeed(label or xml_url, xml_url, child.get("htmlUrl"), category))
            walk(child, category if xml_url else (label or category))

    walk(body, None)
    return out


def import_opml(
    blogs_path: Path,
    feeds: list[OpmlFeed],
    *,
    category: str | None = None,
    fetched: Mapping[str, str] | None = None,
) -> ImportResult:
    """Append the feeds blogs.yaml lacks; ``category`` (an id) overrides the OPML folders.

    ``fetched`` maps blog ids to the feed each is fetched from now (discovered from its
    homepage, or moved permanently): the URL an export wrote, so a round trip adds nothing.
    A feed whose htmlUrl is a blog's homepage is that blog too.
    """
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never re-wrap the curator's lines
    yaml.preserve_quotes = True  # "08:00" unquoted would read as a YAML 1.1 number
    doc: Any = yaml.load(blogs_path.read_text(encoding="utf-8"))
    result = ImportResult()
    categories: CommentedSeq = doc["categories"]
    known_feeds = {
        canonical_url(str(b["feed"])) for c in categories for b in c["blogs"] if b.get("feed")
    }
    ids = {str(b.get("id") or slugify(str(b["name"]))) for c in categories for b in c["blogs"]}
    # Only blogs still listed: a removed blog's feed state may linger in the database.
    found_feeds = {canonical_url(url): b for b, url in (fetched or {}).items() if b in ids}
    homepages = {
        canonical_url(str(b["homepage"])): str(b.get("id") or slugify(str(b["name"])))
        for c in categories
        for b in c["blogs"]
        if b.get("homepage")
    }
    if category is not None and not any(str(c["id"]) == category for c in categories):
        raise ConfigError(
            f"{blogs_path}: no category with id {category!r}",
            path=str(blogs_path),
            hint="use one of: " + ", ".join(str(c["id"]) for c in categories),
        )
    for feed in feeds:
        parts = urlsplit(feed.xml_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            result.skipped.append((feed.xml_url, "not an http(s) URL"))
            continue
        if canonical_url(feed.xml_url) in known_feeds:
            result.skipped.append((feed.xml_url, "already in blogs.yaml"))
            continue
        same = found_feeds.get(canonical_url(feed.xml_url))
        if same is not None:
            result.skipped.append((feed.xml_url, f"already in blogs.yaml: the feed of {same}"))
            continue
        same = homepages.get(canonical_url(feed.html_url)) if feed.html_url else None
        if same is not None:
            result.skipped.append((feed.xml_url, f"already in blogs.yaml: the homepage of {same}"))
            continue
        target = _category(categories, category or feed.category)
        blog_id = slugify(feed.title)
        n = 2
        while blog_id in ids:
            blog_id, n = f"{slugify(feed.title)}-{n}", n + 1
        entry = CommentedMap()
        entry["name"] = feed.title
        if blog_id != slugify(feed.title):
            entry["id"] = blog_id
        entry["homepage"] = feed.html_url or f"{parts.scheme}://{parts.netloc}/"
        entry["feed"] = feed.xml_url
        target["blogs"].append(entry)
        ids.add(blog_id)
        known_feeds.add(canonical_url(feed.xml_url))
        homepages.setdefault(canonical_url(str(entry["homepage"])), blog_id)
        result.added.append((blog_id, str(target["id"])))
    if not result.added:
        return result
    try:
        BlogsFile.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"the imported list would make blogs.yaml invalid at {where}: {first['msg']}",
            path=str(blogs_path),
            hint="fix the OPML entry (or import into an existing category with --category)",
        ) from None
    buffer = io.StringIO()
    yaml.dump(doc, buffer)
    tmp = blogs_path.with_name(blogs_path.name + ".tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, blogs_path)
    return result


def _category(categories: CommentedSeq, wanted: str | None) -> CommentedMap:
    label = (wanted or "imported").strip()
    for cat in categories:
        if label.casefold() in (str(cat["id"]).casefold(), str(cat.get("title", "")).casefold()):
            return cat  # type: ignore[no-any-return]
        if slugify(label) == str(cat["id"]):
            return cat  # type: ignore[no-any-return]
    new = CommentedMap()
    new["id"] = slugify(label)
    new["title"] = label
    new["blogs"] = CommentedSeq()
    categories.append(new)
    return new
