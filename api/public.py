"""What a replica shows anonymous clients: what failed, never how (hosts, ports, exception text stay in the log).

- :data:`REDIS_UNAVAILABLE` is the whole 503 text for any Redis failure; the log line carries the detail.
- :func:`clip` bounds any client input echoed in an error body (a 100 KB ``Last-Event-ID`` is not echoed back).
- :func:`random_replica_id` is the default replica name: short and per process, naming neither host nor pid.
"""

from __future__ import annotations

import secrets
from typing import Final

REDIS_UNAVAILABLE: Final = "redis unavailable"
#: The stale reason when Redis did not answer within the read deadline (frozen or overloaded, not refusing).
REDIS_SLOW: Final = "redis did not answer in time, served from this replica's memory"
#: Characters of client input an error body may repeat.
ECHO_LIMIT: Final = 64


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, marked when cut."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def random_replica_id() -> str:
    """``replica-<6 hex>``: tells replicas apart behind a balancer (and is logged at start) without revealing
    the machine; set ``KIWOOM_API_REPLICA_ID`` for a stable name."""
    return f"replica-{secrets.token_hex(3)}"
