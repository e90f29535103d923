"""The dashboard's columns (api/static/columns.js) against the contract's row schemas: a TR added to
kiwoom_cache/rows.py without its columns, or columns naming a field its schema lacks, fails here rather than as
an empty cell in a browser."""

from __future__ import annotations

import re
from pathlib import Path

from kiwoom_cache.rows import LEGACY_ROW_SCHEMA, ROW_SCHEMAS

COLUMNS_JS = Path(__file__).resolve().parents[2] / "api" / "static" / "columns.js"


def dashboard_columns(source: str) -> dict[str, dict[str, object]]:
    """ROW_COLUMNS read from columns.js: per schema, its own columns' fields in order, its title and spark field."""
    body = source[source.index("const ROW_COLUMNS = {"):]
    body = body[:body.index("\n};")]
    blocks = re.split(r"^  (\w+): \{$", body, flags=re.MULTILINE)[1:]
    out: dict[str, dict[str, object]] = {}
    for name, block in zip(blocks[::2], blocks[1::2], strict=True):
        spark = re.search(r'spark: \{ field: "(\w+)"', block)
        title = re.search(r'title: "([^"]*)"', block)
        out[name] = {"own": re.findall(r'numberColumn\("(\w+)"', block), "spark": spark and spark.group(1),
                     "title": title and title.group(1)}
    return out


def test_every_row_schema_has_its_columns_and_only_its_fields() -> None:
    source = COLUMNS_JS.read_text()
    columns = dashboard_columns(source)
    assert set(columns) == {s.value for s in ROW_SCHEMAS}, "every row schema needs its entry in ROW_COLUMNS"
    for name, schema in ROW_SCHEMAS.items():
        entry = columns[name.value]
        shown = entry["own"]
        assert isinstance(shown, list) and shown, f"{name}: no columns of its own"
        # fields of this schema (its own, or a core field such as volume that the core columns leave out)
        assert set(shown) <= set(schema.field_names), f"{name}: {sorted(set(shown) - set(schema.field_names))}"
        assert len(set(shown)) == len(shown), f"{name}: a field shown twice"
        assert entry["spark"] in schema.field_names, f"{name}: the sparkline's field is not in the schema"
        assert f"({schema.tr})" in str(entry["title"]), f"{name}: the title names its TR"
    assert f'const LEGACY_ROW_SCHEMA = "{LEGACY_ROW_SCHEMA.value}";' in source


def test_the_reader_sees_a_missing_or_wrong_entry() -> None:
    """The check above can fail: the parser finds a dropped schema and a misspelt field."""
    source = COLUMNS_JS.read_text()
    dropped = re.sub(r"^  volume_top: \{.*?^  \},\n", "", source, flags=re.MULTILINE | re.DOTALL)
    assert "volume_top" not in dashboard_columns(dropped)
    misspelt = source.replace('numberColumn("turnover_rate"', 'numberColumn("turnover"')
    assert "turnover" in dashboard_columns(misspelt)["volume_top"]["own"]  # type: ignore[operator]
