"""The Python ceiling for the snapshot route: a bare ASGI callable answering from bytes it already holds.

No framework, no Redis on the request path, no logging: ``GET`` returns the document with its ``ETag``, and
``If-None-Match`` with that tag gets ``304``. Run by ``bench/run.py`` under uvicorn (httptools, uvloop):
``BENCH_DOC=/path/to/doc.json uvicorn bench.bare_asgi:app --no-access-log``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

BODY = Path(os.environ["BENCH_DOC"]).read_bytes()
ETAG = b'"' + hashlib.sha1(BODY).hexdigest().encode() + b'"'
OK_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY)), (b"etag", ETAG)]
NOT_MODIFIED_HEADERS = [(b"etag", ETAG)]
if os.environ.get("BENCH_HEADERS"):
    # The replica's own header set (a JSON object of name -> value, its ETag included), so the run can tell
    # what the extra headers alone cost under uvicorn (bench/snapshot_ratio.py --same-headers).
    _extra = [(k.lower().encode(), v.encode()) for k, v in json.loads(os.environ["BENCH_HEADERS"]).items()]
    ETAG = dict(_extra)[b"etag"]
    NOT_MODIFIED_HEADERS = [h for h in _extra if h[0] not in (b"content-type", b"content-length")]
    OK_HEADERS = [*NOT_MODIFIED_HEADERS, (b"content-type", b"application/json"),
                  (b"content-length", b"%d" % len(BODY))]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":  # nothing to set up or tear down
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if any(name == b"if-none-match" and value == ETAG for name, value in scope["headers"]):
        await send({"type": "http.response.start", "status": 304, "headers": NOT_MODIFIED_HEADERS})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": OK_HEADERS})
    await send({"type": "http.response.body", "body": BODY})
