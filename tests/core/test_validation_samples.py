"""Acceptance: the same valid/invalid verdict as the published schemas on every shared sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edi.cli.main import app
from tests.shared_samples import SAMPLES, STANDARDS, published_verdicts


def run_validate_json(*args: str) -> dict[str, dict[str, object]]:
    result = CliRunner().invoke(app, ["validate", "--json", *args, str(SAMPLES)])
    assert result.exit_code == 1, result.output  # the samples include invalid ones
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {str(Path(row["file"]).relative_to(SAMPLES)): row for row in rows}


@pytest.fixture(scope="module")
def with_published_schemas() -> dict[str, dict[str, object]]:
    return run_validate_json("--schemas", str(STANDARDS))


def test_same_verdict_as_the_published_schemas(with_published_schemas: dict[str, dict[str, object]]) -> None:
    verdicts = published_verdicts()
    comparable = {name: v for name, v in verdicts.items() if v.all_parts_have_schema}
    assert len(comparable) > 250
    disagreements = {
        name: (v.valid, with_published_schemas[name]["valid"])
        for name, v in comparable.items()
        if with_published_schemas[name]["valid"] is not v.valid
    }
    assert disagreements == {}
    print(f"{len(comparable)} samples compared, {sum(v.valid for v in comparable.values())} valid, 0 disagreements")


def test_invalid_samples_carry_the_right_apprec_code(with_published_schemas: dict[str, dict[str, object]]) -> None:
    for name, verdict in published_verdicts().items():
        if verdict.valid or not verdict.all_parts_have_schema:
            continue
        codes = {e["apprec_code"] for e in with_published_schemas[name]["errors"]}  # type: ignore[attr-defined]
        expected = "T01" if not verdict.well_formed else "T02"
        assert expected in codes, f"{name}: {codes}"


def test_parts_without_a_schema_are_never_a_silent_pass(with_published_schemas: dict[str, dict[str, object]]) -> None:
    for name, verdict in published_verdicts().items():
        if verdict.all_parts_have_schema:
            continue
        row = with_published_schemas[name]
        assert row["valid"] is not True, name
        if row["valid"] is None:
            codes = {w["code"] for w in row["warnings"]}  # type: ignore[attr-defined]
            assert "EDI-SCH-002" in codes, name


def test_builtin_schemas_alone_judge_envelopes_apprecs_and_dialogmeldings_like_the_published_ones() -> None:
    from edi.core.catalog import SchemaCatalog
    from edi.core.validation import PartKind, Validator

    validator = Validator(SchemaCatalog())  # no schema directory configured: built-in schemas only
    compared = dialogmeldings = 0
    for name, verdict in published_verdicts().items():
        if not verdict.well_formed:
            continue
        report = validator.validate(verdict.path.read_bytes())
        if verdict.envelope is not None:
            envelopes = [p.valid for p in report.parts if p.kind is PartKind.ENVELOPE]
            assert envelopes and all(envelopes) is verdict.envelope, name
            compared += 1
            # the documents inside Content, in the order VALIDATION.md lists them
            inner = [p for p in report.parts if p.kind is not PartKind.ENVELOPE]
            assert len(inner) == len(verdict.parts), name
            for part, published in zip(inner, verdict.parts, strict=True):
                if part.standard == "Dialogmelding":
                    assert part.valid is published, (name, part.version)
                    dialogmeldings += 1
        if name.startswith("apprec/"):
            apprecs = [p.valid for p in report.parts if p.standard == "AppRec"]
            assert apprecs == [verdict.parts[0]], name
            compared += 1
    assert compared >= 150
    assert dialogmeldings >= 100
