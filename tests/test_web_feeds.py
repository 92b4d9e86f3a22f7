"""Feeds and discovery files: /feed.xml, /feed/<category>.xml, /blogroll.opml,
/.well-known/recommendations.json, /sitemap.xml, /robots.txt. Each is parsed, never grepped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from digest.feeds.opml import read_opml
from digest.store import transaction
from plugins.drafting import entry, insert_post
from plugins.website import BASE, SENT_HTML, Tags, Web, freeze

ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def _get(web: Web, path: str, media: str) -> bytes:
    answer = web.client.get(path)
    assert answer.status_code == 200, path
    assert answer.headers["content-type"].split(";")[0] == media, path
    return answer.content


def _entries(feed: ET.Element) -> list[ET.Element]:
    return feed.findall(f"{ATOM}entry")


def test_feed_carries_each_issue_in_full(web: Web) -> None:
    freeze(web, 1, intro="Hello, *readers*.")
    freeze(web, 2, quiet=True)
    feed = ET.fromstring(_get(web, "/feed.xml", "application/atom+xml"))
    assert feed.findtext(f"{ATOM}id") == f"{BASE}/"
    selfs = [x.get("href") for x in feed.findall(f"{ATOM}link") if x.get("rel") == "self"]
    assert selfs == [f"{BASE}/feed.xml"]
    quiet, full = _entries(feed)
    assert quiet.findtext(f"{ATOM}id") == f"{BASE}/archive/2"
    # A quiet week is not an empty <ul></ul>: it says so and carries its archive pick.
    quiet_html = quiet.findtext(f"{ATOM}content") or ""
    assert quiet.find(f"{ATOM}content").get("type") == "html"  # type: ignore[union-attr]
    assert "A quiet week" in quiet_html and "https://chris-olah.example/2/9.html" in quiet_html
    assert quiet.findtext(f"{ATOM}summary") == "From the archive: chris-olah post 9 of issue 2"
    content = full.findtext(f"{ATOM}content") or ""
    assert "<em>readers</em>" in content
    links = Tags(content).links()
    assert "https://sander-dieleman.example/1/1.html" in links
    assert all(u.startswith("https://") for u in links)  # readable away from the site
    assert full.findtext(f"{ATOM}summary") == "Hello, readers."
    # No personal token and none of the frozen mail in any entry.
    body = _get(web, "/feed.xml", "application/atom+xml").decode()
    assert "SENTTOKEN" not in body and "/unsubscribe/" not in body and "Hello Ann" not in body
    assert SENT_HTML not in body


def test_feeds_carry_the_latest_twenty_issues(web: Web) -> None:
    for number in range(1, 23):
        freeze(web, number)
    for path in ("/feed.xml", "/feed/ml.xml"):
        feed = ET.fromstring(_get(web, path, "application/atom+xml"))
        ids = [e.findtext(f"{ATOM}id") for e in _entries(feed)]
        assert ids == [f"{BASE}/archive/{n}" for n in range(22, 2, -1)], path


def test_feed_per_category(web: Web) -> None:
    freeze(web, 1)
    freeze(web, 2, quiet=True)  # its archive pick is in ml
    ml = ET.fromstring(_get(web, "/feed/ml.xml", "application/atom+xml"))
    assert ml.findtext(f"{ATOM}id") == f"{BASE}/feed/ml.xml"
    assert ml.findtext(f"{ATOM}title") == "Blogs I like: ML"
    assert [e.findtext(f"{ATOM}id") for e in _entries(ml)] == [
        f"{BASE}/archive/2",
        f"{BASE}/archive/1",
    ]
    first = _entries(ml)[1].findtext(f"{ATOM}content") or ""
    assert "https://sander-dieleman.example/1/1.html" in first
    assert "https://xxiivv.example/1/1.html" not in first  # permacomputing stays out
    perma = ET.fromstring(_get(web, "/feed/permacomputing.xml", "application/atom+xml"))
    assert [e.findtext(f"{ATOM}id") for e in _entries(perma)] == [f"{BASE}/archive/1"]
    music = ET.fromstring(_get(web, "/feed/music.xml", "application/atom+xml"))
    assert _entries(music) == []
    assert web.client.get("/feed/nope.xml").status_code == 404
    listing = Tags(web.client.get("/archive").text)
    for category in web.blogs.categories:
        assert listing.find("a", href=f"{BASE}/feed/{category.id}.xml")
    # Each feed is announced in the page head.
    head = Tags(web.client.get("/").text)
    feeds = [a["href"] for a in head.find("link", rel="alternate", type="application/atom+xml")]
    assert feeds == [f"{BASE}/feed.xml"] + [f"{BASE}/feed/{c.id}.xml" for c in web.blogs.categories]


def test_blogroll_is_opml_of_the_curated_blogs_with_commentary(web: Web) -> None:
    body = _get(web, "/blogroll.opml", "text/x-opml")
    root = ET.fromstring(body)
    assert root.tag == "opml" and root.findtext("head/ownerId") == f"{BASE}/"
    outlines = {o.get("htmlUrl"): o for o in root.iter("outline") if o.get("htmlUrl")}
    for blog in web.blogs.blogs():
        outline = outlines[blog.homepage]
        assert outline.get("description") == " ".join(blog.commentary.split())
        if blog.feed:
            assert outline.get("xmlUrl") == blog.feed
    # The project's own reader takes it back: the round trip adds nothing new.
    feeds = read_opml(body, path="blogroll.opml")
    assert {f.xml_url for f in feeds} == {b.feed for b in web.blogs.blogs() if b.feed}
    for path in ("/", "/archive"):
        page = Tags(web.client.get(path).text)
        assert page.find("link", rel="blogroll", type="text/x-opml", href=f"{BASE}/blogroll.opml")


def test_recommendations_json_is_ghosts_format(web: Web) -> None:
    followed = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    with transaction(web.conn):
        old = entry("Old post", "https://sander.ai/old")
        insert_post(web.conn, "sander-dieleman", old, first_seen=followed)
        later = entry("Newer post", "https://sander.ai/new")
        insert_post(web.conn, "sander-dieleman", later, first_seen=datetime(2026, 5, 1, tzinfo=UTC))
    answer = web.client.get("/.well-known/recommendations.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    items = json.loads(answer.content)
    assert [i["url"] for i in items] == [b.homepage for b in web.blogs.blogs()]
    by_url = {i["url"]: i for i in items}
    for blog in web.blogs.blogs():
        item = by_url[blog.homepage]
        assert set(item) <= {"url", "reason", "created_at", "updated_at"}
        assert item["reason"] == " ".join((blog.tagline or blog.commentary).split())
    sander = by_url["https://sander.ai/"]
    assert sander["created_at"] == sander["updated_at"] == "2026-03-04T05:06:07.000Z"
    never = by_url["https://colah.github.io/"]
    assert never["created_at"] == "2026-11-30T08:00:00.000Z"  # not followed yet: as of now


def test_sitemap_and_robots(web: Web) -> None:
    freeze(web, 1)
    freeze(web, 2)
    root = ET.fromstring(_get(web, "/sitemap.xml", "application/xml"))
    assert root.tag == f"{SITEMAP}urlset"
    locs = [u.findtext(f"{SITEMAP}loc") for u in root.findall(f"{SITEMAP}url")]
    assert locs == [f"{BASE}/", f"{BASE}/archive", f"{BASE}/archive/2", f"{BASE}/archive/1"]
    last = {u.findtext(f"{SITEMAP}loc"): u.findtext(f"{SITEMAP}lastmod") for u in root}
    assert last[f"{BASE}/archive/1"] == "2026-11-30"
    robots = web.client.get("/robots.txt")
    assert robots.status_code == 200 and robots.headers["content-type"].startswith("text/plain")
    lines = robots.text.splitlines()
    assert lines[0] == "User-agent: *"
    for private in ("/confirm/", "/unsubscribe/", "/preferences/", "/r/"):
        assert f"Disallow: {private}" in lines
    assert f"Sitemap: {BASE}/sitemap.xml" in lines
