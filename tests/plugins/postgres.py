"""A real PostgreSQL for the suite's second pass.

`DIGEST_TEST_DB=postgresql pytest` (the second half of `make test`) runs every test that takes
the `db_path` fixture against a PostgreSQL server started here, in a temporary folder, from
Debian's `postgresql` package (or any server binaries `pg_config --bindir` names): each test
gets a fresh database cloned from a migrated template. `DIGEST_TEST_PG_URL` names a server
to use instead (a database URL whose user may create databases).

Tests about SQLite's own files (a read-only file, a full disk, WAL) are marked `sqlite_only`.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from digest.store import connect

ENGINE = os.environ.get("DIGEST_TEST_DB", "sqlite")
ON_POSTGRESQL = ENGINE == "postgresql"
TEMPLATE = "digest_template"
_numbers = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: about SQLite files; skipped on PostgreSQL")
    config.addinivalue_line("markers", "postgresql_only: needs PostgreSQL; runs in its pass only")


def pytest_report_header(config: pytest.Config) -> str:
    return f"digest database engine: {ENGINE}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    other, reason = (
        ("sqlite_only", "about SQLite's files: runs in the SQLite pass")
        if ON_POSTGRESQL
        else ("postgresql_only", "needs PostgreSQL: runs in the PostgreSQL pass")
    )
    for item in items:
        if item.get_closest_marker(other):
            item.add_marker(pytest.mark.skip(reason=reason))


def bindir() -> Path:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        found = Path(out.stdout.strip())
        if (found / "initdb").exists():
            return found
    except (OSError, subprocess.CalledProcessError):
        pass
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    raise RuntimeError(
        "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql, "
        "or set DIGEST_TEST_PG_URL to a server the tests may create databases on"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """initdb + pg_ctl in a temporary folder, on a Unix socket only."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="digest-pg-"))
        self.port = _free_port()
        self.bin = bindir()
        # initdb refuses to run as root: the server then runs as the postgres user.
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            os.chown(self.root, pwd.getpwnam(self.user).pw_uid, -1)

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        options = (
            f"-k {self.root} -c listen_addresses='' -p {self.port} -c fsync=off"
            " -c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB"
        )
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.root}&port={self.port}"


class Cluster:
    """Where the test databases are made: a server of ours, or DIGEST_TEST_PG_URL's."""

    def __init__(self, admin_url: str, url: Callable[[str], str]) -> None:
        self.admin_url = admin_url
        self.url = url

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.encode())

    def fresh(self, *, migrated: bool = True) -> str:
        name = f"t{os.getpid()}_{next(_numbers)}"
        self.admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {TEMPLATE}" if migrated else ""))
        return name


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    given = os.environ.get("DIGEST_TEST_PG_URL")
    server: Server | None = None
    if given:
        base = urlsplit(given)
        cluster = Cluster(given, lambda name: urlunsplit(base._replace(path=f"/{name}")))
    else:
        try:
            server = Server()
        except RuntimeError as missing:
            if os.environ.get("CI"):
                raise  # CI installs PostgreSQL (.ci/run): a skip there would hide a whole pass
            pytest.skip(str(missing))
        server.start()
        cluster = Cluster(server.url("postgres"), server.url)
    try:
        cluster.admin(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        cluster.admin(f"CREATE DATABASE {TEMPLATE}")
        connect(cluster.url(TEMPLATE)).close()  # migrated once; every test clones it
        yield cluster
    finally:
        if server is not None:
            server.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test."""
    name = pg_cluster.fresh()
    yield pg_cluster.url(name)
    pg_cluster.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def blank_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """A database no digest has opened yet (for the migrations themselves)."""
    if not ON_POSTGRESQL:
        yield tmp_path / "blank" / "digest.db"
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    name = cluster.fresh(migrated=False)
    yield cluster.url(name)
    cluster.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The test's database: a SQLite file, or on the PostgreSQL pass (DIGEST_TEST_DB) a URL."""
    if ON_POSTGRESQL and request.node.get_closest_marker("sqlite_only") is None:
        return str(request.getfixturevalue("pg_url"))
    return tmp_path / "subscribers" / "digest.db"
