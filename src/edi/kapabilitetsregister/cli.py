"""kapreg: the operators' CLI for the Kapabilitetsregister.

Tables by default, `--json` for scripts. Works on the local store (EDI_DATA_DIR, EDI_REGISTRY_DATABASE_URL) or a
remote registry (`--url` / EDI_REGISTRY_URL). Exit codes: 0 done (or allowed), 1 refused by `check`, 2 bad input
(malformed HER-id, unknown specification or party, unreadable file), 3 not authorised, 4 registry unavailable.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from edi.core.header import RoutingHeader
from edi.core.kinds import MessageKind
from edi.kapabilitetsregister.changes import ChangeRecord, describe_change
from edi.kapabilitetsregister.client import NotAuthorisedError, Registry, RegistryUnavailableError, RemoteRegistry
from edi.kapabilitetsregister.import_export import parse_import
from edi.kapabilitetsregister.model import (
    Direction,
    InvalidInputError,
    OverrideEffect,
    Party,
    RegistryError,
    parse_her_id,
    parse_time,
)
from edi.kapabilitetsregister.settings import RegistrySettings
from edi.kapabilitetsregister.specifications import (
    Specification,
    default_catalogue,
    read_routing_header,
)
from edi.kapabilitetsregister.store import PlannedChange, RegistryStore
from edi.kapabilitetsregister.view import Verdict
from edi.kapabilitetsregister.wire import VerdictOut

T = TypeVar("T")


class ExitCode(IntEnum):
    OK = 0
    REFUSED = 1
    BAD_INPUT = 2
    NOT_AUTHORISED = 3
    UNAVAILABLE = 4


class OverrideAction(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    CLEAR = "clear"


app = typer.Typer(
    name="kapreg", no_args_is_help=True, add_completion=False,
    help="The operators' CLI for the Kapabilitetsregister: which message specifications each HER-id can Consume "
    "and Produce. Exit codes: 0 done or allowed, 1 refused by check, 2 bad input, 3 not authorised, 4 registry "
    "unavailable.",
)
specs_app = typer.Typer(help="The message specifications the registry knows.", no_args_is_help=True)
parties_app = typer.Typer(help="Communication parties (HER-ids) and what they support.", no_args_is_help=True)
app.add_typer(specs_app, name="specs")
app.add_typer(parties_app, name="parties")

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
Url = Annotated[str | None, typer.Option(
    "--url", envvar="EDI_REGISTRY_URL", help="Base URL of a remote registry; default: the local store.")]
Token = Annotated[str | None, typer.Option(
    "--token", envvar="EDI_REGISTRY_OPERATOR_TOKEN", help="Operator token for writes to a remote registry.")]
Operator = Annotated[str | None, typer.Option(
    "--operator", envvar="EDI_OPERATOR", help="Name recorded in the history; default: your login name.")]
HerIdArg = Annotated[str, typer.Argument(metavar="HERID", help="The party's HER-id.")]
SpecArg = Annotated[str, typer.Argument(metavar="SPEC", help="Specification id, capability name or display name.")]
Consume = Annotated[bool, typer.Option("--consume", help="The party receives this specification.")]
Produce = Annotated[bool, typer.Option("--produce", help="The party sends this specification.")]


# --- specifications ---------------------------------------------------------------------------------------------


@specs_app.command("list")
def specs_list(json_output: Json = False, url: Url = None) -> None:
    """All message specifications."""
    with _errors(json_output):
        specifications = _run(url, None, lambda registry: registry.specifications())
    if json_output:
        return _print_json([s.model_dump(mode="json", by_alias=True) for s in specifications])
    table = Table("Id", "Specification", "Capability name", "Category")
    for spec in specifications:
        table.add_row(str(spec.id), spec.display_name, spec.capability_name, spec.category)
    _console().print(table)


@specs_app.command("show")
def specs_show(spec: SpecArg, json_output: Json = False, url: Url = None) -> None:
    """One specification, with the rule that recognises a message as it."""
    with _errors(json_output):
        wanted = default_catalogue().resolve(spec)
        found = next(s for s in _run(url, None, lambda registry: registry.specifications()) if s.id == wanted.id)
    if json_output:
        return _print_json(found.model_dump(mode="json", by_alias=True))
    rules = [
        "message function " + (", ".join(rule.message_functions) if rule.message_functions else "any")
        + (f"; MsgDescr {', '.join(rule.service_descriptions)}" if rule.service_descriptions else "")
        for rule in found.recognition
    ]
    _print_fields({
        "Id": found.id, "Specification": found.display_name, "Standard": f"{found.standard} {found.version}",
        "Namespace": found.namespace,
        "Capabilities": f"{found.capability(Direction.CONSUME)}, {found.capability(Direction.PRODUCE)}",
        "Category": found.category, "Source": found.source, "Responsible": found.responsible,
        "Recognised by": "\n".join(rules) or "(not recognised from messages)",
        "Note": found.recognition_note,
    })


# --- parties ----------------------------------------------------------------------------------------------------


@parties_app.command("list")
def parties_list(json_output: Json = False, url: Url = None) -> None:
    """All registered parties."""
    with _errors(json_output):
        found = _run(url, None, lambda registry: registry.list_parties())
    _print_parties(found, json_output)


@parties_app.command("search")
def parties_search(text: Annotated[str, typer.Argument(help="Part of a name or source system, a HER-id or an "
                                                       "organisation number.")],
                   json_output: Json = False, url: Url = None) -> None:
    """Parties matching a text."""
    with _errors(json_output):
        found = _run(url, None, lambda registry: registry.search_parties(text))
    _print_parties(found, json_output)


@parties_app.command("show")
def parties_show(her_id: HerIdArg, json_output: Json = False, url: Url = None) -> None:
    """A party, the capabilities that answer checks for it, and its overrides."""
    with _errors(json_output):
        wanted = parse_her_id(her_id)
        details = _run(url, None, lambda registry: registry.party_details(wanted))
    if json_output:
        return _print_json(details.model_dump(mode="json", by_alias=True))
    party = details.party
    _print_fields({
        "HER-id": party.her_id, "Name": party.name, "Kind": party.kind.value, "Parent HER-id": party.parent_her_id,
        "Organisation number": party.organisation_number, "Active": "yes" if party.active else "no",
        "Valid": party.period,
        "Source system": " ".join(p for p in (party.source_system, party.source_version) if p) or None,
        "Delivery": party.kafka_topic if party.kafka_topic else party.delivery_channel.value,
        "FileReference attachments": "accepted" if party.accepts_file_reference else "not accepted",
    })
    catalogue = default_catalogue()
    title = "Capabilities" + (f" (inherited from organisation {details.inherited_from})"
                              if details.inherited_from else "")
    table = Table("Capability", "Valid", "Registered by", "Registered at (UTC)", title=title)
    for capability in details.capabilities:
        spec = catalogue.get(capability.specification_id)
        name = spec.capability(capability.direction) if spec else str(capability.specification_id)
        table.add_row(name, capability.period, capability.registered_by, _time(capability.registered_at))
    _console().print(table)
    if details.overrides:
        overrides = Table("Specification", "Override", "Reason", "Set by", "Set at (UTC)", title="Overrides")
        for override in details.overrides:
            spec = catalogue.get(override.specification_id)
            overrides.add_row(spec.capability_name if spec else str(override.specification_id),
                              override.effect.value, override.reason, override.set_by, _time(override.set_at))
        _console().print(overrides)


# --- the check --------------------------------------------------------------------------------------------------


@app.command()
def check(
    receiver: Annotated[str, typer.Option("--receiver", metavar="HERID", help="The receiver's HER-id.")],
    spec: Annotated[str | None, typer.Option("--spec", metavar="ID_OR_NAME", help="The specification.")] = None,
    message: Annotated[Path | None, typer.Option(
        "--message", metavar="FILE", help="A message; its specification is recognised from it.")] = None,
    sender: Annotated[str | None, typer.Option(
        "--sender", metavar="HERID", help="Also check that this sender may Produce it.")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", metavar="TIME", help="ISO 8601 time (default now; without offset: Norwegian time).")] = None,
    json_output: Json = False,
    url: Url = None,
) -> None:
    """May a message of this specification be delivered to the receiver? Exit 0 allowed, 1 refused."""
    with _errors(json_output):
        if (spec is None) == (message is None):
            raise InvalidInputError("give either --spec or --message")
        receiver_id = parse_her_id(receiver)
        sender_id = None if sender is None else parse_her_id(sender)
        moment = parse_time(at) if at else datetime.now(UTC)
        kind: MessageKind | None = None
        specification: Specification | None
        if message is not None:
            kind = MessageKind.of(_read_message(message))
            specification = default_catalogue().recognise(kind)
        else:
            specification = default_catalogue().resolve(spec or "")
        spec_id = None if specification is None else specification.id
        kind_name = "" if kind is None else kind.description
        result = _run(url, None, lambda registry: registry.check(receiver_id, spec_id, moment, sender_id, kind_name))
    if json_output:
        _print_json({
            "allowed": result.allowed,
            "at": moment.isoformat(),
            "message": None if kind is None else {"file": str(message), "kind": kind.name,
                                                  "governed": specification is not None},
            "specification": None if specification is None else {
                "id": specification.id, "displayName": specification.display_name,
                "capabilityName": specification.capability_name,
            },
            "receiver": _verdict_json(result.receiver),
            "sender": None if result.sender is None else _verdict_json(result.sender),
        })
    else:
        fields: dict[str, Any] = {}
        if kind is not None:
            fields["Message"] = f"{message}: {kind.name}"
        fields["Specification"] = (f"{specification.id} {specification.display_name} "
                                   f"({specification.capability_name})" if specification
                                   else "none: the registry does not govern this kind of message")
        fields[f"Receiver {receiver_id}"] = _verdict_line(result.receiver)
        if result.sender is not None:
            fields[f"Sender {result.sender.her_id}"] = _verdict_line(result.sender)
        fields["Result"] = "ALLOWED" if result.allowed else "REFUSED"
        _print_fields(fields)
    raise typer.Exit(ExitCode.OK if result.allowed else ExitCode.REFUSED)


# --- operator writes --------------------------------------------------------------------------------------------


@app.command()
def grant(
    her_id: HerIdArg, spec: SpecArg, consume: Consume = False, produce: Produce = False,
    valid_from: Annotated[str | None, typer.Option("--valid-from", metavar="TIME")] = None,
    valid_to: Annotated[str | None, typer.Option("--valid-to", metavar="TIME", help="Exclusive.")] = None,
    operator: Operator = None, json_output: Json = False, url: Url = None, token: Token = None,
) -> None:
    """Register that a party can Consume or Produce a specification."""
    with _errors(json_output):
        party, specification, direction = parse_her_id(her_id), default_catalogue().resolve(spec), \
            _direction(consume, produce)
        start, end = (parse_time(valid_from) if valid_from else None), (parse_time(valid_to) if valid_to else None)
        records = _run(url, token, lambda registry: registry.grant(
            party, specification.id, direction, _actor(operator), start, end))
    _print_records(records, json_output, f"HER-id {party} already has {specification.capability(direction)}")


@app.command()
def revoke(
    her_id: HerIdArg, spec: SpecArg, consume: Consume = False, produce: Produce = False,
    operator: Operator = None, json_output: Json = False, url: Url = None, token: Token = None,
) -> None:
    """Remove a party's capability."""
    with _errors(json_output):
        party, specification, direction = parse_her_id(her_id), default_catalogue().resolve(spec), \
            _direction(consume, produce)
        records = _run(url, token, lambda registry: registry.revoke(
            party, specification.id, direction, _actor(operator)))
    _print_records(records, json_output, f"HER-id {party} has no own {specification.capability(direction)}")


@app.command()
def override(
    her_id: HerIdArg, spec: SpecArg,
    action: Annotated[OverrideAction, typer.Argument(help="allow or deny the specification, or clear the override.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (required for allow and deny).")] = None,
    operator: Operator = None, json_output: Json = False, url: Url = None, token: Token = None,
) -> None:
    """Allow or deny a specification for a party regardless of its capabilities (both directions)."""
    with _errors(json_output):
        party, specification = parse_her_id(her_id), default_catalogue().resolve(spec)
        actor = _actor(operator)
        if action is OverrideAction.CLEAR:
            records = _run(url, token, lambda registry: registry.clear_override(party, specification.id, actor))
        else:
            if not reason or not reason.strip():
                raise InvalidInputError("an override needs a reason: --reason TEXT")
            effect = OverrideEffect(action.value)
            records = _run(url, token, lambda registry: registry.set_override(
                party, specification.id, effect, reason, actor))
    _print_records(records, json_output, f"the override of {specification.capability_name} for HER-id {party} "
                   "is already so")


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="JSON or CSV (see the docs).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the changes; write nothing.")] = False,
    operator: Operator = None, json_output: Json = False, url: Url = None, token: Token = None,
) -> None:
    """Make the registry say what the file says about its parties (idempotent)."""
    with _errors(json_output):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {file}: {exc.strerror or exc}") from None
        entries = parse_import(data, file.name)
        result = _run(url, token, lambda registry: registry.import_parties(
            entries, _actor(operator), dry_run=dry_run))
    if json_output:
        return _print_json(result.model_dump(mode="json", by_alias=True))
    console = _console()
    for change in result.changes:
        console.print(f"{_sign(change)} {change.her_id}: {change.summary}", markup=False)
    count = len(result.changes)
    if count == 0:
        console.print("nothing to change")
    else:
        console.print(f"{count} change(s) " + ("planned (dry run: nothing written)" if dry_run else "written"))


@app.command()
def export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
    = None,
    url: Url = None,
) -> None:
    """Every party with its capabilities and overrides, as an import file (JSON)."""
    with _errors(False):
        document = _run(url, None, lambda registry: registry.export())
        text = document.model_dump_json(by_alias=True, exclude_none=True, indent=2)
        if output is None:
            typer.echo(text)
        else:
            try:
                output.write_text(text + "\n", encoding="utf-8")
            except OSError as exc:
                raise InvalidInputError(f"cannot write {output}: {exc.strerror or exc}") from None


@app.command()
def history(her_id: HerIdArg, json_output: Json = False, url: Url = None) -> None:
    """Every change to a party, its capabilities and overrides: who, when, before and after."""
    with _errors(json_output):
        wanted = parse_her_id(her_id)
        records = _run(url, None, lambda registry: registry.history(wanted))
    catalogue = default_catalogue()
    if json_output:
        return _print_json([
            {**r.model_dump(mode="json", by_alias=True), "summary": describe_change(catalogue, r.before, r.after)}
            for r in records
        ])
    table = Table("Seq", "Time (UTC)", "Operator", "Change")
    for record in records:
        table.add_row(str(record.seq), _time(record.at), record.actor,
                      describe_change(catalogue, record.before, record.after))
    _console().print(table)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
) -> None:
    """Run the registry's HTTP API on the local store."""
    import uvicorn

    from edi.kapabilitetsregister.api import create_app

    uvicorn.run(create_app(), host=host, port=port)


# --- plumbing ---------------------------------------------------------------------------------------------------


def _run(url: str | None, token: str | None, operation: Callable[[Registry], Awaitable[T]]) -> T:
    """Run one operation against the local store or the remote registry, then close it."""

    async def main() -> T:
        registry: Registry
        if url:
            registry = RemoteRegistry(url, token)
        else:
            settings = RegistrySettings()
            database = settings.database_url
            try:
                registry = await RegistryStore.open(database, policy=settings.capability_policy)
            except (SQLAlchemyError, OSError) as exc:
                raise RegistryUnavailableError(f"cannot open the registry database: {exc}") from None
        try:
            return await operation(registry)
        finally:
            await registry.close()

    # Our own loop, not installed as the thread's current loop, so callers' asyncio state is left alone.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        try:
            return runner.run(main())
        except SQLAlchemyError as exc:
            raise RegistryUnavailableError(f"registry database error: {exc}") from None


@contextmanager
def _errors(json_output: bool) -> Iterator[None]:
    try:
        yield
    except RegistryError as exc:
        _fail(exc, json_output)


def _fail(exc: RegistryError, json_output: bool) -> NoReturn:
    if isinstance(exc, NotAuthorisedError):
        code = ExitCode.NOT_AUTHORISED
    elif isinstance(exc, RegistryUnavailableError):
        code = ExitCode.UNAVAILABLE
    else:
        code = ExitCode.BAD_INPUT
    if json_output:
        typer.echo(json.dumps({"error": exc.code, "detail": str(exc)}, ensure_ascii=False), err=True)
    else:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {exc}", markup=False)
    raise typer.Exit(code)


def _read_message(path: Path) -> RoutingHeader:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return read_routing_header(data, str(path))


def _direction(consume: bool, produce: bool) -> Direction:
    if consume == produce:
        raise InvalidInputError("give exactly one of --consume or --produce")
    return Direction.CONSUME if consume else Direction.PRODUCE


def _actor(operator: str | None) -> str:
    if operator and operator.strip():
        return operator.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown operator")


def _console() -> Console:
    # Captured output (scripts, tests) gets wide lines so that names are never folded.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _print_fields(fields: dict[str, Any]) -> None:
    """`Name:  value` lines, never folded (a reason is one line a script can grep)."""
    shown = {f"{name}:": str(value) for name, value in fields.items() if value is not None}
    width = max(map(len, shown)) + 2
    for label, value in shown.items():
        typer.echo(label.ljust(width) + value.replace("\n", "\n" + " " * width))


def _print_parties(parties: list[Party], json_output: bool) -> None:
    if json_output:
        return _print_json([p.model_dump(mode="json", by_alias=True) for p in parties])
    table = Table("HER-id", "Name", "Kind", "Parent", "Active", "Source system")
    for party in parties:
        table.add_row(str(party.her_id), party.name or "", party.kind.value, str(party.parent_her_id or ""),
                      "yes" if party.active else "no", party.source_system or "")
    _console().print(table)


def _print_records(records: list[ChangeRecord], json_output: bool, unchanged: str) -> None:
    catalogue = default_catalogue()
    if json_output:
        return _print_json({
            "changed": bool(records),
            "changes": [
                {**r.model_dump(mode="json", by_alias=True), "summary": describe_change(catalogue, r.before, r.after)}
                for r in records
            ],
        })
    console = _console()
    for record in records:
        console.print(f"{describe_change(catalogue, record.before, record.after)} for HER-id {record.her_id} "
                      f"(change {record.seq})", markup=False)
    if not records:
        console.print(f"{unchanged}; nothing changed", markup=False)


def _verdict_json(verdict: Verdict) -> dict[str, Any]:
    return VerdictOut.of(verdict).model_dump(mode="json", by_alias=True)


def _verdict_line(verdict: Verdict) -> str:
    return f"{'ALLOWED' if verdict.allowed else 'REFUSED'}: {verdict.reason}"


def _sign(change: PlannedChange) -> str:
    return "+" if change.before is None else "-" if change.after is None else "~"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

