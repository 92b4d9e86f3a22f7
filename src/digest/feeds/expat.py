"""The SAX driver feedparser runs on: the standard library's Expat reader, with text buffered.

feedparser asks ``xml.sax.make_parser`` for the drivers in ``PREFERRED_XML_PARSERS`` first
(``drv_libxml2``, which is not installed). Two costs come from that, both measured on the
benchmark's 500 feeds (see benchmarks/bench_fetch.py):

- a failed import of ``drv_libxml2`` for every feed: Python searches the whole ``sys.path``
  again each time (about 1 ms a feed). Naming this module first ends the search.
- Expat reports text in pieces, one per line and per entity (every ``&lt;`` of an escaped
  HTML description), and feedparser spends Python calls on each. ``buffer_text`` joins
  adjacent pieces before reporting them: the same text, in the same order, relative to the
  same elements, in about a third of the calls.

Everything else is the standard ``xml.sax.expatreader.ExpatParser``: the same libexpat, so
the same entity-amplification limit (billion laughs) and no external entities.
"""

from __future__ import annotations

from typing import Any
from xml.sax.expatreader import ExpatParser

# Expat's default text buffer is 8 KiB; a feed item's description is often longer, and a
# bigger buffer means fewer pieces.
_BUFFER = 64 * 1024


class BufferedExpatParser(ExpatParser):
    def reset(self) -> None:
        super().reset()
        # reset() has just made the pyexpat parser (typeshed does not declare the attribute).
        parser: Any = self._parser  # type: ignore[attr-defined]
        parser.buffer_text = True
        parser.buffer_size = _BUFFER


def create_parser(*args: Any, **kwargs: Any) -> BufferedExpatParser:
    """The entry point ``xml.sax.make_parser`` calls on a driver module."""
    return BufferedExpatParser(*args, **kwargs)
