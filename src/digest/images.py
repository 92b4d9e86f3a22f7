"""Post thumbnails (``newsletter.images: cached``): fetched once, resized, served by digest.

The one seam to Pillow. A post's feed names its image (digest/feeds/thumbnail.py); here it is
fetched through the guard for third-party URLs (digest/net.py) with the feed fetcher's limits
(DIGEST_FETCH_TIMEOUT for the whole exchange, DIGEST_FETCH_MAX_BYTES, its User-Agent, at most
DIGEST_FETCH_PER_HOST at once per host), decoded, cropped, resized and re-encoded, and kept in
the database (store/images.py). digest serves it at ``DIGEST_BASE_URL/images/<key>.<ext>``:
readers' mail clients never contact the blogs' hosts, and a blog that deletes its image breaks
nothing.

When: at draft time (``refresh_draft``), the step that already uses the network. Preview,
send and the archive stay offline and show exactly what the curator reviewed; a post the
curator adds by hand gets its image on the next `digest draft`.

Size: the email's text column is 600 px less 2 x 32 px padding = 536 CSS px. A thumbnail is
shown that wide (narrower sources at their own width, never upscaled past it), stored at 2x
(1072 px) for retina screens; tall images are cropped to 3:2 around their centre, panoramas
to 3:1, so one picture never fills a phone's screen. JPEG for photos, PNG when the image has
transparency: what every mail client shows (WebP and AVIF are not).

A failed, oversized, non-image, too small (a tracking pixel, an emoji) or refused image is
skipped: the post has no thumbnail, the reason goes into the draft's feed health, and it is
tried again after a day. It never stops the issue.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from PIL import Image, ImageOps, UnidentifiedImageError

from digest.config import Settings
from digest.errors import DigestError
from digest.models import Issue, IssuePost, Post, Thumbnail
from digest.net import Fetched, fetch_each, reason
from digest.store import images as store
from digest.store import posts as store_posts
from digest.store.db import Connection

SHOWN_WIDTH = 536  # CSS px: the email's 600 px column less its 32 px side padding
SCALE = 2  # stored at 2x for retina screens
MIN_WIDTH, MIN_HEIGHT = 120, 80  # smaller: a tracking pixel, an icon or an emoji
TALLEST = 2 / 3  # height / width: taller (3:2 and up) is cropped around the centre
WIDEST = 3.0  # width / height: wider is cropped too
MAX_PIXELS = 40_000_000  # a 40 MP photo decodes in ~120 MB; more is refused before decoding
FORMATS = ("JPEG", "PNG", "GIF", "WEBP")  # decoders tried: no exotic formats from strangers
RETRY_AFTER = timedelta(days=1)
ACCEPT = "image/jpeg, image/png, image/webp, image/gif;q=0.8"
JPEG_QUALITY = 82

# Decompression bombs: Pillow warns past this and refuses past twice it; we refuse past it
# ourselves, from the header, before anything is decoded (``resize``).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(DigestError):
    """An image that cannot be a thumbnail; the message is the reason the curator sees."""


@dataclass(frozen=True, slots=True)
class Resized:
    data: bytes
    content_type: str  # image/jpeg | image/png
    width: int  # pixels stored
    height: int


def _crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    if height > width * TALLEST:
        keep = round(width * TALLEST)
        top = (height - keep) // 2
        return 0, top, width, top + keep
    if width > height * WIDEST:
        keep = round(height * WIDEST)
        left = (width - keep) // 2
        return left, 0, left + keep, height
    return 0, 0, width, height


def resize(data: bytes) -> Resized:
    """``data`` as a thumbnail: cropped, at most SHOWN_WIDTH x SCALE wide; raises ImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as opened:
                width, height = opened.size  # from the header: nothing decoded yet
                if width * height > MAX_PIXELS:
                    raise ImageError(f"{width}x{height} pixels: too large to decode")
                if width < MIN_WIDTH or height < MIN_HEIGHT:
                    raise ImageError(f"{width}x{height} pixels: too small for a thumbnail")
                target = SHOWN_WIDTH * SCALE
                opened.draft("RGB", (target, target))  # JPEG: decode at a reduced scale
                image = ImageOps.exif_transpose(opened)  # phones' rotated photos upright
    except UnidentifiedImageError:
        raise ImageError("not an image digest can read (JPEG, PNG, GIF, WebP)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own check, from the header too: past MAX_PIXELS it warns, past twice errs.
        raise ImageError(f"more than {MAX_PIXELS:,} pixels: too large to decode") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
        raise ImageError(f"a broken image ({exc})") from None
    alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    image = image.convert("RGBA" if alpha else "RGB")
    image = image.crop(_crop_box(*image.size))
    if image.width > target:
        height = max(1, round(image.height * target / image.width))
        image = image.resize((target, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if alpha:
        image.save(out, "PNG", optimize=True)
    else:
        image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return Resized(out.getvalue(), "image/png" if alpha else "image/jpeg", *image.size)


def shown_size(width: int, height: int) -> tuple[int, int]:
    """CSS pixels for a stored thumbnail: at most SHOWN_WIDTH wide, the aspect kept."""
    shown = min(SHOWN_WIDTH, width)
    return shown, max(1, round(height * shown / width))


# --- fetching (draft time) --------------------------------------------------------------------


def _thumbnail(fetched: Fetched) -> Resized:
    kind = fetched.content_type.split(";")[0].strip().lower()
    if kind and not kind.startswith("image/"):
        raise ImageError(f"not an image ({kind})")
    return resize(fetched.body)


@dataclass(frozen=True, slots=True)
class Skipped:
    post: Post
    reason: str


def cache_thumbnails(
    settings: Settings, conn: Connection, posts: Iterable[Post], *, now: datetime
) -> list[Skipped]:
    """Fetch and store the thumbnails of ``posts`` not stored yet (failures: after a day);
    returns the posts whose image was skipped, and why, for the draft's feed health."""
    wanted = [p for p in posts if p.image]
    urls = list(dict.fromkeys(p.image for p in wanted if p.image))
    stored = store.get_images(conn, [store.image_key(u) for u in urls])
    due = [
        url
        for url in urls
        if (row := stored.get(store.image_key(url))) is None
        or (row.error is not None and now - row.fetched_at >= RETRY_AFTER)
    ]
    if due:
        for url, result in fetch_each(settings, due, _thumbnail, accept=ACCEPT).items():
            if isinstance(result, Resized):
                store.save_image(
                    conn,
                    url,
                    content_type=result.content_type,
                    width=result.width,
                    height=result.height,
                    data=result.data,
                    now=now,
                )
            else:
                store.save_failure(conn, url, error=reason(result), now=now)
        stored = store.get_images(conn, [store.image_key(u) for u in urls])
    skipped: list[Skipped] = []
    for post in wanted:
        row = stored.get(store.image_key(post.image or ""))
        if row is not None and row.error is not None:
            skipped.append(Skipped(post, row.error))
    return skipped


# --- the issue (no network) -------------------------------------------------------------------


def thumbnail(row: store.StoredImage, alt: str) -> Thumbnail | None:
    if row.error is not None or not row.ext or not row.width or not row.height:
        return None
    width, height = shown_size(row.width, row.height)
    return Thumbnail(key=row.key, ext=row.ext, width=width, height=height, alt=alt)


def attach_thumbnails(issue: Issue, conn: Connection) -> None:
    """Give each post of ``issue`` its stored thumbnail (alt: the feed's, else the title)."""
    entries: list[IssuePost] = [*issue.posts]
    if issue.archive_pick is not None:
        entries.append(issue.archive_pick)
    known = store_posts.get_posts(conn, [p.id for p in entries])
    keys = {p.id: store.image_key(image) for p in known.values() if (image := p.image)}
    rows = store.get_images(conn, list(set(keys.values())))
    for entry in entries:
        post = known.get(entry.id)
        row = rows.get(keys.get(entry.id, ""))
        if post is None or row is None:
            continue
        alt = post.image_alt or " ".join(entry.title.split()) or post.title
        entry.image = thumbnail(row, alt)


__all__ = [
    "ImageError",
    "Resized",
    "Skipped",
    "attach_thumbnails",
    "cache_thumbnails",
    "resize",
    "shown_size",
]
