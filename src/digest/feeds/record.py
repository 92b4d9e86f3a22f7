"""Recording parsed entries as posts: identity, GUID rewrites, dates, back catalogue, duplicates.

REFERENCE.md section 2:
- A post's identity within a blog is its key (guid, else link, else a hash of title and date);
  its id, ``<blog>-<8 hex of sha1(key)>``, never changes once given (drafts refer to it).
- A GUID rewrite (an http -> https move, a new guid scheme) must not look like new posts. A new
  key whose (normalised link, title) matches a known post *whose old key has left the feed* is
  that post, re-keyed. Link alone must never merge: many XXIIVV items share one link, and some
  share link and title too, which is why the old key must have vanished.
- Dates: UTC; a claimed date after first sight is clamped to first_seen.
- Back catalogue: a blog's first run records everything as seen; only posts inside the
  look-back window count as new (undated ones do not). Later runs treat posts dated before
  (last success - look-back) the same way: a feed that suddenly shows its archive, or a CMS
  migration re-keying everything, must not flood an issue.
- Cross-blog duplicates (the same canonical URL in two blogs) are recorded with duplicate_of and
  reported once, when the second copy is first seen.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

from digest.models import Entry, Post
from digest.store import posts as store
from digest.store.db import Connection, log_event

_INDEX_PAGE = re.compile(r"/index\.(html?|php)$")
_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref)$", re.IGNORECASE)


@dataclass(slots=True)
class Duplicate:
    post_id: str
    blog: str
    url: str
    duplicate_of: str  # the post id seen first
    of_blog: str


@dataclass(slots=True)
class Recorded:
    new: list[str] = field(default_factory=list)  # ids of new posts for the next issue
    backlog: int = 0  # recorded as seen, not new
    updated: int = 0  # edited in place
    rewrites: int = 0  # GUID rewrites recognised
    duplicates: list[Duplicate] = field(default_factory=list)


def canonical_url(url: str) -> str:
    """The URL as compared across blogs: scheme, www., default port, trailing slash,
    index pages and tracking parameters do not make a different post. The fragment does:
    single-page logs (100r's log.html#nov2022) name posts by it."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    if parts.port and parts.port not in (80, 443):
        host += f":{parts.port}"
    path = _INDEX_PAGE.sub("/", parts.path or "/").rstrip("/")
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, True) if not _TRACKING.match(k)])
    out = host + path
    if query:
        out += "?" + query
    if parts.fragment:
        out += "#" + parts.fragment
    return out


def link_title(url: str | None, title: str, *, canonical: str | None = None) -> str | None:
    """The secondary identity (canonical link, title); ``canonical``: canonical_url(url)."""
    if not url or not title:
        return None
    return (canonical or canonical_url(url)) + "\n" + " ".join(title.split()).casefold()


def post_id(blog: str, key: str, length: int = 8) -> str:
    return f"{blog}-{hashlib.sha1(key.encode()).hexdigest()[:length]}"


def record_entries(
    conn: Connection,
    blog: str,
    entries: Sequence[Entry],
    *,
    now: datetime,
    first_run: bool,
    window_start: datetime,
) -> Recorded:
    """Store what is new or changed. Call inside a transaction."""
    out = Recorded()
    known = store.known_posts(conn, blog)
    by_key = {p.key: p for p in known}
    by_link_title: dict[str, list[store.KnownPost]] = defaultdict(list)
    for p in known:
        if p.link_title:
            by_link_title[p.link_title].append(p)
    in_feed = {e.key for e in entries}
    claimed: set[str] = set()

    for entry in entries:
        canonical = canonical_url(entry.url) if entry.url else None
        lt = link_title(entry.url, entry.title, canonical=canonical)
        old = by_key.get(entry.key)
        if old is None and lt is not None:
            old = next(
                (
                    p
                    for p in by_link_title.get(lt, [])
                    if p.key not in in_feed and p.id not in claimed
                ),
                None,
            )
            if old is not None:
                out.rewrites += 1
                log_event(conn, "guid_rewrite", f"{old.id}: {old.key!r} -> {entry.key!r}", at=now)
        if old is not None:
            claimed.add(old.id)
            published = _clamp(entry.published, old.first_seen)
            if (
                old.key,
                old.title,
                old.url,
                old.author,
                old.published,
                old.excerpt,
                old.words,
                old.image,
                old.image_alt,
            ) != (
                entry.key,
                entry.title,
                entry.url,
                entry.author,
                published,
                entry.excerpt,
                entry.words,
                entry.image,
                entry.image_alt,
            ):
                store.update_post(
                    conn,
                    old.id,
                    key=entry.key,
                    link_title=lt,
                    canonical=canonical,
                    title=entry.title,
                    url=entry.url,
                    author=entry.author,
                    published=published,
                    excerpt=entry.excerpt,
                    words=entry.words,
                    image=entry.image,
                    image_alt=entry.image_alt,
                )
                out.updated += 1
            continue

        if entry.published is None:
            backlog = first_run
        else:
            backlog = entry.published < window_start
        new_id = _free_id(conn, blog, entry.key)
        duplicate = (
            store.first_with_canonical(conn, canonical, other_than_blog=blog) if canonical else None
        )
        post = Post(
            id=new_id,
            blog=blog,
            title=entry.title,
            url=entry.url,
            author=entry.author,
            published=_clamp(entry.published, now),
            first_seen=now,
            excerpt=entry.excerpt,
            words=entry.words,
            image=entry.image,
            image_alt=entry.image_alt,
        )
        store.insert_post(
            conn,
            post,
            key=entry.key,
            link_title=lt,
            canonical=canonical,
            backlog=backlog,
            duplicate_of=duplicate[0] if duplicate else None,
        )
        claimed.add(new_id)
        if backlog:
            out.backlog += 1
        elif duplicate is not None:
            assert entry.url is not None
            out.duplicates.append(Duplicate(new_id, blog, entry.url, duplicate[0], duplicate[1]))
            log_event(conn, "duplicate", f"{new_id} is {duplicate[0]} ({entry.url})", at=now)
        else:
            out.new.append(new_id)
    return out


def _clamp(published: datetime | None, first_seen: datetime) -> datetime | None:
    # A date after we first saw the post is a typo or a scheduled-post bug: show first_seen.
    if published is None:
        return None
    return min(published.replace(microsecond=0), first_seen)


def _free_id(conn: Connection, blog: str, key: str) -> str:
    # 8 hex digits are 32 bits: a clash within one blog is unlikely but not impossible.
    for length in (8, 12, 16, 40):
        candidate = post_id(blog, key, length)
        if not store.id_taken(conn, candidate):
            return candidate
    raise AssertionError(f"no free post id for {blog} {key!r}")
