"""The common tutorial pattern, as the bench's third peer: FastAPI, sse-starlette, one Redis subscription per client.

Each ``GET /v1/rankings/{feed}/events`` sends the current snapshot, then opens its own pub/sub connection to the
contract's updates channel and forwards every message as an SSE event. Nothing is shared between clients, so
Redis holds N subscriptions and copies every message N times. Run by ``bench/run.py``:
``KIWOOM_CACHE_REDIS_URL=... uvicorn bench.naive_app:app``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from fastapi import FastAPI
from sse_starlette.sse import EventSourceResponse, ServerSentEvent

from kiwoom_cache import contract as c

app = FastAPI()
# redis-py's pool stops at 100 connections by default; the pattern needs one per client, so lift the cap.
redis = aioredis.Redis.from_url(os.environ["KIWOOM_CACHE_REDIS_URL"], max_connections=1_000_000)


@app.get("/v1/rankings/{feed}/events")
async def events(feed: str) -> EventSourceResponse:
    async def stream() -> AsyncIterator[ServerSentEvent]:
        pubsub = redis.pubsub()
        await pubsub.subscribe(c.updates_channel(feed))
        try:
            latest = await redis.get(c.latest_key(feed))
            if latest is not None:
                yield ServerSentEvent(data=latest.decode(), event="snapshot")
            async for message in pubsub.listen():
                if message["type"] == "message":
                    yield ServerSentEvent(data=message["data"].decode(), event="ranking")
        finally:
            await pubsub.aclose()

    return EventSourceResponse(stream())
