"""`digest` in a real terminal: its stdin is a pseudo-terminal, as when a curator types.

CliRunner's stdin is never a terminal, and digest refuses to ask a question there (a cron job
would read EOF). The questions themselves are tested here:

    code, out = in_terminal(["send"], env=env, cwd=tmp_path, answer="y\\n")
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path


def in_terminal(
    args: list[str], *, env: dict[str, str], cwd: Path, answer: str, timeout: float = 120
) -> tuple[int, str]:
    """Run `digest ARGS` with a pseudo-terminal as stdin holding `answer` (typed ahead, as the
    terminal's line discipline keeps it until read); returns (exit code, stdout + stderr)."""
    main_fd, child_fd = pty.openpty()
    try:
        os.write(main_fd, answer.encode())
        done = subprocess.run(
            [sys.executable, "-m", "digest", *args],
            stdin=child_fd,
            capture_output=True,
            text=True,
            env={**env, "COLUMNS": "200"},
            cwd=cwd,
            timeout=timeout,
        )
    finally:
        os.close(child_fd)
        os.close(main_fd)
    return done.returncode, done.stdout + done.stderr
