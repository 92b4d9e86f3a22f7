"""What the templates show: an Issue, one category variant, shaped to fit the size budget.

Pure: no I/O, no Jinja. The templates only lay out these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from urllib.parse import urlsplit

from markupsafe import Markup

from digest.config import Blog, BlogsFile, Logo, contrast
from digest.issue import monthly, rhythm
from digest.models import Issue, IssuePost
from digest.render import markdown
from digest.render.text import shorten

# What subscribers see of a feed's excerpt when there is room: a taste, not the post.
EXCERPT_CHARS = 240  # 2-4 lines in a 600 px column
PREHEADER_CHARS = 140


@dataclass(frozen=True, slots=True)
class Shape:
    """How much of the issue fits: excerpt length, then posts listed per blog (in full or as
    compact title links; the rest collapse into "and N more posts", linking to the archive)."""

    excerpt_limit: int | None = EXCERPT_CHARS
    per_blog: int | None = None


@dataclass(frozen=True, slots=True)
class ImageView:
    """A post's thumbnail, served by digest: one URL for every reader (never a tracking pixel)."""

    src: str  # DIGEST_BASE_URL/images/<key>.<ext>
    width: int  # CSS pixels
    height: int
    alt: str


@dataclass(slots=True)
class PostView:
    title: str
    url: str
    meta: str  # "author · 3 May 2024 · 6 min read"
    excerpt: str
    note: str  # Markdown source (the text part renders it)
    note_html: Markup
    date: str = ""  # "3 May 2024", for the compact title links
    image: ImageView | None = None  # newsletter.images: cached, and the image was fetched


@dataclass(slots=True)
class BlockView:
    """Consecutive posts of one blog inside a category."""

    blog: str
    name: str
    homepage: str
    anchor: str  # "" when an earlier block of the same blog already carries it
    commentary: str  # in full: "" unless this issue shows it (issue/rhythm.py), and only once
    host: str = ""  # "lilianweng.github.io": the quiet line beside the name
    tagline: str = ""  # the blog's one line, when the commentary is not shown
    posts: list[PostView] = field(default_factory=list)  # in full: max_posts_per_blog at most
    extra: list[PostView] = field(default_factory=list)  # the rest, as compact title links
    more: int = 0  # posts collapsed into "and N more posts from BLOG" (the size budget)

    @property
    def rest(self) -> int:
        """Posts beyond those in full: "and N more from BLOG"."""
        return len(self.extra) + self.more


@dataclass(slots=True)
class CategoryView:
    id: str
    title: str
    description: str
    blocks: list[BlockView]

    @property
    def count(self) -> int:
        return sum(len(b.posts) + b.rest for b in self.blocks)


@dataclass(slots=True)
class TocEntry:
    """One blog of a category in "In this issue"."""

    name: str
    anchor: str
    count: int

    @property
    def label(self) -> str:
        return f"{self.name} ({self.count})"


@dataclass(slots=True)
class ArchiveView:
    post: PostView
    blog: str
    name: str
    homepage: str
    commentary: str
    host: str = ""
    tagline: str = ""


@dataclass(slots=True)
class IssueView:
    title: str  # the newsletter's
    description: str
    curator: str
    number: int
    subject: str
    dates: str
    intro: str  # Markdown source
    intro_html: Markup
    preheader: str
    base_url: str
    archive_url: str  # this issue in the web archive
    categories: list[CategoryView]
    archive: ArchiveView | None
    skipped_weeks: int
    date: str = ""  # the issue's day, "1 Dec 2026"
    month: str = ""  # a monthly edition's month, "November 2026"; "" in a weekly issue
    accent: str = "#1a5fb4"
    logo: Logo | None = None
    postal_address: str = ""

    @property
    def host(self) -> str:
        return host(self.base_url)

    @property
    def accent_dark(self) -> str:
        return dark_accent(self.accent)

    def toc(self, category: CategoryView) -> list[TocEntry]:
        """The blogs of ``category`` with their post counts, in order of appearance."""
        entries: dict[str, TocEntry] = {}
        for block in category.blocks:
            count = len(block.posts) + block.rest
            if block.blog in entries:
                entries[block.blog].count += count
            else:
                entries[block.blog] = TocEntry(block.name, f"blog-{block.blog}", count)
        return list(entries.values())

    @property
    def posts(self) -> int:
        return sum(c.count for c in self.categories)

    @property
    def shown(self) -> int:
        return sum(len(b.posts) + len(b.extra) for c in self.categories for b in c.blocks)


DARK_PAPER = "#1f1e1b"  # the column in dark mode (base.html.j2)


def dark_accent(accent: str) -> str:
    """The accent lightened (mixed with white) until it reads at 4.5:1 on the dark column."""
    rgb = [int(accent[i : i + 2], 16) for i in (1, 3, 5)]
    for step in range(11):
        mix = "#" + "".join(f"{round(c + (255 - c) * step / 10):02x}" for c in rgb)
        if contrast(mix, DARK_PAPER) >= 6.5:  # titles stay crisp, not a dull mid-tone
            return mix
    return "#ffffff"


def host(url: str) -> str:
    """The host a reader recognises: "www." dropped."""
    return urlsplit(url).netloc.removeprefix("www.")


def day(moment: datetime, zone: tzinfo) -> str:
    local = moment.astimezone(zone)
    return f"{local.day} {local:%b %Y}"


def date_range(since: datetime, until: datetime, zone: tzinfo) -> str:
    return f"{day(since, zone)} \u2013 {day(until, zone)}"


def _post_view(
    post: IssuePost, shape: Shape, zone: tzinfo, blog_name: str, base_url: str = ""
) -> PostView:
    author = " ".join((post.author or "").split())
    if author.casefold() == blog_name.casefold():
        author = ""  # "Sander Dieleman · Sander Dieleman" says nothing twice
    date = day(post.date, zone) if post.date else ""
    meta = " \u00b7 ".join(x for x in (author, date, reading_time(post.words)) if x)
    return PostView(
        title=" ".join(post.title.split()) or post.url,
        url=post.url,
        meta=meta,
        excerpt=shorten(post.excerpt, shape.excerpt_limit),
        note=post.note.strip(),
        note_html=Markup(markdown.to_html(post.note)) if post.note.strip() else Markup(""),
        date=date,
        image=_image_view(post, base_url),
    )


def _image_view(post: IssuePost, base_url: str) -> ImageView | None:
    image = post.image
    if image is None or not base_url:
        return None
    return ImageView(
        src=f"{base_url}/images/{image.key}.{image.ext}",
        width=image.width,
        height=image.height,
        alt=" ".join(image.alt.split()),
    )


WORDS_PER_MINUTE = 230  # an adult reading prose on a screen
# Fewer words than this: a teaser in the content element ("[…]", "Continue reading") or a
# note-length post, where a reading time would mislead or say nothing.
READING_TIME_FROM = 150


def reading_time(words: int | None) -> str:
    """'6 min read' from the full content's word count; '' when the feed gave only a summary."""
    if words is None or words < READING_TIME_FROM:
        return ""
    return f"{max(1, round(words / WORDS_PER_MINUTE))} min read"


def _wanted(post: IssuePost, categories: frozenset[str] | None) -> bool:
    return categories is None or post.category in categories


def build_view(
    issue: Issue,
    blogs: BlogsFile,
    *,
    base_url: str,
    categories: frozenset[str] | None = None,
    shape: Shape = Shape(),
    in_full: int | None = None,
) -> IssueView:
    """The variant of ``issue`` for subscribers of ``categories`` (None: every category).

    ``in_full``: posts per blog shown in full, the rest as compact title links (the email
    passes ``max_posts_per_blog``); None: every post in full (the web archive's page)."""
    zone = blogs.newsletter.schedule.tz
    base_url = base_url.rstrip("/")
    archive_url = f"{base_url}/archive/{issue.key}"
    order = {c.id: i for i, c in enumerate(blogs.categories)}
    posts = [p for p in issue.posts if _wanted(p, categories)]

    if issue.commentary is not None:
        full = issue.commentary
    else:  # frozen before the rhythm was recorded: every blog's commentary, once
        full = {
            b: " ".join(blog.commentary.split())
            for b in rhythm.featured_blogs(issue)
            if (blog := blogs.blog(b)) is not None and blog.commentary.strip()
        }

    def words(blog_id: str, blog: Blog | None) -> tuple[str, str]:
        """(commentary, tagline) for the blog's first block in this variant, ("", "") after."""
        if blog_id in commented:
            return "", ""
        commented.add(blog_id)
        if blog_id in full:
            return full[blog_id], ""
        return "", " ".join(blog.tagline.split()) if blog else ""

    commented: set[str] = set()
    anchored: set[str] = set()
    shown_per_blog: dict[str, int] = {}
    views: list[CategoryView] = []
    # Categories in blogs.yaml order; posts in the curator's order within each.
    for cat_id in sorted({p.category for p in posts}, key=lambda c: (order.get(c, len(order)), c)):
        cat = blogs.category(cat_id)
        blocks: list[BlockView] = []
        for post in (p for p in posts if p.category == cat_id):
            if not blocks or blocks[-1].blog != post.blog:
                blog = blogs.blog(post.blog)
                name = blog.name if blog else post.blog
                commentary, tagline = words(post.blog, blog)
                blocks.append(
                    BlockView(
                        blog=post.blog,
                        name=name,
                        homepage=blog.homepage if blog else post.url,
                        anchor="" if post.blog in anchored else f"blog-{post.blog}",
                        commentary=commentary,
                        host=host(blog.homepage if blog else post.url),
                        tagline=tagline,
                    )
                )
                anchored.add(post.blog)
            block = blocks[-1]
            seen = shown_per_blog.get(post.blog, 0)
            if shape.per_blog is not None and seen >= shape.per_blog:
                block.more += 1
                continue
            shown_per_blog[post.blog] = seen + 1
            entry = _post_view(post, shape, zone, block.name, base_url)
            # A prolific blog (XXIIVV's 735-item feed) must not bury the others.
            (block.posts if in_full is None or seen < in_full else block.extra).append(entry)
        views.append(
            CategoryView(
                id=cat_id,
                title=cat.title if cat else cat_id,
                description=" ".join(cat.description.split()) if cat else "",
                blocks=blocks,
            )
        )

    archive: ArchiveView | None = None
    pick = issue.archive_pick
    if pick is not None and _wanted(pick, categories):
        blog = blogs.blog(pick.blog)
        name = blog.name if blog else pick.blog
        # Never twice in one issue: a blog shown above says nothing again here.
        commentary, tagline = words(pick.blog, blog)
        archive = ArchiveView(
            post=_post_view(
                pick, Shape(excerpt_limit=shape.excerpt_limit), zone, name, base_url
            ),
            blog=pick.blog,
            name=blog.name if blog else pick.blog,
            homepage=blog.homepage if blog else pick.url,
            commentary=commentary,
            host=host(blog.homepage if blog else pick.url),
            tagline=tagline,
        )

    view = IssueView(
        title=blogs.newsletter.title,
        description=" ".join(blogs.newsletter.description.split()),
        curator=blogs.newsletter.curator,
        number=issue.number,
        subject=issue.subject,
        dates=date_range(issue.since, issue.until, zone),
        intro=issue.intro.strip(),
        intro_html=Markup(markdown.to_html(issue.intro)),
        preheader="",
        base_url=base_url,
        archive_url=archive_url,
        categories=views,
        archive=archive,
        skipped_weeks=issue.skipped_weeks,
        date=day(issue.until, zone),
        month=monthly.label(issue.month) if issue.month else "",
        accent=blogs.newsletter.accent,
        logo=blogs.newsletter.logo,
        postal_address=" ".join(blogs.newsletter.postal_address.split()),
    )
    view.preheader = preheader(view)
    return view


def preheader(view: IssueView) -> str:
    """The inbox preview line: the curator's intro, else what the issue holds."""
    text = markdown.to_plain(view.intro)
    if not text:
        names: list[str] = []
        for cat in view.categories:
            for block in cat.blocks:
                if block.name not in names:
                    names.append(block.name)
        count = view.posts
        if count:
            noun = "post" if count == 1 else "posts"
            if view.month:  # the monthly edition: the month's best, not new posts
                text = f"{view.month}: {count} {noun} from {_join(names)}."
            else:
                text = f"{count} new {noun} from {_join(names)}."
        elif view.archive is not None:
            text = f"From the archive: {view.archive.post.title}"
        else:
            text = view.description
    return shorten(text, PREHEADER_CHARS)


def _join(names: list[str]) -> str:
    if len(names) > 3:
        return ", ".join(names[:3]) + f" and {len(names) - 3} more"
    if len(names) > 1:
        return ", ".join(names[:-1]) + " and " + names[-1]
    return names[0] if names else ""
