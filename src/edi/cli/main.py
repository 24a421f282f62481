"""The `edi` command."""

from __future__ import annotations

import typer

from edi.cli.asyncapi import asyncapi
from edi.cli.dev import app as dev
from edi.cli.errors import errors
from edi.cli.inbox import inbox
from edi.cli.ops import app as ops
from edi.cli.run import run
from edi.cli.schemas import schemas
from edi.cli.send import send
from edi.cli.up import up
from edi.cli.validate import validate

app = typer.Typer(
    name="edi",
    help="An EDI 2.0-style messaging backbone for Norwegian health messages.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(validate)
app.command()(schemas)
app.command()(errors)
app.command()(run)
app.command()(up)
app.command()(send)
app.command()(inbox)
app.command()(asyncapi)
app.add_typer(dev)
app.add_typer(ops)


@app.callback()
def _root() -> None:
    """Keeps `edi` a command group even while it has few commands."""
