"""schemathesis over a real replica's /openapi.json: whatever the schema allows a client to send, no 5xx.

The events route is excluded (a stream does not end by itself); its parameters are covered by
``tests/api/test_properties.py`` and ``tests/api/test_events.py``.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.writer import Writer

pytestmark = pytest.mark.integration


def test_no_server_errors(redis_url: str, writer: Writer, replica) -> None:
    writer.write()
    rep = replica(redis_url)
    schema = schemathesis.openapi.from_url(rep.url + "/openapi.json").exclude(path_regex=r"/events$")
    tried: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tried.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def no_5xx(case: schemathesis.Case) -> None:
            response = case.call(base_url=rep.url, timeout=10)
            assert response.status_code < 500, (case.method, case.formatted_path, case.query, response.text[:500])

        no_5xx()
    assert "GET /v1/rankings/{feed}/history" in tried and "GET /v1/rankings/{feed}" in tried
