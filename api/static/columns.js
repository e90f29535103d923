// kiwoom-cache dashboard: the table's columns per row schema (one per ranking TR, kiwoom_cache/contract.py).
// Every row has the core (rank, code, name, price, sign, change, change_rate, volume); each TR adds its own
// fields, shown here after the core's price columns, and one of them feeds the sparkline column.
// Loaded before app.js; app.js calls columnsFor(doc) and renderHead(columns) and never names a TR field itself.
"use strict";

const COL_INT = new Intl.NumberFormat("ko-KR");
const COL_RATE = new Intl.NumberFormat("ko-KR", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

/** A plain number cell; `signed` writes + and − (U+2212), `suffix` follows the number. */
function numberColumn(field, label, { fmt = COL_INT, signed = false, suffix = "" } = {}) {
  return {
    field, label,
    text(row) {
      const n = row[field];
      if (typeof n !== "number") return "–";
      const body = fmt.format(Math.abs(n));
      const sign = n < 0 ? "−" : signed && n > 0 ? "+" : "";
      return sign + body + suffix;
    },
  };
}

/** Row schema name -> {title, own: columns after the core, spark: {field, label}}. */
const ROW_COLUMNS = {
  volume_surge: {
    title: "거래량급증 (opt10023)",
    own: [numberColumn("surge_volume", "급증량", { signed: true }),
          numberColumn("surge_rate", "급증률", { fmt: COL_RATE, signed: true, suffix: "%" })],
    spark: { field: "surge_volume", label: "급증량 추이" },
  },
  volume_top: {
    title: "당일거래량상위 (opt10030)",
    own: [numberColumn("volume", "거래량"),
          numberColumn("volume_ratio", "전일비", { fmt: COL_RATE, suffix: "%" }),
          numberColumn("turnover_rate", "회전율", { fmt: COL_RATE, suffix: "%" }),
          numberColumn("trade_value", "거래금액(백만)")],
    spark: { field: "volume", label: "거래량 추이" },
  },
  change_rate_top: {
    title: "전일대비등락률상위 (opt10027)",
    own: [numberColumn("volume", "거래량"),
          numberColumn("ask_volume", "매도잔량"),
          numberColumn("bid_volume", "매수잔량"),
          numberColumn("strength", "체결강도", { fmt: COL_RATE, suffix: "%" })],
    spark: { field: "change_rate", label: "등락률 추이" },
  },
  trade_value_top: {
    title: "거래대금상위 (opt10032)",
    own: [numberColumn("trade_value", "거래대금(백만)"),
          numberColumn("volume", "거래량"),
          numberColumn("prev_volume", "전일거래량"),
          numberColumn("prev_rank", "전일순위")],
    spark: { field: "trade_value", label: "거래대금 추이" },
  },
};
/** Documents before schema 3 carry no row_schema: they are all opt10023. */
const LEGACY_ROW_SCHEMA = "volume_surge";

/** The columns of a document (its row_schema), or of a feed from /v1/feeds; unknown schemas show the core only. */
function columnsFor(docOrFeed) {
  const name = (docOrFeed && docOrFeed.row_schema) || LEGACY_ROW_SCHEMA;
  return { name, ...(ROW_COLUMNS[name] || { title: name, own: [], spark: null }) };
}

/** Rebuild the header row for `columns` (the core's headers stay as in index.html). */
function renderHead(table, columns) {
  const head = table.tHead.rows[0];
  if (head.dataset.schema === columns.name) return;
  head.dataset.schema = columns.name;
  for (const th of [...head.querySelectorAll("th[data-own]")]) th.remove();
  for (const col of columns.own) {
    const th = document.createElement("th");
    th.className = "num";
    th.dataset.own = col.field;
    th.textContent = col.label;
    head.append(th);
  }
  if (columns.spark) {
    const th = document.createElement("th");
    th.dataset.own = "spark";
    th.textContent = columns.spark.label;
    head.append(th);
  }
}
