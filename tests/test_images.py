"""Thumbnails, cached: real images made with Pillow, served by the real local HTTP server,
fetched through the guard, resized, stored in a real SQLite file, attached to the issue."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import timedelta

import pytest
from PIL import Image

from digest.config import Settings
from digest.images import ImageError, cache_thumbnails, resize, shown_size
from digest.issue.draft import load_issue, refresh_draft
from digest.models import Post
from digest.store import images as store
from digest.store import transaction
from plugins.drafting import NOW, Week
from plugins.feedserver import FeedServer


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, "JPEG")
    return out.getvalue()


def png(width: int, height: int, *, alpha: bool) -> bytes:
    out = io.BytesIO()
    mode, colour = ("RGBA", (10, 90, 60, 128)) if alpha else ("RGB", (10, 90, 60))
    Image.new(mode, (width, height), colour).save(out, "PNG")
    return out.getvalue()


def bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's shape)."""
    data = bytearray(png(1, 1, alpha=False))
    ihdr = bytearray(data[16:29])  # IHDR payload after length and type
    ihdr[0:8] = struct.pack(">II", width, height)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return bytes(data)


def test_photo_becomes_a_2x_jpeg_of_the_column() -> None:
    out = resize(jpeg(3000, 2000))
    assert (out.content_type, out.width, out.height) == ("image/jpeg", 1072, 715)
    assert shown_size(out.width, out.height) == (536, 358)
    with Image.open(io.BytesIO(out.data)) as image:
        assert (image.format, image.size) == ("JPEG", (1072, 715))


def test_transparency_stays_png_and_small_sources_are_not_upscaled() -> None:
    out = resize(png(400, 300, alpha=True))
    assert (out.content_type, out.width, out.height) == ("image/png", 400, 267)  # 3:2
    with Image.open(io.BytesIO(out.data)) as image:
        assert image.mode == "RGBA"
    assert shown_size(400, 300) == (400, 300)


def test_tall_and_wide_images_are_cropped() -> None:
    tall = resize(jpeg(800, 2400))
    assert (tall.width, tall.height) == (800, 533)  # 3:2 at most
    wide = resize(jpeg(3000, 500))
    assert (wide.width, wide.height) == (1072, 357)  # 3:1 at most


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<html>not an image</html>", "not an image digest can read"),
        (png(1, 1, alpha=False), "too small for a thumbnail"),  # a tracking pixel
        (bomb(50_000, 50_000), "too large to decode"),
        (jpeg(600, 400)[:200], "broken image"),
    ],
)
def test_unusable_images_raise_image_error(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        resize(data)


def post(n: int, image: str | None) -> Post:
    return Post(
        id=f"b-{n:08x}",
        blog="b",
        title=f"Post {n}",
        url=f"https://b.example/{n}",
        author=None,
        published=None,
        first_seen=NOW,
        excerpt="",
        image=image,
    )


def test_cache_fetches_once_skips_the_bad_ones_and_records_why(
    feed_server: FeedServer, week: Week
) -> None:
    settings = Settings(allow_private_targets=True, fetch_timeout=1, fetch_max_bytes=200_000)
    good = feed_server.serve("/photo.jpg", jpeg(1600, 1200), content_type="image/jpeg")
    alpha = feed_server.serve("/logo.png", png(300, 200, alpha=True), content_type="image/png")
    html = feed_server.serve("/page.jpg", b"<html>hi</html>", content_type="text/html")
    big = feed_server.serve("/big.png", b"\x89PNG" + b"x" * 300_000, content_type="image/png")
    slow = feed_server.serve("/slow.jpg", jpeg(300, 200), content_type="image/jpeg", drip=0.1)
    urls = [good, alpha, html, big, slow, feed_server.url("/missing.png")]
    posts = [post(i, url) for i, url in enumerate(urls)] + [post(99, None), post(98, good)]

    skipped = cache_thumbnails(settings, week.conn, posts, now=NOW)
    reasons = {s.post.image: s.reason for s in skipped}
    assert reasons == {
        html: "not an image (text/html)",
        big: "larger than 200000 bytes",
        slow: "timed out after 1 s",
        feed_server.url("/missing.png"): "HTTP 404",
    }
    rows = store.get_images(week.conn, [store.image_key(u) for u in urls])
    assert (rows[store.image_key(good)].content_type, rows[store.image_key(good)].width) == (
        "image/jpeg",
        1072,
    )
    assert rows[store.image_key(alpha)].ext == "png"
    assert store.image_bytes(week.conn, store.image_key(html)) is None
    # Fetched once: a second draft asks nobody, and failures wait a day before a retry.
    assert len(feed_server.hits("/photo.jpg")) == 1
    cache_thumbnails(settings, week.conn, posts, now=NOW + timedelta(hours=1))
    assert len(feed_server.hits("/photo.jpg")) == 1 and len(feed_server.hits("/page.jpg")) == 1
    cache_thumbnails(settings, week.conn, posts, now=NOW + timedelta(days=2))
    assert len(feed_server.hits("/photo.jpg")) == 1 and len(feed_server.hits("/page.jpg")) == 2


def test_the_guard_refuses_the_local_server_without_the_setting(
    feed_server: FeedServer, week: Week
) -> None:
    url = feed_server.serve("/photo.jpg", jpeg(800, 600), content_type="image/jpeg")
    (skipped,) = cache_thumbnails(Settings(), week.conn, [post(1, url)], now=NOW)
    assert "loopback address 127.0.0.1" in skipped.reason
    assert feed_server.hits("/photo.jpg") == []


def test_a_few_at_a_time_per_host(feed_server: FeedServer, week: Week) -> None:
    settings = Settings(allow_private_targets=True, fetch_per_host=1)
    urls = [
        feed_server.serve(f"/{i}.jpg", jpeg(300, 200), content_type="image/jpeg", delay=0.1)
        for i in range(4)
    ]
    assert (
        cache_thumbnails(settings, week.conn, [post(i, u) for i, u in enumerate(urls)], now=NOW)
        == []
    )
    assert feed_server.peak == 1


def _with_images(week: Week, feed_server: FeedServer) -> dict[str, str]:
    """Give this week's xxiivv and 100r posts a served image (as their feeds would)."""
    text = week.settings.blogs.read_text().replace(
        "  max_posts_per_blog: 3", "  images: cached\n  max_posts_per_blog: 3"
    )
    week.settings.blogs.write_text(text)
    from digest.config import load_blogs

    week.blogs = load_blogs(week.settings.blogs)
    week.settings = week.settings.model_copy(update={"allow_private_targets": True})
    images = {}
    with transaction(week.conn):
        for n, post_id in enumerate(i for i in week.new_ids if i.startswith("xxiivv")):
            url = feed_server.serve(f"/{n}.jpg", jpeg(1200, 800), content_type="image/jpeg")
            week.conn.execute(
                "UPDATE posts SET image = ?, image_alt = ? WHERE id = ?",
                (url, "A gyro" if n == 0 else None, post_id),
            )
            images[post_id] = url
        broken = next(i for i in week.new_ids if i.startswith("hundred-rabbits"))
        week.conn.execute(
            "UPDATE posts SET image = ? WHERE id = ?", (feed_server.url("/gone.jpg"), broken)
        )
    return images


def test_draft_fetches_and_the_issue_carries_the_thumbnails(
    feed_server: FeedServer, week: Week
) -> None:
    images = _with_images(week, feed_server)
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    notes = [n.text for n in summary.health if n.kind == "image"]
    assert len(notes) == 1 and notes[0].startswith("Hundred Rabbits: no thumbnail for")
    assert notes[0].endswith("HTTP 404")
    assert "HTTP 404" in summary.path.read_text()  # in the draft's feed_health, for the curator
    issue = load_issue(week.settings, week.blogs, week.conn)
    with_image = {p.id: p.image for p in issue.posts if p.image}
    assert set(with_image) == set(images)
    first, second = (with_image[i] for i in images)
    assert first is not None and second is not None
    assert (first.width, first.height, first.ext, first.alt) == (536, 358, "jpg", "A gyro")
    titles = {p.id: p.title for p in issue.posts}
    assert second.alt == titles[list(images)[1]]  # no alt in the feed: the post's title
    assert first.key == store.image_key(images[list(images)[0]])


def test_images_off_fetches_nothing(feed_server: FeedServer, week: Week) -> None:
    _with_images(week, feed_server)
    text = week.settings.blogs.read_text().replace("  images: cached\n", "")
    week.settings.blogs.write_text(text)
    from digest.config import load_blogs

    week.blogs = load_blogs(week.settings.blogs)
    refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    assert feed_server.log == []
    assert all(p.image is None for p in load_issue(week.settings, week.blogs, week.conn).posts)
