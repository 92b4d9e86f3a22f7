"""blogs.yaml and the drafts are read within bounds: a size cap checked before reading, and a
nesting cap checked while parsing. Each ends in one clear error, never a RecursionError and never
minutes of parsing, in every command that reads them (`digest status` included)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.cli import main
from digest.config import load_blogs
from digest.errors import ConfigError, DraftError
from digest.files import MAX_BYTES, MAX_DEPTH
from digest.issue.draft import load_issue, refresh_draft
from plugins.drafting import NOW, Week

DEEP = 20_000  # what crashed digest with a RecursionError


def flow(depth: int) -> str:
    return "[" * depth + "]" * depth


def compact(depth: int) -> str:
    """Block sequences nested ``depth`` deep on one line: ``- - - x``."""
    return "\n  " + "- " * depth + "x"


def indented(depth: int) -> str:
    """Block sequences, one level per line (1 500 levels already make 1 MB)."""
    depth = min(depth, 1500)
    return "\n" + "".join(" " * (2 + i) + "-\n" for i in range(depth))


SHAPES = pytest.mark.parametrize("shape", [flow, compact, indented])


@pytest.fixture
def env(seeded_env: dict[str, str]) -> dict[str, str]:
    return seeded_env


def run(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert "Traceback" not in result.output and "RecursionError" not in result.output
    assert not isinstance(result.exception, RecursionError)
    return result


def drafted(env: dict[str, str]) -> Path:
    assert run(env, "draft", "--no-fetch").exit_code == 0
    return Path(env["DIGEST_DRAFTS"]) / "1.yaml"


# --- nesting ---------------------------------------------------------------------------------


@SHAPES
def test_a_deeply_nested_draft_is_a_draft_error_everywhere(
    env: dict[str, str], shape: Callable[[int], str]
) -> None:
    path = drafted(env)
    text = path.read_text()
    path.write_text(text.replace("intro: ''", f"intro: {shape(DEEP)}", 1))
    line = text[: text.index("intro: ''")].count("\n") + 1

    preview = run(env, "preview", "--out", str(path.parent / "pv"))
    assert preview.exit_code == 1
    assert re.search(
        rf"1\.yaml, line \d+: nested more than {MAX_DEPTH} levels deep", preview.output
    )
    found = int(re.search(r"line (\d+)", preview.output).group(1))  # type: ignore[union-attr]
    assert line <= found <= line + MAX_DEPTH + 1  # where the depth ran out, near the edit
    assert "hint: " in preview.output and "unclosed [ or {" in preview.output

    # ruamel's scanner looks up to 1 024 characters ahead per open flow bracket: a flow file
    # costs about a second each time, whatever its depth, so the other commands try the rest
    others = [] if shape is flow else [["send", "--dry-run"], ["draft", "--no-fetch"]]
    for command in others:
        result = run(env, *command)
        assert result.exit_code == 1 and "nested more than" in result.output, command

    status = run(env, "status")
    assert status.exit_code == 0, status.output
    assert re.search(rf"{re.escape(str(path))}: line \d+: nested more than", status.output)
    info = json.loads(run(env, "status", "--json").output)
    assert info["draft"]["path"] == str(path)
    assert re.fullmatch(
        rf"line \d+: nested more than {MAX_DEPTH} levels deep", info["draft"]["error"]
    )
    assert "unclosed [ or {" in info["draft"]["hint"]


@SHAPES
def test_a_deeply_nested_blogs_yaml_is_a_config_error(
    env: dict[str, str], blogs_yaml: Path, shape: Callable[[int], str]
) -> None:
    text = blogs_yaml.read_text()
    blogs_yaml.write_text(text + f"extra: {shape(DEEP)}\n")
    line = text.count("\n") + 1
    others = [] if shape is flow else [["feeds", "list"], ["draft", "--no-fetch"]]
    for command in [["status"], *others]:
        result = run(env, *command)
        assert result.exit_code == 1, command
        assert f"{blogs_yaml}, line " in result.output
        assert f"nested more than {MAX_DEPTH} levels deep" in result.output
        assert "hint: " in result.output
    with pytest.raises(ConfigError) as info:
        load_blogs(blogs_yaml)
    assert info.value.path == str(blogs_yaml)
    assert int(re.search(r"line (\d+)", info.value.message).group(1)) >= line  # type: ignore[union-attr]


def test_nesting_within_the_bound_is_ordinary_yaml(week: Week) -> None:
    """The cap is far above any real file: a structure a few levels past a draft's own depth
    is reported as the wrong type, not as too deep."""
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    text = summary.path.read_text()
    summary.path.write_text(text.replace("intro: ''", f"intro: {flow(MAX_DEPTH - 4)}", 1))
    with pytest.raises(DraftError, match=r"field intro: expected text, found a list"):
        load_issue(week.settings, week.blogs, week.conn)


# --- size ------------------------------------------------------------------------------------


def test_a_42_mb_draft_is_refused_at_once_in_every_command(env: dict[str, str]) -> None:
    path = drafted(env)
    with path.open("r+b") as handle:  # the real draft, then 42 MB of nothing (a sparse file)
        handle.truncate(42 * 1024 * 1024)
    for command in (["preview"], ["send", "--dry-run"], ["draft", "--no-fetch"], ["status"]):
        started = time.monotonic()
        result = run(env, *command)
        assert time.monotonic() - started < 5, command
        out = " ".join(result.output.split())  # rich wraps long lines
        assert "42.0 MB, over the 2.0 MB digest reads" in out, command
        assert result.exit_code == (0 if command == ["status"] else 1), command
    preview = run(env, "preview")
    assert f"error: {path}: 42.0 MB, over the 2.0 MB" in preview.output
    assert "hint: a draft holds one week's posts" in preview.output


def test_a_draft_just_over_the_cap_is_refused_before_parsing(week: Week) -> None:
    summary = refresh_draft(week.settings, week.blogs, week.conn, now=NOW)
    text = summary.path.read_text()
    padding = "x" * (MAX_BYTES - len(text) + 10)
    summary.path.write_text(text.replace("intro: ''", f"intro: '{padding}'", 1))
    with pytest.raises(DraftError, match=r"1\.yaml: 2\.0 MB, over the 2\.0 MB digest reads"):
        load_issue(week.settings, week.blogs, week.conn)


def test_a_draft_that_never_ends_is_read_only_up_to_the_cap(week: Week) -> None:
    """Not a regular file (its size says nothing): the read itself stops at the cap."""
    path = week.settings.drafts / "1.yaml"
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/zero")
    with pytest.raises(DraftError, match=r"1\.yaml: more than the 2\.0 MB digest reads"):
        load_issue(week.settings, week.blogs, week.conn)


def test_an_oversized_blogs_yaml_is_a_config_error(env: dict[str, str], blogs_yaml: Path) -> None:
    with blogs_yaml.open("r+b") as handle:
        handle.truncate(42 * 1024 * 1024)
    started = time.monotonic()
    result = run(env, "status")
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert f"error: {blogs_yaml}: 42.0 MB, over the 2.0 MB digest reads" in result.output
    assert "hint: a blogs.yaml is a few KB: check that DIGEST_BLOGS" in result.output
