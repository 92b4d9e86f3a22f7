"""Settings from the environment (``DIGEST_*``, and ``.env``): where things are, and the secrets,
which never go in blogs.yaml. README.md and .env.example list every one with its default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from digest.errors import ConfigError


class Settings(BaseSettings):
    """Every ``DIGEST_*`` setting. README.md and .env.example list them with their defaults."""

    model_config = SettingsConfigDict(
        env_prefix="DIGEST_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    blogs: Path = Path("blogs.yaml")
    # A SQLite file (the embedded default) or a postgresql:// URL shared by several machines.
    db: str = "subscribers/digest.db"
    base_url: str = "http://localhost:8000"
    secret: SecretStr | None = None
    # Signup mails (confirmations, "already subscribed" notices): per mailbox (+tag removed,
    # case folded) per 24 h, and for the whole list per hour, to protect the sender's reputation.
    signup_mails_per_address: int = Field(default=3, ge=1)
    signup_mails_per_hour: int = Field(default=100, ge=1)
    drafts: Path = Path("drafts")
    outbox: Path = Path("outbox")
    templates: Path | None = None  # files replacing the built-in templates (digest/resources.py)

    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["tls", "starttls", "none"] = "starttls"
    smtp_timeout: float = Field(default=30.0, gt=0)
    smtp_pool: int = Field(default=4, ge=1, le=32)
    smtp_reconnect_every: int = Field(default=500, ge=1)
    # Several relays, instead of DIGEST_SMTP_HOST: "host[:port] [pool=N] [rate=N/s]
    # [security=..] [user=.. password=..], host2 ...", tried in turn when one refuses.
    smtp_hosts: str | None = None
    # After SIGTERM/SIGINT/SIGHUP, the messages in flight get this long to finish (systemd's
    # TimeoutStopSec must be longer); `full` fsyncs every reply the send loop records, so a
    # power cut too resends only the messages in flight.
    stop_grace: float = Field(default=10.0, ge=0, le=300)
    db_synchronous: Literal["normal", "full"] = "normal"
    # Senders sharing a PostgreSQL lease the rows they claim for this long, renewed while they
    # live: a worker killed mid-send leaves its rows to the others once it runs out.
    send_lease: float = Field(default=60.0, ge=1, le=3600)
    send_rate: str | None = None
    unsubscribe_mailto: str | None = None

    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_key_file: Path | None = None

    # Bounces and complaints after the 250 (digest.feedback): the VERP envelope sender
    # (bounces@example.org sends as bounces+<token>@example.org), the IMAP password of
    # `digest bounces --imap`, and each provider's webhook secret; an unset one answers 403.
    bounce_address: str | None = None
    bounces_imap_password: SecretStr | None = None
    ses_topic_arns: str | None = None  # comma-separated: the only SNS topics accepted
    postmark_webhook_auth: SecretStr | None = None  # user:password of the webhook's basic auth
    mailgun_signing_key: SecretStr | None = None
    sendgrid_public_key: str | None = None  # the verification key, base64 (SendGrid's form)

    fetch_timeout: float = Field(default=20.0, gt=0)
    fetch_concurrency: int = Field(default=64, ge=1)
    fetch_per_host: int = Field(default=2, ge=1)
    fetch_max_bytes: int = Field(default=15 * 1024 * 1024, ge=1024)
    # URLs from other people's feeds (images) may reach loopback, private and link-local
    # addresses: for tests and intranets only (digest/net.py).
    allow_private_targets: bool = False
    # A Maildir the curator's own mail setup fills with the newsletters of blogs that publish
    # by email (blogs.yaml `email: {from: [...]}`); `digest inbound` is the other way in.
    inbox: Path | None = None

    @field_validator("db", mode="before")
    @classmethod
    def _db(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an absolute http(s) URL such as https://digest.example.org")
        return value.rstrip("/")

    @field_validator("bounce_address")
    @classmethod
    def _bounce_address(cls, value: str | None) -> str | None:
        if value is not None:
            local, at, domain = value.strip().rpartition("@")
            if not at or not local or "." not in domain or "+" in local or "<" in value:
                raise ValueError(
                    "expected a plain address without a +tag, such as bounces@example.org"
                )
        return value.strip() if value else value

    @field_validator("send_rate")
    @classmethod
    def _send_rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value

    @field_validator("smtp_hosts")
    @classmethod
    def _smtp_hosts(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("smtp_host"):
            raise ValueError(
                "DIGEST_SMTP_HOST is set too: set one of them (DIGEST_SMTP_HOSTS takes one "
                "relay as well as several)"
            )
        parse_relays(value, port=None, security="none", pool=1)
        return value

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: Path | None) -> Path | None:
        # Checked up front: a mistyped folder must not quietly mean "the built-in templates".
        if value is not None and not value.is_dir():
            raise ValueError(f"folder not found: {value.resolve()} (unset it for the built-ins)")
        return value

    @property
    def port(self) -> int:
        if self.smtp_port is not None:
            return self.smtp_port
        return SMTP_PORTS[self.smtp_security]

    @property
    def smtp_relays(self) -> list[SmtpRelay]:
        """The relays to send through, in order of preference; [] for the Maildir outbox."""
        if self.smtp_hosts:
            return parse_relays(
                self.smtp_hosts,
                port=self.smtp_port,
                security=self.smtp_security,
                pool=self.smtp_pool,
            )
        if self.smtp_host:
            return [SmtpRelay(self.smtp_host, self.port, self.smtp_pool)]
        return []

    @property
    def db_file(self) -> Path | None:
        """The SQLite file of DIGEST_DB; None when it names a PostgreSQL server."""
        return None if self.db.startswith(("postgresql://", "postgres://")) else Path(self.db)

    @property
    def rate_per_second(self) -> float | None:
        return parse_rate(self.send_rate) if self.send_rate else None

    @property
    def dkim_enabled(self) -> bool:
        return bool(self.dkim_domain and self.dkim_selector and self.dkim_key_file)

    @property
    def base_url_set(self) -> bool:
        """DIGEST_BASE_URL was given (environment, .env or an argument), even to its default
        value: a curator who chose an address is trusted, one who never did is warned."""
        # pydantic-settings passes every value it found in a source to the model, so
        # model_fields_set holds exactly those; an empty variable counts as unset.
        return "base_url" in self.model_fields_set


def parse_rate(text: str) -> float:
    """``"14/s"``, ``"30/min"``, ``"1000/h"`` -> messages per second."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*", text)
    if not match or float(match[1]) <= 0:
        raise ValueError(f"expected a rate such as 14/s or 30/min, found {text!r}")
    per = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}.get(match[2], 3600)
    return float(match[1]) / per


@dataclass(frozen=True, slots=True)
class SmtpRelay:
    """One entry of DIGEST_SMTP_HOSTS; None: DIGEST_SMTP_SECURITY, _USERNAME, _PASSWORD."""

    host: str
    port: int
    pool: int
    rate: float | None = None  # messages per second through this relay
    security: Literal["tls", "starttls", "none"] | None = None
    username: str | None = None
    password: SecretStr | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


SMTP_PORTS = {"tls": 465, "starttls": 587, "none": 25}
RELAYS_EXAMPLE = "smtp-a.example.org:587 pool=8 rate=20/s, smtp-b.example.org:2525 pool=2"


def parse_relays(text: str, *, port: int | None, security: str, pool: int) -> list[SmtpRelay]:
    """DIGEST_SMTP_HOSTS: entries separated by commas, each ``host[:port]`` then options.

    The keywords are the defaults: DIGEST_SMTP_PORT (else the port of the relay's security),
    DIGEST_SMTP_SECURITY, DIGEST_SMTP_POOL. User and password may be %-encoded (a comma is
    %2C, a space %20)."""
    relays: list[SmtpRelay] = []
    for n, entry in enumerate(text.split(","), start=1):
        words = entry.split()
        shown = " ".join(re.sub(r"^(password=).*", r"\1***", w) for w in words)

        def bad(why: str, shown: str = shown, n: int = n) -> ValueError:
            return ValueError(f"entry {n}, found {shown!r}: {why}; for example {RELAYS_EXAMPLE!r}")

        if not words:
            raise bad("empty entry")
        match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?", words[0])
        if match is None or (match[2] and not 0 < int(match[2]) < 65536):
            raise bad("expected host or host:port first")
        options: dict[str, str] = {}
        for word in words[1:]:
            name, eq, value = word.partition("=")
            if not eq or not value or name in options:
                raise bad(f"{word.split('=')[0]!r}: expected each option once, as name=value")
            options[name] = value
        unknown = set(options) - {"pool", "rate", "security", "user", "password"}
        if unknown:
            raise bad(
                f"unknown option {sorted(unknown)[0]!r} (pool, rate, security, user, password)"
            )
        try:
            size = int(options.get("pool", pool))
            rate = parse_rate(options["rate"]) if "rate" in options else None
        except ValueError as exc:
            raise bad(str(exc) if "rate" in str(exc) else "pool: expected a number") from None
        if not 1 <= size <= 32:
            raise bad("pool: expected 1 to 32 connections")
        chosen = options.get("security")
        if chosen not in (None, "tls", "starttls", "none"):
            raise bad("security: expected tls, starttls or none")
        secret = options.get("password")
        relays.append(
            SmtpRelay(
                host=match[1].strip("[]"),
                port=int(match[2]) if match[2] else port or SMTP_PORTS[chosen or security],
                pool=size,
                rate=rate,
                security=chosen,  # type: ignore[arg-type]
                username=unquote(options["user"]) if "user" in options else None,
                password=SecretStr(unquote(secret)) if secret else None,
            )
        )
    return relays


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with CLI overrides (``--blogs``, ``--db``) on top."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "DIGEST_" + "_".join(str(p) for p in err["loc"]).upper()
            msg = str(err["msg"]).removeprefix("Value error, ")
            found = "" if "found" in msg else f" (found {err.get('input')!r})"
            lines.append(f"{name}: {msg}{found}")
        raise ConfigError(
            "invalid setting: " + "; ".join(lines),
            hint="see .env.example or README.md (Configuration) for every setting",
        ) from None
