"""Screen-number pool: 4-digit strings, never 0000, at most 200 held, reuse of released numbers."""

from __future__ import annotations

import random

import pytest

from kiwoom_cache.errors import KiwoomCacheError
from publisher.screens import MAX_SCREENS, ScreenExhaustedError, ScreenPool


def test_default_range_is_2000_to_2199():
    pool = ScreenPool()
    screens = [pool.acquire(f"owner-{i}") for i in range(MAX_SCREENS)]
    assert screens[0] == "2000"
    assert screens[-1] == "2199"
    assert len(set(screens)) == MAX_SCREENS
    assert pool.in_use == MAX_SCREENS


def test_exhaustion_raises_clear_error():
    pool = ScreenPool(limit=3)
    for i in range(3):
        pool.acquire(f"tr-{i}")
    with pytest.raises(ScreenExhaustedError, match="all 3 are in use") as info:
        pool.acquire("late")
    assert isinstance(info.value, KiwoomCacheError)
    assert info.value.limit == 3
    assert info.value.owner == "late"
    assert pool.in_use == 3


def test_full_default_pool_is_exhausted_at_200():
    pool = ScreenPool()
    for i in range(MAX_SCREENS):
        pool.acquire(str(i))
    with pytest.raises(ScreenExhaustedError):
        pool.acquire("one too many")


def test_release_reuses_before_minting_new():
    pool = ScreenPool(base=3000, limit=10)
    a, b, c = pool.acquire("a"), pool.acquire("b"), pool.acquire("c")
    assert (a, b, c) == ("3000", "3001", "3002")
    pool.release(b)
    pool.release(a)
    assert pool.acquire("d") == b  # oldest release first
    assert pool.acquire("e") == a
    assert pool.acquire("f") == "3003"


def test_owner_of_and_held():
    pool = ScreenPool()
    screen = pool.acquire("opt10023 kospi")
    assert pool.owner_of(screen) == "opt10023 kospi"
    assert screen in pool
    assert pool.held() == {screen: "opt10023 kospi"}
    pool.release(screen)
    assert pool.owner_of(screen) is None
    assert screen not in pool
    assert pool.in_use == 0


def test_release_unknown_or_twice_is_value_error():
    pool = ScreenPool()
    with pytest.raises(ValueError, match="not held"):
        pool.release("2000")
    screen = pool.acquire("x")
    pool.release(screen)
    with pytest.raises(ValueError, match="not held"):
        pool.release(screen)
    with pytest.raises(ValueError):
        pool.release("9999")


def test_thousand_cycles_stay_within_limit_and_never_share():
    rng = random.Random(20260217)
    limit = 50
    pool = ScreenPool(base=1, limit=limit)
    held: dict[str, str] = {}
    for step in range(1000):
        if held and (len(held) == limit or rng.random() < 0.45):
            screen = rng.choice(sorted(held))
            pool.release(screen)
            del held[screen]
        else:
            owner = f"req-{step}"
            screen = pool.acquire(owner)
            assert screen not in held, f"{screen} handed out while held by {held.get(screen)}"
            assert screen != "0000"
            assert len(screen) == 4
            assert screen.isdigit()
            assert 1 <= int(screen) <= limit
            held[screen] = owner
        assert pool.in_use == len(held) <= limit
        assert pool.held() == held


def test_thousand_acquire_release_pairs_at_default_settings():
    pool = ScreenPool()
    seen: set[str] = set()
    for i in range(1000):
        screen = pool.acquire(f"poll-{i}")
        seen.add(screen)
        pool.release(screen)
    assert pool.in_use == 0
    assert seen <= {f"{n:04d}" for n in range(2000, 2200)}


def test_never_0000_even_from_lowest_base():
    pool = ScreenPool(base=1, limit=MAX_SCREENS)
    screens = [pool.acquire("x") for _ in range(MAX_SCREENS)]
    assert "0000" not in screens
    assert screens[0] == "0001"
    assert screens[-1] == "0200"


@pytest.mark.parametrize(
    ("base", "limit"),
    [
        (0, 10),  # would hand out 0000
        (-5, 10),
        (10000, 1),
        (9900, 200),  # runs past 9999
        (2000, 0),
        (2000, 201),  # Kiwoom's cap
        (2000.0, 10),
        (True, 10),
    ],
)
def test_invalid_settings_rejected(base, limit):
    with pytest.raises(ValueError):
        ScreenPool(base=base, limit=limit)


def test_highest_valid_range():
    pool = ScreenPool(base=9800, limit=200)
    screens = [pool.acquire("x") for _ in range(200)]
    assert screens[-1] == "9999"


def test_owner_must_be_non_empty():
    with pytest.raises(ValueError):
        ScreenPool().acquire("")


def test_repr():
    pool = ScreenPool(base=2000, limit=5)
    pool.acquire("a")
    assert repr(pool) == "ScreenPool(2000..2004, in_use=1/5)"
