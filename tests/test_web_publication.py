"""The public publication: an archived issue as a web page, the home page, feeds, discovery files.

Issues are frozen into a real SQLite file the way sending freezes them, with the frozen mail
HTML beside the content; the pages must be built from the content, with today's base URL.
"""

from __future__ import annotations

import re
from pathlib import Path

from digest import subscribers
from digest.render.view import dark_accent
from plugins.website import BASE, Tags, Web, freeze


def _meta(page: Tags, key: str) -> str:
    found = page.find("meta", property=key) or page.find("meta", name=key)
    assert found, f"no <meta> {key}"
    return found[0]["content"]


def test_archive_page_is_the_issue_for_the_web(web: Web) -> None:
    freeze(web, 1, intro="Hello readers, a **good** week.")
    answer = web.client.get("/archive/1")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    page = Tags(html)
    # Not the frozen mail: no greeting, no subscriber footer, no personal link, no old base URL.
    assert "Hello Ann" not in html and "because you subscribed" not in html
    assert "SENTTOKEN" not in html and "localhost:8000" not in html
    assert "/unsubscribe/" not in html and "/preferences/" not in html
    assert "%%DIGEST_" not in html
    # The site's header and stylesheet (the default CSP applies: no inline styles needed).
    assert page.classes("masthead")
    assert page.find("link", rel="stylesheet", href=f"{BASE}/style.css")
    assert "unsafe-inline" not in answer.headers["content-security-policy"]
    # The content, through the email's view model: categories in blogs.yaml order, the intro,
    # the curator's note, each blog's commentary once.
    assert [a["id"] for a in page.classes("category") if "id" in a] == ["permacomputing", "ml"]
    assert "<strong>good</strong>" in html
    assert "<em>slowly</em>" in html
    sander = web.blogs.blog("sander-dieleman")
    assert sander is not None
    assert html.count(" ".join(sander.commentary.split())) == 1
    assert "Guest &lt;author&gt;" in html
    # Every anchor the email's "and N more from BLOG" links to exists here.
    ids = {a["id"] for _, a in page.tags if "id" in a}
    assert {"blog-sander-dieleman", "blog-lilianweng", "blog-xxiivv"} <= ids
    # "In this issue": each category and blog with its post count, linking into the page.
    toc = html[html.index('class="toc"') : html.index("</nav>")]
    assert f'href="{BASE}/archive/1#ml"' in toc and f'href="{BASE}/archive/1#blog-xxiivv"' in toc
    assert re.search(r">Sander Dieleman</a> \(2\)", toc)
    assert re.search(r">Lil&#39;Log</a> \(1\)", toc)


def test_archive_page_head_canonical_opengraph_twitter(web: Web) -> None:
    freeze(web, 1, intro="A week of *diffusion* and low-tech.")
    page = Tags(web.client.get("/archive/1").text)
    assert page.find("link", rel="canonical") == [{"rel": "canonical", "href": f"{BASE}/archive/1"}]
    assert _meta(page, "og:url") == f"{BASE}/archive/1"
    assert _meta(page, "og:type") == "article"
    assert _meta(page, "og:title") == "Blogs I like #1"
    assert _meta(page, "og:site_name") == "Blogs I like"
    assert _meta(page, "og:description") == "A week of diffusion and low-tech."
    assert _meta(page, "twitter:card") == "summary"
    assert _meta(page, "twitter:title") == "Blogs I like #1"
    assert _meta(page, "twitter:description") == "A week of diffusion and low-tech."
    assert not page.find("meta", property="og:image")  # blogs.yaml has no logo
    assert [t for t, _ in page.tags].count("title") == 1


def test_archive_page_shows_the_logo_in_its_cards(web: Web, blogs_yaml: Path) -> None:
    text = blogs_yaml.read_text(encoding="utf-8")
    blogs_yaml.write_text(
        text.replace(
            "newsletter:\n",
            "newsletter:\n  logo: {url: 'https://digest.example.org/logo.png', width: 120,"
            " height: 40, alt: Blogs I like}\n",
            1,
        ),
        encoding="utf-8",
    )
    with Web(web.root / "logo", blogs_yaml, web.limits) as other:
        freeze(other, 1)
        page = Tags(other.client.get("/archive/1").text)
        assert _meta(page, "og:image") == "https://digest.example.org/logo.png"
        assert _meta(page, "og:image:alt") == "Blogs I like"
        assert _meta(page, "twitter:image") == "https://digest.example.org/logo.png"


def test_quiet_issue_page_describes_its_archive_pick(web: Web) -> None:
    freeze(web, 1, quiet=True)
    page = Tags(web.client.get("/archive/1").text)
    description = _meta(page, "og:description")
    assert description == "From the archive: chris-olah post 9 of issue 1"
    assert page.find("a", href="https://chris-olah.example/1/9.html")


def test_archive_pages_link_previous_and_next(web: Web) -> None:
    for number in (1, 2, 4):  # 3 was never sent: numbers are not invented
        freeze(web, number)
    first = Tags(web.client.get("/archive/1").text)
    assert not first.find("a", rel="prev") and not first.find("link", rel="prev")
    assert first.find("a", rel="next", **{"class": "next"})[0]["href"] == f"{BASE}/archive/2"
    middle = Tags(web.client.get("/archive/2").text)
    assert middle.find("a", rel="prev")[0]["href"] == f"{BASE}/archive/1"
    assert middle.find("a", rel="next")[0]["href"] == f"{BASE}/archive/4"
    assert middle.find("link", rel="next") == [{"rel": "next", "href": f"{BASE}/archive/4"}]
    last = Tags(web.client.get("/archive/4").text)
    assert last.find("a", rel="prev")[0]["href"] == f"{BASE}/archive/2"
    assert not last.find("a", rel="next")
    assert "Blogs I like #2" in web.client.get("/archive/4").text
    assert web.client.get("/archive/3").status_code == 404


def test_archive_page_has_a_subscribe_box_that_subscribes(web: Web) -> None:
    freeze(web, 1)
    html = web.client.get("/archive/1").text
    box = html[html.index('class="card subscribe-box"') :]
    assert f'action="{BASE}/subscribe"' in box and 'name="website"' in box
    token = re.search(r'name="form_token" value="([^"]+)"', box)
    assert token is not None
    answer = web.client.post(
        "/subscribe",
        data={
            "email": "reader@example.org",
            "form_token": token[1],
            "website": "",
            "categories": [c.id for c in web.blogs.categories],
        },
    )
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert web.status("reader@example.org") == "pending"


def test_archive_page_is_microformats_h_entry(web: Web) -> None:
    freeze(web, 1)
    page = Tags(web.client.get("/archive/1").text)
    [entry] = page.classes("h-entry")
    assert entry["class"].split()[0] == "h-entry"
    [name] = page.classes("p-name")[:1]
    assert page.classes("e-content") and page.classes("p-author")
    [published] = page.classes("dt-published")
    assert published["datetime"] == "2026-11-30T01:00:00Z"
    cites = page.classes("u-mention-of")
    assert len(cites) == 4 and all("h-cite" in c["class"].split() for c in cites)
    urls = [a["href"] for a in page.classes("u-url") if "p-name" in a["class"].split()]
    assert "https://sander-dieleman.example/1/1.html" in urls and len(urls) == 4
    assert name is not None


def test_archive_links_follow_the_current_base_url(web: Web, blogs_yaml: Path) -> None:
    """Sent from one address, served from another: every link is the new one's."""
    freeze(web, 1)
    freeze(web, 2)
    moved = "https://letters.example.net/digest"
    with Web(web.root, blogs_yaml, web.limits, base_url=moved, db=web.settings.db) as there:
        html = there.client.get("/archive/1").text
        assert BASE not in html
        page = Tags(html)
        ours = [u for u in page.links() if "example.org" in u or not u.startswith("https://")]
        assert ours == []
        assert page.find("link", rel="canonical")[0]["href"] == f"{moved}/archive/1"
        assert page.find("a", rel="next")[0]["href"] == f"{moved}/archive/2"
        assert page.find("link", rel="stylesheet")[0]["href"] == f"{moved}/style.css"


def test_no_public_page_carries_a_subscriber_token(web: Web) -> None:
    subscribers.add(
        web.conn, web.settings, web.blogs, email="ann@example.org", confirmed=True, now=web.now
    )
    token = web.token("ann@example.org")
    freeze(web, 1)
    freeze(web, 2, quiet=True)
    for path in ("/", "/archive", "/archive/1", "/archive/2"):
        html = web.client.get(path).text
        assert token not in html, path
        assert "/unsubscribe/" not in html and "/preferences/" not in html, path
        assert "SENTTOKEN" not in html, path


def _visible(html: str) -> str:
    body = html[html.index("<body>") :]
    return " ".join("".join(Tags(body).text).split())


def test_home_shows_the_title_once_and_the_latest_issue(web: Web) -> None:
    freeze(web, 1, intro="An older note.")
    freeze(web, 2, intro="This week: *two* long reads.")
    answer = web.client.get("/")
    html = answer.text
    text = _visible(html)
    assert text.count("Blogs I like") - text.count("Blogs I like #") == 2  # the h1 and consent
    assert text.count("curated by The curator") == 1
    page = Tags(html)
    assert len(page.find("h1")) == 1
    # What it is, in a sentence, then the latest issue's intro and "In this issue".
    assert web.blogs.newsletter.description in text
    assert "This week: two long reads." in text and "An older note." not in text
    assert "<em>two</em>" in html
    assert page.find("a", href=f"{BASE}/archive/2#ml")
    assert page.find("a", href=f"{BASE}/archive/2#blog-sander-dieleman")
    assert re.search(r">Sander Dieleman</a> \(2\)", html)
    # The curated blogs with the curator's commentary, and the form.
    for blog in web.blogs.blogs():
        assert page.find("a", href=blog.homepage)
        if blog.commentary:
            assert " ".join(blog.commentary.split()) in text
    assert page.find("form", method="post", action=f"{BASE}/subscribe")


def test_home_before_the_first_issue(web: Web) -> None:
    html = web.client.get("/").text
    assert "The first issue is on its way." in html
    assert "In this issue" not in html
    text = _visible(html)
    assert text.count("curated by The curator") == 1
    assert text.count("Blogs I like") == 2  # the h1 and the consent line


def test_pages_take_the_newsletters_accent(web: Web) -> None:
    accent = web.blogs.newsletter.accent
    css = web.client.get("/accent.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert f"--accent: {accent};" in css.text
    assert f"--accent: {dark_accent(accent)};" in css.text.split("prefers-color-scheme: dark")[1]
    for path in ("/", "/archive"):
        page = Tags(web.client.get(path).text)
        sheets = [a["href"] for a in page.find("link", rel="stylesheet")]
        assert sheets == [f"{BASE}/style.css", f"{BASE}/accent.css"], path  # the accent wins
