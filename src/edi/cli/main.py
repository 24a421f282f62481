"""The `edi` command."""

from __future__ import annotations

import typer

from edi.cli.errors import errors
from edi.cli.validate import validate

app = typer.Typer(
    name="edi",
    help="An EDI 2.0-style messaging backbone for Norwegian health messages.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(validate)
app.command()(errors)


@app.callback()
def _root() -> None:
    """Keeps `edi` a command group even while it has few commands."""
