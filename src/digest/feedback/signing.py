"""What every webhook shares: the refusal, a bounded JSON body, times, constant-time checks."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Any


class Refused(Exception):
    """A webhook call that is not applied: ``status`` (400, 401, 403, 406) and a short reason
    that tells the caller what to fix, and never anything secret."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def same(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time equality of two secrets or signatures."""
    a = given.encode() if isinstance(given, str) else given
    b = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise Refused(400, "the body is not JSON") from None


def text(value: Any) -> str:
    """A field that should be text, as text ('' for anything else)."""
    return value if isinstance(value, str) else ""


def obj(value: Any) -> dict[str, Any]:
    """A field that should be a JSON object, as a dict ({} for anything else)."""
    return value if isinstance(value, dict) else {}


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time or Unix seconds, as aware UTC; None when missing or unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        # Postmark's 7 fractional digits and a trailing Z: cut to what fromisoformat reads.
        head, dot, rest = value.replace("Z", "+00:00").partition(".")
        if dot:
            digits = "".join(c for c in rest if c.isdigit())
            zone = rest[len(digits) :]
            value = f"{head}.{digits[:6]}{zone}"
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
