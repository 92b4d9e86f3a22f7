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

from digest.models import Entry
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
    netloc = parts.netloc
    if ":" in netloc or "@" in netloc:  # a port, credentials, an IPv6 address: the long way
        host = (parts.hostname or "").lower().removeprefix("www.")
        if parts.port and parts.port not in (80, 443):
            host += f":{parts.port}"
    else:
        host = netloc.lower().removeprefix("www.")
    path = _INDEX_PAGE.sub("/", parts.path or "/").rstrip("/")
    out = host + path
    if parts.query:
        pairs = parse_qsl(parts.query, True)
        query = urlencode([(k, v) for k, v in pairs if not _TRACKING.match(k)])
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
    """Store what is new or changed. Call inside a transaction.

    A few statements whatever the number of entries: the blog's known posts, the ids and
    canonical URLs the new ones need (``select_in``), then one executemany each for the
    updates and the inserts. Every decision is made in Python in between, in feed order.
    """
    out = Recorded()
    known = store.known_posts(conn, blog)
    by_key = {p.key: p for p in known}
    by_link_title: dict[str, list[store.KnownPost]] = defaultdict(list)
    for p in known:
        if p.link_title:
            by_link_title[p.link_title].append(p)
    in_feed = {e.key for e in entries}
    claimed: set[str] = set()  # known posts an entry of this feed already is
    done: set[str] = set()  # keys handled: a key the feed repeats is the same post
    changes: list[store.PostChange] = []
    fresh: list[tuple[Entry, str | None, str | None]] = []  # (entry, canonical, link_title)

    for entry in entries:
        if entry.key in done:
            continue
        done.add(entry.key)
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
        if old is None:
            fresh.append((entry, canonical, lt))
            continue
        claimed.add(old.id)
        change = store.PostChange(
            id=old.id,
            key=entry.key,
            link_title=lt,
            canonical=canonical,
            title=entry.title,
            url=entry.url,
            author=entry.author,
            published=_clamp(entry.published, old.first_seen),
            excerpt=entry.excerpt,
            words=entry.words,
            image=entry.image,
            image_alt=entry.image_alt,
        )
        if _changed(old, change):
            changes.append(change)
    store.update_posts(conn, changes)
    out.updated = len(changes)
    if fresh:
        _insert(conn, blog, fresh, out, now=now, first_run=first_run, window_start=window_start)
    return out


def _changed(old: store.KnownPost, new: store.PostChange) -> bool:
    return (
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
        new.key,
        new.title,
        new.url,
        new.author,
        new.published,
        new.excerpt,
        new.words,
        new.image,
        new.image_alt,
    )


def _insert(
    conn: Connection,
    blog: str,
    fresh: list[tuple[Entry, str | None, str | None]],
    out: Recorded,
    *,
    now: datetime,
    first_run: bool,
    window_start: datetime,
) -> None:
    ids = [post_id(blog, entry.key) for entry, _, _ in fresh]
    taken = store.taken_ids(conn, ids)
    canonicals = sorted({c for _, c, _ in fresh if c is not None})
    firsts = store.first_with_canonicals(conn, canonicals, other_than_blog=blog)
    rows: list[store.StoredPost] = []
    for (entry, canonical, lt), short_id in zip(fresh, ids, strict=True):
        if entry.published is None:
            backlog = first_run
        else:
            backlog = entry.published < window_start
        new_id = short_id if short_id not in taken else _free_id(conn, blog, entry.key, taken)
        taken.add(new_id)
        duplicate = firsts.get(canonical) if canonical else None
        rows.append(
            store.StoredPost(
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
                key=entry.key,
                link_title=lt,
                canonical=canonical,
                backlog=backlog,
                duplicate_of=duplicate[0] if duplicate else None,
            )
        )
        if backlog:
            out.backlog += 1
        elif duplicate is not None:
            assert entry.url is not None
            out.duplicates.append(Duplicate(new_id, blog, entry.url, duplicate[0], duplicate[1]))
            log_event(conn, "duplicate", f"{new_id} is {duplicate[0]} ({entry.url})", at=now)
        else:
            out.new.append(new_id)
    store.insert_posts(conn, rows)


def _clamp(published: datetime | None, first_seen: datetime) -> datetime | None:
    # A date after we first saw the post is a typo or a scheduled-post bug: show first_seen.
    if published is None:
        return None
    if published.microsecond:
        published = published.replace(microsecond=0)
    return published if published <= first_seen else first_seen


def _free_id(conn: Connection, blog: str, key: str, taken: set[str]) -> str:
    # 8 hex digits are 32 bits: a clash within one blog is unlikely but not impossible.
    # ``taken``: ids known to be used (the stored ones among the short ids, this batch's).
    for length in (12, 16, 40):
        candidate = post_id(blog, key, length)
        if candidate not in taken and not store.taken_ids(conn, [candidate]):
            return candidate
    raise AssertionError(f"no free post id for {blog} {key!r}")
