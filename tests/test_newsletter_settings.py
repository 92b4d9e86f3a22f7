"""The look-and-rhythm settings of blogs.yaml: accent, logo, postal address, commentary."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import load_blogs
from digest.errors import ConfigError


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_repository_blogs_yaml_sets_an_accent_and_defaults(blogs_yaml: Path) -> None:
    newsletter = load_blogs(blogs_yaml).newsletter
    assert newsletter.accent == "#2f5d50"
    assert newsletter.commentary == "first"
    assert newsletter.max_posts_per_blog == 3
    assert newsletter.logo is None
    assert newsletter.postal_address == ""


def test_logo_postal_address_commentary_and_tagline_are_read(blogs_yaml: Path) -> None:
    _edit(
        blogs_yaml,
        "  commentary: first ",
        "  logo: {url: 'https://example.org/l.png', width: 120, height: 40, alt: Logo}\n"
        "  postal_address: 1 Rue, Brussels\n"
        "  commentary: always ",
    )
    blogs = load_blogs(blogs_yaml)
    assert blogs.newsletter.logo is not None
    assert (blogs.newsletter.logo.width, blogs.newsletter.logo.alt) == (120, "Logo")
    assert blogs.newsletter.postal_address == "1 Rue, Brussels"
    assert blogs.newsletter.commentary == "always"
    xxiivv = blogs.blog("xxiivv")
    assert xxiivv is not None and xxiivv.tagline.startswith("A personal wiki")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("'#ffdd00'", "contrast 1.3:1"),  # yellow on off-white: unreadable links
        ("'blue'", "#rrggbb"),
        ("#2f5d50", "quote the colour"),  # unquoted: YAML reads a comment
    ],
)
def test_accent_must_be_a_readable_hex_colour(blogs_yaml: Path, value: str, expected: str) -> None:
    _edit(blogs_yaml, 'accent: "#2f5d50"', f"accent: {value}")
    with pytest.raises(ConfigError) as info:
        load_blogs(blogs_yaml)
    assert "newsletter.accent" in info.value.message
    assert expected in info.value.message


def test_logo_must_be_https_with_its_size_and_alt(blogs_yaml: Path) -> None:
    _edit(
        blogs_yaml,
        "  commentary: first ",
        "  logo: {url: 'http://example.org/l.png', width: 120, height: 40}\n  commentary: first ",
    )
    with pytest.raises(ConfigError) as info:
        load_blogs(blogs_yaml)
    assert "newsletter.logo.url" in info.value.message
    assert "https://" in info.value.message
    assert "newsletter.logo.alt" in info.value.message


def test_unknown_commentary_mode_is_refused(blogs_yaml: Path) -> None:
    _edit(blogs_yaml, "  commentary: first ", "  commentary: sometimes ")
    with pytest.raises(ConfigError, match=r"newsletter\.commentary"):
        load_blogs(blogs_yaml)
