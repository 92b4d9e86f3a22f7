from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.config import BlogsFile, Settings, load_blogs
from digest.store import connect

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def blogs_yaml(tmp_path: Path) -> Path:
    """A copy of the repository's blogs.yaml that a test may edit."""
    path = tmp_path / "blogs.yaml"
    shutil.copy(ROOT / "blogs.yaml", path)
    return path


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A real, migrated SQLite database in tmp_path."""
    connection = connect(db_path)
    yield connection
    connection.close()


@pytest.fixture
def blogs(blogs_yaml: Path) -> BlogsFile:
    return load_blogs(blogs_yaml)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(base_url="https://digest.example.org", outbox=tmp_path / "outbox")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's DIGEST_* variables or .env file."""
    import os

    for name in list(os.environ):
        if name.startswith("DIGEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


# Shared fixtures (feed server, SMTP server, ...) live in tests/plugins/, one module per real part.
pytest_plugins = sorted(
    f"plugins.{p.stem}"
    for p in (Path(__file__).parent / "plugins").glob("*.py")
    if p.stem != "__init__"
)
