"""Rendering an issue into email HTML and text (Jinja2 + premailer, once per variant).

render_issue(issue, blogs, base_url=..., categories=None) -> Rendered
Rendered.fill(unsubscribe_url=..., preferences_url=..., web_url=..., name=...) -> (html, text)
"""

from __future__ import annotations

from digest.render.email import GMAIL_CLIP, HTML_BUDGET, encoded_size, render_issue
from digest.render.rendered import Rendered

__all__ = ["GMAIL_CLIP", "HTML_BUDGET", "Rendered", "encoded_size", "render_issue"]
