"""Running `kapreg` as an operator does, against SQLite and against the session's real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from edi.cli.kapreg import app
from tests.shared_samples import SHARED

SPECS = SHARED / "specs"
EXAMPLE_PARTY = SPECS / "example-party-capabilities.json"
EXAMPLE_HER_ID = 8138082


@dataclass
class Kapreg:
    """`kapreg` with the environment of one registry; returns click's Result (exit_code, stdout, stderr)."""

    env: dict[str, str | None]
    database_url: str

    def __call__(self, *args: str | Path) -> Result:
        return CliRunner().invoke(app, [str(a) for a in args], env=self.env, catch_exceptions=False)

    def json(self, *args: str | Path) -> Any:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.stderr or result.stdout
        return json.loads(result.stdout)

    def ok(self, *args: str | Path) -> str:
        result = self(*args)
        assert result.exit_code == 0, result.stderr or result.stdout
        return result.stdout


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new empty registry database: a SQLite file, or a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("postgres_server").create_database()
    return url


@pytest.fixture
def kapreg(database_url: str, tmp_path: Path) -> Iterator[Kapreg]:
    yield Kapreg(
        env={
            "EDI_DATA_DIR": str(tmp_path / "data"),
            "EDI_REGISTRY_DATABASE_URL": database_url,
            "EDI_REGISTRY_URL": None,
            "EDI_OPERATOR": "test-operator",
        },
        database_url=database_url,
    )


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path
