"""The dashboard's web font (api/static/noto-sans-kr-400.woff2 and -700.woff2, built by scripts/build-font.sh)
holds every character the page can show: the KS X 1001 Hangul syllables, every stock name the simulated
market uses, and every character in the page's own files; its licence ships beside it."""

from __future__ import annotations

import pytest
from fontTools.ttLib import TTFont

from api.app import STATIC_DIR
from publisher.controls.sim_market import UNIVERSE
from publisher.market_session import SessionState

FONTS = [STATIC_DIR / "noto-sans-kr-400.woff2", STATIC_DIR / "noto-sans-kr-700.woff2"]
LICENCE = STATIC_DIR / "OFL-noto-sans-cjk.txt"
#: Characters drawn by the platform whatever the font: line breaks and the spaces between words.
LAYOUT = {"\n", "\r", "\t"}


def ks_x_1001_syllables() -> set[str]:
    """The 2,350 Hangul syllables of KS X 1001: those EUC-KR encodes in two bytes."""
    return {chr(cp) for cp in range(0xAC00, 0xD7A4) if len(chr(cp).encode("euc_kr")) == 2}


def page_characters() -> set[str]:
    text = "".join(path.read_text(encoding="utf-8") for path in STATIC_DIR.iterdir()
                   if path.suffix in (".html", ".js", ".css"))
    return set(text) - LAYOUT


@pytest.fixture(scope="module", params=FONTS, ids=lambda path: path.stem)
def cmap(request: pytest.FixtureRequest) -> set[str]:
    font = TTFont(request.param)
    assert font.flavor == "woff2"
    return {chr(cp) for cp in font.getBestCmap()}


def test_ks_x_1001_table_is_the_standard_one() -> None:
    assert len(ks_x_1001_syllables()) == 2350


def test_font_covers_ks_x_1001_hangul_and_ascii(cmap: set[str]) -> None:
    assert ks_x_1001_syllables() <= cmap
    assert {chr(cp) for cp in range(0x20, 0x7F)} <= cmap


def test_font_covers_every_simulated_stock_name(cmap: set[str]) -> None:
    missing = {(name, ch) for _code, name, *_ in UNIVERSE for ch in name if ch not in cmap}
    assert not missing


def test_font_covers_every_character_of_the_page(cmap: set[str]) -> None:
    assert not sorted(page_characters() - cmap)


def test_session_names_are_on_the_page() -> None:
    """app.js names each KRX session in Korean; a session added to the publisher needs a name there too."""
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    assert not [s.value for s in SessionState if f"{s.value}:" not in script]


def test_font_is_small_and_carries_its_licence() -> None:
    for path in FONTS:
        assert path.stat().st_size < 300_000, path
        names = TTFont(path)["name"]
        assert "SIL Open Font License" in str(names.getDebugName(13)), path
        assert "Adobe" in str(names.getDebugName(0)), path
    text = LICENCE.read_text(encoding="utf-8")
    assert "SIL OPEN FONT LICENSE Version 1.1" in text and "Reserved Font Name 'Source'" in text

