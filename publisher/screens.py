"""Screen numbers (화면번호) for ``CommRqData``.

A screen number is a 4-digit string other than ``"0000"``. Kiwoom allows at most 200 screens at once; beyond
that, answers to different requests can get mixed (docs/kiwoom-openapi.md §6), so the pool refuses to hand out more.

The pool only does the bookkeeping. Whoever releases a screen should first call ``DisconnectRealData(screen)``
on the OCX, because TRs such as opt10023 may register real-time data on it. Released numbers are reused
oldest-first, so a late response to a just-released screen is unlikely to reach its next owner.
Not thread-safe: the publisher uses it from the Qt thread only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Final

from kiwoom_cache.errors import KiwoomCacheError

#: Kiwoom's limit on screens in use at once.
MAX_SCREENS: Final = 200
DEFAULT_BASE: Final = 2000


class ScreenExhaustedError(KiwoomCacheError):
    """Every screen number in the pool is held."""

    def __init__(self, limit: int, owner: str) -> None:
        self.limit = limit
        self.owner = owner
        super().__init__(
            f"no free screen number for {owner!r}: all {limit} are in use "
            f"(Kiwoom allows at most {MAX_SCREENS}; release screens when their requests finish)"
        )


class ScreenPool:
    """Hands out screen numbers ``base`` .. ``base + limit - 1`` as 4-digit strings.

    :param base: first number of the range, 1..9999 (``"0000"`` is reserved by Kiwoom).
    :param limit: how many screens may be held at once, 1..200; also the size of the range.
    """

    def __init__(self, base: int = DEFAULT_BASE, limit: int = MAX_SCREENS) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SCREENS:
            raise ValueError(f"limit must be an int from 1 to {MAX_SCREENS}, got {limit!r}")
        if isinstance(base, bool) or not isinstance(base, int) or not 1 <= base <= 9999:
            raise ValueError(f"base must be an int from 1 to 9999 (0000 is reserved), got {base!r}")
        if base + limit - 1 > 9999:
            raise ValueError(f"base {base} with limit {limit} runs past 9999; screen numbers have 4 digits")
        self._base = base
        self._limit = limit
        self._next_fresh = base
        self._released: deque[str] = deque()
        self._owners: dict[str, str] = {}

    @property
    def base(self) -> int:
        return self._base

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_use(self) -> int:
        """How many screens are held right now."""
        return len(self._owners)

    def acquire(self, owner: str) -> str:
        """A free screen number for ``owner`` (e.g. ``"opt10023 kospi"``), reusing released ones first.

        :raises ScreenExhaustedError: when ``limit`` screens are already held.
        """
        if not isinstance(owner, str) or not owner:
            raise ValueError(f"owner must be a non-empty string, got {owner!r}")
        if len(self._owners) >= self._limit:
            raise ScreenExhaustedError(self._limit, owner)
        if self._released:
            screen = self._released.popleft()
        else:
            screen = f"{self._next_fresh:04d}"
            self._next_fresh += 1
        self._owners[screen] = owner
        return screen

    def release(self, screen: str) -> None:
        """Give ``screen`` back to the pool.

        :raises ValueError: when ``screen`` is not currently held (never acquired, or released already).
        """
        if screen not in self._owners:
            raise ValueError(f"screen {screen!r} is not held in this pool")
        del self._owners[screen]
        self._released.append(screen)

    def owner_of(self, screen: str) -> str | None:
        """Who holds ``screen``, or ``None`` when it is free or outside the pool."""
        return self._owners.get(screen)

    def held(self) -> Mapping[str, str]:
        """A snapshot of screen -> owner for every held screen."""
        return dict(self._owners)

    def __contains__(self, screen: object) -> bool:
        return screen in self._owners

    def __repr__(self) -> str:
        last = self._base + self._limit - 1
        return f"ScreenPool({self._base:04d}..{last:04d}, in_use={self.in_use}/{self._limit})"
