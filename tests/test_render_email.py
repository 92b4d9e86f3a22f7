from __future__ import annotations

import email
import email.policy
import logging
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from digest.config import BlogsFile, Settings, load_blogs
from digest.models import Issue, IssuePost
from digest.render import HTML_BUDGET, encoded_size, render_issue
from digest.render.email import inline_css
from digest.render.lint import lint
from digest.render.rendered import PLACEHOLDER_MARK
from digest.send.message import MessageTemplate

NOW = datetime(2026, 7, 6, 8, 0, tzinfo=UTC)
BASE = "https://digest.example.org"
UNSUB = f"{BASE}/unsubscribe/{'u' * 43}"
PREFS = f"{BASE}/preferences/{'u' * 43}"


def make_post(blog: str, category: str, n: int, **extra: object) -> IssuePost:
    values: dict[str, object] = {
        "id": f"{blog}-{n:08x}",
        "title": f"Post number {n}",
        "url": f"https://{blog}.example.org/posts/{n}",
        "blog": blog,
        "category": category,
        "author": "A. Writer",
        "date": NOW - timedelta(days=1),
        "excerpt": "Words about things, at some length. " * 12,
    }
    values.update(extra)
    return IssuePost.model_validate(values)


def make_issue(posts: list[IssuePost], **extra: object) -> Issue:
    values: dict[str, object] = {
        "number": 7,
        "subject": "Blogs I like #7",
        "intro": "",
        "since": NOW - timedelta(days=7),
        "until": NOW,
        "posts": posts,
    }
    values.update(extra)
    return Issue.model_validate(values)


def fill(issue: Issue, blogs: BlogsFile, name: str | None = "Ada") -> tuple[str, str]:
    rendered = render_issue(issue, blogs, base_url=BASE)
    return rendered.fill(
        unsubscribe_url=UNSUB, preferences_url=PREFS, web_url=f"{BASE}/archive/7", name=name
    )


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.body_first: str | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._in_body and self.body_first is None:
            self.body_first = f"{tag}.{dict(attrs).get('class')}"
        self._in_body = self._in_body or tag == "body"
        self.tags.append((tag, dict(attrs)))

    def hrefs(self) -> list[str]:
        return [a.get("href") or "" for t, a in self.tags if t == "a"]


def test_email_safe_layout(blogs: BlogsFile) -> None:
    issue = make_issue(
        [make_post("xxiivv", "permacomputing", 1), make_post("lilianweng", "ml", 2)],
        intro="This week: *two* posts, and a [link](https://example.org/x).",
    )
    html, _ = fill(issue, blogs)
    assert html.startswith("<!DOCTYPE html>")
    tags = Tags()
    tags.feed(html)
    assert ("meta", {"name": "color-scheme", "content": "light dark"}) in tags.tags
    # the hidden preheader comes right after <body>, made from the intro
    assert tags.body_first == "div.preheader"
    preheader = re.search(r'<div class="preheader"[^>]*>([^<]*)', html)
    assert preheader and preheader.group(1).startswith("This week: two posts, and a link.")
    assert "display:none" in html.split('class="preheader"')[1].split(">")[0].replace(" ", "")
    tables = [a for t, a in tags.tags if t == "table"]
    assert tables and all(a.get("role") == "presentation" for a in tables)
    assert any("max-width:600px" in (a.get("style") or "").replace(" ", "") for a in tables)
    # base styles are inlined; only progressive enhancement stays in a <style> block
    styles = re.findall(r"<style[^>]*>(.*?)</style>", html, re.S)
    assert len(styles) == 1 and "prefers-color-scheme: dark" in styles[0]
    assert "@media" in styles[0] and "font-family" not in styles[0]
    sizes = [int(s) for s in re.findall(r"font-size:\s*(\d+)px", html)]
    assert sizes and min(sizes) >= 13  # the hidden preheader included
    assert "-apple-system" in html and "sans-serif" in html


def test_the_preheader_is_hidden_without_a_colour_matching_its_background(
    blogs: BlogsFile,
) -> None:
    # Text coloured like its background is what spammers hide words with: SpamAssassin's
    # HTML_FONT_LOW_CONTRAST (+0.7). Hiding is display, size and opacity's job.
    html, _ = fill(make_issue([make_post("xxiivv", "permacomputing", 1)], intro="Hi."), blogs)
    tag = re.search(r'<div class="preheader"[^>]*>', html)
    assert tag is not None
    style = re.sub(r"\s+", "", re.search(r'style="([^"]*)"', tag[0])[1]).lower()  # type: ignore[index]
    for rule in ("display:none", "max-height:0", "overflow:hidden", "opacity:0", "mso-hide:all"):
        assert rule in style.split(";"), rule
    backgrounds = {
        c.lower()
        for c in re.findall(r'(?:background-color:\s*|bgcolor=")(#[0-9a-fA-F]{3,6})', html)
    }
    assert backgrounds  # the body's background is found, so the check below means something
    colour = re.search(r"(?:^|;)color:([^;]+)", style)
    assert colour is None or colour[1] not in backgrounds, colour


def test_premailer_never_fetches_and_keeps_cssutils_quiet(
    feed_server, caplog: pytest.LogCaptureFixture
) -> None:
    # REFERENCE.md section 4: allow_network=False, cssutils silenced. The level is global
    # state: start from cssutils' default so that only inline_css can have lowered it.
    css = feed_server.serve("/x.css", "p { color: red }", content_type="text/css")
    html = (
        f'<html><head><link rel="stylesheet" href="{css}"><style>p {{ font-size: 15px }}'
        " @unknown-rule foo;</style></head><body><p>hi</p></body></html>"
    )
    cssutils_log = logging.getLogger("CSSUTILS")
    level = cssutils_log.level
    cssutils_log.setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.DEBUG):
            out = inline_css(html)
    finally:
        cssutils_log.setLevel(level)
    assert feed_server.hits("/x.css") == []
    assert "font-size:15px" in out.replace(" ", "")
    assert [r.getMessage() for r in caplog.records if r.name == "CSSUTILS"] == []


def test_feed_titles_and_curator_notes_cannot_inject_html_or_links(blogs: BlogsFile) -> None:
    evil = make_post(
        "xxiivv",
        "permacomputing",
        1,
        title='<script>alert("t")</script><img src=x onerror=alert(1)> Title',
        excerpt="<b>bold</b> <iframe src='https://evil.example'></iframe>",
        note=(
            "A [js link](javascript:alert(1)), a [data link](data:text/html,hi), "
            "a [relative](/etc/passwd), <script>alert('n')</script>, "
            '<a href="https://evil.example">raw</a>, a [good one](https://good.example/), '
            "and [mail](mailto:me@example.org). ![img](https://img.example/x.png)"
        ),
    )
    issue = make_issue(
        [evil], intro="<div onclick=x>Hi</div> [x](JAVASCRIPT:alert(2)) <script>i</script>"
    )
    html, text = fill(issue, blogs)
    lowered = html.lower()
    assert "<script" not in lowered and "<iframe" not in lowered and "<img" not in lowered
    assert "onerror" not in re.sub(r"&lt;.*?&gt;", "", lowered)  # only as escaped text
    tags = Tags()
    tags.feed(html)
    values = [str(v).lower() for _, attrs in tags.tags for v in attrs.values()]
    assert not any("javascript:" in v or "evil.example" in v for v in values)
    assert not any(name.startswith("on") for _, attrs in tags.tags for name in attrs)
    hrefs = tags.hrefs()
    inside = {f"#{i}" for _, attrs in tags.tags for k, i in attrs.items() if k == "id"}
    assert all(h.startswith(("https://", "http://", "mailto:")) or h in inside for h in hrefs)
    assert "https://good.example/" in hrefs and "mailto:me@example.org" in hrefs
    assert not any("evil.example" in h or "passwd" in h or h.startswith("data:") for h in hrefs)
    # the words survive as text, escaped
    assert "&lt;script&gt;alert(" in html and "Title" in html
    assert "js link" in html and "relative" in html
    # the text part carries no markup and numbers only the good links
    assert "<a " not in text and "[good one]" not in text
    assert re.search(r"good one \[\d+\]", text)
    numbered = re.findall(r"(?m)^\[\d+\] (\S+)$", text)
    assert "https://good.example/" in numbered
    assert not any(u.startswith(("javascript", "data", "/")) for u in numbered)
    assert lint(html, text, unsubscribe_url=UNSUB) == []


def test_placeholders_are_filled_per_subscriber_without_rerendering(blogs: BlogsFile) -> None:
    issue = make_issue([make_post("xxiivv", "permacomputing", 1)])
    rendered = render_issue(issue, blogs, base_url=BASE)
    assert PLACEHOLDER_MARK in rendered.html and PLACEHOLDER_MARK in rendered.text
    html, text = rendered.fill(
        unsubscribe_url=UNSUB + "?a=1&b=2",
        preferences_url=PREFS,
        web_url=f"{BASE}/archive/7",
        name='Zo\u00eb <b>"%%DIGEST_UNSUBSCRIBE_URL%%"</b>',
    )
    assert PLACEHOLDER_MARK not in html.replace("%%DIGEST_UNSUBSCRIBE_URL%%&quot;", "")
    assert f'href="{UNSUB}?a=1&amp;b=2"' in html  # escaped once, in an attribute
    assert "Hello Zo\u00eb &lt;b&gt;&quot;" in html  # the name is text, never markup
    assert f"Unsubscribe:\n{UNSUB}?a=1&b=2" in text and "Hello Zo\u00eb <b>" in text
    assert f'href="{PREFS}"' in html and f"Change your preferences:\n{PREFS}" in text
    assert html.count(f"{BASE}/archive/7") >= 2
    # no name: no greeting at all, not an empty "Hello ,"
    html2, text2 = rendered.fill(
        unsubscribe_url=UNSUB, preferences_url=PREFS, web_url=BASE + "/archive/7", name=None
    )
    assert "Hello" not in html2 and "Hello" not in text2 and "greeting" not in html2
    assert PLACEHOLDER_MARK not in html2 + text2
    assert not re.search(r"\n\n\n", text2)
    # the rendered variant itself is untouched: the next subscriber starts clean
    assert (
        rendered.fill(
            unsubscribe_url="https://x.example/u", preferences_url=PREFS, web_url=BASE, name=" "
        )[1].count("https://x.example/u")
        == 1
    )


def test_text_part_wraps_at_72_and_numbers_links_per_section(blogs: BlogsFile) -> None:
    issue = make_issue(
        [make_post("xxiivv", "permacomputing", 1), make_post("sander-dieleman", "ml", 2)],
        intro="See [this](https://a.example/) and [that](https://b.example/).",
    )
    _, text = fill(issue, blogs)
    long_lines = [line for line in text.splitlines() if len(line) > 72 and "https://" not in line]
    assert long_lines == []
    sections = text.split("\n\n")
    numbers = [int(n) for n in re.findall(r"(?m)^\[(\d+)\] ", text)]
    assert numbers == list(range(1, len(numbers) + 1))  # each link listed once, in order
    assert "[1] https://a.example/\n[2] https://b.example/" in text
    perma = text.index("PERMACOMPUTING")
    ml = text.index("\nML\n")
    # the permacomputing links are listed before the ML heading
    assert perma < text.index("https://xxiivv.example.org/posts/1\n") < ml
    assert sections


def test_a_300_post_week_fits_the_budget_excerpts_first_then_collapsing(
    blogs: BlogsFile,
) -> None:
    posts = [make_post("xxiivv", "permacomputing", n) for n in range(280)]
    posts += [make_post("sander-dieleman", "ml", 1000 + n) for n in range(20)]
    issue = make_issue(posts)
    rendered = render_issue(issue, blogs, base_url=BASE)
    assert rendered.size <= HTML_BUDGET and rendered.posts == 300
    assert rendered.excerpt_limit == 0 and rendered.per_blog is not None
    html, text = rendered.fill(
        unsubscribe_url=UNSUB, preferences_url=PREFS, web_url=f"{BASE}/archive/7", name="Ada"
    )
    assert encoded_size(html) <= HTML_BUDGET
    shown_x = html.count("xxiivv.example.org/posts/")
    assert html.count('class="post"') <= 2 * 3  # max_posts_per_blog in full, the rest compact
    more = re.search(r"(\d+) more in the web archive", html)
    assert more and shown_x + int(more.group(1)) == 280
    assert "and 277 more from XXIIVV" in html and "and 277 more from XXIIVV:" in text
    assert f'href="{BASE}/archive/7#blog-xxiivv"' in html
    assert f"{more.group(1)} more in the web archive" in text
    assert UNSUB in html and lint(html, text, unsubscribe_url=UNSUB) == []
    # the web archive keeps everything: no budget
    full = render_issue(issue, blogs, base_url=BASE, budget=None)
    assert full.per_blog is None and full.shown == 300 and full.size > HTML_BUDGET

    # a middling week only loses excerpt length
    blogs.newsletter.max_posts_per_blog = 50  # 150 posts in full, from three blogs
    middling = make_issue(
        [
            make_post(b, c, n)
            for b, c in (
                ("xxiivv", "permacomputing"),
                ("hundred-rabbits", "permacomputing"),
                ("chris-olah", "ml"),
            )
            for n in range(50)
        ]
    )
    shaped = render_issue(middling, blogs, base_url=BASE)
    assert shaped.size <= HTML_BUDGET and shaped.per_blog is None
    assert shaped.excerpt_limit is not None and shaped.excerpt_limit < 300


def test_non_ascii_titles_curator_and_subject(blogs_yaml: Path, tmp_path: Path) -> None:
    blogs_yaml.write_text(
        blogs_yaml.read_text()
        .replace("curator: The curator", "curator: Zo\u00eb Ł\u00f3pez-\u5c71\u7530")
        .replace("title: Blogs I like", "title: Blogs j\u2019aime")
    )
    blogs = load_blogs(blogs_yaml)
    post = make_post(
        "lilianweng", "ml", 1, title="\u00dcber Diffusion \u2014 \u6f22\u5b57 \U0001f9e0"
    )
    issue = make_issue([post], subject="Caf\u00e9 \u00fcber alles \u2014 #7 \U0001f9e0")
    rendered = render_issue(issue, blogs, base_url=BASE)
    html, text = rendered.fill(
        unsubscribe_url=UNSUB, preferences_url=PREFS, web_url=BASE + "/archive/7", name="\u00c5sa"
    )
    for part in (html, text):
        assert "\u00dcber Diffusion \u2014 \u6f22\u5b57 \U0001f9e0" in part
        assert "Zo\u00eb Ł\u00f3pez-\u5c71\u7530" in part and "Hello \u00c5sa," in part
    assert "<title>Caf\u00e9 \u00fcber alles" in html
    # the message: RFC 2047 subject, ASCII-only headers, UTF-8 bodies that decode back
    settings = Settings(blogs=blogs_yaml, base_url=BASE, drafts=tmp_path, outbox=tmp_path)
    template = MessageTemplate.build(
        rendered, newsletter=blogs.newsletter, settings=settings, issue_number=7
    )
    raw = template.message(
        to="reader@example.org", name="\u00c5sa", token="u" * 43, message_id="<1@example.org>"
    )
    head = raw.split(b"\r\n\r\n", 1)[0]
    head.decode("ascii")
    assert b"Subject: =?utf-8?" in head
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(message["Subject"]) == issue.subject
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None and html_part is not None
    assert "\u00dcber Diffusion" in text_part.get_content()
    assert "\u00dcber Diffusion" in html_part.get_content()


def test_a_quiet_week_renders_the_archive_pick(blogs: BlogsFile) -> None:
    pick = make_post("sander-dieleman", "ml", 9, note="Still *the* best.", excerpt="")
    issue = make_issue([], archive_pick=pick)
    rendered = render_issue(issue, blogs, base_url=BASE)
    assert rendered.posts == 0 and not rendered.empty
    html, text = rendered.fill(
        unsubscribe_url=UNSUB, preferences_url=PREFS, web_url=BASE + "/archive/7", name=None
    )
    assert "A quiet week" in html and "From the archive" in html and "FROM THE ARCHIVE" in text
    assert "Works at Google DeepMind" in html  # the blog's commentary comes with the pick
    assert "<em>the</em>" in html
    preheader = re.search(r'<div class="preheader"[^>]*>([^<]*)', html)
    assert preheader and "From the archive: Post number 9" in preheader.group(1)
    assert lint(html, text, unsubscribe_url=UNSUB) == []
    # a subscriber of music only gets nothing: the caller can skip them
    assert render_issue(issue, blogs, base_url=BASE, categories=frozenset({"music"})).empty


def test_variants_hold_only_their_categories(blogs: BlogsFile) -> None:
    issue = make_issue(
        [make_post("xxiivv", "permacomputing", 1), make_post("sander-dieleman", "ml", 2)]
    )
    ml = render_issue(issue, blogs, base_url=BASE, categories=frozenset({"ml"}))
    assert "sander-dieleman.example.org" in ml.html and "xxiivv.example.org" not in ml.html
    assert "Permacomputing" not in ml.html and "PERMACOMPUTING" not in ml.text
    assert ml.posts == 1


def test_lint_lists_every_problem(blogs: BlogsFile) -> None:
    issue = make_issue([make_post("xxiivv", "permacomputing", 1)])
    html, text = fill(issue, blogs)
    assert lint(html, text, unsubscribe_url=UNSUB) == []
    bad_html = (
        html.replace(UNSUB, "/unsubscribe")
        .replace("https://xxiivv.example.org/posts/1", "javascript:alert(1)")
        .replace("</body>", '<img src="http://x.example/a.png">%%DIGEST_WEB_URL%%</body>')
    )
    bad_html = re.sub(
        r"(<h2[^>]*>Permacomputing</h2>)",
        r'\1</td></tr><tr><td class="category"><h2>Empty</h2>',
        bad_html,
    )
    bad_text = text.replace(UNSUB, "") + "\n[9] ftp://x.example/\n"
    problems = lint(bad_html, bad_text, unsubscribe_url=UNSUB, budget=1024)
    joined = "\n".join(problems)
    for expected in (
        "size:",
        "'/unsubscribe' in the HTML is not an absolute",
        "'javascript:alert(1)'",
        "has no alt, width, height",
        "'ftp://x.example/' in the text",
        "the HTML part has no unsubscribe link",
        "the text part has no unsubscribe link",
        "'Permacomputing' has no posts",  # its posts now sit under 'Empty'
        "%%DIGEST_WEB_URL%% left in the HTML",
    ):
        assert expected in joined, (expected, problems)
