"""`edi ops`: the operator tools, on the bus and store the EDI_* settings name (as `edi up` and `edi run` do).

Find a message and read its history, deal with dead letters (list, show, re-drive, park), resend a receipt, see
each receiver's backlog, and read the audit trail every action writes to. Actions name their operator
(`--operator`, else EDI_OPERATOR, else the login name) and need a reason.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar
from uuid import UUID

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from edi.adapters.bus import BusError
from edi.kapabilitetsregister.model import InvalidInputError, parse_time
from edi.observability.logging import configure_logging
from edi.services.operations.models import CoverageEntry, DeadLetterView, MessageStatus, MessageSummary
from edi.services.operations.service import NotFoundError, OperationRefusedError, Operations
from edi.services.store import BackboneSettings
from edi.services.store.store import COVERAGE_LIMIT

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
T = TypeVar("T")

app = typer.Typer(name="ops", help="Operator tools: find messages and their history, dead letters, receipts, "
                  "backlog, coverage, audit.", no_args_is_help=True)
dlq = typer.Typer(name="dlq", help="Dead letters: list, show, re-drive to the original topic, park.",
                  no_args_is_help=True)
app.add_typer(dlq)

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="The data directory `edi up` runs on (default EDI_DATA_DIR, else ./.edi-data).")]
Json = Annotated[bool, typer.Option("--json", help="JSON: one object, or one per line for a list.")]
Reason = Annotated[str, typer.Option("--reason", help="Why: it goes into the audit trail.")]
Operator = Annotated[str | None, typer.Option(
    "--operator", help="Who acts (default EDI_OPERATOR, else the login name): it goes into the audit trail.")]
Service = Annotated[str, typer.Argument(help="The service whose dead-letter topic holds it (edi.dlq.<service>).")]
Offset = Annotated[int, typer.Argument(help="Its offset on that topic (as `edi ops dlq list` shows).")]

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _run(data_dir: Path | None, action: Callable[[Operations], Awaitable[T]]) -> T:
    """Run one action on the operator tools; their refusals and errors become a message and an exit code."""
    configure_logging(level="WARNING")  # stdout is the command's answer; only trouble goes to stderr
    settings = BackboneSettings() if data_dir is None else BackboneSettings(data_dir=data_dir)

    async def run() -> T:
        async with Operations.open(settings) as operations:
            return await action(operations)

    try:
        return asyncio.run(run())
    except ValueError as exc:
        _err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from None
    except (NotFoundError, OperationRefusedError, BusError) as exc:
        _err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None


def _operator(given: str | None) -> str:
    return given or os.environ.get("EDI_OPERATOR") or getpass.getuser()


def _json(models: BaseModel | Sequence[BaseModel]) -> None:
    for model in [models] if isinstance(models, BaseModel) else models:
        typer.echo(model.model_dump_json())


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat(timespec="seconds")


def _summary_line(summary: MessageSummary) -> str:
    receivers = ", ".join(f"{r.her_id} {r.state}" + (f" (AppRec {r.apprec_status})" if r.apprec_status else "")
                          + (f" (unchecked: {r.unchecked})" if r.unchecked else "") for r in summary.receivers)
    return (f"{_when(summary.at)}  {summary.message_id}  MsgId {summary.msg_id or '-'}  "
            f"from {summary.sender_her_id or '-'}  {summary.kind or summary.message_type or '-'}  [{summary.status}]"
            + (f"  to {receivers}" if receivers else ""))


def _letter_line(letter: DeadLetterView) -> str:
    about = f"message {letter.message_id}" if letter.message_id else "no message id"
    done = f"  ({letter.action.describe()})" if letter.action is not None else ""
    return (f"{letter.service}@{letter.offset}  {letter.state.value}{done}  {_when(letter.failed_at)}  from "
            f"{letter.original_topic}[{letter.original_partition}]@{letter.original_offset}  {about}  "
            f"attempts {letter.attempts}: {letter.reason}")


@app.command()
def find(
    msg_id: Annotated[str | None, typer.Option("--msg-id", help="MsgId, as the sender set it.")] = None,
    message_id: Annotated[UUID | None, typer.Option("--message-id", help="The backbone's message id.")] = None,
    her_id: Annotated[str | None, typer.Option("--her-id", help="Sent by or to this HER-id.")] = None,
    status: Annotated[MessageStatus | None, typer.Option("--status", help="Only messages in this state.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 50,
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """Find messages by MsgId, message id, HER-id or status (every criterion given must hold)."""
    found = _run(data_dir, lambda ops: ops.find(msg_id=msg_id, message_id=message_id, her_id=her_id, status=status,
                                                limit=limit))
    if as_json:
        _json(found)
        return
    if not found:
        _out.print("no such messages")
    for summary in found:
        _out.print(escape(_summary_line(summary)))


@app.command()
def history(
    message_id: Annotated[UUID, typer.Argument(help="The backbone's message id (see `edi ops find`).")],
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """A message's history across the services: accepted, refused and why, delivered and read per receiver,
    AppRecs, receipts, dead letters and what operators did with them."""
    found = _run(data_dir, lambda ops: ops.history(message_id))
    if as_json:
        _json(found)
        return
    _out.print(escape(_summary_line(found.message)))
    for event in found.events:
        who = f" {event.her_id}" if event.her_id else ""
        by = f" [{event.service}]" if event.service else ""
        _out.print(escape(f"  {_when(event.at)}  {event.event}{who}{by}  {event.detail}"))


@dlq.command("list")
def dlq_list(
    service: Annotated[str | None, typer.Option("--service", help="Only this service's dead letters.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Also those re-driven or parked.")] = False,
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """The dead letters waiting for an operator, per service and offset."""
    letters = _run(data_dir, lambda ops: ops.dead_letters(service, everything=everything))
    if as_json:
        _json(letters)
        return
    if not letters:
        _out.print("no dead letters" if everything else "no dead letters waiting")
    for letter in letters:
        _out.print(escape(_letter_line(letter)))


@dlq.command("show")
def dlq_show(service: Service, offset: Offset, as_json: Json = False, data_dir: DataDir = None) -> None:
    """One dead letter: where it came from, why, its correlation ids and what was done with it (not its payload)."""
    letter = _run(data_dir, lambda ops: ops.dead_letter(service, offset))
    if as_json:
        _json(letter)
        return
    _out.print(escape(_letter_line(letter)))
    _out.print(escape(f"  MsgId {letter.msg_id or '-'}  sender {letter.sender_her_id or '-'}  receiver "
                      f"{letter.receiver_her_id or '-'}  {letter.size} bytes"))


@dlq.command("redrive")
def dlq_redrive(
    service: Service, offset: Offset, reason: Reason, operator: Operator = None, data_dir: DataDir = None,
) -> None:
    """Produce the dead letter's record again to its original topic, once (after the fault is fixed)."""
    done = _run(data_dir, lambda ops: ops.redrive(service, offset, operator=_operator(operator), reason=reason))
    again = " (an unconfirmed earlier re-drive made again)" if done.repeated else ""
    _out.print(escape(f"re-driven {service}@{offset} to {done.topic}[{done.partition}]@{done.new_offset}{again}"))


@dlq.command("park")
def dlq_park(
    service: Service, offset: Offset, reason: Reason, operator: Operator = None, data_dir: DataDir = None,
) -> None:
    """Put a dead letter aside with a reason: it is not offered for re-drive again."""
    _run(data_dir, lambda ops: ops.park(service, offset, operator=_operator(operator), reason=reason))
    _out.print(escape(f"parked {service}@{offset}"))


@app.command("resend-receipt")
def resend_receipt(
    message_id: Annotated[UUID, typer.Argument(help="The message whose receipts its sender gets again.")],
    reason: Reason,
    operator: Operator = None,
    data_dir: DataDir = None,
) -> None:
    """Give a message's sender its receipts again: the negative AppRec of a refused message, or the receivers'
    AppRecs (back in the sender's mailbox as unread, announced anew)."""
    resent = _run(data_dir, lambda ops: ops.resend_receipt(message_id, operator=_operator(operator), reason=reason))
    for receipt in resent:
        _out.print(escape(f"resent {receipt.kind} {receipt.message_id} to {receipt.her_id}"))


@app.command()
def backlog(
    her_id: Annotated[str | None, typer.Option("--her-id", help="Only this receiver.")] = None,
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """Per receiver: unread messages, the oldest one's age, and when it last fetched."""
    rows = _run(data_dir, lambda ops: ops.backlog(her_id))
    if as_json:
        _json(rows)
        return
    if not rows:
        _out.print("no unread messages and no fetches on record")
    for row in rows:
        age = "-" if row.oldest_unread_age_s is None else f"{row.oldest_unread_age_s:.0f} s"
        _out.print(escape(f"{row.her_id}  unread {row.unread}  oldest unread {age}  last fetch "
                          f"{_when(row.last_fetch_at) if row.last_fetch_at else 'never seen'}"))


Since = Annotated[str | None, typer.Option(
    "--since", metavar="TIME", help="Only deliveries from then on (ISO 8601; without offset: Norwegian time).")]


@app.command()
def coverage(
    since: Since = None, as_json: Json = False, data_dir: DataDir = None,
    limit: Annotated[int, typer.Option(
        "--limit", min=1, help="At most this many pairs, the most frequent first.")] = COVERAGE_LIMIT,
) -> None:
    """Which receivers got which kinds of message without a capability check, how often and when last: what
    to register in the Kapabilitetsregister."""
    try:
        moment = None if since is None else parse_time(since)
    except InvalidInputError as exc:
        _err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from None
    show_coverage(_run(data_dir, lambda ops: ops.coverage(moment, limit)), as_json)


def show_coverage(entries: Sequence[CoverageEntry], as_json: bool) -> None:
    """The coverage report as `edi ops coverage` and `kapreg coverage` print it."""
    if as_json:
        _json(entries)
        return
    if not entries:
        _out.print("every delivery was checked against the registry (none delivered unchecked)")
    for entry in entries:
        _out.print(escape(entry.line()))


@app.command()
def audit(
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 100,
    as_json: Json = False,
    data_dir: DataDir = None,
) -> None:
    """The operators' actions: who, when, what, why, and how each ended."""
    entries = _run(data_dir, lambda ops: ops.audit(limit=limit))
    if as_json:
        _json(entries)
        return
    if not entries:
        _out.print("no operator actions yet")
    for entry in entries:
        _out.print(escape(f"{_when(entry.at)}  {entry.operator}  {entry.action} {entry.target}  "
                          f"reason: {entry.reason}  -> {entry.outcome or 'not finished'}"))
