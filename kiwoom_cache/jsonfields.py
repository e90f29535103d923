"""The JSON conventions every stored document shares: one encoding, one way to read a required field."""

from __future__ import annotations

import json
from typing import Any

from kiwoom_cache.errors import ContractError

__all__ = ["dumps", "required"]


def dumps(obj: Any) -> bytes:
    # ensure_ascii=False keeps Korean names readable with `redis-cli --raw` and a third smaller.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def required(doc: Any, name: str, kind: type) -> Any:
    """``doc[name]`` if present and of ``kind`` (an int is a float; a bool is never an int); else ContractError."""
    if not isinstance(doc, dict) or name not in doc:
        raise ContractError(f"missing field {name!r}")
    value = doc[name]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise ContractError(f"field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    return value
