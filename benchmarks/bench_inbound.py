"""Inbound newsletters: 100 DKIM-signed letters parsed, verified and stored, vs parsing alone.

Ten blogs that publish by email, ten letters each (recording a post reads its blog's known
posts, as for a feed: one blog of 100 letters would measure that, not the mail).

Each letter is shaped like what Substack, Buttondown or Mailchimp send (about 50 KB on the
wire, 31 KB of it HTML): a <style> block, a hidden preheader, nested layout tables with
inline styles, a "view in browser" link, eight sections of prose (words from the real fixture
feeds), tracked links and images, a tracking pixel and a footer; text and HTML parts,
quoted-printable. Each is signed with dkimpy (2048-bit RSA, relaxed/relaxed) by a key made
here, and the key is served by a local ``dnsfunc``, so no time is spent on the network.

- digest: inbound.receive on each letter into a real SQLite file (parse with the stdlib email
  package, verify DKIM and its alignment, read the HTML once for the sanitised copy, the lede
  and the links, record the post): the whole path a letter takes. Target: < 2 s for 100.
- parse + verify: the same without the database.
- reference: the stdlib parse alone (message_from_bytes, policy default, and the HTML part's
  decoded content), i.e. what reading the mail costs before digest does anything with it.

    python benchmarks/bench_inbound.py
"""

from __future__ import annotations

import base64
import random
import re
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digest.config import load_blogs
from digest.inbound.letter import parse_letter
from digest.inbound.receive import receive
from digest.inbound.verify import dkim_problem
from digest.store import connect

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import peak_rss_mb, ratio, table  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "feeds"
LETTERS = 100
NEWSLETTERS = 10  # blogs that publish by email, ten letters each
TARGET = 2.0
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
DOMAIN = "letters.example"
BASE = "https://digest.example.org"

STYLE = "\n".join(
    f".c{i} {{ font-family: -apple-system, Helvetica, Arial, sans-serif; font-size: 16px; "
    f"line-height: 1.5; color: #222; padding: {i % 24}px; }}"
    for i in range(60)
)
CELL = 'style="padding:0 24px;font-family:Georgia,serif;font-size:17px;line-height:1.6;color:#222"'


def words() -> list[str]:
    text = " ".join(p.read_text(encoding="utf-8", errors="replace") for p in FIXTURES.iterdir())
    text = re.sub(r"<[^>]*>|&[a-z#0-9]+;", " ", text)
    return [w for w in text.split() if w.isalpha() and len(w) < 14]


def paragraph(rng: random.Random, pool: list[str]) -> str:
    return " ".join(rng.choice(pool) for _ in range(rng.randint(40, 90))).capitalize() + "."


def tracked(rng: random.Random, n: int) -> str:
    token = base64.urlsafe_b64encode(rng.randbytes(90)).decode()
    return f"https://click.{DOMAIN}/r/{n}?u={token}"


def letter_html(n: int, rng: random.Random, pool: list[str]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Letter {n}</title>",
        f"<style>{STYLE}</style></head><body style='margin:0;background:#f4f1ea'>",
        "<div style='display:none;max-height:0;overflow:hidden'>"
        + paragraph(rng, pool)[:150]
        + "</div>",
        "<table role='presentation' width='100%' cellpadding='0' cellspacing='0'><tr><td>",
        f"<table role='presentation' width='600' align='center'><tr><td {CELL}>",
        f"<p><a href='https://{DOMAIN}/p/letter-{n}' style='color:#666'>View in browser</a></p>",
        f"<h1 style='font-size:28px'>Letter {n}: {' '.join(rng.sample(pool, 5))}</h1>",
    ]
    for section in range(8):
        parts.append(
            f"<tr><td {CELL}><h2 style='font-size:21px;margin:24px 0 8px'>"
            f"{' '.join(rng.sample(pool, 4))}</h2>"
        )
        for _ in range(rng.randint(2, 4)):
            parts.append(f"<p {CELL}>{paragraph(rng, pool)} <a href='{tracked(rng, section)}' ")
            parts.append(
                f"style='color:#2f5d50;text-decoration:underline'>{rng.choice(pool)}</a></p>"
            )
        parts.append(
            f"<img src='https://cdn.{DOMAIN}/i/{n}-{section}.jpg' width='552' height='300' "
            f"alt='{' '.join(rng.sample(pool, 6))}' style='display:block;width:100%'>"
            f"<table role='presentation'><tr><td style='background:#2f5d50;border-radius:4px'>"
            f"<a href='{tracked(rng, 100 + section)}' style='color:#fff;padding:12px 20px;"
            f"display:inline-block'>Read more</a></td></tr></table></td></tr>"
        )
    parts += [
        f"<tr><td {CELL}><p style='font-size:13px;color:#666'>You are getting this because you "
        f"subscribed. <a href='{tracked(rng, 999)}'>Unsubscribe</a> · "
        f"<a href='{tracked(rng, 998)}'>Update your preferences</a></p></td></tr>",
        f"<img src='https://open.{DOMAIN}/o/{n}.gif' width='1' height='1' alt=''>",
        "</td></tr></table></td></tr></table></body></html>",
    ]
    return "".join(parts)


def signed_letters(key: bytes) -> list[bytes]:
    rng = random.Random(11)
    pool = words()
    out = []
    for n in range(LETTERS):
        html = letter_html(n, rng, pool)
        message = EmailMessage()
        message["From"] = f"Writer {n % NEWSLETTERS} <{sender(n)}>"
        message["To"] = f"in+blog-{n % NEWSLETTERS}@digest.example"
        message["Subject"] = f"Letter {n}"
        message["Date"] = format_datetime(NOW - timedelta(hours=n))
        message["Message-ID"] = f"<letter-{n}@{DOMAIN}>"
        message.set_content(re.sub(r"<[^>]*>", " ", html))
        message.add_alternative(html, subtype="html", cte="quoted-printable")
        raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        signature = dkim.sign(
            raw, b"s1", DOMAIN.encode(), key, canonicalize=(b"relaxed", b"relaxed")
        )
        out.append(bytes(signature) + raw)
    return out


def sender(n: int) -> str:
    return f"writer-{n % NEWSLETTERS}@{DOMAIN}"


def blogs_file(folder: Path) -> Path:
    path = folder / "blogs.yaml"
    blogs = "".join(
        f"      - name: Newsletter {i}\n        id: blog-{i}\n"
        f"        homepage: https://blog-{i}.example/\n"
        f"        email:\n          from: [{sender(i)}]\n"
        for i in range(NEWSLETTERS)
    )
    path.write_text(
        "newsletter:\n  title: Bench\n  curator: Bench\n  from: Bench <digest@example.org>\n"
        "  reply_to: curator@example.org\n  lookback_days: 30\n"
        "categories:\n  - id: main\n    blogs:\n" + blogs,
        encoding="utf-8",
    )
    return path


def main() -> int:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    name = f"s1._domainkey.{DOMAIN}.".encode()

    def dnsfunc(query: bytes, timeout: int = 5) -> bytes | None:
        return record if query == name else None

    letters = signed_letters(key)
    size = sum(len(r) for r in letters) / len(letters)
    html = sum(len(_html_part(r)) for r in letters) / len(letters)

    def reference() -> None:
        for raw in letters:
            message = message_from_bytes(raw, policy=default)
            part = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
            part.get_content()

    def parse_and_verify() -> None:
        for n, raw in enumerate(letters):
            parse_letter(raw)
            assert dkim_problem(raw, sender(n), dnsfunc=dnsfunc) is None

    def received() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            blogs = load_blogs(blogs_file(Path(tmp)))
            conn = connect(Path(tmp) / "bench.db")
            try:
                start = time.perf_counter()
                results = [
                    receive(conn, blogs, raw, now=NOW, base_url=BASE, dnsfunc=dnsfunc)
                    for raw in letters
                ]
                took = time.perf_counter() - start
                stored = conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0]
            finally:
                conn.close()
        assert [r.status for r in results] == ["post"] * LETTERS and stored == LETTERS
        return took

    # Best of 3 each (a fresh database every time): the machine is shared.
    whole = min(received() for _ in range(3))
    ref = min(_timed(reference) for _ in range(3))
    pv = min(_timed(parse_and_verify) for _ in range(3))
    verdict = "ok" if whole < TARGET else "MISSED"
    table(
        f"{LETTERS} signed newsletters: {size / 1024:.0f} KB each on average, "
        f"{html / 1024:.0f} KB of it HTML",
        [
            (
                "receive(): parse, verify, read, store",
                f"{whole:.2f} s",
                f"{ref:.2f} s",
                ratio(whole, ref),
                f"< {TARGET:.0f} s: {verdict}",
            ),
            ("parse + verify (no database)", f"{pv:.2f} s", f"{ref:.2f} s", ratio(pv, ref), ""),
            ("per letter (receive)", f"{whole / LETTERS * 1000:.1f} ms", "", "", ""),
        ],
    )
    print(f"reference: the stdlib email parse alone; peak RSS {peak_rss_mb():.0f} MB")
    return 0 if whole < TARGET else 1


def _html_part(raw: bytes) -> str:
    part = message_from_bytes(raw, policy=default).get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    return str(part.get_content())


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
