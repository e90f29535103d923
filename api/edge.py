"""What every answer at the replica's edge shares: request size limits, JSON encoding and error bodies.

One encoder (:func:`dumps`: compact, UTF-8 kept) for what the replica writes itself, and one shape for errors,
``{"detail": ...}``, built by :func:`error_body` / :func:`json_reply` for every layer that answers before
FastAPI (the protocol, the gate, the cap, the fast path).
"""

from __future__ import annotations

import json
from typing import Any, Final

MAX_TARGET: Final = 8 * 1024
MAX_HEADER_LINE: Final = 8 * 1024
MAX_HEADERS: Final = 32 * 1024
#: Everything uvicorn's h11 parser may buffer for one request head (request line + headers).
MAX_HEAD: Final = MAX_TARGET + MAX_HEADERS
TARGET_TOO_LONG: Final = "request target too long (limit 8 KiB)"

Header = tuple[bytes, bytes]
JSON_TYPE: Final = (b"content-type", b"application/json")
NO_STORE: Final = (b"cache-control", b"no-store")


def dumps(payload: Any) -> bytes:
    """Compact JSON, non-ASCII kept as UTF-8: the encoding of every body the replica builds itself."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def error_body(detail: object) -> bytes:
    """The body of every error answer: ``{"detail": ...}`` (FastAPI's shape)."""
    return json.dumps({"detail": detail}).encode()


def json_reply(status: int, detail: object, replica_header: Header, extra: list[Header] | None = None,
               ) -> tuple[int, list[Header], bytes]:
    """Status, headers and body of an error answer that must not be cached."""
    body = error_body(detail)
    return status, [JSON_TYPE, (b"content-length", b"%d" % len(body)), NO_STORE, replica_header,
                    *(extra or [])], body
