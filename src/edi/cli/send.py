"""`edi send`: submit message files to the backbone (as a trusted local producer) and show what became of them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape

from edi.cli.schemas import SchemaDirs, validator_or_exit
from edi.core.validation import Validator
from edi.events import TransportState
from edi.kapabilitetsregister.view import unchecked_text
from edi.observability.logging import configure_logging
from edi.services.backbone import Backbone, MessagingSettings
from edi.services.messaging import Refused

EXIT_ACCEPTED, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
POLL_S = 0.2


def send(
    files: Annotated[list[Path], typer.Argument(help="Message files (XML) to submit.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file, one per line.")] = False,
    wait: Annotated[float, typer.Option(
        "--wait", metavar="SECONDS", help="How long to wait for each receiver's outcome (0: do not wait).")] = 10.0,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="The data directory `edi up` runs on (default EDI_DATA_DIR, else ./.edi-data).")] = None,
    schemas: SchemaDirs = None,
) -> None:
    """Submit messages: each is validated and accepted or refused at once; then, for up to --wait seconds, each
    receiver's outcome is shown (in its mailbox, or refused and why). Exit 0 when every file was accepted and
    delivered, 1 when any was refused, 2 on a usage error. The files are validated here, as `edi up` validates
    what its HTTP API takes: give the same --schemas (or EDI_SCHEMA_DIRS) as `edi up` was given."""
    for file in files:
        if not file.is_file():
            Console(stderr=True).print(f"[red]error:[/red] no such file: {escape(str(file))}")
            raise typer.Exit(EXIT_USAGE)
    validator = validator_or_exit(schemas, compile_all=False)
    configure_logging(level="WARNING")  # stdout is the command's answer; only trouble goes to stderr
    settings = MessagingSettings() if data_dir is None else MessagingSettings(data_dir=data_dir)
    results = asyncio.run(_send_all(files, settings, validator, wait))
    console = Console(highlight=False, soft_wrap=True)
    for result in results:
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False))
        else:
            _print(console, result)
    refused = any(r["refused"] or any(s["state"] == TransportState.REJECTED for s in r["receivers"]) for r in results)
    raise typer.Exit(EXIT_REFUSED if refused else EXIT_ACCEPTED)


async def _send_all(
    files: list[Path], settings: MessagingSettings, validator: Validator, wait: float,
) -> list[dict[str, Any]]:
    async with Backbone.open(settings, validator) as backbone:
        results = [await _submit(backbone, file) for file in files]
        deadline = asyncio.get_running_loop().time() + wait
        for result in results:
            if result["message_id"] is not None:
                await _outcome(backbone, result, deadline)
        return results


async def _submit(backbone: Backbone, file: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"file": str(file), "message_id": None, "duplicate": False, "refused": None,
                              "receivers": []}
    try:
        submitted = await backbone.submit(file.read_bytes(), allowed_sender_her_ids=None)
    except Refused as refused:
        result["refused"] = {
            "kind": refused.kind.value, "message": refused.message,
            "errors": [{"code": p.code, "apprec_code": p.apprec_code.value, "message": p.message, "line": p.line,
                        "path": p.path} for p in refused.problems],
        }
        return result
    result["message_id"] = str(submitted.message_id)
    result["duplicate"] = submitted.duplicate
    return result


async def _outcome(backbone: Backbone, result: dict[str, Any], deadline: float) -> None:
    """Wait (until the deadline) for every receiver's state; for refused receivers, the reasons."""
    message_id = UUID(result["message_id"])
    loop = asyncio.get_running_loop()
    while True:
        statuses = await backbone.status(message_id)
        entries = {e.receiver_her_id: e for e in await backbone.entries(message_id)}
        rejected = any(s.transport_state is TransportState.REJECTED for s in statuses)
        reasons = await backbone.refusal(message_id) if rejected else []
        settled = statuses and (not rejected or reasons)
        if settled or loop.time() >= deadline:
            break
        await asyncio.sleep(POLL_S)
    result["receivers"] = [
        {"her_id": s.receiver_her_id, "state": s.transport_state.value, "in_mailbox": entry is not None,
         "kind": entry.kind if entry else None,
         "unchecked": unchecked_text(entry.unchecked_reason) if entry and entry.unchecked_reason else None}
        for s in statuses
        for entry in [entries.get(s.receiver_her_id)]
    ]
    result["refusal"] = [{"code": r.code, "details": r.details} for r in reasons]


def _print(console: Console, result: dict[str, Any]) -> None:
    name = escape(result["file"])
    refused = result["refused"]
    if refused is not None:
        console.print(f"[red]✗ refused[/red]  {name}  ({refused['kind']})")
        for error in refused["errors"]:
            where = f" line {error['line']}" if error["line"] else ""
            console.print(f"    {error['apprec_code']} {error['code']}{where}: {escape(error['message'])}")
        return
    again = " (a duplicate: the original message)" if result["duplicate"] else ""
    console.print(f"[green]✓ accepted[/green] {name}  message {result['message_id']}{again}")
    if not result["receivers"]:
        console.print("    no outcome yet: is `edi up` running on this data directory?")
    for receiver in result["receivers"]:
        where = "in its mailbox" if receiver["in_mailbox"] else "not delivered"
        what = "".join(f"; {part}" for part in (
            receiver.get("kind"),
            receiver.get("unchecked") and f"capability not checked: {receiver['unchecked']}") if part)
        console.print(f"    receiver {receiver['her_id']}: {receiver['state']} ({where}{escape(what)})")
    for reason in result.get("refusal", []):
        console.print(f"    {reason['code']}: {escape(reason['details'] or '')}")
