// kiwoom-cache dashboard: one WebSocket for all feeds (/v1/ws), no framework, no build step.
// On a lost connection it reconnects and resubscribes every feed with its last id; the server's `hello` says
// which replica serves the socket and `subscribed` where each feed resumed from, so resume is visible.
"use strict";

const SPARK_POINTS = 60;        // sparkline points kept per stock (the field comes from columns.js)
const HISTORY_LIMIT = 60;       // rankings fetched once per feed switch to seed the sparklines
const FEEDS_POLL_MS = 2000;     // publisher status / session refresh
const MANUAL_RETRY_MS = 2000;   // before reconnecting a socket that never opened, or resubscribing a refused feed
const RECONNECT_MS = 500;       // before reconnecting a socket that was open (its replica died: try another)
const SILENCE_MS = 50000;       // no message at all for this long (the server pings every 15 s): reconnect
const LOG_KEEP = 6;

const SESSION_NAMES = {
  pre_open: "장전 동시호가", regular: "정규장", closing_auction: "장마감 동시호가",
  after_hours: "시간외", closed: "장종료", holiday: "휴장",
};

const state = {
  feed: null,
  socket: null,          // the one WebSocket
  retryTimer: null,
  resubscribeTimer: null,
  helloSeen: false,
  replica: null,
  maxFeeds: 1,
  heardAt: 0,
  feedNames: [],         // what the picker lists
  subscribed: new Set(), // feeds subscribed on the current socket
  resume: new Map(),     // feed -> its last event id (resume point after a reconnect)
  latest: new Map(),     // feed -> its newest document, shown at once when switching to it
  lastId: null,          // newest ranking id shown (the resume point)
  lastEpoch: null,       // its stream epoch
  lastSeq: null,
  publishedMs: null,
  gaps: 0,
  ranks: new Map(),      // code -> rank in the previous ranking
  series: new Map(),     // code -> [{id, v}] sparkline values, oldest first
  seriesLastId: null,
};

const $ = (id) => document.getElementById(id);
const fmtInt = new Intl.NumberFormat("ko-KR");
const fmtRate = new Intl.NumberFormat("ko-KR", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

// ---- ids ------------------------------------------------------------------------------------------------

/** Stream ids are "<ms>-<seq>"; both parts fit in a double for any realistic clock. */
function compareIds(a, b) {
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am - bm || as - bs;
}

// ---- formatting -----------------------------------------------------------------------------------------

/** Korean convention: rising is red, falling is blue (sign: 1 상한, 2 상승, 3 보합, 4 하한, 5 하락). */
function signClass(sign, value) {
  if (sign === 1 || sign === 2) return "up";
  if (sign === 4 || sign === 5) return "down";
  if (sign === 3) return "flat";
  return value > 0 ? "up" : value < 0 ? "down" : "flat";
}

function signed(n, fmt) {
  const text = fmt.format(Math.abs(n));
  return n > 0 ? "+" + text : n < 0 ? "−" + text : text;
}

function arrowFor(sign) {
  return { 1: "↑", 2: "▲", 3: "", 4: "↓", 5: "▼" }[sign] || "";
}

function ageText(ms) {
  if (ms < 1000) return "just now";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s ago";
  return Math.floor(s / 3600) + " h ago";
}

// Every time on the page is KST, whatever the browser's own time zone: the market's clock, as in the header.
const KST_TIME = new Intl.DateTimeFormat("en-GB", { timeZone: "Asia/Seoul", hourCycle: "h23",
  hour: "2-digit", minute: "2-digit", second: "2-digit" });
const KST_TIME_MS = new Intl.DateTimeFormat("en-GB", { timeZone: "Asia/Seoul", hourCycle: "h23",
  hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3 });
const KST_DATE_TIME = new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Seoul", hourCycle: "h23",
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** "HH:MM:SS KST" (with milliseconds when asked) of an epoch-ms instant, default now. */
function kst(ms = Date.now(), withMs = false) {
  return (withMs ? KST_TIME_MS : KST_TIME).format(new Date(ms)) + " KST";
}

// ---- DOM helpers ----------------------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setConn(kind, text) {
  const pill = $("conn");
  pill.dataset.state = kind;
  pill.textContent = text;
}

/** Newest first; a repeat of the newest message updates it (with a count) instead of flooding the list. */
function log(text) {
  const list = $("log");
  const top = list.firstElementChild;
  if (top && top.dataset.text === text) {
    top.dataset.count = String(Number(top.dataset.count) + 1);
    top.textContent = `${kst()}  ${text} (×${top.dataset.count})`;
    return;
  }
  const item = el("li", "", kst() + "  " + text);
  item.dataset.text = text;
  item.dataset.count = "1";
  list.prepend(item);
  while (list.children.length > LOG_KEEP) list.lastElementChild.remove();
}

function notice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = !text;
}

// ---- sparklines -----------------------------------------------------------------------------------------

/** Add one ranking's sparkline values (its TR's spark field, columns.js) to the per-stock series (ids only
 * move forward). */
function extendSeries(doc) {
  if (state.seriesLastId && compareIds(doc.id, state.seriesLastId) <= 0) return;
  state.seriesLastId = doc.id;
  const spark = columnsFor(doc).spark;
  if (!spark) return;
  for (const row of doc.rows) {
    let points = state.series.get(row.code);
    if (!points) state.series.set(row.code, (points = []));
    points.push({ id: doc.id, v: row[spark.field] });
    if (points.length > SPARK_POINTS) points.shift();
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";

function sparkline(points, label) {
  const w = 120, h = 26, pad = 2;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  if (!points || points.length === 0) return svg;
  const values = points.map((p) => p.v);
  const lo = Math.min(...values), hi = Math.max(...values);
  const span = hi - lo || 1;
  // Spread over the full width (newest at the right edge) however many points there are yet.
  const step = (w - 2 * pad) / Math.max(1, values.length - 1);
  const x0 = values.length === 1 ? w - pad : pad;
  const xy = values.map((v, i) => [x0 + i * step, h - pad - ((v - lo) / span) * (h - 2 * pad)]);
  const line = document.createElementNS(SVG_NS, "polyline");
  line.setAttribute("points", xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "));
  svg.append(line);
  const [lx, ly] = xy[xy.length - 1];
  const dot = document.createElementNS(SVG_NS, "circle");
  dot.setAttribute("cx", lx.toFixed(1));
  dot.setAttribute("cy", ly.toFixed(1));
  dot.setAttribute("r", "2");
  svg.append(dot);
  const title = document.createElementNS(SVG_NS, "title");
  title.textContent = `${label} ${values.length} points: ${fmtInt.format(lo)} … ${fmtInt.format(hi)}`;
  svg.append(title);
  return svg;
}

// ---- the table ------------------------------------------------------------------------------------------

function rankChange(row) {
  const prev = state.ranks.get(row.code);
  if (state.ranks.size === 0) return { cls: "", text: "" };   // first ranking of this feed: nothing to compare
  if (prev === undefined) return { cls: "new", text: "new" };
  if (prev > row.rank) return { cls: "rise", text: "↑" + (prev - row.rank) };
  if (prev < row.rank) return { cls: "fall", text: "↓" + (row.rank - prev) };
  return { cls: "", text: "" };
}

function renderRow(row, columns) {
  const tr = el("tr");
  tr.dataset.code = row.code;
  const change = rankChange(row);
  if (change.cls) tr.classList.add("flash-" + change.cls);
  const tone = signClass(row.sign, row.change);

  tr.append(el("td", "num rank", String(row.rank)));
  tr.append(el("td", "chg " + change.cls, change.text));
  const name = el("td", "name");
  name.append(el("span", "stock", row.name), el("span", "code mono", row.code));
  tr.append(name);
  tr.append(el("td", "num " + tone, fmtInt.format(row.price)));
  tr.append(el("td", "num " + tone, (arrowFor(row.sign) + " " + fmtInt.format(Math.abs(row.change))).trim()));
  tr.append(el("td", "num " + tone, signed(row.change_rate, fmtRate) + "%"));
  for (const col of columns.own) tr.append(el("td", "num", col.text(row)));   // the TR's own fields
  if (columns.spark) {
    const spark = el("td", "spark-cell " + (row[columns.spark.field] >= 0 ? "up" : "down"));
    spark.append(sparkline(state.series.get(row.code), columns.spark.label));
    tr.append(spark);
  }
  return tr;
}

function renderTable(doc) {
  const columns = columnsFor(doc);
  const table = $("ranking");
  renderHead(table, columns);
  table.dataset.rowSchema = columns.name;
  const body = document.createDocumentFragment();
  for (const row of doc.rows) body.append(renderRow(row, columns));
  table.tBodies[0].replaceChildren(body);
  table.dataset.rankingId = doc.id;
  table.dataset.seq = String(doc.seq);
  state.ranks = new Map(doc.rows.map((r) => [r.code, r.rank]));
  $("rid").textContent = `${doc.id} · seq ${doc.seq}`;
  $("caption").textContent = `${doc.feed} · ${columns.title} · ${doc.row_count} rows · published `
    + kst(doc.published_at_ms, true)
    + (doc.dropped && doc.dropped.length ? ` · ${doc.dropped.length} unparseable row(s) dropped` : "");
}

/** One document from the stream: snapshot, ranking or reset. */
function apply(doc, kind) {
  if (kind === "ranking" && state.lastId && compareIds(doc.id, state.lastId) <= 0) return;   // never go back
  if (kind === "ranking" && state.lastSeq !== null && doc.seq !== state.lastSeq + 1) state.gaps += 1;
  if (kind === "reset") {
    state.ranks = new Map();   // a reset replaces the table: rank changes across it would be meaningless
    notice(`Stream reset (${doc.reset_reason || "no ranking"}): the table was replaced by the current ranking.`);
    log(`reset: ${doc.reset_reason || "no ranking"}`);
    setConn("live", `● live after reset (${doc.reset_reason || "no ranking"})`);   // not a resume: say so
    // after a reset (e.g. epoch: the history was replaced) ids may start below the old ones: forget them
    Object.assign(state, { lastId: null, lastEpoch: null, lastSeq: null });
    if (!doc.rows) return;
  }
  state.lastId = doc.id;
  state.lastEpoch = doc.epoch || null;
  state.lastSeq = doc.seq;
  state.publishedMs = doc.published_at_ms;
  extendSeries(doc);
  renderTable(doc);
  tickAge();   // not just on the next timer tick: the age beside a new id must never be the previous one's
  $("gaps").dataset.gaps = String(state.gaps);
  $("gaps").textContent = state.gaps === 0 ? "none (seq continuous)" : `${state.gaps} (seq jumped)`;
  $("source-note").textContent = doc.source === "sim"
    ? "source: simulated Kiwoom control — simulated data, not real market data." : `source: ${doc.source}`;
}

// ---- the stream: one WebSocket for every feed ----------------------------------------------------------

// Every feed the picker lists is subscribed on the one socket (up to the server's max_feeds, the shown one
// always included), so switching feeds re-renders from memory without reconnecting. The server's messages:
// hello, subscribed/unsubscribed, snapshot/ranking/reset {feed, id, data}, ping, error (api/ws.py).

function wsUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
}

function closeSocket() {
  clearTimeout(state.retryTimer);
  const socket = state.socket;
  state.socket = null;
  state.subscribed = new Set();
  if (socket) socket.close(1000);
}

function openSocket() {
  closeSocket();
  const socket = new WebSocket(wsUrl());
  state.socket = socket;
  state.heardAt = Date.now();
  const current = (handler) => (event) => { if (state.socket === socket) handler(event); };
  socket.addEventListener("message", current((event) => onMessage(JSON.parse(event.data))));
  socket.addEventListener("close", current((event) => onSocketClosed(event)));
}

function send(message) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message));
}

/** The feeds this page wants on its socket: the shown one first, then the picker's, up to max_feeds. */
function wantedFeeds() {
  const names = [state.feed, ...state.feedNames].filter((f, i, all) => f && all.indexOf(f) === i);
  return names.slice(0, state.maxFeeds);
}

/** Subscribe what is wanted and not subscribed (resuming each feed after its last id), drop the rest. */
function reconcile() {
  if (!state.helloSeen) return;
  const wanted = wantedFeeds();
  for (const feed of state.subscribed) {
    if (!wanted.includes(feed)) {
      send({ op: "unsubscribe", feed });
      state.subscribed.delete(feed);
      state.latest.delete(feed);
      state.resume.delete(feed);
    }
  }
  for (const feed of wanted) {
    if (state.subscribed.has(feed)) continue;
    state.subscribed.add(feed);
    send({ op: "subscribe", feed, last_id: state.resume.get(feed) || null });
  }
  $("conn").dataset.feeds = String(state.subscribed.size);
}

function onMessage(msg) {
  state.heardAt = Date.now();
  switch (msg.event) {
    case "hello": return onHello(msg);
    case "subscribed":
      if (msg.feed === state.feed) {
        if (msg.resumed_from) {
          setConn("resumed", `● resumed from ${msg.resumed_from}`);
          log(`${msg.feed}: resumed from ${msg.resumed_from} on ${state.replica}`);
        } else {
          setConn("live", "● live");
        }
      }
      return;
    case "snapshot": case "ranking": case "reset":
      if (msg.id) state.resume.set(msg.feed, msg.id); else state.resume.delete(msg.feed);
      if (msg.event !== "reset" || msg.data.rows) state.latest.set(msg.feed, msg.data);
      if (msg.feed === state.feed) apply(msg.data, msg.event);
      return;
    case "error":
      log(`${msg.feed ? msg.feed + ": " : ""}${msg.detail}`);
      if (msg.op === "subscribe" && msg.feed) {   // e.g. Redis unreachable: ask again later
        state.subscribed.delete(msg.feed);
        clearTimeout(state.resubscribeTimer);
        state.resubscribeTimer = setTimeout(reconcile, MANUAL_RETRY_MS);
      }
      return;
    default: return;   // ping, pong, unsubscribed, authenticated
  }
}

function onHello(hello) {
  state.replica = hello.replica;
  state.maxFeeds = hello.max_feeds || 1;
  state.helloSeen = true;
  const replica = $("replica");
  replica.textContent = hello.replica;
  replica.dataset.replica = hello.replica;
  log(`connected to ${hello.replica}`);
  reconcile();
}

/** Close codes (docs/api.md, /v1/ws): 4401 not logged in, 1001 replica shutting down, 1006 dropped or lost, 1013 busy. */
function onSocketClosed(event) {
  const wasOpen = state.helloSeen;
  state.socket = null;
  state.helloSeen = false;
  state.subscribed = new Set();
  if (event.code === 4401) {
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.hash));
    return;
  }
  const replica = $("replica");
  const was = replica.dataset.replica || "the replica";
  if (replica.dataset.replica) replica.textContent = `${was} (lost)`;
  setConn("reconnecting", "○ reconnecting…");
  log(`lost ${was} (close ${event.code}${event.reason ? ": " + event.reason : ""}): reconnecting…`);
  state.retryTimer = setTimeout(openSocket, wasOpen ? RECONNECT_MS : MANUAL_RETRY_MS);
}

/** A silent socket (no message, not even the heartbeat) is dead even if the browser has not noticed. */
function checkSilence() {
  if (state.socket && Date.now() - state.heardAt > SILENCE_MS) {
    log("no heartbeat: reconnecting");
    const socket = state.socket;
    onSocketClosed({ code: 1006, reason: "no heartbeat" });
    socket.close();
  }
}

// ---- feeds, publisher, session --------------------------------------------------------------------------

async function fetchJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function renderPublisher(pub) {
  const node = $("publisher");
  node.dataset.liveness = pub.liveness;
  node.className = "v liveness-" + pub.liveness;
  node.textContent = [pub.liveness, pub.state, pub.source].filter(Boolean).join(" · ");
  if (pub.heartbeat_age_s != null) node.append(el("span", "hint", `heartbeat ${pub.heartbeat_age_s.toFixed(1)} s ago`));
  const session = $("session");
  session.dataset.session = pub.session || "";
  session.textContent = pub.session ? `${SESSION_NAMES[pub.session] || pub.session} (${pub.session})` : "–";
}

function fillPicker(feeds) {
  const select = $("feed");
  const known = [...select.options].map((o) => `${o.value}:${o.dataset.tr}`).join();
  if (known === feeds.map((f) => `${f.feed}:${f.tr}`).join()) return;
  select.replaceChildren(...feeds.map((f) => {
    const option = el("option", "", `${f.title} (${f.feed} · ${f.tr})`);
    option.value = f.feed;
    option.dataset.tr = f.tr;
    return option;
  }));
  if (state.feed) select.value = state.feed;
}

async function pollFeeds() {
  try {
    const body = await fetchJson("/v1/feeds");
    fillPicker(body.feeds);
    state.feedNames = body.feeds.map((f) => f.feed);
    reconcile();
    renderPublisher(body.publisher);
    if (!state.feed) startFirstFeed(body.feeds);
    const mine = body.feeds.find((f) => f.feed === state.feed);
    if (mine && mine.stale) notice(`Feed is stale: ${mine.stale_reason}`);
    else if (mine && $("notice").textContent.startsWith("Feed is stale")) notice("");
    return body.feeds;
  } catch (err) {
    $("publisher").textContent = `unknown (${err.message})`;
    return null;
  }
}

/** Seed the sparklines from the stream's recent entries, then go live. */
async function switchFeed(feed) {
  Object.assign(state, { feed, lastId: null, lastEpoch: null, lastSeq: null, publishedMs: null, gaps: 0,
                         ranks: new Map(), series: new Map(), seriesLastId: null });
  $("ranking").dataset.feed = feed;
  $("ranking").dataset.rankingId = "";
  $("ranking").tBodies[0].replaceChildren();
  notice("");
  if (location.hash.slice(1) !== feed) history.replaceState(null, "", "#" + feed);
  setConn("connecting", "connecting…");
  try {
    const page = await fetchJson(`/v1/rankings/${encodeURIComponent(feed)}/history?limit=${HISTORY_LIMIT}`);
    if (state.feed !== feed) return;   // the user switched again meanwhile
    for (const doc of page.items.reverse()) extendSeries(doc);
  } catch (err) {
    log(`history unavailable: ${err.message}`);
  }
  if (state.feed !== feed) return;
  // Already on the socket (every listed feed is): show its newest document now; else subscribe it.
  const latest = state.latest.get(feed);
  if (latest) {
    apply(latest, "snapshot");
    if (state.socket && state.helloSeen) setConn("live", "● live");
  }
  reconcile();
}

function tickAge() {
  if (state.publishedMs === null) return;
  const age = Math.max(0, Date.now() - state.publishedMs);
  $("age").textContent = ageText(age);
  $("age").title = `published ${KST_DATE_TIME.format(new Date(state.publishedMs))} KST`;
}

/** The feed named in the URL's #fragment, else the first one; until a feed exists, say so. */
function startFirstFeed(feeds) {
  if (feeds.length === 0) {
    notice("No feeds configured yet: is the publisher running?");
    return;
  }
  const wanted = location.hash.slice(1);
  const feed = feeds.some((f) => f.feed === wanted) ? wanted : feeds[0].feed;
  $("feed").value = feed;
  switchFeed(feed);
}

function main() {
  $("feed").addEventListener("change", (e) => switchFeed(e.target.value));
  window.addEventListener("hashchange", () => {
    const feed = location.hash.slice(1);
    if (feed && state.feed && feed !== state.feed) {
      $("feed").value = feed;
      switchFeed(feed);
    }
  });
  setInterval(pollFeeds, FEEDS_POLL_MS);
  setInterval(tickAge, 250);
  setInterval(checkSilence, 5000);
  openSocket();
  pollFeeds();
}

main();
