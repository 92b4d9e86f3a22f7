"""One headless Chromium per test session (Playwright, Debian's /usr/bin/chromium), axe-core in it,
screenshots into test-artifacts/ (git-ignored), and the issue's email HTML as `digest preview`
writes it.

def test_x(chromium, preview_email):
    page = chromium.page(width=375, dark=True)
    chromium.show_html(page, preview_email.html)
    assert_no_axe_violations(page, "the email at 375 px, dark")

Playwright's sync API keeps an event loop running in the main thread from its start to its
stop, and `asyncio.run` refuses to start beside it. The browser is therefore started lazily (by
the first `chromium.page()`) and the tests marked `browser` run last in the session
(`pytest_collection_modifyitems` below), so no other test ever runs beside that loop.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.store import connect

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
)
# WCAG 2.0 and 2.1, levels A and AA: what the issue promises (axe-core's tag names).
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
STYLE_BLOCK = re.compile(r"<style\b[^>]*>.*?</style\s*>", re.DOTALL | re.IGNORECASE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last (a stable sort): see the module's docstring."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


class Chromium:
    """The session's browser, started on first use; one page per (width, scheme) reused."""

    def __init__(self) -> None:
        self._playwright: Any = None
        self._browser: Any = None
        self._pages: dict[tuple[int, bool], Any] = {}

    def page(self, *, width: int = 1200, dark: bool = False) -> Any:
        if self._browser is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=ARGS
            )
        key = (width, dark)
        if key not in self._pages:
            # JavaScript on, for axe (its promises never settle without timers); neither the
            # email nor the site has a script. bypass_csp: the site's CSP must not refuse axe.
            context = self._browser.new_context(
                viewport={"width": width, "height": 800},
                color_scheme="dark" if dark else "light",
                bypass_csp=True,
            )
            context.set_default_timeout(15_000)
            self._pages[key] = context.new_page()
        return self._pages[key]

    def fresh_page(self, *, width: int = 1200) -> Any:
        """A page of its own (own cookies), for a test that walks through forms."""
        self.page(width=width)
        context = self._browser.new_context(
            viewport={"width": width, "height": 800}, java_script_enabled=False
        )
        return context.new_page()

    @staticmethod
    def show_html(page: Any, html: str) -> None:
        """Load an email as a mail client would: nothing fetched from the network (the links
        and images point at the example domains of the fixtures)."""
        page.route("**/*", lambda route: route.abort())
        try:
            page.set_content(html, wait_until="load")
        finally:
            page.unroute("**/*")

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._playwright.stop()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    browser = Chromium()
    try:
        yield browser
    finally:
        browser.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A/AA violations on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}
    results = Axe().run(page, options=options)
    return list(results.response["violations"])


def axe_report(violations: list[dict[str, Any]]) -> str:
    """One line per rule and element: rule id, impact, target, help (and its URL)."""
    lines = []
    for violation in violations:
        for node in violation["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            lines.append(
                f"{violation['id']} ({violation['impact']}) at {target}: "
                f"{violation['help']} <{violation['helpUrl']}>\n    {node['html'][:200]}"
            )
    return "\n".join(lines)


def assert_no_axe_violations(page: Any, what: str) -> None:
    violations = axe_violations(page)
    assert not violations, f"axe-core, WCAG 2.x A/AA, on {what}:\n{axe_report(violations)}"


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def without_style(html: str) -> str:
    """The email as Gmail's web client shows it to some accounts: every <style> block gone."""
    return STYLE_BLOCK.sub("", html)


@dataclass(frozen=True)
class PreviewEmail:
    html: str
    text: str


@pytest.fixture(scope="session")
def preview_email(tmp_path_factory: pytest.TempPathFactory) -> PreviewEmail:
    """This week's issue of the fixture feeds, with an intro and a note, as `digest draft` and
    `digest preview` write it (the sample subscriber's copy): rendered once per session."""
    # imported here: a plugin importing another at import time defeats its assertion rewriting
    from plugins.drafting import cli_env, seed_week

    root = tmp_path_factory.mktemp("preview")
    blogs_yaml = root / "blogs.yaml"
    shutil.copy(ROOT / "blogs.yaml", blogs_yaml)
    db_path = root / "subscribers" / "digest.db"
    conn = connect(db_path)
    seed_week(conn, now=datetime.now(UTC).replace(microsecond=0))
    conn.close()
    env = cli_env(root, blogs_yaml, db_path)
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # no developer's .env, no DIGEST_* of theirs
        for name in [n for n in os.environ if n.startswith("DIGEST_")]:
            mp.delenv(name)
        result = runner.invoke(main, ["draft", "--no-fetch"], env=env)
        assert result.exit_code == 0, result.output
        [draft] = (root / "drafts").glob("*.yaml")
        text = draft.read_text(encoding="utf-8")
        text = text.replace(
            "intro: ''",
            "intro: 'Hello! This week: paper folding, **diffusion** and a record I keep "
            "playing. Reply and tell me what you think.'",
            1,
        )
        text = text.replace(
            "note: ''", "note: 'The diagrams alone are worth the visit. *Fold along.*'", 1
        )
        draft.write_text(text, encoding="utf-8")
        result = runner.invoke(main, ["preview", "--out", str(root / "out")], env=env)
        assert result.exit_code == 0, result.output
    return PreviewEmail(
        html=(root / "out" / "preview.html").read_text(encoding="utf-8"),
        text=(root / "out" / "preview.txt").read_text(encoding="utf-8"),
    )
