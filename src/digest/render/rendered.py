"""A rendered issue variant and its per-subscriber placeholders.

premailer costs milliseconds per run (REFERENCE.md section 4), so it runs once per variant and
each subscriber's copy is made by plain substitution of a few placeholders afterwards. The
placeholders are plain ASCII that survives Jinja escaping, premailer and lxml serialisation
unchanged, inside attributes and text alike. The bodies are split at the placeholders once, so a
subscriber's copy is one join (~10 microseconds) rather than a scan of the whole body per value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape

UNSUBSCRIBE_URL = "%%DIGEST_UNSUBSCRIBE_URL%%"
PREFERENCES_URL = "%%DIGEST_PREFERENCES_URL%%"
WEB_URL = "%%DIGEST_WEB_URL%%"
GREETING = "%%DIGEST_GREETING%%"
PLACEHOLDERS = (UNSUBSCRIBE_URL, PREFERENCES_URL, WEB_URL, GREETING)
PLACEHOLDER_MARK = "%%DIGEST_"
_TEXT_GREETING = GREETING + "\n\n"  # the whole paragraph goes when there is no name


def greeting(name: str) -> str:
    return f"Hello {name},"


def _split(body: str, slots: tuple[str, ...]) -> tuple[str, ...]:
    """Literal text at even indexes, placeholders at odd ones."""
    pattern = "(" + "|".join(re.escape(s) for s in slots) + ")"
    return tuple(re.split(pattern, body))


@dataclass(frozen=True, slots=True)
class Rendered:
    """One variant of an issue: HTML (CSS inlined) and text, placeholders still inside."""

    subject: str
    html: str
    text: str
    categories: frozenset[str] | None = None  # the variant: None is every category
    posts: int = 0  # posts in this variant, collapsed ones included
    shown: int = 0  # posts listed one by one
    size: int = 0  # bytes of quoted-printable encoded HTML, as Gmail counts them
    excerpt_limit: int | None = None
    per_blog: int | None = None
    archive_pick: bool = False
    budget: int | None = None  # the size budget it was shaped for (None: none, the archive)
    greeting_html: str = GREETING  # the greeting element as inlined: dropped without a name
    _html_parts: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _text_parts: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        urls = (UNSUBSCRIBE_URL, PREFERENCES_URL, WEB_URL)
        object.__setattr__(self, "_html_parts", _split(self.html, (*urls, self.greeting_html)))
        object.__setattr__(self, "_text_parts", _split(self.text, (*urls, _TEXT_GREETING)))

    @property
    def over_budget(self) -> bool:
        """Too big even with one post per blog: Gmail would clip it (`preview --check` says)."""
        return self.budget is not None and self.size > self.budget

    @property
    def empty(self) -> bool:
        """Nothing to send to this variant's subscribers (no post, no archive pick)."""
        return self.posts == 0 and not self.archive_pick

    def fill(
        self,
        *,
        unsubscribe_url: str,
        preferences_url: str,
        web_url: str,
        name: str | None,
    ) -> tuple[str, str]:
        """(html, text) for one subscriber. URLs must be absolute; ``name`` is escaped here.

        Values are inserted once, never rescanned: a name cannot smuggle in a placeholder.
        """
        clean = " ".join(name.split()) if name else ""
        if clean:
            greet_html = self.greeting_html.replace(GREETING, escape(greeting(clean)))
            greet_text = greeting(clean) + "\n\n"
        else:
            greet_html = greet_text = ""
        html_values = {
            UNSUBSCRIBE_URL: escape(unsubscribe_url),
            PREFERENCES_URL: escape(preferences_url),
            WEB_URL: escape(web_url),
            self.greeting_html: greet_html,
        }
        text_values = {
            UNSUBSCRIBE_URL: unsubscribe_url,
            PREFERENCES_URL: preferences_url,
            WEB_URL: web_url,
            _TEXT_GREETING: greet_text,
        }
        html = list(self._html_parts)
        for i in range(1, len(html), 2):
            html[i] = html_values[html[i]]
        text = list(self._text_parts)
        for i in range(1, len(text), 2):
            text[i] = text_values[text[i]]
        return "".join(html), "".join(text)
