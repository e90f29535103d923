"""The fake Kiwoom REST server on a free port, in a uvicorn thread (tests poke its faults directly)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from publisher.sources.rest_fake import FakeKiwoomRest
from stack.localredis import free_port
from tests.waiting import wait_until

APPKEY = "test-appkey-0123456789"
SECRETKEY = "test-secretkey-9876543210"


@contextmanager
def serve(**kw: Any) -> Iterator[tuple[FakeKiwoomRest, str]]:
    fake = FakeKiwoomRest(APPKEY, SECRETKEY, **kw)
    port = free_port()
    # loop="asyncio": uvicorn < 0.36 installs uvloop's policy process-wide, which would leak into pytest-asyncio.
    server = uvicorn.Server(uvicorn.Config(fake, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                           loop="asyncio"))
    thread = threading.Thread(target=server.run, name="fake-kiwoom-rest", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 10, "the fake Kiwoom REST server to start")
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
