"""The email against caniemail.com's data: no feature the design depends on may be unsupported in
Gmail, Outlook or Apple Mail (every client of those three in the data: webmail, desktop, iOS and
Android). The data and its checker are the npm package `@jsx-email/doiuse-email`, run by node;
this module is the one seam to it. `digest preview --check` uses it when node and the package
are there (`.cache/node/node_modules`, which the tests install from tests/node/package-lock.json)
and says so when they are not; tests/test_email_clients.py always runs it.

What the email may use although some of those clients lack it, and why:

- anything inside a <style> element (`<style data-premailer="ignore">` included): `:hover`,
  `@media` (small screens, `prefers-color-scheme`), class and type selectors, `!important`.
  Gmail's web client drops the whole block for some accounts, so the mail must read well without
  it: every style it needs is inlined. The lint runs on the mail with every <style> removed.
- the preheader (the element of class "preheader"): it is hidden by several overlapping tricks
  (`display:none`, `max-height:0`, `overflow:hidden`, `opacity:0`, `mso-hide:all`, a 1px font), so
  a client that lacks one is covered by another.
- `<body> element`: Outlook for macOS, iOS and Android replace <body> with a <div>. Allowed while
  the body's background colour is repeated on an element inside it (the outer wrapper), so nothing
  is lost (tests/test_email_clients.py checks that).
- `role attribute`: Windows Mail ignores `role="presentation"` on the layout tables; a screen
  reader there announces them as tables, and nothing changes on screen.
- `Local anchors` (`href="#ml"`, the "In this issue" links), in Gmail for iOS and Outlook for iOS
  and Android only: there a tap on one does nothing (caniemail's note "Clicking an anchor link
  does nothing"), and the block still shows the whole issue at a glance. Where an anchor would
  misbehave instead (open the webmail's home page or a broken URL), it is not allowed.

Anything else caniemail reports as "not supported" is a problem, naming the feature and the
client. Features only "partially supported" (caniemail's warnings) are not.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from digest.errors import RenderError

CLIENTS = ("gmail.*", "outlook.*", "apple-mail.*")
PACKAGE = "@jsx-email/doiuse-email"
# Where `digest preview --check` looks, relative to the folder it runs in.
NODE_MODULES = Path(".cache") / "node" / "node_modules"
# feature -> the clients it may be unsupported in (None: any of them), and why it may
ALLOWED: dict[str, tuple[frozenset[str] | None, str]] = {
    "<body> element": (None, "replaced by a <div>; its background is repeated inside"),
    "role attribute": (None, "role=presentation ignored by Windows Mail: no change on screen"),
    "Local anchors": (
        frozenset({"gmail.ios", "outlook.ios", "outlook.android"}),
        "caniemail's note there: a tap does nothing; the block still lists the whole issue",
    ),
}
ERROR = re.compile(r"`(?P<feature>.+)` is not supported by `(?P<client>[^`]+)`")

# node -e SCRIPT NODE_MODULES CLIENT...: the HTML on stdin, JSON on stdout. htmlparser2, domutils
# and dom-serializer take out what the design may not depend on before the lint.
SCRIPT = r"""
"use strict";
const path = require("node:path");
const fs = require("node:fs");
const [modules, ...clients] = process.argv.slice(1);
const need = (name) => require(path.join(modules, name));
const { doIUseEmail } = need("@jsx-email/doiuse-email");
const { parseDocument } = need("htmlparser2");
const { findAll, removeElement } = need("domutils");
const render = need("dom-serializer").default;
const document = parseDocument(fs.readFileSync(0, "utf8"));
const styles = findAll((el) => el.name === "style", document.children);
const preheaders = findAll(
  (el) => (el.attribs.class || "").split(/\s+/).includes("preheader"),
  document.children,
);
for (const el of [...styles, ...preheaders]) removeElement(el);
const result = doIUseEmail(render(document), { emailClients: clients });
process.stdout.write(JSON.stringify({ errors: result.success ? [] : result.errors }));
"""


def unsupported(html: str, node_modules: Path, *, node: str = "node") -> list[str]:
    """caniemail's "not supported" findings the email may not have (see the module's doc),
    each as "`FEATURE` is not supported by `CLIENT`", sorted."""
    try:
        run = subprocess.run(
            [node, "-e", SCRIPT, str(node_modules.resolve()), *CLIENTS],
            input=html,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        errors = json.loads(run.stdout)["errors"] if run.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        raise RenderError(
            f"the caniemail lint could not run: {exc}",
            hint=f"check node and {node_modules / PACKAGE}",
        ) from None
    if not isinstance(errors, list):
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise RenderError(
            f"the caniemail lint failed: {last}",
            hint=f"reinstall it: rm -r {node_modules.parent} and run the tests once",
        )
    problems = []
    for error in errors:
        found = ERROR.fullmatch(str(error))
        if found is None:
            problems.append(str(error))
            continue
        clients = ALLOWED[found["feature"]][0] if found["feature"] in ALLOWED else frozenset()
        if clients is not None and found["client"] not in clients:
            problems.append(str(error))
    return sorted(set(problems))


def check(html: str, folder: Path) -> tuple[list[str], str | None]:
    """For `preview --check`: the problems, or none and why the lint did not run."""
    node = shutil.which("node")
    modules = folder / NODE_MODULES
    if node is None:
        return [], "email client lint (caniemail) skipped: node is not installed"
    if not (modules / PACKAGE / "package.json").is_file():
        return [], (
            f"email client lint (caniemail) skipped: {NODE_MODULES / PACKAGE} is not installed "
            "(tests/test_email_clients.py installs it from tests/node/package-lock.json)"
        )
    return [f"{p} (caniemail.com)" for p in unsupported(html, modules, node=node)], None
