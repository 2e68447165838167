// Drives scaler-app's dashboard in headless Chromium through playwright-core.
//
//   node dashboard.js URL SERVER_ID SCREENSHOT.png
//
// Loads the page, checks it shows the server, clicks High CPU, waits for the
// profile and the CPU figure to change, checks the chart is drawn and that
// nothing was fetched from anywhere but the app, saves a screenshot, and
// prints one JSON line with what it saw. Exits 1 with a reason on failure.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, serverId, shot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

function fail(msg) {
  throw new Error(msg);
}

async function waitFor(page, what, fn, arg, timeout) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 200 });
  } catch (e) {
    fail(`timed out after ${timeout / 1000}s waiting for ${what}`);
  }
}

async function main() {
  const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), "scaler-chromium-"));
  const ctx = await chromium.launchPersistentContext(profileDir, {
    executablePath,
    headless: true,
    viewport: { width: 1200, height: 860 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const result = { external: [], console_errors: [] };
  try {
    const page = ctx.pages()[0] || (await ctx.newPage());
    const origin = new URL(url).origin;
    await page.route("**/*", (route) => {
      const u = route.request().url();
      if (u.startsWith(origin + "/") || u === origin) return route.continue();
      result.external.push(u);
      return route.abort();
    });
    page.on("console", (m) => { if (m.type() === "error") result.console_errors.push(m.text()); });
    page.on("pageerror", (e) => result.console_errors.push(String(e)));

    await page.goto(url, { waitUntil: "load", timeout: 15000 });
    await waitFor(page, `#server to show ${serverId}`,
                  (id) => document.getElementById("server").textContent === id, serverId, 10000);
    await waitFor(page, "a first CPU figure",
                  () => /^\d/.test(document.getElementById("cpu").textContent), null, 10000);
    result.profile_before = await page.textContent("#profile");
    result.cpu_before = parseFloat(await page.textContent("#cpu"));

    await page.click("#btn-high");
    await waitFor(page, "#profile to become high",
                  () => document.getElementById("profile").textContent === "high", null, 5000);
    result.profile_after = await page.textContent("#profile");
    await waitFor(page, "the CPU figure to rise to 20% or more",
                  () => parseFloat(document.getElementById("cpu").textContent) >= 20, null, 40000);
    result.cpu_after = parseFloat(await page.textContent("#cpu"));
    result.high_active = await page.evaluate(
        () => document.getElementById("btn-high").classList.contains("active"));

    // the chart must have drawn the CPU line in its colour
    result.chart_cpu_pixels = await page.evaluate(() => {
      const c = document.getElementById("chart");
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4)
        if (d[i] > 200 && d[i + 1] > 60 && d[i + 1] < 110 && d[i + 2] < 70 && d[i + 3] > 200) n++;
      return n;
    });
    result.title = await page.title();
    fs.mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    result.screenshot = shot;
  } finally {
    await ctx.close();
    fs.rmSync(profileDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((e) => {
  process.stderr.write("dashboard.js: " + (e && e.message ? e.message : e) + "\n");
  process.exit(1);
});
