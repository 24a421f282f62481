"""A process that validates without a schema for some known standard says so: one log line at start and a detail
in /readyz, which stays ready (documents of those standards are accepted unvalidated, not lost). One whose schema
set does not compile does not start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from edi.core.catalog import SchemaCompileError
from tests.cli.test_edi_schemas import broken_schemas
from tests.observability.conftest import ops_endpoints
from tests.services.conftest import eventually, running_backbone

pytestmark = pytest.mark.parametrize("bus_kind", ["embedded"])


async def ready_body(client: Any) -> dict[str, Any] | None:
    body: dict[str, Any] = (await client.get("/readyz")).json()
    return body if body["ready"] else None


async def test_missing_schemas_are_logged_at_start_and_listed_in_readyz_details(
    installation: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EDI_SCHEMA_DIRS")  # the built-in schemas only, as on a fresh install
    with capture_logs() as logged:
        async with running_backbone(["validator"]) as (_, parts), ops_endpoints(parts.ops) as client:
            body = await eventually(lambda: ready_body(client), what="/readyz ready")
    [line] = [e for e in logged if e["event"] == "standards not validated: no schema installed"]
    assert line["log_level"] == "warning" and line["documents"] == "accepted unvalidated"
    assert "Henvisning 2.0" in line["standards"] and "MsgHead 1.2" not in line["standards"]
    schemas = body["details"]["schemas"]
    assert schemas.startswith("not validated, accepted unvalidated: ") and "Henvisning 1.0/1.1/2.0" in schemas
    assert "MsgHead" not in schemas and "schemas" not in body["checks"]


async def test_under_require_schemas_they_are_said_to_be_refused(
    installation: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EDI_SCHEMA_DIRS")
    monkeypatch.setenv("EDI_REQUIRE_SCHEMAS", "true")
    async with running_backbone(["validator"]) as (_, parts), ops_endpoints(parts.ops) as client:
        body = await eventually(lambda: ready_body(client), what="/readyz ready")
    assert body["details"]["schemas"].startswith("not validated, refused (EDI_REQUIRE_SCHEMAS): ")


async def test_with_every_known_standards_schema_nothing_is_said(installation: dict[str, str]) -> None:
    with capture_logs() as logged:  # the installation configures the published set (EDI_SCHEMA_DIRS)
        async with running_backbone(["validator"]) as (_, parts), ops_endpoints(parts.ops) as client:
            body = await eventually(lambda: ready_body(client), what="/readyz ready")
    assert body["details"] == {}
    assert not [e for e in logged if e["event"] == "standards not validated: no schema installed"]


async def test_a_schema_set_that_does_not_compile_stops_the_process_at_start(
    installation: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("EDI_SCHEMA_DIRS", str(broken_schemas(tmp_path)))
    with pytest.raises(SchemaCompileError, match=r"broken\.xsd"):
        async with running_backbone(["validator"]):
            pass
