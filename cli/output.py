"""What the CLI prints, as pure functions: aligned tables, field listings, the one line of a problem.

Plain aligned text rather than a rendering library: the output is read by people and by ``grep`` /
``awk`` alike, so it has no box drawing, no colour and no wrapping that depends on the terminal.
Every text that came from outside (an alert's title is a partner's webhook's) is made visible
before it reaches the terminal: an escape sequence in it is shown, never obeyed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

MAX_CELL = 48  # a table cell longer than this is cut (a listing shows it whole)
MAX_LINE = 200  # the most of a non-problem answer's first line an error shows
_WHITESPACE_CONTROLS = re.compile(r"[\t\n\r\v\f]")
_OTHER_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` on one line with no control character left: line breaks and tabs become spaces, any
    other control character (ESC of a terminal escape sequence...) its ``\\xNN`` spelling."""
    spaced = _WHITESPACE_CONTROLS.sub(" ", text)
    return _OTHER_CONTROLS.sub(lambda match: f"\\x{ord(match.group()):02x}", spaced)


def cell(value: Any) -> str:
    """One value as a table shows it: ``-`` for none, yes/no, numbers to two decimals at most."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping | list):
        return visible(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    return visible(str(value))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _aligned(lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    return "\n".join("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def table(headings: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns left-aligned under their headings, two spaces apart; long cells cut."""
    return _aligned([list(headings), *([_cut(cell(value)) for value in row] for row in rows)])


def fields(document: Mapping[str, Any]) -> str:
    """One line per field, ``name  value``, names aligned; nested values as compact JSON, nothing cut."""
    return _aligned([[visible(str(name)), cell(value)] for name, value in document.items()])


def problem_line(status: int, body: Any, text: str = "", retry_after: str | None = None) -> str:
    """An error answer as one line: a problem document's ``title: detail`` (plus any field its detail
    does not name), else the status and the answer's first line; and when to retry, if the API said."""
    if isinstance(body, Mapping) and body.get("title"):
        detail = body.get("detail") or ""
        line = f"{body['title']}: {detail}" if detail else str(body["title"])
        errors = body.get("errors") if isinstance(body.get("errors"), list) else []
        unsaid = [f"{error.get('field')}: {error.get('message')}" for error in errors if isinstance(error, Mapping)]
        unsaid = [error for error in unsaid if error not in detail]
        if unsaid:
            line += f" ({'; '.join(unsaid)})"
    else:
        first = text.strip().splitlines()[0][:MAX_LINE] if text.strip() else ""
        line = f"HTTP {status}: {first}" if first else f"HTTP {status}"
    if retry_after:
        line += f" (retry after {retry_after} s)"
    return visible(line)
