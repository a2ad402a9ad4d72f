"""Every ``gpt4all-rag ...`` command the READMEs name exists (command and subcommand)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from gpt4all_rag.cli import main

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", ROOT / "integrations" / "llama_index" / "README.md",
           ROOT / "integrations" / "langchain" / "README.md"]
# A command at the start of a line of a code block, or at the start of an inline code span.
_MENTION = re.compile(r"(?:^|`)(?:python -m gpt4all_rag|gpt4all-rag) ([^`\n#]*)", re.MULTILINE)


def _mentions(text: str) -> list[list[str]]:
    return [m.group(1).split() for m in _MENTION.finditer(text)]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_names_only_existing_commands(readme: Path) -> None:
    mentions = _mentions(readme.read_text(encoding="utf-8"))
    if readme.name == "README.md" and readme.parent == ROOT:
        assert len(mentions) >= 10  # the command-line section is found
    for words in mentions:
        if not words or not re.fullmatch(r"[a-z][a-z-]*", words[0]):  # an option or "..."
            continue
        command = main.commands.get(words[0])
        assert command is not None, f"{readme.name}: no command 'gpt4all-rag {words[0]}'"
        if isinstance(command, click.Group) and len(words) > 1 and re.fullmatch(r"\[?[a-z|]+\]?", words[1]):
            for sub in words[1].strip("[]").split("|"):
                assert sub in command.commands, f"{readme.name}: no 'gpt4all-rag {words[0]} {sub}'"


def test_the_old_localdocs_command_is_not_mentioned() -> None:
    assert _mentions("run `gpt4all-rag localdocs index ...`") == [["localdocs", "index", "..."]]
    assert "localdocs" not in main.commands
