"""The issue's email against caniemail.com's data (npm `@jsx-email/doiuse-email`, run by node,
through digest.render.caniemail): no feature it depends on is unsupported in Gmail, Outlook or
Apple Mail. What the email may use although some of those clients lack it, and why, is in that
module's doc: whatever sits in a <style> element, the preheader's hiding tricks, `<body>`,
`role` on layout tables, and local anchors where a tap on one merely does nothing.

The npm packages are pinned in tests/node/package-lock.json and installed by the first test that
needs them into .cache/node/ (git-ignored) with `npm ci`; the tests skip, saying so, only when node
or npm is missing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.render import caniemail as lint
from plugins.browser import PreviewEmail

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).resolve().parent / "node"  # package.json, package-lock.json
NODE_DIR = ROOT / lint.NODE_MODULES.parent


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


def page(body: str, head: str = "") -> str:
    return f'<!DOCTYPE html><html lang="en"><head>{head}</head><body>{body}</body></html>'


def test_issue_uses_only_features_gmail_outlook_and_apple_mail_support(
    caniemail: Path, preview_email: PreviewEmail
) -> None:
    problems = lint.unsupported(preview_email.html, caniemail)
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
    problems = lint.unsupported(
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
    assert lint.unsupported(page(body, style), caniemail) == []
    # The same declarations outside the preheader are reported.
    visible = '<div style="display:none; overflow:hidden; opacity:0">Hidden?</div>'
    problems = lint.unsupported(page(visible), caniemail)
    assert "`opacity` is not supported by `gmail.mobile-webmail`" in problems
    assert "`overflow` is not supported by `outlook.windows`" in problems


def test_check_names_each_problem_and_says_when_it_cannot_run(
    caniemail: Path, tmp_path: Path
) -> None:
    html = page('<div style="display:grid">Hello</div>')
    problems, skipped = lint.check(html, tmp_path)  # no .cache/node here
    assert problems == [] and skipped is not None
    assert "email client lint (caniemail) skipped" in skipped and "not installed" in skipped
    (tmp_path / lint.NODE_MODULES).parent.mkdir(parents=True)
    (tmp_path / lint.NODE_MODULES).symlink_to(caniemail)
    problems, skipped = lint.check(html, tmp_path)
    assert skipped is None
    assert "`display:grid` is not supported by `outlook.windows` (caniemail.com)" in problems


def test_preview_check_runs_the_lint(
    caniemail: Path, tmp_path: Path, seeded_env: dict[str, str]
) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["draft", "--no-fetch"], env=seeded_env).exit_code == 0
    args = ["preview", "--out", str(tmp_path / "pv"), "--check"]
    without = runner.invoke(main, args, env=seeded_env)  # the cwd is tmp_path: no .cache/node
    assert without.exit_code == 0, without.output
    assert "email client lint (caniemail) skipped" in without.output
    (tmp_path / lint.NODE_MODULES).parent.mkdir(parents=True)
    (tmp_path / lint.NODE_MODULES).symlink_to(caniemail)
    checked = runner.invoke(main, args, env=seeded_env)
    assert "skipped" not in checked.output
    assert checked.exit_code == 0 and "check passed" in checked.output, checked.output
