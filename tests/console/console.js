// Drives scalerd's web console in headless Chromium through playwright-core.
//
//   node console.js ADMIN_URL TOKEN ARTIFACTS_DIR
//
// scalerd at ADMIN_URL wants TOKEN for reads (node.public_reads off) and
// runs zone1. The script talks to the test (test_console.py) by lines: it
// prints {"need": "plant"} or {"need": "restart"} on stdout and waits for
// a line on stdin saying it was done. Steps:
//   1. the page loads, asks for the token before any data call, and shows
//      the cluster and zone1 once given it, with no error in the console;
//   2. a scale-up through the admin API (a pin at 2) shows the new server
//      and the decision's sentence, timed from the POST;
//   3. the chart draws the zone's CPU while one server burns some; a server
//      made unhealthy shows its balancer state change;
//   4. screenshots at 1280x800 and 390x844; every control is reachable
//      with Tab at both widths (on screen and ringed at 390 px); an <img onerror> planted in a reason and in a zone name
//      (the test writes them into the Redis event stream) shows as text and
//      runs nothing;
//   5. scalerd restarts (now with public reads): the page reconnects, says
//      its metric history started again, and reloads the timeline from Redis;
//   6. a new tab reads without a token; Pin asks for the token and sends
//      nothing, a wrong token is refused, the right one pins; unpin, drain
//      and reload work.
// Prints one JSON line {"result": ...} with what it saw; exits 1 with a
// reason on failure.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const readline = require("readline");
const { chromium } = require("playwright-core");

const [base, token, outDir] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function fail(msg) {
  throw new Error(msg);
}

async function ask(need) {
  process.stdout.write(JSON.stringify({ need }) + "\n");
  const l = await lines.next();
  if (l.done || l.value.trim() !== "done") fail(`the test did not do "${need}": ${l.value}`);
}

async function waitFor(page, what, fn, arg, timeout) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    const shot = path.join(outDir, "console-failed.png");
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    fail(`timed out after ${timeout / 1000}s waiting for ${what} (screenshot ${shot})`);
  }
}

async function admin(method, p, body, auth) {
  const headers = { "Content-Type": "application/json" };
  if (auth !== false) headers.Authorization = "Bearer " + token;
  const r = await fetch(base + p, { method, headers, body: body ? JSON.stringify(body) : undefined });
  return { status: r.status, body: await r.json().catch(() => null) };
}

const rowsText = (page) => page.evaluate(() =>
  [...document.querySelectorAll("#servers tbody tr")].map((tr) => tr.innerText.replace(/\s+/g, " ")));

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), "scaler-console-"));
  const ctx = await chromium.launchPersistentContext(profileDir, {
    executablePath, headless: true, viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const res = { external: [], console_errors: [], requests: [], csp_violations: [] };
  const origin = new URL(base).origin;
  try {
    await ctx.route("**/*", (route) => {
      const u = route.request().url();
      if (u === origin || u.startsWith(origin + "/")) return route.continue();
      res.external.push(u);
      return route.abort();
    });
    ctx.on("request", (r) => {
      const auth = r.headers()["authorization"] || "";
      res.requests.push({ method: r.method(), url: r.url(),
                          auth: auth === "Bearer " + token ? "token" : auth ? "other" : "none" });
    });
    // a CSP violation would mean markup got in and tried to run
    await ctx.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        (window.__csp = window.__csp || []).push(e.violatedDirective + " " + e.blockedURI);
      });
    });
    const watch = (page) => {
      page.on("console", (m) => { if (m.type() === "error") res.console_errors.push(m.text()); });
      page.on("pageerror", (e) => res.console_errors.push(String(e)));
    };
    const page = ctx.pages()[0] || (await ctx.newPage());
    watch(page);

    // 1. the token first, then everything
    await page.goto(base + "/", { waitUntil: "load", timeout: 15000 });
    res.url_after_redirect = page.url();
    await waitFor(page, "the token prompt", () => !document.getElementById("token-panel").hidden, null, 5000);
    res.data_calls_before_token = res.requests.filter(
      (r) => r.url !== origin + "/" && !r.url.startsWith(origin + "/ui/")).map((r) => r.url);
    await page.fill("#token", token);
    await page.click("#token-ok");
    await waitFor(page, "zone1 in the zones table and its servers",
                  () => /zone1/.test(document.querySelector("#zones tbody").innerText) &&
                        document.querySelectorAll("#servers tbody tr").length >= 1 &&
                        document.getElementById("live").textContent === "live", null, 10000);
    await waitFor(page, "the cluster cards and the nodes table",
                  () => document.getElementById("c-redis").textContent === "reachable" &&
                        document.querySelectorAll("#nodes tbody tr").length >= 1 &&
                        /max_cpu/.test(document.getElementById("chart-legend").textContent), null, 10000);
    res.cluster = await page.evaluate(() => ({
      primary: document.getElementById("c-primary").textContent,
      role: document.getElementById("node-role").textContent,
      config: document.getElementById("c-config").textContent,
      plugins: document.querySelector("#plugins tbody").innerText,
      legend: document.getElementById("chart-legend").textContent,
    }));
    res.errors_after_load = res.console_errors.slice();

    // 2. a scale-up through the admin API
    const before = (await rowsText(page)).length;
    const t0 = Date.now();
    const pin = await admin("POST", "/scale", { zone: "zone1", count: before + 1, for: 600 });
    if (pin.status !== 200) fail(`POST /scale answered ${pin.status}: ${JSON.stringify(pin.body)}`);
    await waitFor(page, "the new server and the pin's sentence within 2 s of the POST",
                  (n) => document.querySelectorAll("#servers tbody tr").length === n &&
                         /pinned at \d+ by an operator/.test(document.getElementById("timeline").textContent),
                  before + 1, 2000);
    res.scale_up_seconds = (Date.now() - t0) / 1000;
    res.rows_after_scale = await rowsText(page);
    res.pinned_flag = await page.textContent("#z-flags");

    // the chart draws the zone's metric: a few seconds of CPU on one server
    const busy = (await admin("GET", "/servers?zone=zone1")).body.find((x) => x.state === "serving");
    const load = (profile) => fetch(busy.address + "/load", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ profile }) });
    // (for the picture: on a starved machine the CPU may stay low, and the
    // line is then flat, which the pixel count below still sees)
    await load("high");
    try {
      await page.waitForFunction(
        () => /now [1-9]\d+(\.\d)? /.test(document.getElementById("chart").getAttribute("aria-label")),
        null, { timeout: 12000, polling: 200 }).catch(() => {});
      await page.waitForTimeout(1500);
    } finally {
      await load("stop");
    }
    res.chart_label = await page.getAttribute("#chart", "aria-label");
    res.chart_metric_pixels = await page.evaluate(() => {
      const c = document.getElementById("chart");
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0; // the metric's blue, #0072b2
      for (let i = 0; i < d.length; i += 4)
        if (d[i] < 40 && Math.abs(d[i + 1] - 114) < 30 && Math.abs(d[i + 2] - 178) < 30 && d[i + 3] > 200) n++;
      return n;
    });

    // 3. a server made unhealthy
    const servers = (await admin("GET", "/servers?zone=zone1")).body;
    const victim = servers.filter((s) => s.state === "serving").pop();
    if (!victim) fail("no serving server to make unhealthy: " + JSON.stringify(servers));
    const h = await fetch(victim.address + "/health", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: '{"healthy": false}' });
    if (h.status !== 200) fail(`POST ${victim.address}/health answered ${h.status}`);
    await waitFor(page, `${victim.id} shown disconnected in the balancer`,
                  (id) => [...document.querySelectorAll("#servers tbody tr")].some(
                    (tr) => tr.cells[0].textContent === id && /disconnected|dead/.test(tr.cells[3].textContent)),
                  victim.id, 10000);
    res.unhealthy_row = (await rowsText(page)).find((t) => t.startsWith(victim.id));
    res.victim = victim.id;

    // 4. screenshots, the phone's width, the keyboard
    await page.screenshot({ path: path.join(outDir, "console-1280x800.png") });
    await page.screenshot({ path: path.join(outDir, "console-1280-full.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(600);
    res.phone_width = await page.evaluate(() => document.documentElement.scrollWidth);
    await page.screenshot({ path: path.join(outDir, "console-390x844.png") });
    await page.screenshot({ path: path.join(outDir, "console-390-full.png"), fullPage: true });
    // at a phone's width too: every control by Tab, on screen when focused
    // and ringed, and every state written out, not only coloured
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    const phoneTab = new Map();
    for (let i = 0; i < 60; i++) {
      await page.keyboard.press("Tab");
      const f = await page.evaluate(() => {
        const a = document.activeElement;
        if (!a || a === document.body) return null;
        const r = a.getBoundingClientRect();
        return { id: a.id || a.textContent.trim().split(" ")[0] || a.tagName,
                 left: Math.round(r.left), right: Math.round(r.right),
                 ring: getComputedStyle(a).outlineStyle };
      });
      if (f && !phoneTab.has(f.id)) phoneTab.set(f.id, f);
    }
    res.phone_tab = [...phoneTab.values()];
    res.states_unwritten = await page.evaluate(() => {
      const all = [...document.querySelectorAll(".state")];
      return { shown: all.length, blank: all.filter((e) => !e.textContent.trim()).length };
    });
    await page.setViewportSize({ width: 1280, height: 800 });

    // every control by keyboard alone
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    const reached = new Set();
    for (let i = 0; i < 60; i++) {
      await page.keyboard.press("Tab");
      reached.add(await page.evaluate(() => {
        const a = document.activeElement;
        return a ? (a.id || a.textContent.trim().split(" ")[0] || a.tagName) : "";
      }));
    }
    res.tab_reached = [...reached];

    // markup where text belongs
    await ask("plant");
    await waitFor(page, "the planted reason in the timeline and the planted zone in the latest decisions",
                  () => /<img src=x onerror=/.test(document.getElementById("timeline").textContent) &&
                        /<img src=x onerror=/.test(document.getElementById("recent").textContent),
                  null, 10000);
    res.xss = await page.evaluate(() => ({
      imgs: document.querySelectorAll("img").length,
      pwned: window.__pwned || null,
      csp: window.__csp || [],
      recent: document.getElementById("recent").textContent,
    }));
    res.errors_before_restart = res.console_errors.slice();

    // 5. scalerd restarts
    res.history_note_before = await page.textContent("#history-note");
    await ask("restart");
    await waitFor(page, "the page to say the metric history started again",
                  (before) => {
                    const t = document.getElementById("history-note").textContent;
                    return t !== before && /^Metric history since/.test(t);
                  }, res.history_note_before, 30000);
    res.history_note_after = await page.textContent("#history-note");
    await waitFor(page, "the timeline reloaded from Redis with the pin's sentence",
                  () => /pinned at \d+ by an operator/.test(document.getElementById("timeline").textContent) &&
                        document.getElementById("live").textContent === "live", null, 10000);

    // 6. a new tab: reads are public now, actions are not
    const p2 = await ctx.newPage();
    watch(p2);
    await p2.goto(base + "/ui/", { waitUntil: "load", timeout: 15000 });
    await waitFor(p2, "zone1 read without a token",
                  () => document.querySelectorAll("#servers tbody tr").length >= 1, null, 10000);
    res.read_only_prompt = await p2.evaluate(() => !document.getElementById("token-panel").hidden);
    const posts = () => res.requests.filter((r) => r.method === "POST").length;
    const postsBefore = posts();
    const want = await p2.evaluate(() => document.querySelectorAll("#servers tbody tr").length + 1);
    await p2.fill("#pin-count", String(want));
    await p2.click("#btn-pin");
    await waitFor(p2, "the token prompt for Pin", () => !document.getElementById("token-panel").hidden, null, 5000);
    res.posts_before_token = posts() - postsBefore;
    await p2.fill("#token", "wrong-token-0123456789abcdef");
    await p2.click("#token-ok");
    await waitFor(p2, "the wrong token refused", () => /refused/.test(document.getElementById("token-error").textContent), null, 5000);
    res.refused_message = await p2.textContent("#token-error");
    res.pinned_after_wrong = (await admin("GET", "/status")).body.zones.find((z) => z.name === "zone1").pinned;
    await p2.fill("#token", token);
    await p2.click("#token-ok");
    await waitFor(p2, "the pin done and shown", () => /Pinned/.test(document.getElementById("z-flags").textContent) &&
                  /done/.test(document.getElementById("action-result").textContent), null, 10000);
    res.pinned_after_right = (await admin("GET", "/status")).body.zones.find((z) => z.name === "zone1").pinned;
    await p2.click("#btn-unpin");
    await waitFor(p2, "the unpin", () => /^Unpin zone1: done/.test(document.getElementById("action-result").textContent) &&
                  !/Pinned/.test(document.getElementById("z-flags").textContent), null, 10000);
    const drainFirst = await p2.evaluate(() => {
      const b = [...document.querySelectorAll("#servers tbody button")].find((x) => x.textContent === "Drain");
      return b ? b.closest("tr").cells[0].textContent : null;
    });
    if (!drainFirst) fail("no Drain button in the servers table");
    res.drained = drainFirst;
    await p2.click(`#servers tbody button[aria-label="drain ${drainFirst}"]`);
    await p2.click(`#servers tbody button[aria-label="confirm: drain ${drainFirst}"]`);
    await waitFor(p2, "the drain's decision in the timeline",
                  () => /drained by an operator/.test(document.getElementById("timeline").textContent), null, 10000);
    await p2.click("#btn-reload");
    await waitFor(p2, "the reload done", () => /^Reload: done/.test(document.getElementById("action-result").textContent), null, 10000);

    res.cookies = (await ctx.cookies()).map((c) => c.name);
    res.local_storage = await p2.evaluate(() => Object.keys(localStorage));
    res.session_token = await p2.evaluate(
      (t) => Object.keys(sessionStorage).some((k) => sessionStorage.getItem(k) === t), token);
    res.token_in_urls = res.requests.some((r) => r.url.includes(token));
    res.unauthenticated_data_calls = res.requests.filter(
      (r) => r.auth === "none" && r.method !== "GET" && !r.url.includes("/ui/")).map((r) => r.url);
  } finally {
    await ctx.close();
    fs.rmSync(profileDir, { recursive: true, force: true });
  }
  delete res.requests;
  process.stdout.write(JSON.stringify({ result: res }) + "\n");
  process.exit(0);
}

// node console.js BACKUP_URL TOKEN ARTIFACTS_DIR backup: the page on a
// backup shows the primary's zones through it, says it is a backup and
// who the primary is, and the cluster's nodes with their roles.
async function backupMain() {
  fs.mkdirSync(outDir, { recursive: true });
  const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), "scaler-console-"));
  const ctx = await chromium.launchPersistentContext(profileDir, {
    executablePath, headless: true, viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const res = { console_errors: [] };
  try {
    const page = ctx.pages()[0] || (await ctx.newPage());
    page.on("console", (m) => { if (m.type() === "error") res.console_errors.push(m.text()); });
    page.on("pageerror", (e) => res.console_errors.push(String(e)));
    await page.goto(base + "/ui/", { waitUntil: "load", timeout: 15000 });
    await waitFor(page, "the token prompt", () => !document.getElementById("token-panel").hidden, null, 5000);
    await page.fill("#token", token);
    await page.click("#token-ok");
    await waitFor(page, "the primary's zone1 and two nodes on the backup's page",
                  () => document.querySelectorAll("#servers tbody tr").length >= 1 &&
                        document.querySelectorAll("#nodes tbody tr").length === 2 &&
                        !document.getElementById("backup-note").hidden, null, 10000);
    res.role = await page.textContent("#node-role");
    res.note = await page.textContent("#backup-note");
    res.primary = await page.textContent("#c-primary");
    res.nodes = await page.evaluate(() =>
      [...document.querySelectorAll("#nodes tbody tr")].map((tr) => tr.innerText.replace(/\s+/g, " ")));
    res.rows = await rowsText(page);
    await page.screenshot({ path: path.join(outDir, "console-backup.png") });
  } finally {
    await ctx.close();
    fs.rmSync(profileDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify({ result: res }) + "\n");
  process.exit(0);
}

(process.argv[5] === "backup" ? backupMain() : main()).catch((e) => {
  process.stderr.write("console.js: " + (e && e.message ? e.message : e) + "\n");
  process.exit(1);
});
