"""Side-by-side diff of two config versions, computed on the server over their pretty JSON."""

from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import zip_longest
from typing import Any, Literal

import orjson

Change = Literal["same", "changed", "added", "removed"]


@dataclass(frozen=True, slots=True)
class DiffRow:
    """One line pair; a number is None where that side has no line."""

    left_number: int | None
    left: str
    right_number: int | None
    right: str
    change: Change


def pretty_json(document: Any) -> str:
    """Stable text for diffing: sorted keys, two-space indent."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def side_by_side(left_text: str, right_text: str) -> list[DiffRow]:
    left, right = left_text.splitlines(), right_text.splitlines()
    rows: list[DiffRow] = []
    for tag, l_start, l_end, r_start, r_end in SequenceMatcher(
        None, left, right, autojunk=False
    ).get_opcodes():
        if tag == "equal":
            rows.extend(
                DiffRow(l_start + i + 1, left[l_start + i], r_start + i + 1, right[r_start + i], "same")
                for i in range(l_end - l_start)
            )
            continue
        pairs = zip_longest(range(l_start, l_end), range(r_start, r_end))
        for l_index, r_index in pairs:
            if l_index is not None and r_index is not None:
                change: Change = "changed"
            else:
                change = "removed" if r_index is None else "added"
            rows.append(
                DiffRow(
                    l_index + 1 if l_index is not None else None,
                    left[l_index] if l_index is not None else "",
                    r_index + 1 if r_index is not None else None,
                    right[r_index] if r_index is not None else "",
                    change,
                )
            )
    return rows


def changed_count(rows: list[DiffRow]) -> int:
    return sum(1 for row in rows if row.change != "same")
