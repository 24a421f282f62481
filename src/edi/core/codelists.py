"""Code lists the rules need, read once from the project's data files under `edi/schemas/codelists`."""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources


@cache
def message_functions() -> dict[str, str]:
    """Code system 8279 (Meldingens funksjon): code -> display name."""
    text = (resources.files("edi.schemas") / "codelists" / "8279.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {row["code"]: row["display_name"] for row in rows}
