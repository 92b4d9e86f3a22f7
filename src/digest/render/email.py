"""Rendering an issue: the one seam to Jinja2 and premailer.

premailer runs once per variant (category set), never per subscriber: it costs milliseconds,
substitution costs microseconds (REFERENCE.md section 4). Gmail clips HTML past ~102 KB of
encoded HTML and hides the rest, the unsubscribe footer included, so a variant must fit
``HTML_BUDGET``: excerpts shorten first, then each blog's overflow collapses into "and N more
posts from BLOG", linking to the web archive.
"""

from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import jinja2

from digest import resources
from digest.config import BlogsFile
from digest.models import Issue
from digest.render import markdown, text
from digest.render.links import rewrite_html, rewrite_text
from digest.render.rendered import (
    GREETING,
    PREFERENCES_URL,
    UNSUBSCRIBE_URL,
    WEB_URL,
    Rendered,
)
from digest.render.view import IssueView, Shape, build_view

HTML_BUDGET = 90 * 1024  # REFERENCE.md section 4: Gmail clips at ~102 KB; keep a margin
GMAIL_CLIP = 102 * 1024

# Tried in order until the HTML fits: shorter excerpts first, then fewer posts per blog.
SHAPES = (
    Shape(),
    Shape(excerpt_limit=160),
    Shape(excerpt_limit=80),
    Shape(excerpt_limit=0),
    *(Shape(excerpt_limit=0, per_blog=n) for n in (20, 10, 5, 3, 2, 1)),
)


def encoded_size(html: str) -> int:
    """Bytes of the HTML part as sent: UTF-8, quoted-printable (REFERENCE.md section 3)."""
    return len(binascii.b2a_qp(html.encode("utf-8"), istext=True))


@lru_cache(maxsize=4)
def environment(override: Path | None = None) -> jinja2.Environment:
    """The email templates: built in, each replaced by its copy in ``override`` if there is one
    (DIGEST_TEMPLATES, see digest/resources.py)."""
    env = jinja2.Environment(
        loader=resources.loader("email", override),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(
        UNSUBSCRIBE_URL=UNSUBSCRIBE_URL,
        PREFERENCES_URL=PREFERENCES_URL,
        WEB_URL=WEB_URL,
        GREETING=GREETING,
        wrap=text.wrap,
        underline=text.underline,
        md_text=markdown.to_text,
    )
    return env


def inline_css(html: str) -> str:
    """premailer with the options that matter (REFERENCE.md section 4)."""
    # Imported here: premailer (with cssutils, lxml, requests) takes ~0.2 s to import, which
    # every `digest` command would pay otherwise.
    from premailer import Premailer

    out: str = Premailer(
        html,
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
        remove_classes=False,  # the progressive-enhancement <style> block targets them
        strip_important=False,
    ).transform()
    # lxml drops the doctype; without it clients render in quirks mode.
    if not out.lstrip().lower().startswith("<!doctype"):
        out = "<!DOCTYPE html>\n" + out
    return out


def _html(view: IssueView, templates: Path | None, links: Mapping[str, str]) -> str:
    body = environment(templates).get_template("issue.html.j2").render(view=view)
    return rewrite_html(body, links)


def _text(view: IssueView, templates: Path | None, links: Mapping[str, str]) -> str:
    env = environment(templates)
    body = env.get_template("issue.txt.j2").render(view=view, links=text.Links())
    body = rewrite_text(body, links)
    # "-- " keeps its space: it is the signature separator mail clients recognise (RFC 3676).
    lines = [line if line == "-- " else line.rstrip() for line in body.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"


_GREETING_ELEMENT = re.compile(r"<(p|div)\b[^>]*>" + re.escape(GREETING) + r"</\1>\s*")


def render_issue(
    issue: Issue,
    blogs: BlogsFile,
    *,
    base_url: str,
    categories: frozenset[str] | None = None,
    budget: int | None = HTML_BUDGET,
    templates: Path | None = None,
    links: Mapping[str, str] | None = None,
) -> Rendered:
    """Render one variant of ``issue``. ``budget=None`` keeps everything (the web archive).
    ``templates``: the curator's override folder (``Settings.templates``), None: built-in.
    ``links``: {URL: short link} of the edition (newsletter.click_counts, render/links.py);
    None or empty: every link goes straight to its target."""
    links = links or {}
    ratio: float | None = None  # inlined size / template size, learned from the first run
    shapes = SHAPES if budget is not None else SHAPES[:1]
    html = ""
    size = 0
    view: IssueView | None = None
    shape = shapes[0]
    for position, shape in enumerate(shapes):
        view = build_view(
            issue,
            blogs,
            base_url=base_url,
            categories=categories,
            shape=shape,
            in_full=blogs.newsletter.max_posts_per_blog,
        )
        raw = _html(view, templates, links)
        last = position == len(shapes) - 1
        if budget is not None and ratio is not None and not last:
            # Skip premailer for shapes that clearly cannot fit: a 300-post week tries few.
            if len(raw) * ratio > budget * 1.1:
                continue
        html = inline_css(raw)
        size = encoded_size(html)
        ratio = size / max(len(raw), 1)
        if budget is None or size <= budget:
            break
    # Still over budget with one post per blog (a novel for an intro): returned all the same,
    # so that `digest preview` shows it and `--check` says why; see Rendered.over_budget.
    assert view is not None
    match = _GREETING_ELEMENT.search(html)
    return Rendered(
        subject=issue.subject,
        html=html,
        text=_text(view, templates, links),
        categories=categories,
        posts=view.posts,
        shown=view.shown,
        size=size,
        excerpt_limit=shape.excerpt_limit,
        per_blog=shape.per_blog,
        archive_pick=view.archive is not None,
        greeting_html=match.group(0) if match else GREETING,
        budget=budget,
    )
