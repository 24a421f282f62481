"""`edi dev`: helpers for a development deployment (EDI_ENVIRONMENT=development)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edi.auth.dev import DEFAULT_LIFETIME_SECONDS, DevIssuer
from edi.services.gateway.settings import TokenSettings
from edi.services.operations.api import OperatorSettings

app = typer.Typer(name="dev", help="Helpers for a development deployment.", no_args_is_help=True)


@app.command()
def token(
    her_id: Annotated[list[int], typer.Option(
        "--her-id", help="A HER-id the token acts for (repeat for several); 0 with --org: all of the organisation's.",
    )],
    org: Annotated[str | None, typer.Option(help="Organisation number (for --her-id 0).")] = None,
    jkt: Annotated[str | None, typer.Option(
        help="Bind the token to this DPoP key (its JWK SHA-256 thumbprint); it must then be sent as DPoP.",
    )] = None,
    hours: Annotated[float, typer.Option(help="Lifetime.")] = DEFAULT_LIFETIME_SECONDS / 3600,
    ops: Annotated[bool, typer.Option(
        "--ops", help="A token for the operator tools (/ops, `kapreg coverage --url`) instead of the message API.",
    )] = False,
    data_dir: Annotated[Path | None, typer.Option(
        help="Where the dev issuer's key is (default EDI_DATA_DIR, else .edi-data): the gateway's data directory.",
    )] = None,
) -> None:
    """Print an access token of the local dev issuer.

    A development gateway with the same data directory accepts it, also as a plain Bearer token (for curl and
    OpenAPI tools); a production gateway never does.
    """
    if any(h < 0 for h in her_id) or (0 in her_id and (len(her_id) > 1 or org is None)):
        raise typer.BadParameter("HER-ids are positive; 0 stands alone and needs --org", param_hint="--her-id")
    if hours <= 0:
        raise typer.BadParameter("must be positive", param_hint="--hours")
    settings = TokenSettings() if data_dir is None else TokenSettings(data_dir=data_dir)
    issuer = DevIssuer.load_or_create(settings.data_dir)
    typer.echo(issuer.issue(
        her_id, audience=settings.auth_audience, scope=OperatorSettings().ops_scope if ops else settings.auth_scope,
        organisation=org, jkt=jkt,
        lifetime_seconds=int(hours * 3600),
    ))
