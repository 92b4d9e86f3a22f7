"""The web side: signup with double opt-in, one-click unsubscribe, preferences (subscribing),
and the public publication: home, archive pages, Atom feeds, blogroll, sitemap (publication).

Starlette is used only in this package; ``create_app`` is the one entry point.
"""

from digest.web.app import create_app

__all__ = ["create_app"]
