"""What a Kiwoom REST answer holds, read defensively: a JSON object, its ``return_code``, rows by row field.

Kept apart from :mod:`publisher.sources.rest` (the calls, tokens, paging and retries), which uses them on every
answer; a malformed answer becomes a :class:`SourceUnavailableError` that names what was wrong.
"""

from __future__ import annotations

from typing import Any

import httpx

from publisher.kiwoom_errors import SourceUnavailableError
from publisher.trs import TrSpec


def json_object(response: httpx.Response, context: str) -> dict[str, Any]:
    """The answer's body as a JSON object, or a SourceUnavailableError that says what it was instead."""
    try:
        data = response.json()
    except ValueError as exc:
        raise SourceUnavailableError(f"{context}: malformed answer (HTTP {response.status_code}, not JSON)") from exc
    if not isinstance(data, dict):
        raise SourceUnavailableError(f"{context}: malformed answer (a JSON {type(data).__name__}, not an object)")
    return data


def int_code(value: object, context: str) -> int:
    """``return_code`` as an integer (Kiwoom sends a number or a string of digits)."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
        raise SourceUnavailableError(f"{context}: malformed return_code {value!r}")
    return int(value)


def row_fields(spec: TrSpec, item: object) -> dict[str, str]:
    """One answer row by row field (``spec.rest`` names each field's key); values untouched (numbers as Kiwoom's
    strings). A missing or non-scalar value is left out, so the parser reports the row as dropped instead of
    guessing."""
    if not isinstance(item, dict):
        return {}
    row: dict[str, str] = {}
    for output in spec.outputs:
        field, value = output.field, item.get(spec.rest.outputs[output.field])
        if isinstance(value, str):
            row[field] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            row[field] = str(value)
    return row
