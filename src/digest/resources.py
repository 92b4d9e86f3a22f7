"""Where the templates come from: the built-in ones, installed with the package, and the
curator's own (``DIGEST_TEMPLATES``), file by file.

The built-in templates live in the repository's top-level ``templates/`` folder, which the
build maps to the package ``digest.templates`` (pyproject.toml): a wheel carries them, and an
editable install finds them in the checkout. Nothing here looks at the source tree or the
current folder, so an installed digest renders from any folder.

An override folder has the built-in layout (``email/issue.html.j2``, ``web/home.html``,
``web/style.css``, ...). Each file found there replaces the built-in file of that name; every
other name still comes from the package, so an overridden ``issue.html.j2`` can extend the
built-in ``base.html.j2`` and the other way round.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import jinja2

from digest.errors import ConfigError, RenderError

PACKAGE = "digest.templates"
Kind = Literal["email", "web"]


def check_override(folder: Path) -> Path:
    """``folder`` if it is one; a missing folder must not silently mean "use the built-ins"."""
    if not folder.is_dir():
        raise ConfigError(
            f"DIGEST_TEMPLATES: no such folder: {folder.resolve()}",
            path=str(folder),
            hint="create it with the templates to replace, laid out like the built-in ones "
            "(email/issue.html.j2, web/home.html, ...), or unset DIGEST_TEMPLATES",
        )
    return folder


def _missing(what: str, exc: Exception) -> RenderError:
    return RenderError(
        f"the built-in {what} is missing from this installation ({exc})",
        hint="reinstall digest (`pip install .`, or `make setup` in a checkout)",
    )


def _builtin(kind: Kind) -> jinja2.BaseLoader:
    try:
        return jinja2.PackageLoader(PACKAGE, kind)
    except (ImportError, ValueError) as exc:  # a broken install, or a stale editable one
        raise _missing(f"{kind} templates", exc) from None


def loader(kind: Kind, override: Path | None = None) -> jinja2.BaseLoader:
    """The Jinja2 loader for the ``email`` or ``web`` templates: the override first, per file."""
    builtin = _builtin(kind)
    if override is None:
        return builtin
    return jinja2.ChoiceLoader([jinja2.FileSystemLoader(check_override(override) / kind), builtin])


def read_bytes(kind: Kind, name: str, override: Path | None = None) -> bytes:
    """A file served as it is (the stylesheet), overridden like the templates."""
    if override is not None:
        mine = check_override(override) / kind / name
        if mine.is_file():
            return mine.read_bytes()
    try:
        return (resources.files(PACKAGE) / kind / name).read_bytes()
    except (ImportError, OSError) as exc:
        raise _missing(f"{kind}/{name}", exc) from None
