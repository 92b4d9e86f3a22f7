"""The curator's ``blogs.yaml``: the newsletter, its categories and blogs, validated, every mistake
reported with the file, the entry, its line, what was found and what was expected.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterator
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from digest.errors import ConfigError
from digest.files import OverBound, load_yaml, read_capped

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class _Strict(BaseModel):
    # Unknown keys are errors: a typo such as `comentary:` must not pass silently.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an absolute http(s) URL")
    return value


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "blog"


class Link(_Strict):
    title: str
    url: str
    note: str = ""

    _url = field_validator("url")(classmethod(lambda cls, v: _http_url(v)))


class BlogEmail(_Strict):
    """A blog that publishes by email: only mail from these senders, DKIM-signed, is taken."""

    from_: list[str] = Field(alias="from", min_length=1)

    @field_validator("from_")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            addr = parseaddr(item)[1].strip().lower()
            if "@" not in addr or "." not in addr.rpartition("@")[2]:
                raise ValueError(f"expected a sender address such as letters@example.org, "
                                 f"found {item!r}")
            out.append(addr)
        return out


class Blog(_Strict):
    name: str
    id: str = ""
    homepage: str
    feed: str | None = None
    email: BlogEmail | None = None  # instead of a feed: its newsletter (digest/inbound)
    # feed: the feed's summary; page: the lede of the post's own page (digest/feeds/page.py)
    excerpt: Literal["feed", "page"] = "feed"
    commentary: str = ""
    tagline: str = ""  # one line shown in issues that do not repeat the commentary
    highlights: list[Link] = []
    links: list[Link] = []
    category: str = Field(default="", exclude=True)

    _urls = field_validator("homepage", "feed")(
        classmethod(lambda cls, v: v if v is None else _http_url(v))
    )

    @model_validator(mode="after")
    def _default_id(self) -> Blog:
        if self.email is not None and self.feed is not None:
            raise ValueError(
                "a blog takes its posts from a feed or from email, not both: remove `feed:` "
                "or `email:`"
            )
        if self.email is not None and self.excerpt == "page":
            raise ValueError(
                "excerpt: page fetches a post's page, and a blog by email has none: remove "
                "`excerpt: page` (its letters carry their own lede)"
            )
        if not self.id:
            self.id = slugify(self.name)
        elif not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.id):
            raise ValueError("id: expected lowercase letters, digits and hyphens")
        return self


class Category(_Strict):
    id: str
    title: str = ""
    description: str = ""
    blogs: list[Blog]

    @model_validator(mode="after")
    def _fill(self) -> Category:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.id):
            raise ValueError("id: expected lowercase letters, digits and hyphens")
        self.title = self.title or self.id
        for blog in self.blogs:
            blog.category = self.id
        return self


class Schedule(_Strict):
    weekday: Weekday = "monday"
    time: dt.time = dt.time(8, 0)
    timezone: str = "UTC"

    @field_validator("weekday", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("time", mode="before")
    @classmethod
    def _clock_time(cls, value: Any) -> Any:
        # `time: 8:00` is a natural way to write it; pydantic wants HH:MM[:SS].
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
            if match is None:
                raise ValueError("expected a time of day as HH:MM, such as 08:00")
            return f"{int(match[1]):02d}:{match[2]}"
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as Europe/Brussels") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# The page behind the text (light mode); the accent must read on it (WCAG AA).
PAPER = "#fffdf9"
MIN_CONTRAST = 4.5


def _luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of a #rrggbb colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours, 1 to 21."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


class Logo(_Strict):
    url: str
    width: int = Field(ge=1, le=600)  # CSS pixels as shown; serve the image at 2x
    height: int = Field(ge=1, le=600)
    alt: str = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc:
            raise ValueError("expected an absolute https:// image URL (mail clients block others)")
        return value


class Monthly(_Strict):
    """The monthly edition, for readers who chose that cadence (digest/issue/monthly.py)."""

    max_per_category: int = Field(default=5, ge=1, le=50)


class Newsletter(_Strict):
    title: str
    description: str = ""
    curator: str
    from_: str = Field(alias="from")
    reply_to: str
    list_id: str = ""
    schedule: Schedule = Schedule()
    mode: Literal["auto", "review"] = "auto"
    review_hours: int = Field(default=24, ge=1, le=144)
    lookback_days: int = Field(default=7, ge=1, le=365)
    min_posts: int = Field(default=1, ge=0)
    quiet_week: Literal["skip", "archive_only"] = "skip"
    dormant_days: int = Field(default=180, ge=7)
    report_after_failures: int = Field(default=3, ge=1)
    accent: str = "#1a5fb4"  # links, section labels and the rule beside the curator's words
    logo: Logo | None = None
    postal_address: str = ""  # shown in the footer (CAN-SPAM asks for one)
    commentary: Literal["first", "always"] = "first"
    max_posts_per_blog: int = Field(default=3, ge=1, le=50)
    # off: no images; cached: each post's thumbnail from its feed, fetched once at draft time,
    # resized and served from DIGEST_BASE_URL/images/ (digest/images.py)
    images: Literal["off", "cached"] = "off"
    # Links as BASE/r/<issue>/<n>, the same for every reader: counts per link, never who.
    click_counts: bool = False
    # After an issue is archived, tell each featured post by Webmention (digest/webmention.py).
    webmentions: bool = False
    monthly: Monthly = Monthly()

    @field_validator("accent", mode="before")
    @classmethod
    def _accent_quoted(cls, value: Any) -> Any:
        if value is None:  # `accent: #1a5fb4` unquoted: YAML reads a comment
            raise ValueError("a # starts a YAML comment: quote the colour, accent: '#1a5fb4'")
        return value

    @field_validator("accent")
    @classmethod
    def _accent(cls, value: str) -> str:
        value = value.strip().lower()
        if not re.fullmatch(r"#[0-9a-f]{6}", value):
            raise ValueError("expected a colour as #rrggbb, such as '#1a5fb4' (quote it in YAML)")
        ratio = contrast(value, PAPER)
        if ratio < MIN_CONTRAST:
            raise ValueError(
                f"contrast {ratio:.1f}:1 against the page ({PAPER}) is under {MIN_CONTRAST}:1; "
                "choose a darker colour so links stay readable"
            )
        return value

    @field_validator("from_", "reply_to")
    @classmethod
    def _address(cls, value: str) -> str:
        name, addr = parseaddr(value)
        if "@" not in addr or any(c in value for c in "\r\n"):
            raise ValueError("expected an address such as 'Blogs I like <digest@example.org>'")
        return value

    @property
    def from_address(self) -> str:
        return parseaddr(self.from_)[1]

    @property
    def list_id_value(self) -> str:
        # RFC 2919: a dot-atom that looks like a host name under a domain you control.
        if self.list_id:
            return self.list_id
        return f"{slugify(self.title)}.{self.from_address.rpartition('@')[2]}"


class BlogsFile(_Strict):
    newsletter: Newsletter
    categories: list[Category] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> BlogsFile:
        seen_cat: dict[str, int] = {}
        seen_blog: dict[str, tuple[int, int]] = {}
        for c, cat in enumerate(self.categories):
            if cat.id in seen_cat:
                raise _Duplicate(
                    f"category id {cat.id!r} appears twice (also categories[{seen_cat[cat.id]}])",
                    ("categories", c, "id"),
                )
            seen_cat[cat.id] = c
            for b, blog in enumerate(cat.blogs):
                if blog.id in seen_blog:
                    first = "categories[{}].blogs[{}]".format(*seen_blog[blog.id])
                    raise _Duplicate(
                        f"blog id {blog.id!r} appears twice (also {first}); "
                        "give one an explicit `id:`",
                        ("categories", c, "blogs", b),
                    )
                seen_blog[blog.id] = (c, b)
        return self

    def blogs(self) -> Iterator[Blog]:
        for cat in self.categories:
            yield from cat.blogs

    def blog(self, blog_id: str) -> Blog | None:
        return next((b for b in self.blogs() if b.id == blog_id), None)

    def category(self, cat_id: str) -> Category | None:
        return next((c for c in self.categories if c.id == cat_id), None)


class _Duplicate(ValueError):
    """A repeated id, carrying the entry's location: pydantic reports errors of a model
    validator at the top level, and the curator needs the entry and its line."""

    def __init__(self, message: str, loc: tuple[int | str, ...]) -> None:
        super().__init__(message)
        self.loc = loc


def _loc_text(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(doc: Any, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line in the YAML file closest to the pydantic error location."""
    line: int | None = None
    node = doc
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            if line is None and hasattr(node, "lc"):
                line = node.lc.line + 1
            break
    return line


_TOO_BIG_HINT = "a blogs.yaml is a few KB: check that DIGEST_BLOGS (or --blogs) names the file"


def load_blogs(path: Path) -> BlogsFile:
    """Read and validate blogs.yaml; every mistake becomes a ConfigError naming file and entry."""
    try:
        doc = load_yaml(YAML(typ="rt"), read_capped(path, hint=_TOO_BIG_HINT))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: file not found",
            path=str(path),
            hint="create it (see the commented blogs.yaml in the repository) or set DIGEST_BLOGS",
        ) from None
    except OverBound as exc:
        where = f", line {exc.line}" if exc.line else ""
        raise ConfigError(f"{path}{where}: {exc.message}", path=str(path), hint=exc.hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}", path=str(path)) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{path}{where}: not valid YAML: {exc.problem}",
            path=str(path),
            hint="check the indentation and quoting around that line",
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{path}: expected a mapping with `newsletter:` and `categories:`",
            path=str(path),
            hint="start from the commented blogs.yaml in the repository",
        )
    try:
        return BlogsFile.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            cause = (err.get("ctx") or {}).get("error")
            loc = cause.loc if isinstance(cause, _Duplicate) else tuple(err["loc"])
            line = _line_of(doc, loc)
            where = _loc_text(loc) or "(top level)"
            if line:
                where += f" (line {line})"
            found = err.get("input")
            if err["type"] == "missing":
                detail = "missing"
            elif err["type"] == "extra_forbidden":
                detail = "unknown key (a typo?)"
            elif isinstance(cause, _Duplicate):
                detail = str(cause)
            else:
                detail = f"found {_short(found)}, {err['msg'].removeprefix('Value error, ')}"
            problems.append(f"  {where}: {detail}")
        raise ConfigError(
            f"{path}: {len(problems)} problem(s):\n" + "\n".join(problems),
            path=str(path),
            hint="fix the entries named above; the commented blogs.yaml shows every key",
        ) from None


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
