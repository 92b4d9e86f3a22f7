"""`digest preview --check` and DIGEST_BASE_URL: every link readers get is built from it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.store import connect
from plugins.drafting import seed_week


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        (None, "check failed: base URL: DIGEST_BASE_URL is unset, so every link points at "
         "http://localhost:8000"),
        ("http://digest.example.org", "check failed: base URL: http://digest.example.org is "
         "not https"),
        ("https://digest.example.org", None),
    ],
)  # fmt: skip
def test_check_reports_an_unset_or_plain_http_base_url(
    tmp_path: Path, blogs_yaml: Path, db_path: Path, base_url: str | None, problem: str | None
) -> None:
    conn = connect(db_path)
    seed_week(conn, now=datetime.now(UTC).replace(microsecond=0))
    conn.close()
    env = {
        "DIGEST_BLOGS": str(blogs_yaml),
        "DIGEST_DB": str(db_path),
        "DIGEST_DRAFTS": str(tmp_path / "drafts"),
        "COLUMNS": "200",
    }
    if base_url is not None:
        env["DIGEST_BASE_URL"] = base_url
    runner = CliRunner()
    assert runner.invoke(main, ["draft", "--no-fetch"], env=env).exit_code == 0
    result = runner.invoke(main, ["preview", "--out", str(tmp_path / "pv"), "--check"], env=env)
    if problem is None:
        assert result.exit_code == 0, result.output
        assert "check passed" in result.output
    else:
        assert result.exit_code == 1, result.output
        assert problem in result.output
        assert "check passed" not in result.output
