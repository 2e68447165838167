// Drives scaler-app's dashboard in headless Chromium through playwright-core.
//
//   node dashboard.js URL SERVER_ID SCREENSHOT.png TOKEN OPEN_URL
//
// URL is an app with the control token TOKEN, OPEN_URL one without. Loads
// the page, checks it shows the server, clicks High CPU, answers the token
// prompt (first wrongly, then rightly), waits for the profile and the CPU
// figure to change, checks the chart is drawn, reloads the page and clicks
// Low CPU (the token is not asked again), then checks the open app says it
// is open and asks nothing. Checks that nothing was fetched from anywhere
// but the apps and the token went nowhere but the Authorization header,
// saves a screenshot, and prints one JSON line with what it saw. Exits 1
// with a reason on failure.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, serverId, shot, token, openUrl] = process.argv.slice(2);
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
  const result = { external: [], console_errors: [], controls: [] };
  try {
    const page = ctx.pages()[0] || (await ctx.newPage());
    const origins = [new URL(url).origin, new URL(openUrl).origin];
    await ctx.route("**/*", (route) => {
      const u = route.request().url();
      if (origins.some((o) => u.startsWith(o + "/") || u === o)) return route.continue();
      result.external.push(u);
      return route.abort();
    });
    // every control request: where it went and whether it carried the token
    ctx.on("request", (r) => {
      if (r.method() !== "POST") return;
      const auth = r.headers()["authorization"] || "";
      result.controls.push({ url: r.url(), auth: auth === "Bearer " + token ? "token"
                             : auth ? "other" : "none" });
    });
    const visible = (sel) => page.evaluate((s) => !document.querySelector(s).hidden, sel);
    page.on("console", (m) => { if (m.type() === "error") result.console_errors.push(m.text()); });
    page.on("pageerror", (e) => result.console_errors.push(String(e)));

    await page.goto(url, { waitUntil: "load", timeout: 15000 });
    await waitFor(page, `#server to show ${serverId}`,
                  (id) => document.getElementById("server").textContent === id, serverId, 10000);
    await waitFor(page, "a first CPU figure",
                  () => /^\d/.test(document.getElementById("cpu").textContent), null, 10000);
    result.profile_before = await page.textContent("#profile");
    result.cpu_before = parseFloat(await page.textContent("#cpu"));
    result.pill_before = await page.textContent("#control");

    // the first control asks for the token before sending anything
    await page.click("#btn-high");
    await waitFor(page, "the token prompt", () => !document.getElementById("token-form").hidden,
                  null, 5000);
    result.posts_before_token = result.controls.length;
    await page.fill("#token", "wrong-token-0123456789abcdef");
    await page.click("#token-ok");
    await waitFor(page, "the prompt to say the token was refused",
                  () => /refused/.test(document.getElementById("token-error").textContent),
                  null, 5000);
    result.refused_message = await page.textContent("#token-error");
    fs.mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot.replace(/\.png$/, "-token.png") });
    result.profile_after_wrong = await page.textContent("#profile");
    await page.fill("#token", token);
    await page.click("#token-ok");
    await waitFor(page, "#profile to become high",
                  () => document.getElementById("profile").textContent === "high", null, 5000);
    result.profile_after = await page.textContent("#profile");
    result.pill_after = await page.textContent("#control");
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

    // the token is kept for this tab's session: a reload does not ask again
    await page.reload({ waitUntil: "load", timeout: 15000 });
    await waitFor(page, "#profile to show high after the reload",
                  () => document.getElementById("profile").textContent === "high", null, 10000);
    await page.click("#btn-low");
    await waitFor(page, "#profile to become low",
                  () => document.getElementById("profile").textContent === "low", null, 5000);
    result.prompt_after_reload = await visible("#token-form");
    result.profile_after_reload = await page.textContent("#profile");
    result.cookies = (await ctx.cookies()).map((c) => c.name);
    result.local_storage = await page.evaluate(() => Object.keys(localStorage));
    result.session_token = await page.evaluate(
        (t) => Object.keys(sessionStorage).some((k) => sessionStorage.getItem(k) === t), token);

    // an app without a token says its controls are open and asks nothing
    const open = await ctx.newPage();
    await open.goto(openUrl, { waitUntil: "load", timeout: 15000 });
    await waitFor(open, "the open app's pill",
                  () => document.getElementById("control").textContent === "controls open",
                  null, 10000);
    result.open_note = await open.textContent("#control-note");
    await open.click("#btn-low");
    await waitFor(open, "the open app's #profile to become low",
                  () => document.getElementById("profile").textContent === "low", null, 5000);
    result.open_prompt = await open.evaluate(
        () => !document.getElementById("token-form").hidden);
    result.token_in_urls = result.controls.some((c) => c.url.includes(token));
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
