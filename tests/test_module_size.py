"""Small modules named for what they hold (issue 24): no product module grows past its package's line limit."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The contract's modules stay smaller: every reader and writer imports them.
LIMITS = {"api": 350, "publisher": 350, "kiwoom_cache": 250}


@pytest.mark.parametrize("package", sorted(LIMITS))
def test_modules_stay_small(package: str) -> None:
    limit = LIMITS[package]
    over = {p.relative_to(ROOT).as_posix(): n for p in sorted((ROOT / package).rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit}
    assert not over, f"over {limit} lines, split them: {over}"
