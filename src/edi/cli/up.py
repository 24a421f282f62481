"""`edi up`: the whole backbone in one process on embedded defaults, ready for `edi send` and the HTTP API."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Annotated

import typer

from edi.cli.schemas import HINT, SchemaDirs, validator_or_exit
from edi.core.catalog import BUILT_IN, SchemaInventory, grouped_labels
from edi.observability.logging import configure_logging
from edi.services.runtime import loop
from edi.services.up import Started
from edi.services.up import up as run_up


def up(
    host: Annotated[str, typer.Option("--host", help="Interface the HTTP API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port of the HTTP API.")] = 8080,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Where the bus, stores, registry and blobs live (default EDI_DATA_DIR, else ./.edi-data).",
    )] = None,
    schemas: SchemaDirs = None,
) -> None:
    """Run the whole backbone in this process until Ctrl-C: every service, the capability registry (with demo
    parties on first start) and the HTTP API. EDI_BUS=kafka, EDI_DATABASE_URL and friends switch parts to
    Kafka or PostgreSQL. Exit 2 when a schema directory does not exist or does not compile."""
    # Compiled before anything starts: a broken schema set is the operator's to fix now, not a sender's surprise.
    validator = validator_or_exit(schemas, compile_all=True)
    configure_logging(format="json" if os.environ.get("EDI_LOG_FORMAT") == "json" else "console",
                      level=os.environ.get("EDI_LOG_LEVEL", "WARNING"))
    loop.run(run_up(host_name=host, port=port, data_dir=data_dir, validator=validator,
                     started=lambda started: _announce(started, schemas or [])))


def _announce(started: Started, schema_dirs: list[Path]) -> None:
    # `edi send` validates in its own process: it needs the same schema directories to give the same verdicts.
    same_schemas = "".join(f" --schemas {directory}" for directory in schema_dirs)
    lines = [
        "edi up: the backbone is running (Ctrl-C stops it)",
        f"  data directory  {started.data_dir}",
        f"  bus             {started.bus}",
        f"  store           {started.store}",
        f"  registry        {started.registry}" + (
            f"  ({started.demo_parties} demo parties imported; `kapreg parties list`)" if started.demo_parties else ""),
        f"  blobs           {started.blobs}",
        f"  HTTP API        {started.api_url + ' (EDI 2.0 v2)' if started.api_url else 'not installed'}",
        "Schemas:",
        *schema_lines(started.schemas, require_schemas=started.require_schemas),
        "Try it:",
        f"  edi send{same_schemas} ../shared/samples/dialogmelding/ks-no-fiks-nhn-client/dialogmelding/1.0/"
        "foresporsel-og-svar/dialog-notat-webmed-test.xml",
        "  edi inbox --her-id 8143060",
    ]
    if started.data_dir != Path(".edi-data").resolve():
        lines += [f"(other commands find this data directory with --data-dir {started.data_dir} or EDI_DATA_DIR)"]
    typer.echo("\n".join(lines))
    loop.freeze_startup_objects()  # started: see the function


def schema_lines(inventory: SchemaInventory, *, require_schemas: bool) -> list[str]:
    """The banner's account of validation: the known standards each schema set validates, then those that no
    installed schema validates, with what that means and what to do about it."""
    lines: list[str] = []
    for schema_set in inventory.sets():
        if schema_set.name == BUILT_IN:
            if schema_set.standards:  # none when configured sets shadow them all: nothing to say
                lines += _listed("validated by built-in schemas:", grouped_labels(schema_set.standards))
            continue
        # A configured set is always named, so that an operator sees it was read, even when it adds nothing known.
        names = grouped_labels(schema_set.standards) or ["no known standard"]
        if schema_set.others:
            names.append(f"and {len(schema_set.others)} other namespaces (`edi schemas` lists them)")
        lines += _listed(f"validated by {schema_set.name}:", names)
    if inventory.missing:
        lines += _listed("not validated (no schema installed):", grouped_labels(inventory.missing))
        outcome = ("EDI_REQUIRE_SCHEMAS is set: documents with such a part are refused (T10)." if require_schemas
                   else "Documents with such a part are accepted with a warning (EDI-SCH-002).")
        lines += textwrap.wrap(f"{outcome} {HINT}", width=_WIDTH, initial_indent=" " * 4, subsequent_indent=" " * 6)
    return lines


_WIDTH = 116


def _listed(head: str, names: list[str]) -> list[str]:
    """`head` and the names, comma-separated and wrapped between names, never inside one."""
    items = [f"{name}," for name in names[:-1]] + names[-1:]
    lines = [f"  {head}"]
    for item in items:
        if len(lines[-1]) + 1 + len(item) > _WIDTH:
            lines.append("     ")
        lines[-1] += f" {item}"
    return lines
