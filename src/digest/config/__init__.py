"""Settings from the environment (``DIGEST_*``, settings.py) and the curator's ``blogs.yaml``
(blogs.py).

Secrets only ever come from the environment (or ``.env``); blogs.yaml holds what the curator
writes by hand and may be committed.
"""

from digest.config.blogs import (
    MIN_CONTRAST,
    PAPER,
    WEEKDAYS,
    Blog,
    BlogEmail,
    BlogsFile,
    Category,
    Link,
    Logo,
    Monthly,
    Newsletter,
    Schedule,
    Weekday,
    contrast,
    load_blogs,
    slugify,
)
from digest.config.settings import (
    RELAYS_EXAMPLE,
    SMTP_PORTS,
    Settings,
    SmtpRelay,
    load_settings,
    parse_rate,
    parse_relays,
)

__all__ = [
    "MIN_CONTRAST",
    "PAPER",
    "RELAYS_EXAMPLE",
    "SMTP_PORTS",
    "WEEKDAYS",
    "Blog",
    "BlogEmail",
    "BlogsFile",
    "Category",
    "Link",
    "Logo",
    "Monthly",
    "Newsletter",
    "Schedule",
    "Settings",
    "SmtpRelay",
    "Weekday",
    "contrast",
    "load_blogs",
    "load_settings",
    "parse_rate",
    "parse_relays",
    "slugify",
]
