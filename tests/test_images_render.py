"""Thumbnails in the issue: `digest draft` (images: cached) fetches them from the real local
server, `digest preview` renders them, `digest serve` answers /images/... (TestClient), the
archive page shows them; and the email with images stays clean for caniemail and axe-core."""

from __future__ import annotations

import io
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image
from starlette.testclient import TestClient

from digest.cli import main
from digest.config import Settings, load_blogs
from digest.issue.draft import load_issue
from digest.render import caniemail as lint
from digest.store import connect, transaction
from digest.store.images import image_bytes, image_key
from digest.store.issues import freeze_issue
from digest.web.app import create_app
from plugins.browser import Chromium, assert_no_axe_violations, screenshot
from plugins.drafting import cli_env, seed_week
from plugins.feedserver import FeedServer

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://digest.example.org"


def photo(width: int, height: int) -> bytes:
    """A real JPEG with something to look at: a gradient and a disc."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    from PIL import ImageDraw

    ImageDraw.Draw(image).ellipse(
        (width // 3, height // 4, width // 3 + height // 2, height // 4 + height // 2),
        fill=(47, 93, 80),
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def transparent(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (47, 93, 80, 160)).save(out, "PNG")
    return out.getvalue()


@dataclass
class Imaged:
    root: Path
    env: dict[str, str]
    db: Path
    blogs_yaml: Path
    html: str
    text: str
    urls: dict[str, tuple[str, str | None]]  # post id -> (image URL, alt from the feed)


@pytest.fixture
def imaged(tmp_path: Path, feed_server: FeedServer) -> Imaged:
    blogs_yaml = tmp_path / "blogs.yaml"
    text = (ROOT / "blogs.yaml").read_text()
    assert "  # images: cached" in text
    blogs_yaml.write_text(text.replace("  # images: cached", "  images: cached", 1))
    db = tmp_path / "subscribers" / "digest.db"
    conn = connect(db)
    new = seed_week(conn, now=datetime.now(UTC).replace(microsecond=0))
    served = {
        "xxiivv": (
            feed_server.serve("/733.jpg", photo(1600, 1000), content_type="image/jpeg"),
            "A gyroscope on the deck",
        ),  # fmt: skip
        "optimistic-underground": (
            feed_server.serve("/cover.png", transparent(640, 480), content_type="image/png"),
            None,
        ),
    }
    urls: dict[str, tuple[str, str | None]] = {}
    with transaction(conn):
        for blog, (url, alt) in served.items():
            post_id = next(i for i in new if i.startswith(blog + "-"))
            conn.execute(
                "UPDATE posts SET image = ?, image_alt = ? WHERE id = ?", (url, alt, post_id)
            )
            urls[post_id] = (url, alt)
    conn.close()
    env = cli_env(tmp_path, blogs_yaml, db, DIGEST_ALLOW_PRIVATE_TARGETS="1")
    runner = CliRunner()
    result = runner.invoke(main, ["draft", "--no-fetch"], env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["preview", "--out", str(tmp_path / "out")], env=env)
    assert result.exit_code == 0, result.output
    return Imaged(
        tmp_path,
        env,
        db,
        blogs_yaml,
        (tmp_path / "out" / "preview.html").read_text(encoding="utf-8"),
        (tmp_path / "out" / "preview.txt").read_text(encoding="utf-8"),
        urls,
    )


def thumbs(html: str) -> list[str]:
    return re.findall(r"<img\b[^>]*class=\"thumb[^>]*>", html)


def test_email_shows_each_thumbnail_sized_with_alt(imaged: Imaged) -> None:
    tags = thumbs(imaged.html)
    assert len(tags) == 2
    (url, _), (png_url, _) = imaged.urls.values()
    photo_tag = next(t for t in tags if image_key(url) in t)
    assert f'src="{BASE}/images/{image_key(url)}.jpg"' in photo_tag
    assert 'width="536"' in photo_tag and 'height="335"' in photo_tag
    assert 'alt="A gyroscope on the deck"' in photo_tag
    assert "display:block" in photo_tag.replace(" ", "")
    png_tag = next(t for t in tags if image_key(png_url) in t)
    assert f"/images/{image_key(png_url)}.png" in png_tag
    assert 'width="536"' in png_tag and 'height="358"' in png_tag
    # No alt in the feed: the post's title, as the draft shows it.
    conn = connect(imaged.db)
    try:
        issue = load_issue(Settings(blogs=imaged.blogs_yaml), load_blogs(imaged.blogs_yaml), conn)
    finally:
        conn.close()
    title = next(p.title for p in issue.posts if p.id == list(imaged.urls)[1])
    assert title and f'alt="{title}"' in png_tag.replace("&#39;", "'")
    # The same URL for every reader: nothing per subscriber in it, nothing in the text part.
    assert "preview0000" not in " ".join(tags)
    assert "/images/" not in imaged.text
    # Never the blogs' hosts: only digest's own site.
    assert "127.0.0.1" not in imaged.html


def test_preview_check_finds_nothing_wrong_with_the_thumbnails(imaged: Imaged) -> None:
    result = CliRunner().invoke(main, ["preview", "--check", "--out", "out2"], env=imaged.env)
    assert "image:" not in result.output, result.output
    assert result.exit_code == 0, result.output


def test_serve_answers_images_from_the_database(imaged: Imaged) -> None:
    settings = Settings(blogs=imaged.blogs_yaml, db=imaged.db, base_url=BASE)
    app = create_app(settings, load_blogs(imaged.blogs_yaml), imaged.db)
    (url, _), (png_url, _) = imaged.urls.values()
    with TestClient(app) as client:
        response = client.get(f"/images/{image_key(url)}.jpg")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert "immutable" in response.headers["cache-control"]
        assert "max-age=31536000" in response.headers["cache-control"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" in response.headers
        with Image.open(io.BytesIO(response.content)) as image:
            assert (image.format, image.size) == ("JPEG", (1072, 670))
        png = client.get(f"/images/{image_key(png_url)}.png")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        for wrong in (
            f"/images/{image_key(url)}.png",  # the stored type decides
            f"/images/{'0' * 32}.jpg",
            "/images/../../etc/passwd",
            f"/images/{image_key(url)}.jpg.svg",
        ):
            assert client.get(wrong).status_code == 404, wrong


def test_archive_page_shows_the_thumbnails(imaged: Imaged) -> None:
    blogs = load_blogs(imaged.blogs_yaml)
    settings = Settings(blogs=imaged.blogs_yaml, db=imaged.db, base_url="https://moved.example")
    conn = connect(imaged.db)
    try:
        issue = load_issue(settings, blogs, conn)
        with transaction(conn):
            freeze_issue(conn, issue, html="", text="", status="sent", now=datetime.now(UTC))
    finally:
        conn.close()
    (url, _), _ = imaged.urls.values()
    with TestClient(create_app(settings, blogs, imaged.db)) as client:
        page = client.get(f"/archive/{issue.number}").text
    tags = thumbs(page)
    assert len(tags) == 2
    # From the frozen issue, with links from the current base URL.
    assert f'src="https://moved.example/images/{image_key(url)}.jpg"' in page
    assert all('width="' in t and 'height="' in t and 'alt="' in t for t in tags)


def test_email_with_images_passes_caniemail(imaged: Imaged) -> None:
    modules = ROOT / lint.NODE_MODULES
    if not modules.is_dir() or shutil.which("node") is None:
        pytest.skip("needs the caniemail data: tests/test_email_clients.py installs it")
    problems = lint.unsupported(imaged.html, modules)
    assert not problems, "\n".join(problems)


def _show_with_images(page: Any, html: str, db: Path) -> None:
    """As a mail client: the images come from digest's site (here: its database), nothing
    else is fetched."""
    conn = connect(db)
    found: dict[str, tuple[str, bytes]] = {}
    for key in re.findall(r"/images/([0-9a-f]{32})\.", html):
        if stored := image_bytes(conn, key):
            found[key] = stored
    conn.close()

    def handle(route: Any) -> None:
        match = re.search(r"/images/([0-9a-f]{32})\.", route.request.url)
        if route.request.url.startswith(BASE) and match and match[1] in found:
            kind, body = found[match[1]]
            route.fulfill(status=200, content_type=kind, body=body)
        else:
            route.abort()

    page.route("**/*", handle)
    try:
        page.set_content(html, wait_until="load")
    finally:
        page.unroute("**/*")


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 600])
def test_email_with_images_in_chromium(chromium: Chromium, imaged: Imaged, width: int) -> None:
    page = chromium.page(width=width)
    _show_with_images(page, imaged.html, imaged.db)
    shown = page.eval_on_selector_all(
        "img.thumb", "els => els.map(e => [e.naturalWidth, e.getBoundingClientRect().width])"
    )
    assert len(shown) == 2
    for natural, box in shown:
        assert natural > 0  # decoded: a real image, not a broken icon
        assert box <= width  # fluid: never wider than the phone
    screenshot(page, f"email-{width}-images")
    assert_no_axe_violations(page, f"the email with images at {width} px")
