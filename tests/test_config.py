from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import Settings, load_blogs, load_settings, parse_rate
from digest.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_repository_blogs_yaml_holds_the_whole_seed() -> None:
    blogs = load_blogs(ROOT / "blogs.yaml")
    assert [c.id for c in blogs.categories] == ["permacomputing", "ml", "music"]
    assert all(c.description for c in blogs.categories)
    by_name = {b.name: b for b in blogs.blogs()}
    assert by_name["XXIIVV"].feed == "https://wiki.xxiivv.com/links/rss.xml"
    assert by_name["Hundred Rabbits"].feed == "https://100r.co/links/rss.xml"
    assert by_name["Sander Dieleman"].feed == "https://sander.ai/feed.xml"
    assert by_name["Lil'Log"].feed == "https://lilianweng.github.io/index.xml"
    assert by_name["Chris Olah"].feed == "https://colah.github.io/rss.xml"
    assert by_name["Optimistic Underground"].feed == "https://optimisticunderground.com/feed/"
    assert by_name["Delayed."].feed is None
    assert by_name["Delayed."].homepage == "https://www.delayed.nyc/"
    assert all(b.commentary for b in blogs.blogs())
    assert len(by_name["Sander Dieleman"].highlights) == 3
    links = {link.title for b in blogs.blogs() for link in b.links}
    assert {"ORCA", "David James on X", "Sundays are for"} <= links
    assert blogs.newsletter.lookback_days == 7


def _write(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_bad_feed_url_names_entry_path_line_and_expectation(blogs_yaml: Path) -> None:
    _write(blogs_yaml, "feed: https://sander.ai/feed.xml", "feed: htp:/sander.ai")
    with pytest.raises(ConfigError) as info:
        load_blogs(blogs_yaml)
    message = info.value.message
    assert str(blogs_yaml) in message
    assert "categories[1].blogs[0].feed" in message
    assert "'htp:/sander.ai'" in message
    assert "http(s) URL" in message
    line = blogs_yaml.read_text().splitlines().index("        feed: htp:/sander.ai") + 1
    assert f"line {line}" in message
    assert info.value.hint


def test_unknown_key_is_an_error(blogs_yaml: Path) -> None:
    _write(
        blogs_yaml,
        "commentary: >-\n          Where I first",
        "comentary: >-\n          Where I first",
    )
    with pytest.raises(ConfigError, match=r"categories\[1\]\.blogs\[2\]\.comentary.*unknown key"):
        load_blogs(blogs_yaml)


def test_bad_timezone_and_yaml_syntax(blogs_yaml: Path) -> None:
    _write(blogs_yaml, "Europe/Brussels", "Europe/Nowhere")
    with pytest.raises(ConfigError, match=r"newsletter\.schedule\.timezone.*IANA"):
        load_blogs(blogs_yaml)
    blogs_yaml.write_text("newsletter: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+: not valid YAML"):
        load_blogs(blogs_yaml)


def test_missing_file_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_blogs(tmp_path / "nope.yaml")
    assert "not found" in info.value.message and "DIGEST_BLOGS" in (info.value.hint or "")


def test_settings_defaults_env_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.blogs == Path("blogs.yaml")
    assert settings.db_file == Path("subscribers/digest.db")
    assert settings.base_url == "http://localhost:8000"
    assert settings.outbox == Path("outbox")
    assert settings.smtp_host is None and settings.port == 587
    monkeypatch.setenv("DIGEST_SMTP_SECURITY", "tls")
    monkeypatch.setenv("DIGEST_DB", "/tmp/x.db")
    monkeypatch.setenv("DIGEST_SEND_RATE", "30/min")
    settings = load_settings(db=Path("other.db"))
    assert settings.port == 465 and settings.db_file == Path("other.db")
    url = "postgresql://digest:secret@db.example.org:5432/digest"
    monkeypatch.setenv("DIGEST_DB", url)
    assert load_settings().db == url and load_settings().db_file is None
    assert settings.rate_per_second == 0.5
    monkeypatch.setenv("DIGEST_SMTP_SECURITY", "ssl")
    with pytest.raises(ConfigError, match="DIGEST_SMTP_SECURITY"):
        load_settings()


def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DIGEST_BASE_URL=https://digest.example.org/\n")
    assert load_settings().base_url == "https://digest.example.org"


@pytest.mark.parametrize("text,expected", [("14/s", 14.0), ("30/min", 0.5), ("3600/h", 1.0)])
def test_parse_rate(text: str, expected: float) -> None:
    assert parse_rate(text) == expected


def test_parse_rate_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="14/s"):
        parse_rate("fast")


def test_schedule_time_is_read_as_a_clock_time(blogs_yaml: Path) -> None:
    _write(blogs_yaml, 'time: "08:00"', "time: 8:30")
    assert str(load_blogs(blogs_yaml).newsletter.schedule.time) == "08:30:00"
    _write(blogs_yaml, "time: 8:30", "time: half past eight")
    with pytest.raises(ConfigError, match=r"schedule\.time.*HH:MM"):
        load_blogs(blogs_yaml)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("feed: https://sander.ai/feed.xml\n        email: {from: [a@sander.ai]}", "not both"),
        ("email: {from: [a@sander.ai]}\n        excerpt: page", "has none"),
        ("email: {from: [not-an-address]}", "expected a sender address"),
    ],
)
def test_a_blog_by_email_is_checked(blogs_yaml: Path, extra: str, words: str) -> None:
    _write(blogs_yaml, "feed: https://sander.ai/feed.xml", extra)
    with pytest.raises(ConfigError, match=r"categories\[1\]\.blogs\[0\]") as info:
        load_blogs(blogs_yaml)
    assert words in info.value.message


def test_a_blog_by_email_lists_its_senders_lower_cased(blogs_yaml: Path) -> None:
    sender = "email: {from: ['Sander <S@Sander.AI>']}"
    _write(blogs_yaml, "feed: https://sander.ai/feed.xml", sender)
    blog = load_blogs(blogs_yaml).blog("sander-dieleman")
    assert blog is not None and blog.email is not None and blog.feed is None
    assert blog.email.from_ == ["s@sander.ai"]
