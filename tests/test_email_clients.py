"""The issue's email against caniemail.com's data (npm `@jsx-email/doiuse-email`, run by node):
no feature it depends on is unsupported in Gmail, Outlook or Apple Mail (every client of those
three in the data: webmail, desktop, iOS and Android).

What the email may use although some of those clients lack it, and why:

- anything inside a <style> element (`<style data-premailer="ignore">` included): `:hover`,
  `@media` (small screens, `prefers-color-scheme`), class and type selectors, `!important`.
  Gmail's web client drops the whole block for some accounts, so the mail must read well without
  it: every style it needs is inlined. The lint runs on the mail with every <style> removed (the
  screenshots email-*-nostyle.png of tests/test_a11y.py show that mail).
- the preheader (the element of class "preheader"): it is hidden by several overlapping tricks
  (`display:none`, `max-height:0`, `overflow:hidden`, `opacity:0`, `mso-hide:all`, a 1px font), so
  a client that lacks one is covered by another.
- `<body> element`: Outlook for macOS, iOS and Android replace <body> with a <div>. Allowed only
  while the body's background colour is repeated on an element inside it (the outer wrapper), so
  nothing is lost; `test_body_background_is_repeated_inside` checks that.
- `role attribute`: Windows Mail ignores `role="presentation"` on the layout tables; a screen
  reader there announces them as tables, and nothing changes on screen.
- `Local anchors` (`href="#ml"`, the "In this issue" links), in Gmail for iOS and Outlook for iOS
  and Android only: there a tap on one does nothing (caniemail's note "Clicking an anchor link
  does nothing"), and the block still shows the whole issue at a glance. Where an anchor would
  misbehave instead (open the webmail's home page or a broken URL), it is not allowed.

Anything else reported as "not supported" fails, with the feature and the client. Features only
"partially supported" are caniemail's warnings and do not fail.

The npm packages are pinned in tests/node/package-lock.json and installed by the first test that
needs them into .cache/node/ (git-ignored) with `npm ci`; the tests skip, saying so, only when node
or npm is missing.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from plugins.browser import PreviewEmail

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).resolve().parent / "node"  # package.json, package-lock.json, lint.cjs
NODE_DIR = ROOT / ".cache" / "node"
CLIENTS = ["gmail.*", "outlook.*", "apple-mail.*"]
# feature -> the clients it may be unsupported in (None: any of them), and why it may
ALLOWED: dict[str, tuple[frozenset[str] | None, str]] = {
    "<body> element": (None, "replaced by a <div>; its background is repeated inside"),
    "role attribute": (None, "role=presentation ignored by Windows Mail: no change on screen"),
    "Local anchors": (
        frozenset({"gmail.ios", "outlook.ios", "outlook.android"}),
        "caniemail's note 3 there: a tap does nothing; the block still lists the whole issue",
    ),
}
ERROR = re.compile(r"`(?P<feature>.+)` is not supported by `(?P<client>[^`]+)`")


@pytest.fixture(scope="session")
def caniemail() -> Path:
    """The node_modules folder holding the pinned lint, installed on first use."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("needs node and npm (apt-get install nodejs npm) for the caniemail data")
    lock = (PACKAGE / "package-lock.json").read_bytes()
    stamp = NODE_DIR / ".installed"
    wanted = hashlib.sha256(lock).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        stamp.unlink(missing_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(PACKAGE / name, NODE_DIR / name)
        run = subprocess.run(
            [npm, "ci", "--prefix", str(NODE_DIR), "--ignore-scripts", "--no-audit", "--no-fund"]
            + ["--loglevel=error"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, f"npm ci into {NODE_DIR} failed:\n{run.stdout}{run.stderr}"
        stamp.write_text(wanted)
    return NODE_DIR / "node_modules"


def unsupported(html: str, modules: Path) -> list[str]:
    """caniemail's "not supported" findings the email may not have (see the module's doc)."""
    run = subprocess.run(
        ["node", str(PACKAGE / "lint.cjs"), str(modules), *CLIENTS],
        input=html,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, f"the caniemail lint failed:\n{run.stderr}"
    errors: list[str] = json.loads(run.stdout)["errors"]
    problems = []
    for error in errors:
        found = ERROR.fullmatch(error)
        if found is None:
            problems.append(error)
            continue
        clients = ALLOWED[found["feature"]][0] if found["feature"] in ALLOWED else frozenset()
        if clients is not None and found["client"] not in clients:
            problems.append(error)
    return sorted(set(problems))


def page(body: str, head: str = "") -> str:
    return f'<!DOCTYPE html><html lang="en"><head>{head}</head><body>{body}</body></html>'


def test_issue_uses_only_features_gmail_outlook_and_apple_mail_support(
    caniemail: Path, preview_email: PreviewEmail
) -> None:
    problems = unsupported(preview_email.html, caniemail)
    assert not problems, (
        "the email depends on features these clients lack (caniemail.com):\n" + "\n".join(problems)
    )


def test_body_background_is_repeated_inside(preview_email: PreviewEmail) -> None:
    """The condition of allowing `<body> element`: Outlook's apps drop <body> and its colour."""
    body = re.search(r"<body\b[^>]*>", preview_email.html, re.IGNORECASE)
    assert body, "no <body> in the email"
    colours = re.findall(r"background(?:-color)?\s*:\s*(#[0-9a-fA-F]{3,8})", body[0])
    colours += re.findall(r'bgcolor="(#[0-9a-fA-F]{3,8})"', body[0], re.IGNORECASE)
    inside = preview_email.html[body.end() :].lower()
    for colour in colours:
        assert colour.lower() in inside, f"the body's background {colour} is not repeated inside"


def test_lint_fails_on_unsupported_features(caniemail: Path) -> None:
    problems = unsupported(
        page('<div style="display:grid"><p style="opacity:0.8">Hello</p></div>'), caniemail
    )
    assert "`display:grid` is not supported by `outlook.windows`" in problems
    assert "`display:grid` is not supported by `gmail.desktop-webmail`" in problems
    assert "`opacity` is not supported by `outlook.windows`" in problems
    assert not any("<body> element" in p for p in problems)


def test_style_block_and_preheader_are_progressive(caniemail: Path) -> None:
    style = (
        "<style>a:hover { text-decoration: none !important; }"
        "@media (max-width: 620px) { p { font-size: 15px !important; } }"
        "@media (prefers-color-scheme: dark) { p { color: #eee !important; } }</style>"
        '<style data-premailer="ignore">div > p { opacity: 0.9; }</style>'
    )
    preheader = (
        '<div class="preheader" style="display:none; max-height:0; overflow:hidden; '
        'opacity:0; mso-hide:all">A preview line</div>'
    )
    body = preheader + '<p id="ml" style="color:#222">Hello <a href="#ml">there</a></p>'
    assert unsupported(page(body, style), caniemail) == []
    # The same declarations outside the preheader are reported.
    visible = '<div style="display:none; overflow:hidden; opacity:0">Hidden?</div>'
    problems = unsupported(page(visible), caniemail)
    assert "`opacity` is not supported by `gmail.mobile-webmail`" in problems
    assert "`overflow` is not supported by `outlook.windows`" in problems
