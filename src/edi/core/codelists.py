"""Code lists and the namespace index, read once from the project's data files under `edi/schemas`."""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources


def read_data_csv(name: str) -> list[dict[str, str]]:
    """The rows of one of the project's CSV data files (`edi/schemas/<name>`); lines starting with # are notes."""
    text = (resources.files("edi.schemas") / name).read_text(encoding="utf-8")
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))


def _code_list(name: str) -> dict[str, str]:
    return {row["code"]: row["display_name"] for row in read_data_csv(f"codelists/{name}.csv")}


@cache
def message_functions() -> dict[str, str]:
    """Code system 8279 (Meldingens funksjon): code -> display name."""
    return _code_list("8279")


@cache
def service_descriptions() -> dict[str, str]:
    """Code system 8202 (Tjenestetype, a lab report's or requisition's MsgDescr): code -> display name."""
    return _code_list("8202")


@cache
def legacy_message_types() -> dict[str, str]:
    """The type codes of the 1.x standalone KITH documents, which predate code system 8279: code -> display name."""
    return _code_list("kith-1x-types")
