"""Text from strangers reaches the curator's terminal as written.

Rich reads ``[...]`` as markup: a feed's post titled ``closing [/] tag``, a reader who signs up
as ``[bold]Ann[/]`` or an endpoint's reply would crash the command with a MarkupError (or
restyle the output). Every such value is printed as text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from digest.cli import main
from digest.store import connect, transaction
from plugins.drafting import cli_env, entry, insert_post

TITLE = "closing [/] tag, and [bold red]loud[/] words"


def _words(text: str) -> str:
    return " ".join(text.split())


def test_a_post_title_written_as_markup_is_drafted_and_shown_as_written(
    tmp_path: Path, blogs_yaml: Path, db_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    conn = connect(db_path)
    with transaction(conn):
        insert_post(
            conn, "xxiivv", entry(TITLE, "https://wiki.xxiivv.com/site/tag.html"),
            first_seen=now - timedelta(hours=1),
        )  # fmt: skip
    conn.close()
    env = cli_env(tmp_path, blogs_yaml, db_path)
    result = CliRunner().invoke(main, ["draft", "--no-fetch"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"+ {TITLE} (XXIIVV)" in _words(result.output)


def test_a_reader_named_as_markup_is_listed_as_written(
    tmp_path: Path, blogs_yaml: Path, db_path: Path
) -> None:
    env = cli_env(tmp_path, blogs_yaml, db_path)
    name = "[bold]Ann[/] [/]"
    add = ["subscribers", "add", "ann@example.org", "--name", name, "--confirmed"]
    added = CliRunner().invoke(main, add, env=env, catch_exceptions=False)
    assert added.exit_code == 0, added.output
    result = CliRunner().invoke(main, ["subscribers", "list"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert name in result.output


def test_a_subject_with_brackets_is_shown_whole_before_sending(
    tmp_path: Path, blogs_yaml: Path, db_path: Path
) -> None:
    # Rich would have dropped "[#12]" from the confirmation, silently.
    now = datetime.now(UTC).replace(microsecond=0)
    conn = connect(db_path)
    with transaction(conn):
        insert_post(
            conn, "xxiivv", entry("A post", "https://wiki.xxiivv.com/site/post.html"),
            first_seen=now - timedelta(hours=1),
        )  # fmt: skip
    conn.close()
    env = cli_env(tmp_path, blogs_yaml, db_path)
    drafted = CliRunner().invoke(main, ["draft", "--no-fetch"], env=env, catch_exceptions=False)
    assert drafted.exit_code == 0, drafted.output
    draft = tmp_path / "drafts" / "1.yaml"
    lines = [
        "subject: 'Notes [draft] [#12]'" if line.startswith("subject:") else line
        for line in draft.read_text().splitlines()
    ]
    draft.write_text("\n".join(lines) + "\n")
    sent = CliRunner().invoke(main, ["send"], env=env, input="n\n", catch_exceptions=False)
    assert "'Notes [draft] [#12]'" in sent.output, sent.output
