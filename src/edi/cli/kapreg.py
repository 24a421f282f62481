"""The `kapreg` command: the capability registry's own commands (`edi.kapabilitetsregister.cli`), plus the
coverage report, which reads the backbone's deliveries and so lives on this side of the registry package."""

from __future__ import annotations

from typing import Annotated

import httpx
import typer
from pydantic import TypeAdapter

from edi.cli.ops import DataDir, Json, Since, coverage, show_coverage
from edi.kapabilitetsregister.cli import app
from edi.kapabilitetsregister.model import InvalidInputError, parse_time
from edi.services.operations.models import CoverageEntry

__all__ = ["app"]

_ENTRIES = TypeAdapter(list[CoverageEntry])
TIMEOUT_S = 30.0


@app.command("coverage")
def kapreg_coverage(
    since: Since = None, as_json: Json = False, data_dir: DataDir = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="Base URL of a running backbone's HTTP API (its /ops/coverage); default: the data directory.",
    )] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="EDI_OPS_TOKEN", help="An operator access token for --url (scope edi:ops).")] = None,
) -> None:
    """Which receivers got which kinds of message without a capability check (the same report as `edi ops
    coverage`): what to register so that the registry covers real traffic."""
    if url is None:
        coverage(since=since, as_json=as_json, data_dir=data_dir)
        return
    try:
        params = {} if since is None else {"since": parse_time(since).isoformat()}
    except InvalidInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    try:
        response = httpx.get(f"{url.rstrip('/')}/ops/coverage", params=params, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(4) from None
    if response.status_code in (401, 403):
        typer.echo(f"error: not authorised ({response.status_code}): give an operator token with --token", err=True)
        raise typer.Exit(3)
    if response.status_code != 200:
        typer.echo(f"error: {url} answered {response.status_code}: {response.text[:500]}", err=True)
        raise typer.Exit(4)
    show_coverage(_ENTRIES.validate_python(response.json()), as_json)

