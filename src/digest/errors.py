"""Errors a user can act on.

Every error the CLI can show is a ``DigestError``; ``cli.main`` catches it once and prints its
message and hint, never a traceback. Each subclass keeps its context (the file, the feed, the
recipient) so the message can name the culprit.

    DigestError
    ├── ConfigError          blogs.yaml or a DIGEST_* setting is wrong
    ├── StoreError           the database cannot be opened or is from a newer digest
    ├── FeedError            one feed failed (kept per feed, never stops the others)
    ├── DraftError           the draft YAML was edited into something invalid
    ├── RenderError          the issue cannot be rendered
    ├── DeliveryError        SMTP or outbox trouble
    │   └── LockedError      another process is sending or running the job
    ├── SubscriberError      a bad address, name or CSV row
    └── ScheduleError        the weekly job cannot run
"""

from __future__ import annotations


class DigestError(Exception):
    """Base class: ``message`` says what is wrong, ``hint`` what to do about it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(DigestError):
    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class StoreError(DigestError):
    pass


class FeedError(DigestError):
    """One feed failed. ``reason`` is the short text shown in tables and reports."""

    def __init__(
        self,
        reason: str,
        *,
        url: str,
        http_status: int | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(f"{url}: {reason}", hint=hint)
        self.reason = reason
        self.url = url
        self.http_status = http_status
        self.retry_after = retry_after


class DraftError(DigestError):
    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = path or "draft"
        if line is not None:
            where += f", line {line}"
        if field:
            where += f", field {field}"
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = path
        self.line = line
        self.field = field


class RenderError(DigestError):
    pass


class DeliveryError(DigestError):
    def __init__(
        self, message: str, *, recipient: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.recipient = recipient


class LockedError(DeliveryError):
    def __init__(self, holder: str, *, doing: str = "sending") -> None:
        super().__init__(
            f"another digest process is {doing}: {holder}",
            hint="wait for it to finish; if it died, the lock is released with it, run again",
        )
        self.holder = holder


class SubscriberError(DigestError):
    def __init__(self, message: str, *, email: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.email = email


class ScheduleError(DigestError):
    pass
