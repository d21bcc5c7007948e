/* The ops-room page: live tiles, devices by area, the map of the province, citizens'
 * reports, alarms, KPIs, feed and charts.
 *
 * Data comes from /ws (docs/CONTRACT.md §6): one subscription per topic, a snapshot then
 * deltas applied by the rules of streams/topics.py (merge for overview and services,
 * keyed items for devices, kpis, feed, alarms and reports). The map is drawn in SVG from
 * the units' centroids (GET /api/v1/units) and the devices' and open reports' places
 * (their own coordinates, or their unit's). On a lost connection the page
 * reconnects with a growing, jittered delay and resubscribes with `since` (the position
 * it holds), so the server replays what it missed or sends a fresh snapshot.
 *
 * The key comes from `?token=` (kept in localStorage, then removed from the address) or
 * from the form shown when it is missing or refused. No external resource is loaded.
 */
"use strict";

(function () {
  const I = window.OpsI18n;
  const TOKEN_KEY = "opsCenter.token";
  const SCOPE_KEY = "opsCenter.scope";
  const TOPICS = {
    overview: { delta: "merge" },
    devices: { delta: "items", key: ["kind", "code"] },
    alarms: { delta: "items", key: ["id"], order: ["raised_at"], descending: true },
    services: { delta: "merge" },
    kpis: { delta: "items", key: ["code"] },
    feed: { delta: "items", key: ["position"], descending: true },
    reports: { delta: "items", key: ["code"], order: ["received_at"], descending: true },
  };
  const CATEGORIES = ["traffic", "environment", "urban_order", "security", "utilities", "public_health", "other"];
  const MIN_RETRY_S = 1;
  const MAX_RETRY_S = 30;
  const FEED_SHOWN = 40;
  const SEVERITY_RANK = { critical: 0, major: 1, high: 1, warning: 2, minor: 3, low: 3, info: 4 };
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  // -- the key and the address ----------------------------------------------------------

  function storage(action, key, value) {
    try {
      if (action === "get") return window.localStorage.getItem(key);
      if (action === "set") window.localStorage.setItem(key, value);
      if (action === "remove") window.localStorage.removeItem(key);
    } catch (_e) {
      /* storage disabled: the key lives for this page only */
    }
    return null;
  }

  let memoryToken = null;

  /** Take `?token=` out of the address (kept in storage) and `?unit=` as the scope. */
  function readAddress() {
    const url = new URL(window.location.href);
    const token = url.searchParams.get("token");
    if (token) {
      memoryToken = token;
      storage("set", TOKEN_KEY, token);
      url.searchParams.delete("token");
      window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
    }
    const unit = url.searchParams.get("unit");
    if (unit !== null) storage("set", SCOPE_KEY, unit);
  }

  function token() {
    return storage("get", TOKEN_KEY) || memoryToken;
  }

  // -- state ----------------------------------------------------------------------------

  const app = {
    scope: storage("get", SCOPE_KEY) || "",
    units: new Map(),
    agencies: new Map(),
    root: null,
    demo: false,
    states: {},
    positions: {},
    awaiting: {},
    epoch: null,
    connection: "connecting",
    canAct: true,
    lastFrameAt: null,
    counts: { snapshot: {}, delta: {} },
    kpiHistory: new Map(),
    seenFeed: new Set(),
    firstFeed: true,
    // the replay shown instead of the live overview (null: live); see "replay" below
    replay: null,
  };

  // -- the delta rules of streams/topics.py ---------------------------------------------

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function mergeInto(target, patch) {
    const out = Object.assign({}, target);
    for (const [name, value] of Object.entries(patch)) {
      const current = out[name];
      out[name] = isObject(value) && isObject(current) ? mergeInto(current, value) : value;
    }
    return out;
  }

  function keyOf(topic, item) {
    return topic.key.map((field) => item[field]);
  }

  /** The sort key of an item: the topic's order fields, then its key (ties). */
  function orderOf(topic, item) {
    return (topic.order || []).map((field) => item[field]).concat(keyOf(topic, item));
  }

  function compareKeys(a, b) {
    for (let i = 0; i < a.length; i += 1) {
      if (a[i] < b[i]) return -1;
      if (a[i] > b[i]) return 1;
    }
    return 0;
  }

  function applyItems(topic, state, delta) {
    const byKey = new Map();
    for (const item of state.items || []) byKey.set(JSON.stringify(keyOf(topic, item)), item);
    for (const gone of delta.removed || []) byKey.delete(JSON.stringify(keyOf(topic, gone)));
    for (const item of delta.items || []) byKey.set(JSON.stringify(keyOf(topic, item)), item);
    const out = {};
    for (const [name, value] of Object.entries(state)) if (name !== "items") out[name] = value;
    for (const [name, value] of Object.entries(delta)) {
      if (name !== "items" && name !== "removed") out[name] = value;
    }
    const sign = topic.descending ? -1 : 1;
    out.items = Array.from(byKey.values()).sort(
      (a, b) => sign * compareKeys(orderOf(topic, a), orderOf(topic, b)),
    );
    return out;
  }

  function applyDelta(name, state, delta) {
    const topic = TOPICS[name];
    return topic.delta === "merge" ? mergeInto(state, delta) : applyItems(topic, state, delta);
  }

  // -- the connection -------------------------------------------------------------------

  let socket = null;
  let attempt = 0;
  let retryTimer = null;
  let countdownTimer = null;
  let resyncTimer = null;
  let interrupted = false;

  function setConnection(stateName, text) {
    app.connection = stateName;
    const badge = $("conn");
    badge.dataset.state = stateName;
    $("conn-text").textContent = text || I.t("conn." + stateName);
  }

  function wsUrl() {
    const url = new URL("/ws", window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", token() || "");
    return url.toString();
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function subscribe(name, resume) {
    const message = { op: "subscribe", topic: name };
    if (app.scope) message.unit = app.scope;
    if (resume && app.positions[name] !== undefined) message.since = app.positions[name];
    app.awaiting[name] = true;
    send(message);
  }

  function connect() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    if (socket) return;
    setConnection(attempt === 0 ? "connecting" : "reconnecting", I.t("conn.reconnectingNow"));
    const ws = new WebSocket(wsUrl());
    socket = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      for (const name of Object.keys(TOPICS)) subscribe(name, true);
      // a replay lives on its socket: start it again where it was
      if (app.replay && app.replay.started && !app.replay.ended) {
        startReplay(app.replay.time || $("replay-at").value);
      }
      settle();
    };
    ws.onmessage = (event) => {
      attempt = 0;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_e) {
        return;
      }
      onFrame(frame);
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      if (opened) {
        scheduleReconnect();
      } else {
        checkKeyThenRetry();
      }
    };
  }

  /** The handshake failed: a refused key shows the key screen, anything else retries. */
  async function checkKeyThenRetry() {
    const status = await probe();
    if (status === 401 || status === 403) {
      showAuth("refused");
      return;
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    attempt += 1;
    const ceiling = Math.min(MAX_RETRY_S, MIN_RETRY_S * 2 ** (attempt - 1));
    const delay = ceiling * (0.5 + Math.random() * 0.5);
    let left = Math.ceil(delay);
    setConnection("reconnecting", I.t("conn.reconnecting", { seconds: left }));
    clearInterval(countdownTimer);
    countdownTimer = setInterval(() => {
      left = Math.max(0, left - 1);
      if (app.connection === "reconnecting" && !socket) {
        setConnection("reconnecting", I.t("conn.reconnecting", { seconds: left }));
      }
    }, 1000);
    retryTimer = setTimeout(connect, delay * 1000);
  }

  function disconnect() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    if (socket) {
      const ws = socket;
      socket = null;
      ws.onclose = null;
      ws.close(1000);
    }
  }

  function showResync() {
    setConnection("resync");
    clearTimeout(resyncTimer);
    resyncTimer = setTimeout(() => {
      if (app.connection === "resync") settle();
    }, 1500);
  }

  function settle() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    if (interrupted) setConnection("interrupted");
    else setConnection(app.replay ? "replay" : "live"); // a replay is not live, say so
  }

  function onFrame(frame) {
    app.lastFrameAt = Date.now();
    if (frame.op === "error") {
      if (frame.code === "stream_interrupted") {
        interrupted = true;
        setConnection("interrupted");
      } else if (frame.code === "snapshot_unavailable") {
        setConnection("resync");
      } else if (frame.code === "invalid_replay" || frame.code === "replay_failed") {
        if (app.replay) {
          app.replay.playing = false;
          app.replay.note = I.t("replay.invalid", { detail: frame.detail });
          renderReplay();
        }
      } else {
        console.warn("ops-room: server error", frame);
      }
      return;
    }
    if (frame.replay || frame.op === "replay_end") {
      onReplayFrame(frame);
      return;
    }
    const name = frame.topic;
    if (!TOPICS[name]) return;
    const counts = app.counts[frame.op];
    if (counts) counts[name] = (counts[name] || 0) + 1;
    if (frame.op === "snapshot") {
      const requested = app.awaiting[name];
      const hadState = app.states[name] !== undefined;
      const newEpoch = app.epoch !== null && frame.epoch && frame.epoch !== app.epoch;
      if (frame.epoch) app.epoch = frame.epoch;
      const wasInterrupted = interrupted;
      // routine: a first snapshot, or the same position with new content ("today" and
      // overdue move on with the clock; not for devices, published as changes). Any other
      // snapshot replaces a state the page held: a resumed subscription whose gap could not
      // be replayed, the hub resynchronising, a new epoch of the stream: shown as a resync.
      const sameState = frame.position === app.positions[name] && name !== "devices";
      const routine = !hadState || (!requested && sameState);
      app.awaiting[name] = false;
      app.states[name] = frame.data;
      app.positions[name] = frame.position;
      interrupted = false;
      if (newEpoch || wasInterrupted || !routine) showResync();
      else if (app.connection !== "resync") settle(); // a resync shown stays its 1.5 s
      changed(name);
    } else if (frame.op === "delta") {
      app.awaiting[name] = false;
      const state = app.states[name];
      if (state === undefined) {
        subscribe(name, false);
        return;
      }
      if (frame.position <= app.positions[name]) return;
      app.states[name] = applyDelta(name, state, frame.data);
      app.positions[name] = frame.position;
      interrupted = false;
      if (app.connection !== "resync") settle();
      changed(name);
    }
  }

  // -- replay ---------------------------------------------------------------------------
  // The overview tiles can show the past: {"op": "replay"} on the same socket (one replay
  // per socket), its frames ("replay": true) applied like live ones to a state of their
  // own. Live subscriptions go on meanwhile; back to live shows them again at once.

  /** A moment as the datetime input writes it: Vietnam time, to the second. */
  function localInput(date) {
    return new Date(date.getTime() + 7 * 3600 * 1000).toISOString().slice(0, 19);
  }

  function openReplay() {
    if (!app.replay) {
      app.replay = { state: null, playing: false, started: false, ended: false, time: null, note: "" };
      if (!$("replay-at").value) $("replay-at").value = localInput(new Date(Date.now() - 3600 * 1000));
    }
    $("replay").hidden = false;
    document.body.classList.add("replaying");
    settle();
    renderReplay();
  }

  function startReplay(from) {
    const replay = app.replay;
    const message = { op: "replay", topic: "overview", from: from, speed: Number($("replay-speed").value) };
    if (app.scope) message.unit = app.scope;
    Object.assign(replay, { playing: true, started: true, ended: false, note: "" });
    send(message);
    renderReplay();
  }

  function playPause() {
    const replay = app.replay;
    if (!replay) return;
    if (replay.playing) {
      replay.playing = false;
      send({ op: "pause" });
    } else if (replay.started && !replay.ended) {
      replay.playing = true;
      send({ op: "resume" });
    } else {
      startReplay($("replay-at").value);
    }
    renderReplay();
  }

  /** A new moment or speed: a new replay from there (it replaces the running one). */
  function replayFrom(from) {
    if (app.replay && app.replay.started) startReplay(from);
  }

  function backToLive() {
    if (app.replay && app.replay.started) send({ op: "stop" });
    app.replay = null;
    $("replay").hidden = true;
    document.body.classList.remove("replaying");
    settle();
    changed("overview");
  }

  function onReplayFrame(frame) {
    const replay = app.replay;
    if (!replay || frame.topic !== "overview") return;
    if (frame.op === "snapshot") {
      replay.state = frame.data;
    } else if (frame.op === "delta" && replay.state) {
      replay.state = applyDelta("overview", replay.state, frame.data);
    } else if (frame.op === "replay_paused") {
      replay.playing = false;
    } else if (frame.op === "replay_end") {
      replay.playing = false;
      replay.ended = true;
    }
    if (frame.time) replay.time = frame.time;
    changed("overview");
    renderReplay();
  }

  function renderReplay() {
    const replay = app.replay;
    if (!replay) return;
    $("replay-play").textContent = I.t(replay.playing ? "replay.pause" : "replay.play");
    const time = replay.time ? I.clock(replay.time) + " " + I.time(replay.time) : "";
    let text = "";
    if (replay.note) text = replay.note;
    else if (time) text = I.t(replay.ended ? "replay.ended" : replay.playing ? "replay.at" : "replay.paused", { time: time });
    $("replay-time").textContent = text;
  }

  // -- HTTP calls -----------------------------------------------------------------------

  function authHeaders() {
    return { Authorization: "Bearer " + (token() || "") };
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: authHeaders(), cache: "no-store" });
    if (!response.ok) throw Object.assign(new Error(path), { status: response.status });
    return response.json();
  }

  /** The status of an authenticated read (0: the server cannot be reached). */
  async function probe() {
    try {
      const response = await fetch("/api/v1/overview", { headers: authHeaders(), cache: "no-store" });
      return response.status;
    } catch (_e) {
      return 0;
    }
  }

  // -- rendering ------------------------------------------------------------------------

  // Changes are drawn at most every RENDER_INTERVAL_MS (a busy province sends many deltas
  // a second; people need a few frames a second), in an animation frame.
  const RENDER_INTERVAL_MS = 200;
  const dirty = new Set();
  let frameRequested = false;
  let lastRender = 0;

  function changed(name) {
    dirty.add(name);
    if (frameRequested) return;
    frameRequested = true;
    const wait = Math.max(0, RENDER_INTERVAL_MS - (performance.now() - lastRender));
    setTimeout(() => window.requestAnimationFrame(renderDirty), wait);
  }

  function renderDirty() {
    frameRequested = false;
    lastRender = performance.now();
    const names = Array.from(dirty);
    dirty.clear();
    for (const name of names) RENDER[name]();
    renderFooter();
  }

  function renderAll() {
    for (const name of Object.keys(RENDER)) RENDER[name]();
    renderFooter();
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    return node;
  }

  function unitName(code) {
    const unit = app.units.get(code);
    if (!unit) return code || "";
    return (I.lang === "en" && unit.name_en) || unit.name;
  }

  function ownerName(code) {
    const agency = app.agencies.get(code);
    if (agency) return (I.lang === "en" && agency.name_en) || agency.name;
    return unitName(code);
  }

  function valueAt(object, path) {
    let value = object;
    for (const part of path.split(".")) {
      if (!isObject(value)) return undefined;
      value = value[part];
    }
    return value;
  }

  function renderOverview() {
    const data = app.replay && app.replay.state ? app.replay.state : app.states.overview;
    if (!data) return;
    for (const node of document.querySelectorAll(".tiles [data-metric], .rfigures [data-metric]")) {
      const path = node.dataset.metric;
      const value = valueAt(data, path);
      node.textContent = path.endsWith("_rate") ? I.percent(value) : I.number(value);
      node.dataset.value = JSON.stringify(value === undefined ? null : value);
    }
    const emergency = valueAt(data, "broadcasts.emergency_active") || 0;
    const tile = document.querySelector('[data-tile="emergency"]');
    tile.classList.toggle("active", emergency > 0);
    $("emergency-sub").textContent = I.t(emergency > 0 ? "sub.emergencyOn" : "sub.emergencyNone");
    flag("overdue", (valueAt(data, "services.overdue") || 0) > 0);
    flag("alarms", (valueAt(data, "alarms.active") || 0) > 0);
    flag("kpis", (valueAt(data, "kpis.off_track") || 0) > 0);
    const camera = valueAt(data, "devices.camera") || {};
    const radio = valueAt(data, "devices.radio") || {};
    flag("camera", (camera.offline || 0) > 0);
    flag("radio", (radio.offline || 0) > 0);
    const late = document.querySelector('[data-figure="overdue"]');
    if (late) late.classList.toggle("alert", (valueAt(data, "reports.overdue") || 0) > 0);
    const rate = valueAt(data, "services.on_time_rate");
    const meter = $("on-time-meter");
    meter.style.width = rate === null || rate === undefined ? "0%" : Math.round(rate * 100) + "%";
    meter.className = rate === null || rate === undefined ? "" : rate >= 0.9 ? "ok" : rate >= 0.7 ? "warn" : "bad";
  }

  function flag(tileName, on) {
    const tile = document.querySelector(`[data-tile="${tileName}"]`);
    if (tile) tile.classList.toggle("alert", on);
  }

  /** The unit under the scope that a device's unit rolls up to (the scope's child). */
  function groupOf(code, scope) {
    let current = code;
    const seen = new Set();
    while (current && !seen.has(current)) {
      seen.add(current);
      const unit = app.units.get(current);
      if (!unit) return code;
      if (current === scope || unit.parent === scope) return current;
      if (!unit.parent) return code;
      current = unit.parent;
    }
    return code;
  }

  function renderDevices() {
    const data = app.states.devices;
    const box = $("devices");
    if (!data) return;
    const scope = app.scope || (app.root && app.root.code);
    const groups = new Map();
    for (const device of data.items) {
      const key = groupOf(device.unit, scope);
      let group = groups.get(key);
      if (!group) {
        group = { code: key, camera: counter(), radio: counter() };
        groups.set(key, group);
      }
      const counts = device.kind === "camera" ? group.camera : group.radio;
      const status = device.status || "unknown";
      counts[status] = (counts[status] || 0) + 1;
      counts.total += 1;
    }
    box.replaceChildren();
    if (groups.size === 0) {
      box.append(el("p", "empty", I.t("devices.none")));
      return;
    }
    const rows = Array.from(groups.values()).sort(
      (a, b) =>
        problems(b) - problems(a) ||
        unitName(a.code).localeCompare(unitName(b.code), I.lang === "en" ? "en" : "vi"),
    );
    const head = el("div", "drow head");
    head.append(el("span", "dname", I.t("devices.unit")), el("span", "", I.t("devices.cameras")), el("span", "", I.t("devices.radio")));
    box.append(head);
    for (const group of rows) {
      const row = el("div", "drow");
      row.dataset.unit = group.code;
      row.append(el("span", "dname", unitName(group.code)), stack(group.camera), stack(group.radio));
      box.append(row);
    }
  }

  function counter() {
    return { online: 0, degraded: 0, offline: 0, unknown: 0, total: 0 };
  }

  function problems(group) {
    return (
      group.camera.offline + group.radio.offline + group.camera.degraded * 0.5
    );
  }

  function stack(counts) {
    const cell = el("span", "dcell");
    const bar = el("span", "stack");
    for (const status of ["online", "degraded", "offline", "unknown"]) {
      if (!counts[status]) continue;
      const part = el("span", "seg " + status);
      part.style.flexGrow = String(counts[status]);
      part.title = `${I.number(counts[status])} ${I.t("sub." + status)}`;
      bar.append(part);
    }
    const label = el("span", "dnum");
    label.textContent = counts.total ? `${I.number(counts.online)}/${I.number(counts.total)}` : "–";
    if (counts.offline) label.append(el("b", "bad", ` ▼${I.number(counts.offline)}`));
    cell.append(bar, label);
    return cell;
  }

  function renderServices() {
    const data = app.states.services;
    const box = $("services-chart");
    if (!data) return;
    const items = data.items || [];
    let holder = box.querySelector(".chart-box");
    if (!holder) {
      holder = el("div", "chart-box");
      const legend = el("div", "chart-legend");
      legend.append(el("span", "k received"), el("span", "", ""), el("span", "k completed"), el("span", "", ""));
      box.replaceChildren(holder, legend);
    }
    const legendTexts = box.querySelectorAll(".chart-legend > span:not(.k)");
    legendTexts[0].textContent = I.t("chart.received");
    legendTexts[1].textContent = I.t("chart.completed");
    // drawn at the size it is shown (crisp text, no letterboxing)
    const width = Math.max(240, Math.round(holder.clientWidth || 600));
    const height = Math.max(100, Math.round(holder.clientHeight || 200));
    const left = 34;
    const bottom = 24;
    const top = 10;
    const plotH = height - bottom - top;
    const max = Math.max(4, ...items.map((b) => Math.max(b.received, b.completed.total)));
    const step = niceStep(max);
    const ceiling = Math.ceil(max / step) * step;
    const slot = (width - left - 4) / Math.max(items.length, 1);
    const labelEvery = slot * 3 >= 48 ? 3 : 6;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "bars" });
    chart.append(svg("title", {}));
    chart.firstChild.textContent = I.t("panel.services");
    for (let v = 0; v <= ceiling; v += step) {
      const y = top + plotH - (v / ceiling) * plotH;
      chart.append(svg("line", { x1: left, x2: width, y1: y, y2: y, class: "grid" }));
      const label = svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" });
      label.textContent = I.number(v);
      chart.append(label);
    }
    const nowMs = Date.now();
    items.forEach((bucket, i) => {
      const x = left + i * slot;
      const start = new Date(bucket.start).getTime();
      const end = new Date(bucket.end).getTime();
      if (start <= nowMs && nowMs < end) {
        chart.append(svg("rect", { x, y: top, width: slot, height: plotH, class: "now" }));
      }
      const barW = Math.max(1, slot * 0.36);
      const rh = (bucket.received / ceiling) * plotH;
      const ch = (bucket.completed.total / ceiling) * plotH;
      chart.append(svg("rect", { x: x + slot * 0.12, y: top + plotH - rh, width: barW, height: rh, class: "received" }));
      chart.append(svg("rect", { x: x + slot * 0.12 + barW, y: top + plotH - ch, width: barW, height: ch, class: "completed" }));
      if (i % labelEvery === 0) {
        const label = svg("text", { x: x + slot / 2, y: height - 6, class: "axis", "text-anchor": "middle" });
        label.textContent = I.hour(bucket.start);
        chart.append(label);
      }
    });
    holder.replaceChildren(chart);
    const totals = data.totals || {};
    $("services-note").textContent = I.t("chart.total", {
      received: I.number(totals.received),
      completed: I.number(totals.completed ? totals.completed.total : null),
      online: I.percent(totals.online_share),
    });
  }

  /** The service index of the scope this month and its three lowest agencies (carried by
   * the services topic, streams/sources.py). */
  function renderIndex() {
    const data = app.states.services;
    if (!data || !data.index) return;
    const index = data.index;
    $("index-period").textContent = I.t("index.period", { month: index.period });
    const total = document.querySelector('.index [data-metric="services.index.total"]');
    showFigure(total, index.total);
    for (const [name, group] of Object.entries(index.groups || {})) {
      const row = document.querySelector(`.index-groups [data-group="${name}"]`);
      if (!row) continue;
      showFigure(row.querySelector("[data-metric]"), group.score);
      const share = group.max ? group.score / group.max : 0;
      const bar = row.querySelector(".gbar span");
      bar.style.width = Math.round(share * 100) + "%";
      bar.className = share >= 0.85 ? "" : share >= 0.6 ? "warn" : "bad";
      row.title = group.parts
        .map((p) => `${p.name}: ${I.number(p.score)}/${p.max} (${p.no_data ? I.t("index.noData") : `${I.number(p.numerator)}/${I.number(p.denominator)}`})`)
        .join("\n");
    }
    const box = $("index-lowest");
    box.replaceChildren();
    const lowest = data.lowest_agencies || [];
    if (!lowest.length) box.append(el("li", "empty", I.t("index.none")));
    for (const item of lowest) {
      const row = el("li");
      row.dataset.agency = item.code;
      row.append(el("span", "", ownerName(item.code) || item.name));
      const figure = el("b");
      figure.dataset.metric = "services.index.total";
      figure.dataset.agency = item.code;
      figure.tabIndex = 0;
      showFigure(figure, item.total);
      row.append(figure);
      box.append(row);
    }
  }

  function showFigure(node, value) {
    if (!node) return;
    node.textContent = I.number(value);
    node.dataset.value = JSON.stringify(value === undefined ? null : value);
  }

  // -- lineage: where a figure comes from (GET /api/v1/lineage) ------------------------

  const LINEAGE_PAGE = 50;
  const lineage = { request: null, items: [], next: null, body: null };

  /** The lineage request of a figure on the page: its path and its query's filters. */
  function lineageRequest(node) {
    const metric = node.dataset.metric;
    const params = {};
    let figure = metric;
    if (node.closest(".tiles") || node.closest(".rfigures")) {
      figure = "overview." + metric;
      if (app.scope) params.unit = app.scope;
    } else if (metric.startsWith("services.index")) {
      const index = app.states.services && app.states.services.index;
      if (index) params.period = index.period;
      if (app.scope) params.unit = app.scope;
      if (node.dataset.agency) params.agency = node.dataset.agency;
    }
    return { figure, params };
  }

  function figureLabel(node) {
    const tile = node.closest("[data-tile]");
    if (tile) {
      const title = tile.querySelector("h2").textContent;
      const side = node.parentElement && node.parentElement.querySelector("[data-i18n]");
      return side && node.parentElement !== tile ? `${title} – ${side.textContent}` : title;
    }
    const group = node.closest("[data-group]");
    if (group) return group.firstElementChild.textContent;
    if (node.dataset.agency) return `${I.t("panel.index")} – ${ownerName(node.dataset.agency)}`;
    if (node.closest(".index")) return I.t("panel.index");
    const kpi = node.closest("[data-kpi]");
    if (kpi) return kpi.querySelector(".kpi-name").textContent;
    return node.dataset.metric;
  }

  async function openLineage(node) {
    const request = lineageRequest(node);
    lineage.request = request;
    lineage.items = [];
    lineage.next = null;
    lineage.body = null;
    $("lineage-title").textContent = I.t("lineage.title", { figure: figureLabel(node) });
    $("lineage-summary").textContent = "";
    $("lineage-items").replaceChildren();
    $("lineage-more").hidden = true;
    $("lineage").hidden = false;
    $("lineage-close").focus();
    await loadLineage();
  }

  async function loadLineage() {
    const request = lineage.request;
    if (!request) return;
    const query = new URLSearchParams(Object.assign({ figure: request.figure, limit: LINEAGE_PAGE }, request.params));
    if (lineage.next !== null) query.set("after", lineage.next);
    let body;
    try {
      body = await getJson("/api/v1/lineage?" + query.toString());
    } catch (error) {
      if (lineage.request === request) {
        $("lineage-summary").textContent = I.t("lineage.failed", { detail: error.status || I.t("conn.offline") });
      }
      return;
    }
    if (lineage.request !== request) return; // another figure was opened meanwhile
    lineage.body = body;
    lineage.items = lineage.items.concat(body.items);
    lineage.next = body.next;
    renderLineage();
  }

  function renderLineage() {
    const body = lineage.body;
    if (!body) return;
    const value = typeof body.value === "number" && lineage.request.figure.endsWith("_rate") ? I.percent(body.value) : I.number(body.value);
    $("lineage-summary").textContent = I.t("lineage.summary", {
      value,
      position: I.number(body.position),
      count: I.number(lineage.items.length) + (lineage.next !== null ? "+" : ""),
    });
    const box = $("lineage-items");
    box.replaceChildren();
    if (!lineage.items.length) box.append(el("li", "empty", I.t("lineage.none")));
    for (const item of lineage.items) {
      const row = el("li");
      row.dataset.position = item.position;
      row.dataset.id = item.id || "";
      row.append(el("span", "ltime", item.time ? `${I.date(item.time)} ${I.time(item.time)}` : "–"));
      const key = "event." + item.type;
      const what = I.has(key) ? I.t(key, { value: "", cluster: "", period: "" }).replace(/[:(]\s*\)?\s*$/, "").trim() : item.type;
      row.append(el("span", "ltype", `${what} · ${item.subject}`));
      row.append(el("span", "lsource", [item.source, item.id].filter(Boolean).join(" · ")));
      const extra = el("span", "lkey", item.key ? I.t("lineage.key", { key: item.key }) : "");
      if (item.time && item.received_at) {
        const hours = (new Date(item.received_at).getTime() - new Date(item.time).getTime()) / 3600000;
        if (hours > 24) extra.append(el("span", "late", " " + I.t("lineage.late", { hours: I.number(Math.round(hours)) })));
      }
      row.append(extra);
      box.append(row);
    }
    $("lineage-more").hidden = lineage.next === null;
  }

  function closeLineage() {
    lineage.request = null;
    $("lineage").hidden = true;
  }

  function niceStep(max) {
    const raw = max / 4;
    const power = 10 ** Math.floor(Math.log10(raw));
    for (const factor of [1, 2, 5, 10]) if (raw <= factor * power) return factor * power;
    return 10 * power;
  }

  function renderAlarms() {
    const data = app.states.alarms;
    const box = $("alarms");
    if (!data) return;
    const open = (data.items || []).filter((a) => a.state !== "resolved");
    open.sort(
      (a, b) =>
        rank(a.severity) - rank(b.severity) ||
        (a.state === "active" ? 0 : 1) - (b.state === "active" ? 0 : 1) ||
        String(b.raised_at || "").localeCompare(String(a.raised_at || "")),
    );
    $("alarm-count").textContent = open.length ? I.number(open.length) : "";
    const bySeverity = { critical: 0, warning: 0, info: 0 };
    for (const alarm of open) {
      if (alarm.severity in bySeverity) bySeverity[alarm.severity] += 1;
    }
    $("alarm-summary").textContent = open.length
      ? I.t("alarms.summary", {
          critical: I.number(bySeverity.critical),
          warning: I.number(bySeverity.warning),
          info: I.number(bySeverity.info),
        })
      : "";
    box.replaceChildren();
    if (!open.length) {
      box.append(el("p", "empty calm", "✓ " + I.t("alarms.none")));
      return;
    }
    for (const alarm of open) box.append(alarmCard(alarm));
  }

  function rank(severity) {
    const value = SEVERITY_RANK[severity];
    return value === undefined ? 5 : value;
  }

  function labelOf(prefix, value) {
    if (value === undefined || value === null) return "";
    const key = prefix + value;
    return I.has(key) ? I.t(key) : String(value).replace(/[_.]/g, " ");
  }

  function alarmCard(alarm) {
    const card = el("article", `alarm sev-${alarm.severity || "info"} state-${alarm.state}`);
    card.dataset.alarmId = alarm.id;
    const main = el("div", "alarm-main");
    const head = el("div", "alarm-head");
    head.append(el("span", "sev", labelOf("severity.", alarm.severity)));
    head.append(el("span", "cause", labelOf("cause.", alarm.cause)));
    const detail = alarmDetail(alarm);
    if (detail) head.append(el("span", "alarm-detail", detail));
    main.append(head);
    const subject = [labelOf("kind.", alarm.subject_kind), alarm.subject].filter(Boolean).join(" ");
    const meta = el("div", "alarm-meta", [subject, unitName(alarm.unit)].filter(Boolean).join(" · "));
    if (alarm.raised_at) meta.append(el("span", "when", I.ago(alarm.raised_at)));
    if (alarm.state === "acknowledged") {
      const by = alarm.acknowledged && alarm.acknowledged.by;
      meta.append(el("span", "acked", [I.t("alarms.acknowledged"), by && I.t("alarms.by", { by })].filter(Boolean).join(" ")));
    }
    main.append(meta);
    card.append(main);
    if (app.canAct) {
      const actions = el("div", "alarm-actions");
      if (alarm.state === "active") actions.append(actionButton(alarm, "ack"));
      actions.append(actionButton(alarm, "resolve"));
      card.append(actions);
    }
    return card;
  }

  /** What the alarm is about, from its structured detail (the summary in English). */
  function alarmDetail(alarm) {
    const detail = isObject(alarm.detail) ? alarm.detail : {};
    if (I.lang === "en" && alarm.summary) return alarm.summary;
    switch (alarm.cause) {
      case "device_offline":
        return detail.status
          ? [labelOf("value.", detail.status), detail.since ? I.time(detail.since) : ""].filter(Boolean).join(" · ")
          : "";
      case "cluster_fault":
        return (detail.clusters || [])
          .map((c) => I.t("event.radio.cluster.fault", { cluster: c.cluster, value: labelOf("value.", c.fault) }))
          .join("; ");
      case "emergency_broadcast":
        return (detail.broadcasts || []).map((b) => b.program).join("; ");
      case "camera_alert":
        return [labelOf("value.", detail.category), detail.plate].filter(Boolean).join(" · ");
      case "dossier_overdue":
        return [detail.due_at ? I.t("kpis.deadline", { date: I.date(detail.due_at) }) : "", ownerName(detail.agency)]
          .filter(Boolean)
          .join(" · ");
      case "report_overdue":
        return [
          labelOf("category.", detail.category),
          detail.due_at ? I.t("kpis.deadline", { date: I.date(detail.due_at) }) : "",
          ownerName(detail.agency),
        ]
          .filter(Boolean)
          .join(" · ");
      case "kpi_off_track":
        return detail.latest ? `${detail.latest.period}: ${I.number(detail.latest.value)}` : "";
      default:
        return typeof alarm.summary === "string" ? alarm.summary : "";
    }
  }

  function actionButton(alarm, action) {
    const button = el("button", "act " + action, I.t(action === "ack" ? "alarms.ack" : "alarms.resolve"));
    button.type = "button";
    button.dataset.action = action;
    button.addEventListener("click", () => act(alarm.id, action, button));
    return button;
  }

  async function act(id, action, button) {
    button.disabled = true;
    let response;
    try {
      response = await fetch(`/api/v1/alarms/${encodeURIComponent(id)}/${action}`, {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
        body: "{}",
      });
    } catch (error) {
      button.disabled = false;
      toast(I.t("alarms.failed", { detail: I.t("conn.offline") }), true);
      return;
    }
    if (response.ok) {
      toast(I.t("alarms.done." + action), false);
      return;
    }
    button.disabled = false;
    if (response.status === 403) {
      app.canAct = false;
      renderAlarms();
      toast(I.t("alarms.forbidden"), true);
    } else if (response.status === 401) {
      showAuth("refused");
    } else {
      let detail = String(response.status);
      try {
        detail = (await response.json()).detail || detail;
      } catch (_e) {
        /* not JSON */
      }
      toast(I.t("alarms.failed", { detail }), true);
    }
  }

  let toastTimer = null;
  function toast(text, bad) {
    const node = $("toast");
    node.textContent = text;
    node.classList.toggle("bad", bad);
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      node.hidden = true;
    }, 5000);
  }

  const STATUS_ORDER = { off_track: 0, on_track: 1, met: 2 };

  function progressOf(kpi) {
    if (!kpi.latest) return 0;
    const value = kpi.latest.value;
    const first = kpi.first ? kpi.first.value : null;
    let share;
    if (kpi.direction === "decrease") {
      if (first !== null && first !== kpi.target && first > kpi.target) {
        share = (first - value) / (first - kpi.target);
      } else {
        share = value <= kpi.target ? 1 : kpi.target / value;
      }
    } else if (kpi.target === 0) {
      share = 1;
    } else {
      share = value / kpi.target;
    }
    return Math.max(0, Math.min(1, share));
  }

  function measured(value, measure) {
    if (value === null || value === undefined) return "–";
    return measure === "%" ? `${I.number(value)}%` : `${I.number(value)} ${measure}`;
  }

  function renderKpis() {
    const data = app.states.kpis;
    const box = $("kpis");
    if (!data) return;
    const items = (data.items || []).slice().sort(
      (a, b) => (STATUS_ORDER[a.status] ?? 3) - (STATUS_ORDER[b.status] ?? 3) || compareKeys([a.code], [b.code]),
    );
    box.replaceChildren();
    if (!items.length) {
      box.append(el("p", "empty", I.t("kpis.none")));
      return;
    }
    for (const kpi of items) {
      const row = el("div", `kpi st-${kpi.status}`);
      row.dataset.kpi = kpi.code;
      const text = el("div", "kpi-text");
      text.append(el("div", "kpi-name", kpi.name));
      text.append(
        el("div", "kpi-owner", [ownerName(kpi.owner), kpi.reference, I.t("kpis.deadline", { date: I.date(kpi.deadline + "T12:00:00+07:00") })].filter(Boolean).join(" · ")),
      );
      const bar = el("div", "kpi-bar");
      const fill = el("span");
      fill.style.width = Math.round(progressOf(kpi) * 100) + "%";
      bar.append(fill);
      text.append(bar);
      const figures = el("div", "kpi-figures");
      figures.append(el("div", "kpi-value", kpi.latest ? measured(kpi.latest.value, kpi.measure) : I.t("kpis.noValue")));
      const value = figures.firstChild;
      value.dataset.metric = `kpis.${kpi.code}.value`;
      value.dataset.value = JSON.stringify(kpi.latest ? kpi.latest.value : null);
      value.tabIndex = 0;
      value.prepend(el("span", "chip " + kpi.status, I.t("status." + kpi.status)));
      figures.append(el("div", "kpi-target", I.t("kpis.target", { target: measured(kpi.target, kpi.measure) })));
      row.append(text, sparkline(kpi), figures);
      box.append(row);
      wantHistory(kpi);
    }
  }

  function sparkline(kpi) {
    const holder = el("div", "spark");
    const history = app.kpiHistory.get(kpi.code);
    const points = history && history.points;
    if (!points || points.length < 2) return holder;
    const width = 120;
    const height = 40;
    const values = points.map((p) => p.value).concat([kpi.target]);
    const min = Math.min(...values);
    const max = Math.max(...values);
    const span = max - min || 1;
    const y = (v) => 4 + (height - 8) * (1 - (v - min) / span);
    const x = (i) => 2 + ((width - 4) * i) / (points.length - 1);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "sparkline", "aria-hidden": "true" });
    chart.append(svg("line", { x1: 0, x2: width, y1: y(kpi.target), y2: y(kpi.target), class: "target" }));
    chart.append(svg("polyline", { points: points.map((p, i) => `${x(i)},${y(p.value)}`).join(" "), class: "line" }));
    const last = points.length - 1;
    chart.append(svg("circle", { cx: x(last), cy: y(points[last].value), r: 3, class: "last" }));
    holder.append(chart);
    return holder;
  }

  const historyQueue = [];
  let historyRunning = 0;

  function wantHistory(kpi) {
    const version = JSON.stringify([kpi.latest, kpi.periods]);
    const known = app.kpiHistory.get(kpi.code);
    if (known && (known.version === version || known.loading === version)) return;
    app.kpiHistory.set(kpi.code, { version: known ? known.version : null, loading: version, points: known && known.points });
    historyQueue.push([kpi.code, version]);
    pumpHistory();
  }

  function pumpHistory() {
    while (historyRunning < 3 && historyQueue.length) {
      const [code, version] = historyQueue.shift();
      historyRunning += 1;
      getJson(`/api/v1/kpis/${encodeURIComponent(code)}/history`)
        .then((body) => {
          app.kpiHistory.set(code, { version, loading: null, points: body.items });
          changed("kpis");
        })
        .catch(() => {
          app.kpiHistory.delete(code);
        })
        .finally(() => {
          historyRunning -= 1;
          pumpHistory();
        });
    }
  }

  function alarmFeedText(item) {
    const data = item.data || {};
    if (item.type === "Alarm.Resolved" && (data.automatic || data.by === "rules")) {
      return I.t("event.Alarm.ResolvedAutomatically");
    }
    const key = "event." + item.type;
    if (!I.has(key)) return item.type;
    return I.t(key, { value: labelOf("cause.", data.cause), by: data.by || "" });
  }

  function feedText(item) {
    const data = item.data || {};
    if (item.type.startsWith("Alarm.")) return alarmFeedText(item);
    const key = "event." + item.type;
    let value = "";
    if (item.type.endsWith(".status")) value = labelOf("value.", data.status);
    else if (item.type === "radio.broadcast.started") value = labelOf("value.", data.kind);
    else if (item.type === "radio.cluster.fault") value = labelOf("value.", data.fault);
    else if (item.type === "camera.alert") value = labelOf("value.", data.category);
    else if (item.type === "dossier.completed") value = labelOf("value.", data.result);
    else if (item.type === "dossier.rated") value = labelOf("value.", data.rating);
    else if (item.type === "kpi.reported") value = I.number(data.value);
    else if (item.type === "kpi.target_revised") value = I.number(data.target);
    else if (item.type === "report.rated") value = labelOf("value.", data.rating);
    if (!I.has(key)) return item.type;
    let text = I.t(key, { value, cluster: data.cluster, period: data.period });
    const name = data.program || data.name || data.procedure_name || data.title;
    if (name) text += ` – ${name}`;
    return text;
  }

  function feedTone(item) {
    const data = item.data || {};
    if (item.type.startsWith("Alarm.")) {
      if (item.type !== "Alarm.Raised") return "ok";
      return data.severity === "critical" ? "bad" : data.severity === "warning" ? "warn" : "";
    }
    if (item.type === "radio.broadcast.started" && data.kind === "emergency") return "bad";
    if (item.type === "camera.alert") return data.severity === "critical" ? "bad" : "warn";
    if (item.type.endsWith(".status")) {
      return data.status === "offline" ? "bad" : data.status === "degraded" ? "warn" : "ok";
    }
    if (item.type === "radio.cluster.fault") return "warn";
    if (item.type === "dossier.completed" || item.type === "report.resolved") return "ok";
    if (item.type === "report.rated" && data.rating === "dissatisfied") return "warn";
    return "";
  }

  function renderFeed() {
    const data = app.states.feed;
    const box = $("feed");
    if (!data) return;
    const items = (data.items || []).slice(0, FEED_SHOWN);
    box.replaceChildren();
    if (!items.length) {
      box.append(el("li", "empty", I.t("feed.none")));
    }
    for (const item of items) {
      const row = el("li", "fitem " + feedTone(item));
      if (!app.firstFeed && !app.seenFeed.has(item.position)) row.classList.add("fresh");
      app.seenFeed.add(item.position);
      row.append(el("time", "ftime", I.time(item.time)));
      const body = el("div", "fbody");
      body.append(el("div", "ftext", feedText(item)));
      const data = item.data || {};
      const subjectKind = item.subject_kind || data.subject_kind;
      const kind = subjectKind ? labelOf("kind.", subjectKind) : "";
      const subject = item.subject || data.subject || "";
      const where = [kind && `${kind} ${subject}`, unitName(item.unit || data.unit)];
      body.append(el("div", "fwhere", where.filter(Boolean).join(" · ")));
      row.append(body);
      box.append(row);
    }
    app.firstFeed = false;
    if (app.seenFeed.size > 5000) app.seenFeed = new Set(items.map((i) => i.position));
  }

  // -- citizens' reports and the map ------------------------------------------------------

  /** Open and overdue reports by category, from the reports topic's items. */
  function reportsByCategory(items) {
    const counts = new Map();
    for (const report of items) {
      let entry = counts.get(report.category);
      if (!entry) {
        entry = { open: 0, overdue: 0 };
        counts.set(report.category, entry);
      }
      entry.open += 1;
      if (report.state === "overdue") entry.overdue += 1;
    }
    return counts;
  }

  function renderReports() {
    const data = app.states.reports;
    const box = $("reports");
    if (!data) return;
    const counts = reportsByCategory(data.items || []);
    box.replaceChildren();
    if (counts.size === 0) {
      box.append(el("p", "empty calm", I.t("reports.none")));
      return;
    }
    const head = el("div", "rrow head");
    head.append(el("span", "rname", I.t("reports.category")), el("span", "", ""), el("span", "rnum", I.t("reports.openByCategory")));
    box.append(head);
    const order = (c) => (CATEGORIES.indexOf(c) < 0 ? CATEGORIES.length : CATEGORIES.indexOf(c));
    const rows = Array.from(counts.entries()).sort(
      (a, b) => b[1].overdue - a[1].overdue || b[1].open - a[1].open || order(a[0]) - order(b[0]),
    );
    const most = Math.max(...rows.map(([, c]) => c.open));
    for (const [category, count] of rows) {
      const row = el("div", "rrow");
      row.dataset.category = category;
      row.dataset.open = String(count.open);
      row.dataset.overdue = String(count.overdue);
      const bar = el("span", "rbar");
      const late = el("span", "late");
      late.style.width = (100 * count.overdue) / most + "%";
      const on = el("span", "on");
      on.style.width = (100 * (count.open - count.overdue)) / most + "%";
      bar.append(late, on);
      const numbers = el("span", "rnum");
      numbers.append(el("b", "", I.number(count.open)));
      if (count.overdue) numbers.append(" · ", el("span", "bad", I.number(count.overdue)));
      row.append(el("span", "rname", labelOf("category.", category)), bar, numbers);
      box.append(row);
    }
  }

  /** Whether the unit `code` is `scope` or below it. */
  function within(code, scope) {
    let current = code;
    const seen = new Set();
    while (current && !seen.has(current)) {
      if (current === scope) return true;
      seen.add(current);
      const unit = app.units.get(current);
      current = unit ? unit.parent : null;
    }
    return false;
  }

  function placed(item) {
    return typeof item.lat === "number" && typeof item.lon === "number";
  }

  /** The convex hull of points [x, y] (monotone chain), counter-clockwise. */
  function hull(points) {
    const sorted = points.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    if (sorted.length < 3) return sorted;
    const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    const lower = [];
    for (const p of sorted) {
      while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], p) <= 0) lower.pop();
      lower.push(p);
    }
    const upper = [];
    for (const p of sorted.reverse()) {
      while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], p) <= 0) upper.pop();
      upper.push(p);
    }
    return lower.slice(0, -1).concat(upper.slice(0, -1));
  }

  function polygon(points, className, extra) {
    return svg("polygon", Object.assign({ points: points.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" "), class: className }, extra || {}));
  }

  /** The units of the scope with a centroid, devices and open reports on an SVG of the
   * province (an equirectangular view fitted to the scope's units). */
  function renderMap() {
    const box = $("map");
    const scope = app.scope || (app.root && app.root.code);
    const units = Array.from(app.units.values()).filter((u) => placed(u) && (!scope || within(u.code, scope)));
    const devices = ((app.states.devices && app.states.devices.items) || []).filter(placed);
    const reports = ((app.states.reports && app.states.reports.items) || []).filter(placed);
    if (!units.length) {
      box.replaceChildren(el("p", "empty", I.t("map.noUnits")));
      return;
    }
    const width = Math.max(200, Math.round(box.clientWidth || 600));
    const height = Math.max(160, Math.round(box.clientHeight || 400));
    const everything = units.concat(devices, reports);
    const lats = everything.map((p) => p.lat);
    const lons = everything.map((p) => p.lon);
    const minLat = Math.min(...lats);
    const maxLat = Math.max(...lats);
    const minLon = Math.min(...lons);
    const maxLon = Math.max(...lons);
    const squeeze = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
    const spanX = Math.max((maxLon - minLon) * squeeze, 0.02);
    const spanY = Math.max(maxLat - minLat, 0.02);
    const pad = 14;
    const scale = Math.min((width - 2 * pad) / spanX, (height - 2 * pad) / spanY);
    const offsetX = (width - spanX * scale) / 2;
    const offsetY = (height - spanY * scale) / 2;
    const at = (p) => [
      offsetX + ((p.lon - minLon) * squeeze + (spanX - (maxLon - minLon) * squeeze) / 2) * scale,
      offsetY + (maxLat - p.lat + (spanY - (maxLat - minLat)) / 2) * scale,
    ];
    const map = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "mapsvg" });
    const title = svg("title", {});
    title.textContent = I.t("map.title", { name: unitName(scope) });
    map.append(title);
    const outline = hull(units.map(at));
    if (outline.length >= 3) {
      map.append(polygon(outline, "province", { "stroke-width": 34 }));
      map.append(polygon(outline, "outline", { "stroke-width": 1.5 }));
    }
    // districts (the scope's children with units below them) as soft areas, with labels
    const areas = new Map();
    for (const unit of units) {
      const group = groupOf(unit.code, scope);
      if (group === scope) continue;
      if (!areas.has(group)) areas.set(group, []);
      areas.get(group).push(at(unit));
    }
    const labels = [];
    for (const [code, points] of areas) {
      if (points.length >= 3) map.append(polygon(hull(points), "district", { "data-unit": code }));
      const cx = points.reduce((a, p) => a + p[0], 0) / points.length;
      const cy = points.reduce((a, p) => a + p[1], 0) / points.length;
      if (points.length >= 3 || areas.size <= 12) labels.push([code, cx, cy]);
    }
    for (const unit of units) {
      const [x, y] = at(unit);
      map.append(svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 2.2, class: "unit", "data-kind": "unit", "data-code": unit.code }));
    }
    // devices: working ones first, offline ones on top and larger
    const rankOf = { online: 0, unknown: 1, degraded: 2, offline: 3 };
    const sortedDevices = devices.slice().sort((a, b) => (rankOf[a.status || "unknown"] || 0) - (rankOf[b.status || "unknown"] || 0));
    let offline = 0;
    for (const device of sortedDevices) {
      const status = device.status || "unknown";
      const [x, y] = at(device);
      const dot = svg("circle", {
        cx: x.toFixed(1),
        cy: y.toFixed(1),
        r: status === "offline" ? 3.8 : 1.9,
        class: `dev ${status}`,
        "data-kind": device.kind,
        "data-code": device.code,
        "data-state": status,
      });
      if (status === "offline") {
        offline += 1;
        const name = svg("title", {});
        name.textContent = `${device.name} – ${labelOf("value.", status)}`;
        dot.append(name);
      }
      map.append(dot);
    }
    // open reports as diamonds, overdue ones on top, red, with a halo
    let overdue = 0;
    const sortedReports = reports.slice().sort((a, b) => (a.state === "overdue") - (b.state === "overdue"));
    for (const report of sortedReports) {
      const [x, y] = at(report);
      const late = report.state === "overdue";
      const size = late ? 5 : 3.6;
      if (late) {
        overdue += 1;
        map.append(svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 8, class: "halo" }));
      }
      const mark = svg("path", {
        d: `M${x.toFixed(1)} ${(y - size).toFixed(1)}l${size} ${size}l${-size} ${size}l${-size} ${-size}z`,
        class: `rep ${report.state}`,
        "data-kind": "report",
        "data-code": report.code,
        "data-state": report.state,
      });
      const name = svg("title", {});
      name.textContent = `${report.title} – ${labelOf("reportState.", report.state)}`;
      mark.append(name);
      map.append(mark);
    }
    for (const [code, x, y] of labels) {
      const text = svg("text", { x: x.toFixed(1), y: (y + 4).toFixed(1), class: "label" });
      text.textContent = unitName(code);
      map.append(text);
    }
    box.replaceChildren(map);
    const note = $("map-note");
    note.textContent = I.t("map.note", {
      units: I.number(units.length),
      devices: I.number(devices.length),
      offline: I.number(offline),
      reports: I.number(reports.length),
      overdue: I.number(overdue),
    });
    Object.assign(note.dataset, {
      units: String(units.length),
      devices: String(devices.length),
      offline: String(offline),
      reports: String(reports.length),
      overdue: String(overdue),
    });
  }

  function renderFooter() {
    const positions = Object.values(app.positions);
    $("position").textContent = positions.length ? I.t("footer.position", { position: I.number(Math.max(...positions)) }) : "";
    $("updated").textContent = app.lastFrameAt ? I.t("footer.updated", { time: I.time(app.lastFrameAt) }) : "";
  }

  const RENDER = {
    overview: renderOverview,
    devices: () => {
      renderDevices();
      renderMap();
    },
    alarms: renderAlarms,
    services: () => {
      renderServices();
      renderIndex();
    },
    kpis: renderKpis,
    feed: renderFeed,
    reports: () => {
      renderReports();
      renderMap();
    },
  };

  // -- texts, clock, scope --------------------------------------------------------------

  function applyTexts() {
    document.documentElement.lang = I.lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = I.t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.placeholder = I.t(node.dataset.i18nPlaceholder);
    }
    $("lang").title = I.t("lang.switchTitle");
    document.title = I.t("app.title");
    renderProvince();
    fillScopes();
    tick();
    if (app.connection !== "reconnecting") setConnection(app.connection);
    const auth = $("auth");
    if (!auth.hidden) $("auth-message").textContent = I.t("auth." + auth.dataset.reason);
    renderAll();
    renderReplay();
    if (!$("lineage").hidden) renderLineage();
  }

  function renderProvince() {
    const root = app.root;
    $("province").textContent = root ? ((I.lang === "en" && root.name_en) || root.name) : "";
    $("demo").hidden = !app.demo;
  }

  function fillScopes() {
    const select = $("scope");
    const current = app.scope;
    select.replaceChildren();
    const all = el("option", "", I.t("scope.all"));
    all.value = "";
    select.append(all);
    const depth = (unit) => {
      let d = 0;
      let u = unit;
      while (u && u.parent && d < 5) {
        d += 1;
        u = app.units.get(u.parent);
      }
      return d;
    };
    const add = (parent) => {
      for (const unit of app.units.values()) {
        if (unit.parent !== parent) continue;
        const option = el("option", "", "\u00a0\u00a0".repeat(depth(unit) - 1) + unitName(unit.code));
        option.value = unit.code;
        select.append(option);
        add(unit.code);
      }
    };
    if (app.root) add(app.root.code);
    select.value = current;
    if (select.value !== current) select.value = "";
  }

  function tick() {
    const now = new Date();
    $("clock-time").textContent = I.time(now);
    $("clock-date").textContent = I.clock(now);
  }

  function changeScope(code) {
    if (code === app.scope) return;
    app.scope = code;
    storage("set", SCOPE_KEY, code);
    const url = new URL(window.location.href);
    if (code) url.searchParams.set("unit", code);
    else url.searchParams.delete("unit");
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
    app.states = {};
    app.positions = {};
    app.firstFeed = true;
    if (app.replay) backToLive();
    for (const name of Object.keys(TOPICS)) subscribe(name, false);
  }

  // -- the key screen -------------------------------------------------------------------

  function showAuth(reason) {
    disconnect();
    setConnection("offline");
    const auth = $("auth");
    auth.dataset.reason = reason;
    $("auth-message").textContent = I.t("auth." + reason);
    auth.hidden = false;
    document.body.classList.add("locked");
    $("auth-token").value = "";
    $("auth-token").focus();
  }

  function hideAuth() {
    $("auth").hidden = true;
    document.body.classList.remove("locked");
  }

  // -- start ----------------------------------------------------------------------------

  async function start() {
    if (!token()) {
      showAuth("missing");
      return;
    }
    const status = await probe();
    if (status === 401 || status === 403) {
      showAuth("refused");
      return;
    }
    if (status === 0 || status >= 500) {
      showAuth("unavailable");
      setTimeout(() => {
        if ($("auth").dataset.reason === "unavailable") {
          hideAuth();
          start();
        }
      }, 5000);
      return;
    }
    hideAuth();
    try {
      const [units, agencies] = await Promise.all([getJson("/api/v1/units"), getJson("/api/v1/agencies")]);
      app.units = new Map(units.items.map((u) => [u.code, u]));
      app.agencies = new Map(agencies.items.map((a) => [a.code, a]));
      app.root = units.items.find((u) => !u.parent) || null;
      app.demo = Boolean(units.demo);
      if (app.scope && !app.units.has(app.scope)) app.scope = "";
    } catch (error) {
      console.warn("ops-room: reference data unavailable", error);
    }
    app.canAct = await mayActOnAlarms();
    applyTexts();
    connect();
  }

  /** Whether the key may acknowledge and resolve alarms (operator or admin), from
   * GET /api/v1/me. A 403 on a real action hides the buttons as well. */
  async function mayActOnAlarms() {
    try {
      const response = await fetch("/api/v1/me", { headers: authHeaders() });
      if (!response.ok) return false;
      const me = await response.json();
      return Array.isArray(me.may) && me.may.includes("act");
    } catch (_e) {
      return true;
    }
  }

  function init() {
    readAddress();
    $("lang").addEventListener("click", () => {
      I.setLanguage(I.lang === "vi" ? "en" : "vi");
      applyTexts();
    });
    $("scope").addEventListener("change", (event) => changeScope(event.target.value));
    $("replay-open").addEventListener("click", openReplay);
    $("replay-play").addEventListener("click", playPause);
    $("replay-live").addEventListener("click", backToLive);
    $("replay-at").addEventListener("change", (event) => replayFrom(event.target.value));
    $("replay-speed").addEventListener("change", () => {
      if (app.replay && app.replay.time) replayFrom(app.replay.time);
    });
    // every figure opens where it comes from
    document.addEventListener("click", (event) => {
      const node = event.target.closest("[data-metric]");
      if (node && $("lineage").hidden) openLineage(node);
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !$("lineage").hidden) closeLineage();
      if (event.key === "Enter" && event.target.closest && event.target.closest("[data-metric]")) {
        openLineage(event.target.closest("[data-metric]"));
      }
    });
    $("lineage-close").addEventListener("click", closeLineage);
    $("lineage").addEventListener("click", (event) => {
      if (event.target === $("lineage")) closeLineage();
    });
    $("lineage-more").addEventListener("click", () => loadLineage());
    for (const node of document.querySelectorAll("[data-metric]")) node.tabIndex = 0;
    $("auth-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("auth-token").value.trim();
      if (!value) return;
      memoryToken = value;
      storage("set", TOKEN_KEY, value);
      app.canAct = true;
      start();
    });
    $("forget").addEventListener("click", () => {
      storage("remove", TOKEN_KEY);
      memoryToken = null;
      showAuth("missing");
    });
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        changed("services");
        changed("reports");
      }, 150);
    });
    // back on the network: reconnect now rather than at the end of the backoff
    window.addEventListener("online", () => {
      if (!socket && token() && $("auth").hidden) {
        attempt = 0;
        connect();
      }
    });
    setInterval(tick, 1000);
    setInterval(() => changed("alarms"), 30000);
    applyTexts();
    start();
  }

  window.opsRoom = {
    get connection() {
      return app.connection;
    },
    get states() {
      return app.states;
    },
    get positions() {
      return app.positions;
    },
    /** The lineage shown: the request and the items loaded so far. */
    get lineage() {
      return { request: lineage.request, items: lineage.items, next: lineage.next };
    },
    /** The replay shown instead of the live overview (null: live). */
    get replay() {
      return app.replay;
    },
    /** Frames received by op and topic (snapshots, deltas). */
    get counts() {
      return app.counts;
    },
    applyDelta,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
