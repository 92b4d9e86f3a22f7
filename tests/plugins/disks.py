"""Disks that fail for real, for the write-failure tests: a 1 MB tmpfs that fills up, and a
folder bind-mounted read-only. Root ignores permission bits, so these stop root too; where the
machine refuses the mount, the test skips and says why."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def sh(*args: str) -> bool:
    if shutil.which(args[0]) is None:
        return False
    return subprocess.run(args, capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs: it fills up for real."""
    where = tmp_path / "disk"
    where.mkdir()
    if not sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    yield where
    sh("umount", "-l", str(where))


def fill(disk: Path) -> None:
    with (disk / "filler").open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder bind-mounted read-only over itself (EROFS: root included)."""
    where = tmp_path / "ro"
    where.mkdir()
    if not sh("mount", "--bind", str(where), str(where)):
        pytest.skip("cannot bind-mount here (needs root with CAP_SYS_ADMIN)")
    if not sh("mount", "-o", "remount,bind,ro", str(where)):
        sh("umount", "-l", str(where))
        pytest.skip("cannot remount a bind mount read-only here")
    yield where
    sh("umount", "-l", str(where))
