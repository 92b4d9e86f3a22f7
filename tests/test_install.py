"""digest installed as a package: a wheel built from the repository, installed into a fresh
venv, run from a folder outside the checkout; and the curator's own templates (DIGEST_TEMPLATES).

The fresh venv holds only the wheel. Its third-party dependencies are borrowed from the
development venv, offline: a folder of links to exactly the distributions the wheel's
``Requires-Dist`` needs (followed transitively), added to the fresh venv's path by a ``.pth``
file. A dependency missing from pyproject.toml, or a file the package still reads from the
source tree, fails here; the development venv's editable install of digest is never on the path.
"""

from __future__ import annotations

import json
import mailbox
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from starlette.testclient import TestClient

from digest.cli import main
from digest.config import load_settings
from digest.errors import ConfigError
from digest.render import render_issue
from digest.store.issues import get_issue
from digest.web import create_app
from plugins.feedserver import FeedServer
from plugins.smtp import Newsroom, free_port
from plugins.website import digest_serve

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://digest.example.org"


# --- the wheel in a throwaway venv ------------------------------------------------------------


@dataclass
class Installed:
    wheel: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a shell with only the fresh venv: no DIGEST_* setting, and
        nothing that could put the checkout on the path (the old-code check sets PYTHONPATH)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "PYTHON"))}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONNOUSERSITE"] = "1"
        env.update(extra)
        return env

    def digest(self, cwd: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "digest"), *args],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            **kw,
        )


def _run(*command: str | Path) -> None:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout}\n{done.stderr}"


def _copy_sources(target: Path) -> None:
    """What a build needs, without the checkout's build leftovers (egg-info, caches)."""
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    for name in ("src", "templates"):
        shutil.copytree(ROOT / name, target / name, ignore=junk)


def _dependencies(requires: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that ``requires`` needs, transitively, extras honoured."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(text, "") for text in requires]
    while todo:
        text, extra = todo.pop()
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        dist = found.setdefault(name, metadata.distribution(req.name))
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) not in done:
                done.add((name, wanted))
                todo += [(t, wanted) for t in dist.requires or []]
    return found


def _link_dependencies(installed_meta: Path, folder: Path) -> None:
    folder.mkdir()
    requires = metadata.PathDistribution(installed_meta).requires or []
    for name, dist in _dependencies(requires).items():
        assert dist.files, f"{name}: no RECORD, cannot tell its files"
        for top in sorted({f.parts[0] for f in dist.files}):
            if top in ("..", "__pycache__") or top.endswith(".pth"):
                continue
            link = folder / top
            if not link.exists():
                link.symlink_to(Path(str(dist.locate_file(top))))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("install")
    source, wheels, venv = root / "source", root / "wheels", root / "venv"
    source.mkdir()
    _copy_sources(source)
    # Offline and with the development venv's setuptools (pyproject.toml's dev extra): pip
    # checks that it satisfies [build-system] requires, and says so if `make setup` is due.
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--check-build-dependencies", source, "-w", wheels)  # fmt: skip
    (wheel,) = wheels.glob("digest-*.whl")
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
         "--no-index", wheel)  # fmt: skip
    (site,) = (venv / "lib").glob("python*/site-packages")
    (meta,) = site.glob("digest-*.dist-info")
    _link_dependencies(meta, root / "dependencies")
    (site / "digest-test-dependencies.pth").write_text(f"{root / 'dependencies'}\n")
    return Installed(wheel=wheel, venv=venv)


@pytest.mark.slow
def test_the_wheel_carries_every_module_and_every_template(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    modules = {
        "digest/" + p.relative_to(ROOT / "src" / "digest").as_posix()
        for p in (ROOT / "src" / "digest").rglob("*.py")
    }
    templates = {
        "digest/templates/" + p.relative_to(ROOT / "templates").as_posix()
        for p in (ROOT / "templates").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert "digest/templates/email/issue.html.j2" in templates
    assert "digest/templates/web/style.css" in templates
    assert modules - names == set(), "pyproject.toml: add the package to [tool.setuptools]"
    assert templates - names == set()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


@pytest.mark.slow
def test_the_installed_digest_is_the_wheels_own_copy(installed: Installed, tmp_path: Path) -> None:
    probe = (
        "import digest, json, sys; from importlib import resources; print(json.dumps("
        "{'file': digest.__file__, 'templates': str(resources.files('digest.templates')),"
        " 'path': sys.path}))"
    )
    done = subprocess.run(
        [str(installed.bin / "python"), "-c", probe],
        cwd=tmp_path,
        env=installed.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout)
    venv = installed.venv.resolve()
    assert Path(found["file"]).resolve().is_relative_to(venv)
    assert Path(found["templates"]).resolve().is_relative_to(venv)
    assert not [p for p in found["path"] if p and Path(p).resolve().is_relative_to(ROOT)]


def _outbox(folder: Path) -> list[EmailMessage]:
    box = mailbox.Maildir(folder / "outbox", factory=None, create=False)
    out = []
    for key in box.keys():
        message = message_from_bytes(box.get_bytes(key), policy=default)
        assert isinstance(message, EmailMessage)
        out.append(message)
    return out


def _html(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def _fresh(feed_server: FeedServer, path: str, title: str) -> None:
    published = datetime.now(UTC) - timedelta(hours=1)
    link = f"https://blog.example.org{path.removesuffix('.xml')}/{title.lower().replace(' ', '-')}"
    feed_server.add_entry(path, title=title, link=link, published=published, summary=title + ".")


@pytest.mark.slow
def test_the_installed_wheel_does_the_whole_journey_from_any_folder(
    installed: Installed, feed_server: FeedServer, write_blogs: Any, tmp_path: Path
) -> None:
    one = feed_server.serve_fixture("/one.xml", "colah.rss.xml")
    two = feed_server.serve_fixture("/two.xml", "sander.atom.xml")
    _fresh(feed_server, "/one.xml", "Fresh from one")
    _fresh(feed_server, "/two.xml", "Fresh from two")
    folder = tmp_path / "curator"  # a folder of the curator's own, far from the checkout
    folder.mkdir()
    write_blogs({"one": one, "two": two}).rename(folder / "blogs.yaml")
    (folder / ".env").write_text(f"DIGEST_BASE_URL={BASE}\n")
    assert not folder.resolve().is_relative_to(ROOT)

    def digest(*args: str) -> str:
        done = installed.digest(folder, *args)
        assert done.returncode == 0, f"digest {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr
        return done.stdout

    digest("draft")
    assert "Fresh from one" in (folder / "drafts" / "1.yaml").read_text()
    digest("preview")
    preview = (folder / "preview" / "preview.html").read_text()
    assert "Fresh from one" in preview and "Fresh from two" in preview
    assert "Test digest" in (folder / "preview" / "preview.txt").read_text()
    readers = ["ann@example.org", "bob@example.net"]
    for address in readers:
        digest("subscribers", "add", address, "--confirmed")

    digest("run", "--once")  # the draft exists: the weekly job sends it
    first = _outbox(folder)
    assert sorted(str(m["To"]) for m in first) == readers
    assert all("Fresh from two" in _html(m) for m in first)

    _fresh(feed_server, "/one.xml", "Second week")
    digest("draft", "--force")
    digest("send", "--yes")
    by_reader: dict[str, list[str]] = {}
    for message in _outbox(folder):
        by_reader.setdefault(str(message["To"]), []).append(_html(message))
    assert sorted(by_reader) == readers
    for issues in by_reader.values():
        assert len(issues) == 2  # one copy of each issue per reader
        assert sum("Second week" in html for html in issues) == 1

    port = free_port()
    site = f"http://127.0.0.1:{port}"
    program = [str(installed.bin / "digest")]
    with digest_serve(installed.env(), folder, port, program=program):  # SIGTERM at the end
        home = httpx.get(site + "/", timeout=10)
        assert home.status_code == 200 and "Test digest" in home.text
        archive = httpx.get(site + "/archive/1", timeout=10)
        assert archive.status_code == 200 and "Fresh from one" in archive.text
        css = httpx.get(site + "/style.css", timeout=10)
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert css.content == (ROOT / "templates" / "web" / "style.css").read_bytes()
        assert httpx.get(site + "/healthz", timeout=10).status_code == 200
    with pytest.raises(httpx.TransportError):  # stopped by the SIGTERM
        httpx.get(site + "/healthz", timeout=2)


# --- DIGEST_TEMPLATES: the curator's templates, file by file ----------------------------------

MARK = "Hand-set by the curator"


def _override(folder: Path, name: str, before: str, insert: str) -> None:
    """A copy of the built-in template ``name`` with ``insert`` put before ``before``."""
    text = (resources.files("digest.templates") / name).read_text()
    assert before in text, name
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace(before, insert + before, 1))


@pytest.fixture
def mine(tmp_path: Path) -> Path:
    folder = tmp_path / "my-templates"
    _override(folder, "email/base.html.j2", "{% block content %}",
              f'<tr><td class="pad"><p>{MARK}</p></td></tr>\n')  # fmt: skip
    _override(folder, "web/base.html", "{% block main %}", f"<p>{MARK}</p>\n")
    (folder / "web" / "style.css").write_text("body { color: #123456 }\n")
    return folder


def test_an_overridden_email_base_is_used_by_the_built_in_issue(
    newsroom: Newsroom, mine: Path
) -> None:
    newsroom.add_posts(1)
    newsroom.draft()
    newsroom.subscribe("ann@example.org")
    env = {**newsroom.env, "DIGEST_TEMPLATES": str(mine)}
    runner = CliRunner()
    preview = runner.invoke(main, ["preview", "--out", str(newsroom.root / "pv")], env=env)
    assert preview.exit_code == 0, preview.output
    html = (newsroom.root / "pv" / "preview.html").read_text()
    assert MARK in html  # the curator's base.html.j2 ...
    assert "post 0" in html  # ... around the built-in issue.html.j2
    assert MARK not in (newsroom.root / "pv" / "preview.txt").read_text()  # text: built in

    sent = runner.invoke(main, ["send", "--yes"], env=env)
    assert sent.exit_code == 0, sent.output
    [message] = _outbox(newsroom.root)
    assert MARK in _html(message)  # what the reader gets
    archived = get_issue(newsroom.conn, 1)
    assert archived is not None and MARK in archived.html  # and the web archive's copy
    issue = archived.content
    assert MARK not in render_issue(issue, newsroom.blogs, base_url=BASE).html  # unset: built in
    assert MARK in render_issue(issue, newsroom.blogs, base_url=BASE, templates=mine).html


def test_overridden_web_files_are_served_and_the_other_pages_stay_built_in(
    newsroom: Newsroom, mine: Path
) -> None:
    app = create_app(newsroom.settings(templates=mine), newsroom.blogs, newsroom.db_path)
    with TestClient(app, base_url="http://testserver") as client:
        home = client.get("/")
        assert home.status_code == 200
        assert MARK in home.text  # the curator's base.html around the built-in home.html
        assert 'name="form_token"' in home.text
        assert client.get("/style.css").text == "body { color: #123456 }\n"
        assert MARK in client.get("/archive").text


def test_a_missing_templates_folder_is_named_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DIGEST_TEMPLATES", "my-templats")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "DIGEST_TEMPLATES" in str(caught.value)
    assert str(tmp_path / "my-templats") in str(caught.value)
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1
    assert str(tmp_path / "my-templats") in result.output
    assert "Traceback" not in result.output
