"""Plain-text helpers for the text part: wrapping at 72 and numbered link references.

72 columns leave room for the "> " of a reply in a terminal mail client (mutt, aerc, alpine).
"""

from __future__ import annotations

import textwrap

WIDTH = 72


class Links:
    """Numbered references: ``ref(url)`` -> ``"[3]"``, ``flush()`` lists the new ones.

    Numbers run through the whole issue; each section lists the links it introduced at its end.
    A URL seen before keeps its first number.
    """

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        self._pending: list[str] = []

    def ref(self, url: str) -> str:
        number = self._numbers.get(url)
        if number is None:
            number = self._numbers[url] = len(self._numbers) + 1
            self._pending.append(url)
        return f"[{number}]"

    def flush(self) -> str:
        lines = [f"[{self._numbers[url]}] {url}" for url in self._pending]
        self._pending.clear()
        return "\n".join(lines)

    @property
    def urls(self) -> list[str]:
        return list(self._numbers)


def wrap(text: str, indent: str = "", *, first: str | None = None, width: int = WIDTH) -> str:
    """Wrap one paragraph (whitespace collapsed); URLs and long words are never broken."""
    return textwrap.fill(
        " ".join(text.split()),
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def shorten(text: str, limit: int | None) -> str:
    """Cut at a word boundary to at most ``limit`` characters, marking the cut with an ellipsis."""
    text = " ".join(text.split())
    if limit is None or len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,.;:-")
    return cut + "\u2026"


def underline(title: str, char: str = "-") -> str:
    return f"{title}\n{char * min(len(title), WIDTH)}"
