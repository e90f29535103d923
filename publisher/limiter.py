"""A composite sliding-window limiter for Kiwoom TR requests, shared by every feed.

Kiwoom publishes 5 TR/s and, in practice, penalises bursts (17 s after one 5/s burst, 90 s after five)
and throttles around 1,000 TR/h. koapy's composite windows encode that guide; we apply them with a safety
margin. Pure and clock-injectable so tests can drive hours of traffic in microseconds.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: (max requests, window seconds): Kiwoom's 5/s plus koapy's burst-penalty guide and the ~1,000/h limit.
KIWOOM_TR_LIMITS: tuple[tuple[int, float], ...] = ((5, 1.0), (5, 18.0), (25, 90.0), (50, 180.0), (1000, 3600.0))
#: Fraction of each published limit we allow ourselves (rounded down, at least 1).
DEFAULT_SAFETY_MARGIN = 0.9


@dataclass(frozen=True, slots=True)
class Window:
    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.seconds <= 0:
            raise ValueError(f"a window needs limit >= 1 and seconds > 0, got {self.limit}/{self.seconds}s")


def with_margin(limits: Iterable[tuple[int, float]], margin: float) -> tuple[Window, ...]:
    if not 0 < margin <= 1:
        raise ValueError(f"safety margin must be in (0, 1], got {margin}")
    return tuple(Window(max(1, math.floor(n * margin)), s) for n, s in limits)


class RateLimiter:
    """Every window's limit holds for any interval of that length (timestamps kept per window)."""

    def __init__(self, windows: Iterable[Window], clock: Callable[[], float] = time.monotonic, *,
                 min_spacing_s: float = 0.0) -> None:
        self.windows = tuple(windows)
        if not self.windows:
            raise ValueError("a limiter needs at least one window")
        if min_spacing_s < 0:
            raise ValueError(f"min_spacing_s must be >= 0, got {min_spacing_s}")
        #: At least this long between two grants (Kiwoom REST's examples wait 0.2 s between calls): a window of
        #: 4/s still allows 4 calls within a millisecond, which a server that spaces calls refuses.
        self.min_spacing_s = min_spacing_s
        self.clock = clock
        longest = max(w.seconds for w in self.windows)
        self._longest = longest
        self._stamps: deque[float] = deque()
        self._blocked_until = 0.0
        #: The newest stamp is a grant whose request has not gone out yet (see :meth:`sent`).
        self._unsent = False
        self.granted = 0

    @classmethod
    def for_kiwoom(cls, margin: float = DEFAULT_SAFETY_MARGIN, clock: Callable[[], float] = time.monotonic,
                   limits: Iterable[tuple[int, float]] = KIWOOM_TR_LIMITS) -> RateLimiter:
        return cls(with_margin(limits, margin), clock)

    def _trim(self, now: float) -> None:
        stamps = self._stamps
        while len(stamps) > 1 and stamps[0] <= now - self._longest:  # the last one times the spacing
            stamps.popleft()

    def delay(self) -> float:
        """Seconds until one more request fits every window (0.0 = now)."""
        now = self.clock()
        self._trim(now)
        wait = max(0.0, self._blocked_until - now)
        stamps = self._stamps
        if stamps and self.min_spacing_s:
            wait = max(wait, stamps[-1] + self.min_spacing_s - now)
        for w in self.windows:
            # Count requests in (now - w.seconds, now]; the oldest of the last `limit` must age out.
            if len(stamps) >= w.limit:
                oldest_in_window = stamps[-w.limit]
                if oldest_in_window > now - w.seconds:
                    wait = max(wait, oldest_in_window + w.seconds - now)
        return wait

    def try_acquire(self) -> float:
        """Take a slot and return 0.0, or take nothing and return the seconds to wait.

        The slot counts from now until :meth:`sent` moves it to when the request went out."""
        wait = self.delay()
        if wait > 0:
            return wait
        self._stamps.append(self.clock())
        self._unsent = True
        self.granted += 1
        return 0.0

    def sent(self) -> None:
        """The request of the last grant has gone out (``CommRqData`` returned, the HTTP answer came back): count
        its slot from now. The server counts a request when it arrives, which is after our grant; a window timed
        from the grant could let the next request arrive inside the server's window whenever this one took longer
        to leave than the next (a busy machine, a slow network). Requests go out one at a time (the poller sends
        the next when the last answered), so the last grant is the one that went out."""
        if self._unsent:
            self._unsent = False
            self._stamps[-1] = max(self._stamps[-1], self.clock())

    def penalize(self, seconds: float) -> None:
        """After a refusal (-200), grant nothing for ``seconds`` (Kiwoom's penalty guide)."""
        self._blocked_until = max(self._blocked_until, self.clock() + seconds)

    def used(self) -> dict[str, int]:
        """Requests counted in each window right now, e.g. ``{"1s": 1, "3600s": 420}``."""
        now = self.clock()
        self._trim(now)
        return {f"{w.seconds:g}s": sum(1 for t in self._stamps if t > now - w.seconds) for w in self.windows}
