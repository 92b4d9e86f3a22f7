"""One received message, whichever way it came (the Maildir, `digest inbound`): to its blog,
checked, and recorded as a post, a quarantined mail or a newsletter's opt-in confirmation.

Only mail from one of the blog's listed senders whose DKIM signature verifies and aligns with
From becomes a post, stored like a feed entry (feeds/record.py: the same identity, dates and
duplicate rules). Everything else is kept with its reason, for the feed health. A newsletter's
own "confirm your subscription" mail is never a post, verified or not: its link goes to the
curator, with the verification's verdict beside it.

The same message twice is one row (its id is the Message-ID's hash): a re-read of the Maildir
or a retried SMTP delivery changes nothing. A quarantined row gives way to a verified copy, so a
forged mail sent first under a real letter's Message-ID cannot keep the letter out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest.config import Blog, BlogsFile
from digest.feeds.record import record_entries
from digest.inbound.letter import Letter, parse_letter
from digest.inbound.verify import DnsFunc, dkim_problem
from digest.models import Entry
from digest.store import inbound as store
from digest.store.db import Connection, log_event, transaction

# in+<blog-id>@any.domain: the one address per blog (`digest inbound`, or the curator's own
# mail setup delivering to the Maildir with such an address in Delivered-To or To).
INBOX_ADDRESS = re.compile(r"^in\+([a-z0-9][a-z0-9-]*)@[^@\s]+$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Received:
    id: str
    blog: str | None
    status: str  # post | quarantined | confirmation
    reason: str | None
    post_id: str | None
    repeated: bool  # seen before: nothing changed


def blog_of_address(blogs: BlogsFile, address: str) -> Blog | None:
    """The blog an in+<id>@ address names, if it publishes by email."""
    found = INBOX_ADDRESS.match(address.strip())
    blog = blogs.blog(found[1].lower()) if found else None
    return blog if blog is not None and blog.email is not None else None


def receive(
    conn: Connection,
    blogs: BlogsFile,
    raw: bytes,
    *,
    now: datetime,
    base_url: str,
    to: str | None = None,
    dnsfunc: DnsFunc | None = None,
) -> Received:
    """Process one message. ``to``: the in+<id>@ address it was delivered to, if known."""
    letter = parse_letter(raw)
    before = store.get_mail(conn, letter.id)
    if before is not None and before.status != "quarantined":
        return Received(before.id, before.blog, before.status, before.reason, before.post_id, True)
    blog = blog_of_address(blogs, to) if to else None
    blog = blog or _blog_of_sender(blogs, letter.senders)
    problem = _problem(raw, letter, blog, addressed=to is not None, dnsfunc=dnsfunc)
    if blog is not None and letter.confirm_url:
        status = "confirmation"
    else:
        status = "quarantined" if problem else "post"
    with transaction(conn):
        post_id = None
        if status == "post":
            assert blog is not None
            post_id = _record_post(conn, blogs, blog, letter, now=now, base_url=base_url)
        mail = store.InboundMail(
            id=letter.id,
            blog=blog.id if blog else None,
            sender=", ".join(letter.senders) or None,
            subject=letter.subject or None,
            received_at=now,
            status=status,
            reason=problem,
            post_id=post_id,
            confirm_url=letter.confirm_url if status == "confirmation" else None,
        )
        # The archived copy is kept only for a post that has no web copy of its own.
        own_copy = status == "post" and letter.url is None
        store.save_mail(conn, mail, html=letter.safe_html if own_copy else None)
        if status != "post":
            detail = f"{mail.blog or '-'}: {mail.sender or '-'} {letter.subject!r}: {problem or ''}"
            log_event(conn, f"mail_{status}", detail.rstrip(": "), at=now)
    return Received(letter.id, mail.blog, status, problem, post_id, False)


def _blog_of_sender(blogs: BlogsFile, senders: list[str]) -> Blog | None:
    for blog in blogs.blogs():
        if blog.email is not None and any(s in blog.email.from_ for s in senders):
            return blog
    return None


def _problem(
    raw: bytes, letter: Letter, blog: Blog | None, *, addressed: bool, dnsfunc: DnsFunc | None
) -> str | None:
    """Why this mail cannot be a post of ``blog``, in words; None when it can."""
    if blog is None or blog.email is None:
        if addressed:
            return "not addressed to a blog that publishes by email"
        listed = f" ({', '.join(letter.senders)})" if letter.senders else ""
        return f"not from a listed sender{listed}"
    if not letter.senders:
        return "no From address"
    if len(letter.senders) > 1:
        return "more than one From address"
    [sender] = letter.senders
    if sender not in blog.email.from_:
        return f"not from a listed sender ({sender})"
    return dkim_problem(raw, sender, dnsfunc=dnsfunc)


def _record_post(
    conn: Connection,
    blogs: BlogsFile,
    blog: Blog,
    letter: Letter,
    *,
    now: datetime,
    base_url: str,
) -> str | None:
    key = f"mail:{letter.message_id or letter.id}"
    entry = Entry(
        key=key,
        title=letter.subject or "(no subject)",
        url=letter.url or f"{base_url.rstrip('/')}/letters/{letter.id}",
        author=None,
        published=letter.published,
        excerpt=letter.lede,
        words=letter.words or None,
    )
    # A letter dated before the look-back (an old one forwarded into the inbox) is recorded as
    # back catalogue, as a feed's would be; an undated one counts as new.
    record_entries(
        conn,
        blog.id,
        [entry],
        now=now,
        first_run=False,
        window_start=now - timedelta(days=blogs.newsletter.lookback_days),
    )
    return store.post_id_for_key(conn, blog.id, key)
