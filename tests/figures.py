"""Figures the reliability suite reports, gathered into RELIABILITY.md by `make reliability`.

A reliability test asserts its own invariants (no duplicate, no 5xx, no secret) and
also records what it tried with `record(Figure(...))`. The figures go to the JSON-lines
file named by CASCADE_FIGURES when it is set (by `scripts/reliability.py`); in a plain
test run they go nowhere.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    area: str  # "faults", "hostile input", "authenticity", "secrets", "limits"
    check: str  # what was tried, in a few words
    cases: int = 0  # inputs or scenarios tried
    faults: int = 0  # faults injected
    promotions: int = 0  # promotions made
    duplicates: int = 0  # promotions made twice (must be 0)
    five_xx: int = 0  # 5xx answers seen (must be 0, unless the test provokes a documented 503)
    secrets: int = 0  # secrets found where they must not be (must be 0)
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # a section of its own, if any


def record(figure: Figure) -> None:
    path = os.environ.get("CASCADE_FIGURES")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(figure)) + "\n")
