"""Shared by the benchmarks: a side-by-side table with ratios, and peak memory."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of the block: `with timed() as t: ...; t["wall"], t["cpu"]`."""
    out: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    yield out
    out["wall"] = time.perf_counter() - wall
    out["cpu"] = time.process_time() - cpu


def best_of(n: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of n calls, in seconds."""
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def table(title: str, rows: list[tuple[str, str, str, str, str]]) -> None:
    """Print rows of (measure, digest, reference, ratio, target/verdict)."""
    header = ("measure", "digest", "reference", "ratio", "target")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(f"\n## {title}")
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    sys.stdout.flush()


def ratio(a: float, b: float) -> str:
    return "n/a" if a == 0 or b == 0 else f"{a / b:.1f}x"
