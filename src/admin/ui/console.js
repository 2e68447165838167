// The scaler console: the cluster, its zones and every decision, live.
//
// Data: GET /status (this node), /cluster (the election's nodes, Redis),
// /zones (servers as scalerd and as each balancer see them), /history (the
// zone's metric and server count over the last hour) and /events (the
// decisions, from the Redis stream: ?last=N once, then long-polled with
// ?after=ID&wait=S). Every call sends the token, when one was given, as a
// bearer header; the token lives in this tab's sessionStorage only.
// Everything the server says is inserted as text (textContent), never as
// markup; the page runs under Content-Security-Policy default-src 'self'.
"use strict";
(() => {
  const TOKEN_KEY = "scaler-console-token";
  const POLL_ZONES = 1000, POLL_STATUS = 2000, POLL_CLUSTER = 5000, POLL_WAIT = 20;
  const TIMELINE_MAX = 100, RECENT_MAX = 10;

  const st = {
    token: sessionStorage.getItem(TOKEN_KEY),
    access: null,          // GET /ui/auth: how reads and actions are guarded
    status: null, cluster: null, zones: null,
    zone: null,            // the zone shown
    metric: 0,             // index of the metric charted
    history: null,         // /history of the shown zone
    historyStarted: null,  // its start, to notice that it started again
    timeline: [],          // events of the shown zone, oldest first
    recent: [],            // the latest events of every zone, oldest first
    after: null,           // stream id the long poll reads after
    pending: null,         // an action waiting for the token
    live: null,
    drainArmed: null,
  };
  const $ = (id) => document.getElementById(id);

  // ---- helpers ---------------------------------------------------------------

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function clock(t) {
    if (!Number.isFinite(t)) return "–";
    const d = new Date(t * 1000);
    return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }
  function ago(t) {
    if (!Number.isFinite(t) || t <= 0) return "–";
    const s = Math.max(0, Date.now() / 1000 - t);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return (s / 3600).toFixed(1) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }
  function dur(s) {
    if (!Number.isFinite(s)) return "–";
    if (s < 90) return s.toFixed(s < 10 ? 1 : 0) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function num(v, digits) {
    if (v === null || v === undefined || !Number.isFinite(Number(v))) return "–";
    const n = Number(v);
    return digits === undefined ? String(n) : n.toFixed(digits);
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // state words → how they read: ok, warn, bad, off (written and coloured)
  const TONE = Object.assign(Object.create(null), {
    serving: "ok", alive: "ok", primary: "ok", reachable: "ok",
    starting: "warn", pending: "warn", disconnected: "warn", electing: "warn",
    deleting: "off", backup: "off", draining: "off", ejected: "bad", dead: "bad",
    unreachable: "bad",
  });
  function stateCell(word, extra) {
    const td = el("td");
    const s = el("span", word, "state s-" + (TONE[word] || "off"));
    td.appendChild(s);
    if (extra) td.appendChild(el("span", " " + extra, "note"));
    return td;
  }

  // ---- the API ---------------------------------------------------------------

  async function api(path, opts) {
    opts = opts || {};
    const headers = { Accept: "application/json" };
    const token = opts.token !== undefined ? opts.token : st.token;
    if (token) headers.Authorization = "Bearer " + token;
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    let r;
    try {
      r = await fetch(path, {
        method: opts.method || "GET", headers, cache: "no-store", credentials: "omit",
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      });
    } catch (e) {
      setLive(false, "scalerd does not answer: " + e);
      throw e;
    }
    if (r.status !== 502 && r.status !== 503) setLive(true);
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    return { status: r.status, body };
  }
  function errorOf(r) {
    return (r.body && typeof r.body.error === "string") ? r.body.error : "HTTP " + r.status;
  }
  function canRead() {
    return st.access && (st.access.reads !== "token" || st.token);
  }

  // ---- the token -------------------------------------------------------------

  function askToken(why, action) {
    st.pending = action || null;
    $("token-why").textContent = why;
    $("token-error").textContent = "";
    $("token-panel").hidden = false;
    $("token").value = "";
    $("token").focus();
  }
  function tokenPill() {
    const b = $("btn-token");
    b.textContent = st.token ? "Forget token" : "Enter token";
  }
  async function submitToken(ev) {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (!t) { $("token-error").textContent = "Enter the token."; return; }
    const action = st.pending;
    if (action) {
      // the action itself tells whether the token is good
      const r = await action.run(t);
      if (r.status === 401 || r.status === 403) {
        $("token-error").textContent = "The token was refused (" + errorOf(r) + "); nothing changed.";
        return;
      }
      keepToken(t);
      action.done(r);
    } else {
      const r = await api("/status", { token: t });
      if (r.status === 401 || r.status === 403) {
        $("token-error").textContent = "The token was refused (" + errorOf(r) + ").";
        return;
      }
      keepToken(t);
      refreshAll();
    }
  }
  function keepToken(t) {
    st.token = t;
    sessionStorage.setItem(TOKEN_KEY, t);
    st.pending = null;
    $("token-panel").hidden = true;
    tokenPill();
  }
  function forgetToken() {
    st.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    tokenPill();
    if (st.access && st.access.reads === "token") askToken("This scalerd shows nothing without its token.");
  }

  // An action: with the token now, or once it is given.
  function act(what, method, path, body) {
    const run = (token) => api(path, { method, body, token });
    const done = (r) => {
      const out = $("action-result");
      if (r.status >= 200 && r.status < 300) {
        out.textContent = what + ": done.";
        refreshAll();
      } else {
        let msg = what + " refused: " + errorOf(r);
        if (r.body && r.body.primary) msg += " (the primary is " + r.body.primary + ")";
        if (r.body && Array.isArray(r.body.errors)) msg += ": " + r.body.errors.join("; ");
        out.textContent = msg;
      }
    };
    if (st.access && st.access.actions === "token" && !st.token) {
      askToken(what + " needs the token of this scalerd.", { run, done });
      return;
    }
    run(st.token).then((r) => {
      if (r.status === 401 || r.status === 403) askToken(what + " needs the token of this scalerd.", { run, done });
      else done(r);
    }, (e) => { $("action-result").textContent = what + " failed: " + e; });
  }

  // ---- the cluster -----------------------------------------------------------

  function renderStatus() {
    const s = st.status;
    if (!s) return;
    const n = s.node || {};
    $("node-id").textContent = n.id || "?";
    const role = $("node-role");
    role.textContent = n.role || "?";
    role.className = "pill " + (n.role === "primary" ? "ok" : "off");
    $("node-epoch").textContent = num(n.epoch);
    const p = n.primary;
    $("c-primary").textContent = p ? "node " + p.id : "none known";
    $("c-primary-sub").textContent = p ? p.url + " · epoch " + p.epoch : "no primary elected yet";
    const c = s.config || {};
    $("c-config").textContent = c.path || "?";
    $("c-config-sub").textContent = "loaded " + clock(c.loaded_at) + " (" + ago(c.loaded_at) + ")" +
      " · " + num(c.reloads) + " reloads, " + num(c.reload_failures) + " refused";
    const e = s.election || {};
    $("c-election").textContent = (e.plugin || "?") + " · " + (e.state || "?");
    let sub = "last transition " + clock(e.last_transition) + " (" + ago(e.last_transition) + ")";
    if (e.lease && e.lease.holder) sub += " · lease of node " + e.lease.holder + ", " + dur(e.lease.remaining) + " left";
    $("c-election-sub").textContent = sub;
    const tb = $("plugins").tBodies[0];
    clear(tb);
    for (const pl of s.plugins || []) {
      if (!pl) continue;
      const tr = el("tr");
      tr.append(el("td", pl.kind), el("td", pl.name), el("td", pl.version));
      tb.appendChild(tr);
    }
    const backup = n.role !== "primary";
    const note = $("backup-note");
    note.hidden = !backup;
    note.textContent = backup
      ? "This node is a backup: the zones below come from the primary" +
        (p ? " (node " + p.id + ", " + p.url + ")" : "") +
        ", through this node. Pins and drains are the primary's to do."
      : "";
  }

  function renderCluster() {
    const c = st.cluster;
    if (!c) return;
    const tb = $("nodes").tBodies[0];
    clear(tb);
    for (const n of c.nodes || []) {
      const tr = el("tr");
      const who = el("td", n.id + (n.self ? " (this node)" : ""));
      who.appendChild(el("div", n.url, "note"));
      tr.appendChild(who);
      let word = n.role || (n.reachable ? "?" : "unreachable");
      if (!n.reachable) word = "unreachable";
      tr.appendChild(stateCell(word, n.error ? n.error : (n.state && n.state !== n.role ? "election: " + n.state : "")));
      tr.appendChild(el("td", num(n.epoch), "num"));
      tr.appendChild(el("td", n.last_transition ? clock(n.last_transition) : "–"));
      tb.appendChild(tr);
    }
    const me = (c.nodes || []).find((n) => n.self) || {};
    const r = $("c-redis");
    r.textContent = me.redis ? "reachable" : "unreachable";
    r.className = "value state s-" + (me.redis ? "ok" : "bad");
    const others = (c.nodes || []).filter((n) => !n.self && n.reachable && n.redis === false);
    $("c-redis-sub").textContent = "from this node" +
      (others.length ? "; not from node " + others.map((n) => n.id).join(", ") : "");
  }

  // ---- zones -----------------------------------------------------------------

  function zoneLoad(z) {
    let sum = 0, n = 0;
    for (const s of z.servers || []) if (Number.isFinite(s.metric)) { sum += s.metric; n++; }
    return n ? sum / n : NaN;
  }
  function countState(z, state) { return (z.servers || []).filter((s) => s.state === state).length; }
  function decisionText(d) {
    if (!d) return "–";
    return d.kind.replace(/_/g, " ") + " " + d.from + " → " + d.to + ", " + ago(d.time);
  }

  function renderZones() {
    const tb = $("zones").tBodies[0];
    clear(tb);
    for (const z of st.zones || []) {
      const tr = el("tr");
      if (z.name === st.zone) tr.className = "selected";
      const td = el("td");
      const b = el("button", z.name, "linkish");
      b.type = "button";
      b.setAttribute("aria-label", "show zone " + z.name);
      b.addEventListener("click", () => selectZone(z.name, true));
      td.appendChild(b);
      if (z.dry_run) td.appendChild(el("span", " dry run", "note"));
      tr.appendChild(td);
      const serving = countState(z, "serving"), all = (z.servers || []).length;
      tr.appendChild(el("td", serving === all ? String(all) : all + " (" + serving + " serving)", "num"));
      tr.appendChild(el("td", z.min + "–" + z.max, "num"));
      tr.appendChild(el("td", num(zoneLoad(z), 1), "num"));
      tr.appendChild(el("td", decisionText(z.last_decision), "wrap"));
      tb.appendChild(tr);
    }
    if (!st.zone && st.zones && st.zones.length) selectZone(fromHash() || st.zones[0].name, false);
    renderZone();
  }

  function fromHash() {
    const m = /^#zone=(.+)$/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : null;
  }

  function selectZone(name, focus) {
    if (!(st.zones || []).some((z) => z.name === name)) name = st.zones[0].name;
    const changed = name !== st.zone;
    st.zone = name;
    if (changed) {
      history.replaceState(null, "", "#zone=" + encodeURIComponent(name));
      st.history = null;
      st.historyStarted = null;
      st.metric = 0;
      st.timeline = [];
      loadTimeline();
      loadHistory();
    }
    renderZones();
    if (focus) $("zone").focus();
  }

  function currentZone() { return (st.zones || []).find((z) => z.name === st.zone); }

  function flag(list, cls, title, text) {
    const li = el("li", null, cls);
    li.appendChild(el("b", title + ": "));
    li.appendChild(document.createTextNode(text));
    list.appendChild(li);
  }

  function renderZone() {
    const z = currentZone();
    $("zone").hidden = !z;
    if (!z) return;
    $("z-name").textContent = z.name;
    const facts = $("z-facts");
    clear(facts);
    const fact = (k, v) => { const li = el("li", k + " "); li.appendChild(el("b", v)); facts.appendChild(li); };
    fact("servers", String((z.servers || []).length) + " of " + z.min + "–" + z.max);
    fact("policy", z.policy || "?");
    fact("metrics", (z.metrics || []).map((m) => m.name + " (" + m.plugin + ")").join(", ") || "?");
    fact("every", dur(z.interval));
    fact("listen", (z.tls ? "https://" : "") + z.listen);
    const pids = z.balancer_pids || [];
    if (pids.length) fact("balancer workers", pids.length + (z.balancer_restarts ? ", " + z.balancer_restarts + " restarts" : ""));

    const flags = $("z-flags");
    clear(flags);
    const d = z.last_decision;
    if (d) {
      const word = d.kind === "hold" ? "Holding" : d.kind.replace(/_/g, " ");
      flag(flags, d.kind === "hold" ? "f-warn" : "f-info", word + " (" + ago(d.time) + ")", d.reason + (d.rule ? " [" + d.rule + "]" : ""));
    }
    if (z.pinned) {
      const until = z.pinned.until ? "until " + clock(z.pinned.until) + " (" + dur(z.pinned.until - Date.now() / 1000) + " left)" : "until unpinned";
      const why = [...st.timeline].reverse().find((e) => e.kind === "pin");
      flag(flags, "f-warn", "Pinned", "at " + z.pinned.count + " servers " + until + (why ? " — " + why.reason : ""));
    }
    if (z.cooldown_remaining > 0) flag(flags, "f-warn", "Cooldown", dur(z.cooldown_remaining) + " left before the next scale action");
    if (z.woken) flag(flags, "f-info", "Woken from zero", "at least one server for " + dur(z.woken) + " more");
    const bal = z.balancer || {};
    if (bal.held) flag(flags, "f-warn", "Held requests", bal.held + " waiting at the balancer for a server");
    if (z.dry_run) flag(flags, "f-info", "Dry run", "decisions are recorded, no server is created or deleted");
    if (bal.reachable === false) flag(flags, "f-bad", "Balancer", "unreachable at " + z.admin + ": " + (bal.error || "no answer"));

    const pc = $("pin-count");
    pc.min = z.min; pc.max = z.max;
    if (!pc.value || document.activeElement !== pc) pc.value = z.pinned ? z.pinned.count : (z.servers || []).length;
    $("btn-unpin").disabled = !z.pinned;

    renderServers(z);
    renderChart();
  }

  function renderServers(z) {
    const tb = $("servers").tBodies[0];
    clear(tb);
    const now = Date.now() / 1000;
    const row = (id, addr, mine, b) => {
      const tr = el("tr");
      tr.appendChild(el("td", id));
      tr.appendChild(el("td", addr));
      tr.appendChild(mine ? stateCell(mine.state) : el("td", "not in scalerd's view", "note"));
      if (b) {
        let word = b.state || "?", extra = "";
        if (b.ejected_until && b.ejected_until > now) { word = "ejected"; extra = "for " + dur(b.ejected_until - now); }
        else if (Number.isFinite(b.weight) && b.weight < 1 && word === "alive") extra = "slow start " + Math.round(b.weight * 100) + " %";
        tr.appendChild(stateCell(word, extra));
        const f = el("td", num(b.consecutive_failures), "num");
        if (b.last_error) f.title = b.last_error;
        tr.appendChild(f);
        tr.appendChild(el("td", num(b.requests_served), "num"));
        tr.appendChild(el("td", num(b.in_flight !== undefined ? b.in_flight : b.active_connections), "num"));
        tr.appendChild(el("td", num(b.rps, 1), "num"));
      } else {
        tr.appendChild(el("td", (z.balancer && z.balancer.reachable === false) ? "unknown" : "not in the balancer", "note"));
        for (let i = 0; i < 4; i++) tr.appendChild(el("td", "–", "num"));
      }
      tr.appendChild(el("td", mine ? num(mine.metric, 1) : "–", "num"));
      const td = el("td");
      if (mine && mine.state === "serving") {
        const armed = st.drainArmed && st.drainArmed.id === id && st.drainArmed.until > Date.now();
        const btn = el("button", armed ? "Confirm drain" : "Drain", "small danger");
        btn.type = "button";
        btn.setAttribute("aria-label", (armed ? "confirm: drain " : "drain ") + id);
        btn.addEventListener("click", () => {
          if (armed) {
            st.drainArmed = null;
            act("Drain " + id, "POST", "/drain", { zone: z.name, server: id });
          } else {
            st.drainArmed = { id, until: Date.now() + 5000 };
            setTimeout(renderZone, 5100);
          }
          renderZone();
        });
        td.appendChild(btn);
      }
      tr.appendChild(td);
      tb.appendChild(tr);
    };
    for (const s of z.servers || []) row(s.id, s.address, s, s.balancer);
    for (const b of (z.balancer && z.balancer.others) || []) row("(static)", b.url, null, b);
    const bal = z.balancer || {};
    $("balancer-note").textContent = bal.reachable
      ? "Balancer at " + z.admin + (bal.stats_window ? "; requests per second over the last " + bal.stats_window + " s" : "") + "."
      : "";
  }

  // ---- the chart -------------------------------------------------------------

  function renderChart() {
    const h = st.history, z = currentZone();
    if (!h || !z) return;
    const metrics = h.metrics || [];
    if (st.metric >= metrics.length) st.metric = 0;
    const pick = $("metric-pick");
    if (pick.childNodes.length !== (metrics.length > 1 ? metrics.length : 0)) {
      clear(pick);
      if (metrics.length > 1) metrics.forEach((m, i) => {
        const b = el("button", m.name, "small ghost");
        b.type = "button";
        b.addEventListener("click", () => { st.metric = i; renderChart(); });
        pick.appendChild(b);
      });
    }
    pick.childNodes.forEach((b, i) => b.setAttribute("aria-pressed", String(i === st.metric)));
    const m = metrics[st.metric] || { name: "metric", unit: "" };
    const guides = (h.guides || []).filter((g) => g.metric === m.name);
    const now = Date.now() / 1000;
    ScalerChart.draw($("chart"), { points: h.points, index: st.metric, guides, now, span: h.span || 3600,
                                   started: h.started, max: z.max });
    const legend = $("chart-legend");
    clear(legend);
    const item = (sw, text) => { const s = el("span"); s.appendChild(el("span", null, "swatch " + sw)); s.appendChild(document.createTextNode(text)); legend.appendChild(s); };
    item("metric", m.name + (m.unit ? " (" + m.unit + ")" : "") + ", zone average — left axis");
    item("servers", "servers — right axis");
    for (const g of guides) if (g.name !== "tolerance") item("guide", g.name + " " + num(g.value));
    if (guides.some((g) => g.name === "tolerance")) item("guide", "tolerance band");
    const last = h.points.length ? h.points[h.points.length - 1] : null;
    $("chart").setAttribute("aria-label", "Chart of " + m.name + " and the server count over the last hour" +
      (last ? "; now " + num(last[2 + st.metric], 1) + (m.unit ? " " + m.unit : "") + " with " + last[1] + " servers" : ""));
    const note = $("history-note");
    if (h.started) {
      note.textContent = "Metric history since " + clock(h.started) + " (" + ago(h.started) + "): " +
        (h.why || "this node became primary") + ", and scalerd keeps it in memory only. " +
        "The decisions below come from the event stream in Redis.";
    } else {
      note.textContent = "No metric history yet: it starts with this primary's first evaluation of the zone.";
    }
  }

  function mergeHistory(h) {
    if (!st.history || h.started !== st.history.started) {
      if (st.historyStarted && h.started && h.started !== st.historyStarted) {
        // a restart or a failover: the history started again; reload the timeline from Redis
        $("action-result").textContent = "";
        loadTimeline();
        loadRecent();
      }
      st.history = h;
      if (h.started) st.historyStarted = h.started;
      return;
    }
    const pts = st.history.points;
    for (const p of h.points) {
      while (pts.length && Math.floor(pts[pts.length - 1][0]) >= Math.floor(p[0])) pts.pop();
      pts.push(p);
    }
    const cut = Date.now() / 1000 - (h.span || 3600);
    while (pts.length && pts[0][0] < cut) pts.shift();
    Object.assign(st.history, h, { points: pts });
  }

  async function loadHistory() {
    if (!st.zone || !canRead()) return;
    const zone = st.zone;
    const last = st.history && st.history.points.length ? st.history.points[st.history.points.length - 1][0] - 1 : 0;
    const q = "/history?zone=" + encodeURIComponent(zone) + (last > 0 ? "&since=" + last : "");
    const r = await api(q);
    if (zone !== st.zone || r.status !== 200 || !r.body || !r.body.zones) return;
    const h = r.body.zones[0];
    if (!h) return;
    mergeHistory(h);
    renderChart();
  }

  // ---- the timeline ------------------------------------------------------------

  const KIND = Object.assign(Object.create(null), {
    scale_up: "k-up", fill: "k-up", wake: "k-up", scale_down: "k-down", hold: "k-hold",
    replace: "k-bad", eject: "k-bad", drain: "k-down", pin: "k-hold", unpin: "k-hold" });

  function renderTimeline() {
    const ol = $("timeline");
    clear(ol);
    if (!st.timeline.length) { ol.appendChild(el("li", "No decision recorded for this zone yet.", "empty")); return; }
    for (let i = st.timeline.length - 1; i >= 0; i--) {
      const e = st.timeline[i];
      const li = el("li", null, KIND[e.kind] || "");
      li.appendChild(el("span", clock(e.time), "when"));
      li.appendChild(el("span", String(e.kind || "?").replace(/_/g, " "), "kind"));
      li.appendChild(el("span", num(e.from) + " → " + num(e.to), "change"));
      li.appendChild(el("span", e.reason, "reason"));
      const meta = [];
      if (e.rule) meta.push("rule " + e.rule);
      if (e.server) meta.push("server " + e.server);
      if (e.node) meta.push("node " + e.node + ", epoch " + e.epoch);
      if (st.zone !== e.zone) meta.push("zone " + e.zone);
      if (meta.length) li.appendChild(el("span", meta.join(" · "), "meta"));
      ol.appendChild(li);
    }
  }

  function renderRecent() {
    const ol = $("recent");
    clear(ol);
    for (let i = st.recent.length - 1; i >= 0; i--) {
      const e = st.recent[i];
      const li = el("li");
      li.appendChild(el("span", clock(e.time), "when"));
      li.appendChild(el("span", e.zone, "zone"));
      li.appendChild(document.createTextNode(String(e.kind || "?").replace(/_/g, " ") + " " + num(e.from) +
                                             " → " + num(e.to) + ": " + e.reason));
      ol.appendChild(li);
    }
    if (!st.recent.length) ol.appendChild(el("li", "No decision recorded yet.", "note"));
  }

  async function loadRecent() {
    const r = await api("/events?last=" + RECENT_MAX);
    if (r.status !== 200 || !r.body) return;
    st.recent = r.body.events || [];
    if (!st.after) st.after = r.body.last;
    renderRecent();
  }

  async function loadTimeline() {
    if (!st.zone || !canRead()) return;
    const zone = st.zone;
    const r = await api("/events?zone=" + encodeURIComponent(zone) + "&last=" + TIMELINE_MAX);
    if (zone !== st.zone || r.status !== 200 || !r.body) return;
    st.timeline = r.body.events || [];
    if (!st.after) st.after = r.body.last;
    renderTimeline();
    renderZone();
  }

  // The long poll: every zone's events as they are written.
  async function follow() {
    for (;;) {
      if (!canRead()) { await sleep(500); continue; }
      try {
        if (!st.after) {
          const r = await api("/events?last=1");
          if (r.status !== 200) throw new Error(errorOf(r));
          st.after = r.body.last;
        }
        const r = await api("/events?after=" + encodeURIComponent(st.after) + "&wait=" + POLL_WAIT);
        if (r.status !== 200 || !r.body) throw new Error(errorOf(r));
        st.after = r.body.last || st.after;
        const seen = new Set(st.timeline.map((e) => e.id));
        const mine = (r.body.events || []).filter((e) => e.zone === st.zone && !seen.has(e.id));
        if (mine.length) {
          st.timeline = st.timeline.concat(mine).slice(-TIMELINE_MAX);
          renderTimeline();
        }
        if ((r.body.events || []).length) {
          const known = new Set(st.recent.map((e) => e.id));
          st.recent = st.recent.concat(r.body.events.filter((e) => !known.has(e.id))).slice(-RECENT_MAX);
          renderRecent();
          refreshZones(); // a decision: show its effect now
        }
      } catch (e) {
        await sleep(1000);
      }
    }
  }

  // ---- refreshing --------------------------------------------------------------

  function setLive(ok, why) {
    if (ok === st.live) return;
    st.live = ok;
    const l = $("live");
    l.textContent = ok ? "live" : "reconnecting";
    l.className = "pill " + (ok ? "ok" : "bad");
    l.title = ok ? "updates within a second or two" : (why || "");
  }

  async function refreshStatus() {
    const r = await api("/status");
    if (r.status === 200 && r.body) {
      st.status = r.body;
      renderStatus();
      $("message").textContent = "";
    } else if (r.status === 401) {
      askToken("This scalerd refused the token; enter it again.");
    }
  }
  async function refreshCluster() {
    const r = await api("/cluster");
    if (r.status === 200 && r.body) { st.cluster = r.body; renderCluster(); }
  }
  async function refreshZones() {
    const r = await api("/zones");
    if (r.status === 200 && r.body) {
      st.zones = r.body.zones || [];
      $("message").textContent = "";
      renderZones();
    } else if (r.status !== 401) {
      $("message").textContent = "Zones: " + errorOf(r) + (r.body && r.body.primary ? " (primary: " + r.body.primary + ")" : "");
    }
  }
  function refreshAll() {
    if (!canRead()) return Promise.resolve();
    return Promise.allSettled([refreshStatus(), refreshCluster(), refreshZones(), loadHistory(), loadTimeline(),
                               loadRecent()]);
  }

  function every(ms, fn) {
    const tick = async () => {
      // a tab in the background polls nothing but the long poll
      if (canRead() && !document.hidden) {
        try { await fn(); } catch (e) { /* api() marked the page as reconnecting */ }
      }
      setTimeout(tick, ms);
    };
    setTimeout(tick, ms);
  }

  // ---- start -------------------------------------------------------------------

  async function start() {
    $("token-form").addEventListener("submit", submitToken);
    $("token-cancel").addEventListener("click", () => { $("token-panel").hidden = true; st.pending = null; });
    $("btn-token").addEventListener("click", () => (st.token ? forgetToken() : askToken("Actions need the token of this scalerd.")));
    $("btn-reload").addEventListener("click", () => act("Reload", "POST", "/reload"));
    $("pin-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const z = currentZone();
      if (!z) return;
      const count = parseInt($("pin-count").value, 10);
      const f = $("pin-for").value;
      const body = { zone: z.name, count };
      if (f) body.for = Number(f);
      act("Pin " + z.name + " at " + count, "POST", "/scale", body);
    });
    $("btn-unpin").addEventListener("click", () => {
      const z = currentZone();
      if (z) act("Unpin " + z.name, "POST", "/scale", { zone: z.name, count: null });
    });
    window.addEventListener("hashchange", () => { const h = fromHash(); if (h && st.zones) selectZone(h, false); });
    window.addEventListener("resize", renderChart);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshAll(); });
    tokenPill();

    const a = await api("/ui/auth").catch(() => null);
    st.access = a && a.status === 200 && a.body ? a.body : { reads: "token", actions: "token" };
    if (st.access.reads === "token" && !st.token) askToken("This scalerd shows nothing without its token.");
    if (st.access.actions === "open") $("btn-token").hidden = true;
    await refreshAll();
    every(POLL_ZONES, refreshZones);
    every(POLL_STATUS, () => Promise.all([refreshStatus(), loadHistory()]));
    every(POLL_CLUSTER, refreshCluster);
    follow();
  }

  start();
})();
