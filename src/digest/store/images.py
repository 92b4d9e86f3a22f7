"""Thumbnails digest fetched, resized and serves itself (digest/images.py), keyed by a hash
of the source URL: one row per URL, bytes and size on success, the reason on failure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from digest.store.db import Connection, Row, parse_ts, select_in, transaction, ts

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}


# One row per source URL: a later fetch replaces the earlier result.
_SAVE = (
    "INSERT INTO images (key, url, content_type, width, height, data, error, fetched_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET url = excluded.url,"
    " content_type = excluded.content_type, width = excluded.width, height = excluded.height,"
    " data = excluded.data, error = excluded.error, fetched_at = excluded.fetched_at"
)


def image_key(url: str) -> str:
    """32 hex digits of sha256(url): the public name, /images/<key>.<ext>."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class StoredImage:
    key: str
    url: str
    content_type: str | None  # None: it failed (error says why)
    width: int | None  # pixels stored
    height: int | None
    error: str | None
    fetched_at: datetime

    @property
    def ext(self) -> str:
        return EXTENSIONS.get(self.content_type or "", "")


_COLUMNS = "key, url, content_type, width, height, error, fetched_at"


def _stored(row: Row) -> StoredImage:
    fetched = parse_ts(row["fetched_at"])
    assert fetched is not None
    return StoredImage(
        row["key"],
        row["url"],
        row["content_type"],
        row["width"],
        row["height"],
        row["error"],
        fetched,
    )


def get_images(conn: Connection, keys: list[str]) -> dict[str, StoredImage]:
    sql = f"SELECT {_COLUMNS} FROM images WHERE key IN ({{marks}})"
    return {row["key"]: _stored(row) for row in select_in(conn, sql, keys)}


def image_bytes(conn: Connection, key: str) -> tuple[str, bytes] | None:
    """(content type, bytes) of a stored thumbnail, for the web server; None: none."""
    row = conn.execute(
        "SELECT content_type, data FROM images WHERE key = ? AND data IS NOT NULL", (key,)
    ).fetchone()
    return None if row is None else (str(row[0]), bytes(row[1]))


def save_image(
    conn: Connection,
    url: str,
    *,
    content_type: str,
    width: int,
    height: int,
    data: bytes,
    now: datetime,
) -> None:
    with transaction(conn):
        conn.execute(
            _SAVE,
            (image_key(url), url, content_type, width, height, data, None, ts(now)),
        )


def save_failure(conn: Connection, url: str, *, error: str, now: datetime) -> None:
    with transaction(conn):
        conn.execute(
            _SAVE,
            (image_key(url), url, None, None, None, None, error, ts(now)),
        )
