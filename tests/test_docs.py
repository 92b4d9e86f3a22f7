"""The README and .env.example stay true: every command and every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from dotenv import dotenv_values

from digest.cli import main
from digest.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _commands(group: click.Group, prefix: str = "digest") -> list[tuple[str, click.Command]]:
    out = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        out.append((path, command))
        if isinstance(command, click.Group):
            out += _commands(command, path)
    return out


@pytest.mark.parametrize(("path", "command"), _commands(main), ids=lambda v: str(v))
def test_every_command_has_help_and_is_in_the_readme(path: str, command: click.Command) -> None:
    assert command.help, f"{path} has no help text"
    words = path.split()[1:]
    # `digest feeds check` may appear as `digest feeds check` or, in a list, as `feeds check`.
    assert re.search(r"\b" + r"\s+".join(map(re.escape, words)) + r"\b", README), path


def test_every_setting_is_in_env_example_and_readme() -> None:
    documented = dotenv_values(ROOT / ".env.example")
    example_text = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        env = f"DIGEST_{name.upper()}"
        assert env in example_text, f"{env} missing from .env.example"
        assert f"`{env}`" in README, f"{env} missing from README.md"
    # The uncommented values in .env.example are the defaults, and parse as such.
    defaults = Settings()
    for env, value in documented.items():
        name = env.removeprefix("DIGEST_").lower()
        assert name in Settings.model_fields, f"{env} in .env.example is not a setting"
        assert value is not None
        assert str(Settings(**{name: value}).model_dump()[name]) == str(
            defaults.model_dump()[name]
        ), env
