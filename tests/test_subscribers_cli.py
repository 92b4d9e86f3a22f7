"""`digest subscribers ...` and `digest serve --help` through click's CliRunner."""

from __future__ import annotations

import csv
import io
import json
import mailbox
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.cli import main
from digest.store import connect


@pytest.fixture
def run(blogs_yaml: Path, db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIGEST_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("DIGEST_BASE_URL", "https://digest.example.org")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(
            main, ["--blogs", str(blogs_yaml), "--db", str(db_path), *args], catch_exceptions=False
        )

    return invoke


def _outbox(tmp_path: Path) -> list[str]:
    path = tmp_path / "outbox"
    if not path.exists():
        return []
    box = mailbox.Maildir(path, factory=None, create=False)
    return [box.get_bytes(k).decode() for k in box.keys()]


def test_add_confirmed_list_json_and_remove(run, tmp_path: Path, db_path: Path) -> None:  # type: ignore[no-untyped-def]
    added = run(
        "subscribers",
        "add",
        "Ann@Example.org",
        "--name",
        "Ann",
        "--categories",
        "ml,music",
        "--confirmed",
    )
    assert added.exit_code == 0, added.output
    assert "ann@example.org: confirmed" in added.output
    assert _outbox(tmp_path) == []

    listed = run("subscribers", "list", "--json")
    [item] = [json.loads(line) for line in listed.output.splitlines()]
    assert item["email"] == "ann@example.org" and item["categories"] == "ml,music"
    assert item["status"] == "confirmed" and item["source"] == "cli"
    assert "token" not in item

    table = run("subscribers", "list", "--status", "confirmed")
    assert "ann@example.org" in table.output.replace("\n", "") or "ann@" in table.output
    assert "1 confirmed" in table.output

    removed = run("subscribers", "remove", "ann@example.org")
    assert removed.exit_code == 0 and "unsubscribed and suppressed" in removed.output
    again = run("subscribers", "add", "ann@example.org", "--confirmed")
    assert again.exit_code == 1
    assert "suppression list" in again.output and "--force" in again.output
    forced = run("subscribers", "add", "ann@example.org", "--confirmed", "--force")
    assert forced.exit_code == 0
    conn = connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'force-add'").fetchone()[0] == 1


def test_add_without_confirmed_mails_a_confirmation(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("subscribers", "add", "new@example.org")
    assert result.exit_code == 0, result.output
    assert (
        "pending" in result.output and "confirmation mail sent to new@example.org" in result.output
    )
    [mail] = _outbox(tmp_path)
    assert "To: new@example.org" in mail and "https://digest.example.org/confirm/" in mail


def test_bad_input_is_an_error_not_a_traceback(run) -> None:  # type: ignore[no-untyped-def]
    bad = run("subscribers", "add", "not-an-address")
    assert bad.exit_code == 1 and "error:" in bad.output and "Traceback" not in bad.output
    name = run("subscribers", "add", "x@example.org", "--name", "Eve\r\nBcc: y@example.org")
    assert name.exit_code == 1 and "control character" in name.output
    cat = run("subscribers", "add", "x@example.org", "--categories", "cooking")
    assert cat.exit_code == 1 and "unknown category" in cat.output
    assert run("subscribers", "remove", "nobody@example.org").exit_code == 1


def test_import_dry_run_then_import_then_export(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "list.csv"
    path.write_text("email,name\na@example.org,A\nb@example.org,B\na@example.org,A again\n")
    dry = run("subscribers", "import", str(path), "--dry-run", "--confirmed")
    assert dry.exit_code == 0 and "would add 2" in dry.output and "1 duplicates" in dry.output
    assert "a@example.org" not in run("subscribers", "export").output

    done = run("subscribers", "import", str(path), "--confirmed")
    assert done.exit_code == 0 and "added 2 (confirmed)" in done.output
    exported = run("subscribers", "export")
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert [r["email"] for r in rows] == ["a@example.org", "b@example.org"]
    assert rows[0]["status"] == "confirmed" and rows[0]["consent_text"] == "imported from list.csv"

    out = tmp_path / "out.csv"
    to_file = run("subscribers", "export", "--output", str(out))
    assert to_file.exit_code == 0 and out.read_text() == exported.output


def test_import_with_bad_rows_lists_them_and_fails(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.csv"
    path.write_text("email\nok@example.org\nnope\n")
    dry = run("subscribers", "import", str(path), "--dry-run")
    assert dry.exit_code == 1 and "line 3:" in dry.output
    real = run("subscribers", "import", str(path))
    assert real.exit_code == 1 and "line 3:" in real.output and "nothing imported" in real.output
    assert "ok@example.org" not in run("subscribers", "export").output


def test_pending_import_sends_confirmations(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "list.csv"
    path.write_text("email\na@example.org\nb@example.org\n")
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 0 and "2 confirmation mail(s) sent, 0 failed" in result.output
    assert len(_outbox(tmp_path)) == 2


def test_every_command_has_help(run) -> None:  # type: ignore[no-untyped-def]
    for command in (
        ["serve"],
        ["subscribers"],
        ["subscribers", "add"],
        ["subscribers", "remove"],
        ["subscribers", "list"],
        ["subscribers", "import"],
        ["subscribers", "export"],
    ):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
    assert "--port" in run("serve", "--help").output
