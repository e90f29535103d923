"""What every answer at the replica's edge shares: request size limits, JSON encoding, error bodies, and the
one reader of a resume id.

- One encoder (:func:`dumps`: compact, UTF-8 kept) for what the replica writes itself, and one shape for
  errors, ``{"detail": ...}``, built by :func:`error_body` / :func:`json_reply` for the layers that answer
  before FastAPI (the protocol, the gate, the cap, the fast path).
- One Last-Event-ID reader: :func:`last_event_id` finds it (the header, else ``?last_event_id=`` for clients
  that cannot set headers) and :func:`parse_resume_id` turns a single-feed id into a :class:`ResumeId`, which
  goes as is into :meth:`api.cursor.FeedCursor.start` (the multiplexed id of ``api.mux`` is a list of them).
  ``EVENT_ID_PATTERN`` is the same rule as a regular expression, for OpenAPI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs

from starlette.types import Send

from kiwoom_cache import contract

MAX_TARGET: Final = 8 * 1024
MAX_HEADER_LINE: Final = 8 * 1024
MAX_HEADERS: Final = 32 * 1024
#: Everything uvicorn's h11 parser may buffer for one request head (request line + headers).
MAX_HEAD: Final = MAX_TARGET + MAX_HEADERS
TARGET_TOO_LONG: Final = "request target too long (limit 8 KiB)"

Header = tuple[bytes, bytes]
JSON_TYPE: Final = (b"content-type", b"application/json")
NO_STORE: Final = (b"cache-control", b"no-store")


def dumps_text(payload: Any) -> str:
    """Compact JSON, non-ASCII kept: the encoding of every JSON the replica builds itself."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def dumps(payload: Any) -> bytes:
    """:func:`dumps_text` as UTF-8 bytes (a body)."""
    return dumps_text(payload).encode()


def error_body(detail: object) -> bytes:
    """The body of every error answer: ``{"detail": ...}`` (FastAPI's shape)."""
    return dumps({"detail": detail})


async def send_json(send: Send, status: int, payload: Any, headers: list[Header] | None = None) -> None:
    """A whole JSON answer through ASGI ``send``."""
    body = dumps(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": [JSON_TYPE, (b"content-length", b"%d" % len(body)), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def json_reply(status: int, detail: object, replica_header: Header, extra: list[Header] | None = None,
               ) -> tuple[int, list[Header], bytes]:
    """Status, headers and body of an error answer that must not be cached."""
    body = error_body(detail)
    return status, [JSON_TYPE, (b"content-length", b"%d" % len(body)), NO_STORE, replica_header,
                    *(extra or [])], body


#: A single-feed event id, ``<ms>-<seq>`` optionally followed by ``@<epoch>`` (what :func:`parse_resume_id`
#: accepts, for OpenAPI's ``pattern``).
EVENT_ID_PATTERN: Final = r"^[0-9]{1,20}-[0-9]{1,20}(@[0-9a-z]{1,32})?$"
RANKING_ID_PATTERN: Final = r"^[0-9]{1,20}-[0-9]{1,20}$"
EVENT_ID_EXPECTED: Final = "expected a ranking id <ms>-<seq>, optionally @<epoch>"


@dataclass(frozen=True, slots=True)
class ResumeId:
    """A parsed single-feed resume id: where a cursor starts (:meth:`api.cursor.FeedCursor.start`)."""

    #: As the client sent it (echoed in ``hello`` as ``resumed_from``).
    text: str
    sid: tuple[int, int]
    rid: str
    epoch: str | None


def parse_resume_id(text: str) -> ResumeId:
    """``<ranking id>[@<epoch>]`` -> :class:`ResumeId`; raises :class:`kiwoom_cache.errors.ContractError`."""
    sid, rid, epoch = contract.parse_event_id(text)
    return ResumeId(text, sid, rid, epoch)


def last_event_id(headers: list[tuple[bytes, bytes]], query_string: bytes) -> str | None:
    """The request's resume id as sent: ``Last-Event-ID``, else the last ``last_event_id=``; blank is None."""
    raw = None
    for name, value in headers:
        if name == b"last-event-id":
            raw = value
            break
    if raw is None and query_string:
        values = parse_qs(query_string.decode("latin-1")).get("last_event_id")
        raw = values[-1].encode() if values else None
    if raw is None or not raw.strip():
        return None
    return raw.decode("latin-1").strip()
