"""`edi schemas`: which schemas are installed and from where, and which known standards have none; and the
`--schemas` option that `edi validate`, `edi up` and `edi schemas` share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edi.core.catalog import BUILT_IN, SchemaCompileError, SchemaInventory, builtin_schema_dir
from edi.core.validation import Validator
from edi.settings import ValidationSettings

EXIT_USAGE = 2

SchemaDirs = Annotated[
    list[Path] | None,
    typer.Option("--schemas", help="A directory with a published XSD set (repeatable); adds to EDI_SCHEMA_DIRS."),
]


def schemas(
    schema_dirs: SchemaDirs = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per schema, one per line.")] = False,
) -> None:
    """List every known standard with the schema that validates it and where that comes from (the built-in set
    or a configured directory), or "not installed"; then the other namespaces the configured sets hold. Exit 0,
    or 2 when a directory does not exist or does not compile."""
    inventory = validator_or_exit(schema_dirs, compile_all=True).catalog.inventory()
    if as_json:
        for row in inventory_rows(inventory):
            print(json.dumps(row, ensure_ascii=False))
        return
    console = Console(highlight=False)
    files = {source.namespace: str(source.file) for _, source in inventory.standards if source}
    for schema_set in inventory.sets():
        where = f"built-in schemas ({builtin_schema_dir()})" if schema_set.name == BUILT_IN else schema_set.name
        if not schema_set.standards and not schema_set.others:
            console.print(f"No schema is taken from {escape(where)}.")
            continue
        table = _table(f"Validated by {where}", "standard", "namespace", "schema")
        for standard in schema_set.standards:
            table.add_row(*map(escape, (standard.label, standard.namespace, files[standard.namespace])))
        for source in schema_set.others:
            table.add_row("(no known standard)", *map(escape, (source.namespace, str(source.file))))
        console.print(table)
    if inventory.missing:
        table = _table("Not installed, so not validated", "standard", "namespace")
        for standard in inventory.missing:
            table.add_row(*map(escape, (standard.label, standard.namespace)))
        console.print(table)
        console.print(HINT)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=escape(title), title_justify="left")
    for column in columns:
        # Namespaces and paths are folded, never cut short: a truncated namespace is no use to an operator.
        table.add_column(column, overflow="fold")
    return table


HINT = "Add a published XSD set with --schemas DIR or EDI_SCHEMA_DIRS."


def inventory_rows(inventory: SchemaInventory) -> list[dict[str, Any]]:
    """Each known standard (schema None: not installed), then each other namespace installed."""
    rows = [
        {"standard": standard.name, "version": standard.version, "role": standard.role.value,
         "namespace": standard.namespace,
         "schema": str(source.path) if source else None, "file": str(source.file) if source else None,
         "set": source.schema_set if source else None}
        for standard, source in inventory.standards
    ]
    rows += [
        {"standard": None, "version": None, "role": None, "namespace": source.namespace, "schema": str(source.path),
         "file": str(source.file), "set": source.schema_set}
        for source in inventory.others
    ]
    return rows


def validator_or_exit(schema_dirs: list[Path] | None, *, compile_all: bool) -> Validator:
    """The validator of the EDI_* settings on `schema_dirs`, EDI_SCHEMA_DIRS and the built-in set. A directory
    that does not exist is a usage error, and so is one that does not compile when `compile_all` (a server
    compiles every schema at start, so that a broken set is found then, not by a sender's message)."""
    try:
        validator = ValidationSettings().validator(schema_dirs)
        if compile_all:
            validator.catalog.compile_all()
    except SchemaCompileError as exc:
        usage_error(str(exc))
    return validator


def usage_error(message: str) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(EXIT_USAGE)
