"""`edi validate`: validate message files and say precisely what is wrong with each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from edi.cli.schemas import SchemaDirs, usage_error, validator_or_exit
from edi.core.catalog import SchemaCompileError
from edi.core.problems import Problem
from edi.core.validation import ValidationReport

EXIT_VALID, EXIT_INVALID = 0, 1


def validate(
    paths: Annotated[list[Path], typer.Argument(help="Message files, or directories searched for *.xml.")],
    schemas: SchemaDirs = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file, one per line.")] = False,
) -> None:
    """Validate messages: exit 0 when every file is valid, 1 when some file is invalid or could not be fully
    validated (a part's schema is not installed), 2 on a usage error."""
    console = Console(highlight=False, soft_wrap=True)
    files = list(_message_files(paths))
    validator = validator_or_exit(schemas, compile_all=False)  # one file needs few of the schemas
    all_valid = True
    counts = {True: 0, False: 0, None: 0}
    for file in files:
        try:
            report = validator.validate(file.read_bytes())
        except SchemaCompileError as exc:
            usage_error(str(exc))
        counts[report.valid] += 1
        all_valid &= report.valid is True
        if as_json:
            print(json.dumps(report_json(file, report), ensure_ascii=False))
        else:
            _print_human(console, file, report)
    if not as_json:
        console.print(
            f"\n{len(files)} file(s): {counts[True]} valid, {counts[False]} invalid, "
            f"{counts[None]} not fully validated (schema not installed)"
        )
    raise typer.Exit(EXIT_VALID if all_valid else EXIT_INVALID)


def _message_files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.xml") if p.is_file())
        elif path.is_file():
            yield path
        else:
            usage_error(f"no such file or directory: {path}")


def report_json(file: Path, report: ValidationReport) -> dict[str, Any]:
    header = report.header
    business = _business_part(report)
    return {
        "file": str(file),
        "valid": report.valid,
        "standard": business[0],
        "version": business[1],
        "envelope": f"{header.standard} {header.version}" if header and header.standard == "MsgHead" else None,
        "type": header.message_type.code if header and header.message_type else None,
        "msg_id": header.msg_id if header else None,
        "sender_her_id": header.sender_her_id if header else None,
        "receiver_her_ids": header.receiver_her_ids if header else [],
        "errors": [_problem_json(p) for p in report.errors],
        "warnings": [_problem_json(p) for p in report.warnings],
    }


def _business_part(report: ValidationReport) -> tuple[str | None, str | None]:
    """What the message is: the first business document's standard (MsgHead's own only if it carries none)."""
    documents = [p for p in report.parts if p.kind == "document"] or list(report.parts)
    first = documents[0] if documents else None
    return (first.standard, first.version) if first else (None, None)


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "code": problem.code,
        "apprec_code": problem.apprec_code.value,
        "severity": problem.severity.value,
        "message": problem.message,
        "message_nb": problem.message_nb,
        "line": problem.line,
        "path": problem.path,
    }


def _print_human(console: Console, file: Path, report: ValidationReport) -> None:
    mark = {True: "[green]✓ valid[/green]", False: "[red]✗ invalid[/red]",
            None: "[yellow]? not fully validated[/yellow]"}[report.valid]
    data = report_json(file, report)
    what = " ".join(str(x) for x in (data["standard"], data["version"], data["type"]) if x)
    route = ""
    if data["sender_her_id"] or data["receiver_her_ids"]:
        route = f" from HER {data['sender_her_id'] or '?'} to {', '.join(data['receiver_her_ids']) or '?'}"
    console.print(f"{mark}  {escape(str(file))}  {escape(what)}{escape(route)}")
    for problem in report.problems:
        colour = "red" if problem.is_error else "yellow"
        where = " ".join(x for x in (f"line {problem.line}" if problem.line else "", problem.path or "") if x)
        console.print(
            f"    [{colour}]{problem.severity.value} {problem.apprec_code.value} {problem.code}[/{colour}]"
            f"{' ' + escape(where) if where else ''}: {escape(problem.message)}"
        )
