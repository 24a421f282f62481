"""The AsyncAPI document in deploy/ is the code's: regenerated here, it matches the committed file, and it
describes every topic, payload and handler the services have."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastavro
import yaml
from typer.testing import CliRunner

from edi.cli.asyncapi import consuming_services, render
from edi.cli.main import app as edi
from edi.events import LocalSchemaRegistry
from edi.schemas.topics import ALL_TOPICS, CONSUMING_SERVICES, dead_letter_topic

COMMITTED = Path(__file__).parents[2] / "deploy" / "asyncapi.yaml"


def _document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    return document


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_the_committed_document_is_what_the_code_generates() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), "regenerate: uv run edi asyncapi -o deploy/asyncapi.yaml"


def test_edi_asyncapi_prints_the_document_and_writes_it_to_a_file(tmp_path: Path) -> None:
    printed = CliRunner().invoke(edi, ["asyncapi"], catch_exceptions=False)
    assert printed.exit_code == 0
    assert printed.stdout == render()
    written = CliRunner().invoke(edi, ["asyncapi", "--output", str(tmp_path / "asyncapi.yaml")])
    assert written.exit_code == 0
    assert (tmp_path / "asyncapi.yaml").read_text(encoding="utf-8") == render()


def test_every_topic_is_a_channel_with_its_partitions_and_retention() -> None:
    channels = _document()["channels"]
    for spec in ALL_TOPICS:
        kafka = channels[spec.name]["bindings"]["kafka"]
        assert channels[spec.name]["address"] == spec.name
        assert kafka["partitions"] == spec.partitions
        config = kafka["topicConfiguration"]
        assert config["cleanup.policy"] == ["compact" if spec.compacted else "delete"]
        if not spec.compacted:
            assert config["retention.ms"] == (spec.retention_ms if spec.retention_ms is not None else -1)


def test_every_reference_resolves_and_every_avro_payload_is_a_bundled_schema() -> None:
    document = _document()
    bundled = {schema.name: schema.definition for schema in LocalSchemaRegistry.bundled().all()}
    for channel in document["channels"].values():
        for message in channel["messages"].values():
            _resolve(document, message["$ref"])
    for operation in document["operations"].values():
        assert operation["action"] in {"send", "receive"}
        _resolve(document, operation["channel"]["$ref"])
    for message in document["components"]["messages"].values():
        payload = message["payload"]
        if "schemaFormat" in payload:
            schema = payload["schema"]
            assert bundled[f"{schema['namespace']}.{schema['name']}"] == schema
            fastavro.parse_schema(schema, named_schemas={})
        assert "edi-message-id" in message["headers"]["properties"]
    dead_letter = document["components"]["messages"]["DeadLetter"]["headers"]["properties"]
    assert {"edi-dlq-reason", "edi-dlq-original-topic", "edi-dlq-original-offset"} <= set(dead_letter)


def test_every_service_handler_is_an_operation_in_its_consumer_group() -> None:
    operations = _document()["operations"]
    services = consuming_services()
    assert sorted(service.name for service in services) == sorted(CONSUMING_SERVICES)
    for service in services:
        for route in service.routes.values():
            receive = operations[f"{service.name}.receive.{route.topic}"]
            assert receive["channel"]["$ref"] == f"#/channels/{route.topic}"
            assert receive["bindings"]["kafka"]["groupId"]["enum"] == [service.name]
            for output in route.outputs:
                assert operations[f"{service.name}.send.{output}"]["action"] == "send"
        assert f"{service.name}.send.{dead_letter_topic(service.name)}" in operations
