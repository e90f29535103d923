"""Why a shared wake-up fired: a feed's future (api/ring.py) and the hub's beat (api/tick.py) resolve with one."""

from __future__ import annotations

from enum import Enum


class Wake(Enum):
    """Why a feed's shared future (and the hub's beat) resolved; never on the wire, compared by identity."""

    #: New frames, or a reset (the ring's generation changed).
    data = "data"
    #: The heartbeat: time to send a keep-alive.
    ping = "ping"
    #: The server is shutting down: streams end.
    close = "close"
