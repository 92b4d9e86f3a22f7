"""The issue's hierarchy: masthead, the curator's letter and voice, "In this issue", sections,
the archive pick without repeated commentary, the footer; readable without its <style>."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from digest.config import PAPER, BlogsFile, Logo, contrast
from digest.render import render_issue
from digest.render.view import DARK_PAPER, dark_accent
from test_render_email import BASE, PREFS, UNSUB, make_issue, make_post


def _fill(issue_blogs: BlogsFile, **issue: object) -> tuple[str, str]:
    posts = [
        make_post("xxiivv", "permacomputing", 1),
        make_post("sander-dieleman", "ml", 2, author="Sander Dieleman", note="Read *this*."),
        make_post("sander-dieleman", "ml", 3),
        make_post("lilianweng", "ml", 4),
    ]
    rendered = render_issue(make_issue(posts, **issue), issue_blogs, base_url=BASE)
    return rendered.fill(
        unsubscribe_url=UNSUB, preferences_url=PREFS, web_url=f"{BASE}/archive/7", name="Ada"
    )


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.styles: dict[str, list[str]] = {}  # class -> inline styles

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "a":
            self.hrefs.append(values.get("href") or "")
        for cls in (values.get("class") or "").split():
            self.styles.setdefault(cls, []).append((values.get("style") or "").replace(" ", ""))


def _elements(html: str) -> _Elements:
    parsed = _Elements()
    parsed.feed(html)
    return parsed


def test_masthead_toc_and_sections_link_within_the_mail(blogs: BlogsFile) -> None:
    html, text = _fill(blogs)
    assert "Issue 7 \u00b7 6 Jul 2026 \u00b7 curated by The curator" in html
    toc = html[html.index("In this issue") : html.index('id="permacomputing"')]
    assert "Sander Dieleman</a> (2)" in toc and "Lil'Log</a> (1)" in toc
    parsed = _elements(html)
    inside = [h for h in parsed.hrefs if h.startswith("#")]
    assert {"#permacomputing", "#ml", "#blog-sander-dieleman", "#blog-xxiivv"} <= set(inside)
    assert all(h[1:] in parsed.ids for h in inside)  # every jump lands
    assert "In this issue\n-------------\n* Permacomputing: XXIIVV (1)\n" in text
    assert "* ML: Sander Dieleman (2), Lil'Log (1)\n" in text


def test_the_curators_words_are_theirs_in_the_body_colour_never_grey_or_italic(
    blogs: BlogsFile,
) -> None:
    html, text = _fill(blogs)
    parsed = _elements(html)
    voices = parsed.styles["voice"]
    assert len(voices) == 4  # three commentaries and one note
    for style in voices:
        assert "color:#222" in style and "italic" not in style
        assert f"border-left:3pxsolid{blogs.newsletter.accent}" in style
        assert "Charter" in style  # a serif: a person writing
    assert html.count('<span class="voice-by"') == 4
    assert "The curator</span>" in html
    assert "| The curator:\n| Works at Google DeepMind" in text
    assert "  | The curator:\n  | Read this." in text
    # the meta line leaves out an author who is the blog itself
    assert "Sander Dieleman \u00b7" not in text.split("sander.ai")[1].split("\n\n")[1]


def test_readable_without_the_style_block(blogs: BlogsFile) -> None:
    html, _ = _fill(blogs)
    parsed = _elements(html)
    for cls in ("post-title", "voice", "meta", "letter", "container", "blog-link"):
        assert all("font-size" in s or "max-width" in s or "color" in s for s in parsed.styles[cls])
    assert all("text-decoration:none" in s for s in parsed.styles["post-title"])
    # Outlook desktop ignores max-width: a fixed 600 px table around the column, for it alone
    assert re.search(r"<!--\[if mso\]><table[^>]*width=\"600\"", html)
    assert "<![endif]-->" in html
    sizes = [int(s) for s in re.findall(r"font-size:\s*(\d+)px", html)]
    assert min(sizes) >= 13


def test_archive_pick_never_repeats_commentary_shown_above(blogs: BlogsFile) -> None:
    pick = make_post("sander-dieleman", "ml", 9, note="An old favourite.")
    html, text = _fill(blogs, archive_pick=pick)
    commentary = "Works at Google DeepMind"
    assert html.count(commentary) == 1 and text.count(commentary) == 1
    assert "An old favourite." in html and 'id="from-the-archive"' in html
    # a pick from a blog not featured above brings its commentary
    html, _ = _fill(blogs, archive_pick=make_post("chris-olah", "ml", 9))
    assert html.count("Where I first learned about RNNs") == 1


def test_footer_logo_and_postal_address(blogs: BlogsFile) -> None:
    blogs.newsletter.postal_address = "1 Rue de la Loi, 1000 Brussels"
    blogs.newsletter.logo = Logo(url="https://example.org/l.png", width=120, height=40, alt="BIL")
    html, text = _fill(blogs)
    assert re.search(
        r'<img class="logo" src="https://example.org/l.png" width="120" height="40" '
        r'alt="BIL"',
        html,
    )
    footer = html[html.index('class="footer"') :]
    assert "1 Rue de la Loi, 1000 Brussels" in footer
    assert f'href="{UNSUB}"' in footer and f'href="{PREFS}"' in footer
    assert f'href="{BASE}/archive"' in footer
    signature = text.split("\n-- \n", 1)[1]
    assert "because you subscribed at\ndigest.example.org." in signature
    assert UNSUB in signature and "1 Rue de la Loi" in signature


def test_text_part_one_separator_style_and_short_link_lines(blogs: BlogsFile) -> None:
    _, text = _fill(blogs)
    assert text.count("\n-- \n") == 1
    assert "====" not in text
    underlines = re.findall(r"(?m)^([^\w\s])\1{2,}$", text)
    assert underlines and set(underlines) == {"-"}
    long_lines = [line for line in text.splitlines() if len(line) >= 78]
    assert all(re.fullmatch(r"(\[\d+\] )?https://\S+", line) for line in long_lines), long_lines


def test_accent_reads_on_both_papers() -> None:
    for accent in ("#1a5fb4", "#2f5d50", "#6b3fa0"):
        assert contrast(accent, PAPER) >= 4.5
        dark = dark_accent(accent)
        assert contrast(dark, DARK_PAPER) >= 4.5, (accent, dark)
