"""The README documents every setting and both set-up commands."""

from __future__ import annotations

from pathlib import Path

from lambdalet.config import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        name for name in Settings.model_fields if f"`LAMBDALET_{name.upper()}`" not in README
    ]
    assert missing == []


def test_the_two_commands_are_documented() -> None:
    assert "make serve" in README
    assert "make test" in README
