"""The shared reference material (../shared) and the published schemas' verdicts from VALIDATION.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "samples"
STANDARDS = SHARED / "standards"


@dataclass(frozen=True)
class PublishedVerdict:
    path: Path
    well_formed: bool
    envelope: bool | None  # None: no MsgHead
    parts: tuple[bool | None, ...]  # None: no schema collected for that part's namespace

    @property
    def all_parts_have_schema(self) -> bool:
        return all(p is not None for p in self.parts)

    @property
    def valid(self) -> bool:
        return self.well_formed and self.envelope is not False and all(p is True for p in self.parts)


@cache
def published_verdicts() -> dict[str, PublishedVerdict]:
    """file (relative to samples/) -> the published schemas' verdict, read from VALIDATION.md's per-file table."""
    verdicts: dict[str, PublishedVerdict] = {}
    text = (SAMPLES / "VALIDATION.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        envelope_cell, docs_cell = cells[3], cells[4]
        well_formed = "NOT WELL-FORMED" not in envelope_cell
        envelope = None if envelope_cell in ("-", "") or not well_formed else envelope_cell.startswith("valid")
        parts = tuple(
            None if "NO SCHEMA" in doc else not re.search(r"→ INVALID", doc)
            for doc in docs_cell.split("<br>")
            if "→" in doc
        )
        verdicts[name] = PublishedVerdict(SAMPLES / name, well_formed, envelope, parts)
    return verdicts
