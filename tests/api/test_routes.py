"""The FastAPI routes as module-level handlers bound per app: each app answers with its own settings."""

from __future__ import annotations

import httpx
import pytest

from api import routes
from api.app import create_app
from api.settings import ApiSettings

HISTORY = "/v1/rankings/kospi-surge/history"


def _limit_bound(max_limit: int) -> object:
    app = create_app(ApiSettings(history_max_limit=max_limit))
    params = app.fastapi.openapi()["paths"]["/v1/rankings/{feed}/history"]["get"]["parameters"]
    schema = next(p["schema"] for p in params if p["name"] == "limit")
    return next(s["maximum"] for s in schema["anyOf"] if s.get("type") == "integer")


def test_the_history_page_bound_is_each_apps_setting() -> None:
    assert _limit_bound(500) == 500
    assert _limit_bound(200) == 200


@pytest.mark.parametrize(("max_limit", "status"), [(200, 422), (500, 503)])
async def test_two_apps_in_one_process_keep_their_own_state(max_limit: int, status: int) -> None:
    """Without a lifespan the hub is not started: a valid request reaches the handler, which finds its own app's
    state not serving (503); a limit over this app's bound never reaches it (422)."""
    apps = {m: create_app(ApiSettings(history_max_limit=m, replica_id=f"r{m}")) for m in (200, 500)}
    transport = httpx.ASGITransport(app=apps[max_limit].fastapi)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get(HISTORY, params={"limit": 300})
        assert r.status_code == status, r.text
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["reason"] == "not serving"


def test_handlers_are_module_functions() -> None:
    for name in ("feeds", "snapshot", "events", "events_multiplexed", "websocket", "history", "healthz", "readyz",
                 "metrics"):
        assert getattr(routes, name).__qualname__ == name
