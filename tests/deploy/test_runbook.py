"""docs/runbook.md tells operators to run `edi ops` commands: each exists, with the options the runbook uses."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from edi.cli.main import app as edi

RUNBOOK = Path(__file__).parents[2] / "docs" / "runbook.md"
SUBCOMMANDS = {"dlq"}  # command groups: their first argument is a command too


def test_every_edi_ops_command_in_the_runbook_exists_with_its_options() -> None:
    uses = re.findall(r"`edi ops ([^`]+)`", RUNBOOK.read_text("utf-8"))
    assert len(uses) >= 9
    for use in uses:
        words = use.split()
        command = words[:2] if words[0] in SUBCOMMANDS else words[:1]
        result = CliRunner().invoke(edi, ["ops", *command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, f"edi ops {' '.join(command)}: {result.output}"
        for option in (word.strip("[]") for word in words if word.strip("[]").startswith("--")):
            assert option in result.output, f"edi ops {' '.join(command)} has no {option}"
