"""The files a curator edits and digest writes: bounded reads, and write failures in plain words.

blogs.yaml and the drafts are hand-edited YAML, read whole by ruamel.yaml's round-trip loader.
That loader costs about 4 s per MB and its composer recurses once per nesting level, so a runaway
file (a paste gone wrong, an editor macro) would cost minutes or end in a RecursionError. Two
bounds keep it honest: a size cap checked before reading, and ruamel's own depth guard
(``YAML.max_depth``, ruamel.yaml 0.19.1), which stops composing at the first node too deep.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import MaxDepthExceededError

MAX_BYTES = 2 * 1024 * 1024  # a draft is a few KB, blogs.yaml too; 2 MB parse in ~8 s
MAX_DEPTH = 64  # a draft nests 4 levels (file, posts, post, value), blogs.yaml 6

DEPTH_HINT = (
    "digest's files nest a few levels deep: look for an unclosed [ or {, or indentation that "
    "keeps growing, around that line"
)


class OverBound(Exception):
    """A file over the size or depth bound; ``line`` (1-based) where the depth ran out."""

    def __init__(self, message: str, *, hint: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.line = line


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def read_capped(path: Path, *, hint: str, limit: int = MAX_BYTES) -> str:
    """The file's text, or OverBound when it holds more than ``limit`` bytes. The size is
    checked before reading, and the read stops at the limit (a FIFO, a growing file)."""
    with path.open(encoding="utf-8") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise OverBound(
                f"{_megabytes(info.st_size)}, over the {_megabytes(limit)} digest reads", hint=hint
            )
        text = handle.read(limit + 1)  # characters: at least as many bytes
    if len(text) > limit:
        raise OverBound(f"more than the {_megabytes(limit)} digest reads", hint=hint)
    return text


def load_yaml(yaml: YAML, text: str) -> Any:
    """``yaml.load(text)`` with the depth bound: OverBound names the line where it ran out.
    Every other YAML error (a MarkedYAMLError) is the caller's to word."""
    yaml.max_depth = MAX_DEPTH
    try:
        return yaml.load(text)
    except MaxDepthExceededError as exc:
        mark = exc.problem_mark
        raise OverBound(
            f"nested more than {MAX_DEPTH} levels deep",
            hint=DEPTH_HINT,
            line=mark.line + 1 if mark is not None else None,
        ) from None


# --- writing ---------------------------------------------------------------------------------

_FULL = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM}
_IN_THE_WAY = {errno.ENOTDIR, errno.EEXIST}
WRITE_ERRNOS = _FULL | _DENIED | _IN_THE_WAY | {errno.EROFS, errno.EISDIR, errno.ENOENT}


def write_hint(exc: OSError, *, setting: str | None = None) -> str:
    """What to do about a failed write, from its errno; ``setting`` moves the files elsewhere
    (``DIGEST_DRAFTS``, ``--out``)."""
    where = f" ({exc.filename})" if exc.filename else ""
    elsewhere = f", or use {setting}" if setting else ", or choose another path"
    if exc.errno in _FULL:
        return f"the disk is full{where}: free some space and run the command again"
    if exc.errno == errno.EROFS:
        return f"that file system is mounted read-only{where}: choose a writable folder" + (
            f" with {setting}" if setting else ""
        )
    if exc.errno in _DENIED:
        return f"this user may not write there{where}: make it writable{elsewhere}"
    if exc.errno in _IN_THE_WAY:
        return f"a file stands where a folder is needed{where}: move it aside{elsewhere}"
    if exc.errno == errno.EISDIR:
        return f"a folder stands where a file is needed{where}: move it aside{elsewhere}"
    if exc.errno == errno.ENOENT:
        return f"a folder on the way does not exist{where}: create it{elsewhere}"
    return f"check the folder and its disk{elsewhere}"
