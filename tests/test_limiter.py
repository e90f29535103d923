"""The shared TR limiter, driven by a fake clock through hours of traffic."""

from __future__ import annotations

import itertools

import pytest

from publisher.limiter import KIWOOM_TR_LIMITS, RateLimiter, Window, with_margin


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def drive(limiter: RateLimiter, clock: FakeClock, seconds: float) -> list[float]:
    """Request as fast as the limiter allows for `seconds`; return the grant times."""
    grants = []
    end = clock.t + seconds
    while clock.t < end:
        wait = limiter.try_acquire()
        if wait == 0:
            grants.append(clock.t)
        else:
            clock.t += wait
    return grants


def max_in_any_window(grants: list[float], seconds: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(grants):
        while grants[start] <= t - seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_never_exceeds_any_window_over_two_hours() -> None:
    clock = FakeClock()
    limiter = RateLimiter.for_kiwoom(0.9, clock)
    grants = drive(limiter, clock, 7200)
    for window in limiter.windows:
        assert max_in_any_window(grants, window.seconds) <= window.limit
    # ... and it is not needlessly slow: it grants exactly what the tightest window allows (4 per 18 s with the
    # margin: 1,600 in two hours), so a limiter at any lower rate fails here.
    allowed = min(w.limit * -(-7200 // int(w.seconds)) for w in limiter.windows)
    assert allowed == 1600 and len(grants) == allowed


def test_margin_rounds_down_and_keeps_one() -> None:
    assert with_margin(KIWOOM_TR_LIMITS, 0.9)[0] == Window(4, 1.0)
    assert with_margin([(1, 1.0)], 0.5) == (Window(1, 1.0),)
    with pytest.raises(ValueError, match="safety margin"):
        with_margin(KIWOOM_TR_LIMITS, 1.5)


def test_delay_is_exact() -> None:
    clock = FakeClock()
    limiter = RateLimiter([Window(2, 1.0)], clock)
    assert limiter.try_acquire() == 0 and limiter.try_acquire() == 0
    assert limiter.try_acquire() == pytest.approx(1.0)
    clock.t += 0.5
    assert limiter.delay() == pytest.approx(0.5)
    clock.t += 0.5
    assert limiter.try_acquire() == 0


def test_penalty_blocks_then_releases() -> None:
    clock = FakeClock()
    limiter = RateLimiter([Window(5, 1.0)], clock)
    limiter.penalize(17.0)
    assert limiter.try_acquire() == pytest.approx(17.0)
    clock.t += 17.0
    assert limiter.try_acquire() == 0
    assert limiter.used() == {"1s": 1}


def test_bad_windows_rejected() -> None:
    with pytest.raises(ValueError, match="limit >= 1"):
        Window(0, 1.0)
    with pytest.raises(ValueError, match="at least one window"):
        RateLimiter([])


def test_min_spacing_holds_between_any_two_grants() -> None:
    """A 4/s window alone grants 4 calls within a millisecond; with a spacing no two grants come closer."""
    clock = FakeClock()
    limiter = RateLimiter([Window(4, 1.0)], clock, min_spacing_s=0.25)
    grants = drive(limiter, clock, 60)
    assert min(b - a for a, b in itertools.pairwise(grants)) >= 0.25 - 1e-9
    assert len(grants) == 240, "and no slower than the spacing: 4 per second"
    with pytest.raises(ValueError, match="min_spacing_s"):
        RateLimiter([Window(1, 1.0)], clock, min_spacing_s=-1)


def test_a_slot_counts_from_when_its_request_went_out() -> None:
    """The server counts a request when it arrives. Timed from the grant, the window let the next request arrive
    inside the server's window whenever this one took longer to leave; timed from :meth:`sent` it cannot."""
    clock = FakeClock()
    limiter = RateLimiter([Window(1, 1.0)], clock)
    assert limiter.try_acquire() == 0.0
    clock.t += 0.3  # CommRqData took 0.3 s to return: the server counted the request at some time in between
    limiter.sent()
    clock.t += 0.7  # one second after the grant, but only 0.7 s after the request went out
    assert limiter.try_acquire() == pytest.approx(0.3)
    limiter.sent()  # an unchanged slot: the request went out at once
    clock.t += 1.0
    assert limiter.try_acquire() == 0.0


def test_sent_moves_only_a_grant_not_yet_sent() -> None:
    clock = FakeClock()
    limiter = RateLimiter([Window(2, 1.0)], clock)
    limiter.try_acquire()
    clock.t += 0.2
    limiter.sent()
    clock.t += 0.5
    limiter.sent()  # nothing granted since: the slot stays at 0.2
    limiter.try_acquire()
    assert limiter.try_acquire() == pytest.approx(0.5)
