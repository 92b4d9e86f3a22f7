"""A small in-memory sliding-window rate limiter (one process: `digest serve` runs one)."""

from __future__ import annotations

from collections import deque


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds per key."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        """Record a hit and say whether it is within the limit (refused hits count too)."""
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._evict(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        hits.append(now)
        # Keep at most limit + 1 entries: a flood from one key must not grow memory.
        while len(hits) > self.limit + 1:
            hits.popleft()
        return len(hits) <= self.limit

    def _evict(self, now: float) -> None:
        stale = [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]
        for key in stale:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:  # all fresh: a spray of keys; forget the oldest half
            for key in list(self._hits)[: self.max_keys // 2]:
                del self._hits[key]
