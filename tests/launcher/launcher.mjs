#!/usr/bin/env node
// Drives the launcher page of Tycho's HTTP API in Debian's headless Chromium (playwright-core, no browser
// download): sign in, launch nginx from its example and see its row turn Ready live, screenshot, restart,
// a bad launch shows the problem with its field, stop and see the row go, sign out.
//
//   node tests/launcher/launcher.mjs URL TOKEN SCREENSHOT_DIR
//
// URL is the API's base (`tycho dev --api` prints it), TOKEN a bearer token it accepts. Exits 0 when every
// step passed, else 1 with the failing step, a screenshot `launcher-failure.png` and the page's console.
// CHROMIUM overrides the browser (default /usr/bin/chromium).

import { mkdtempSync, rmSync, mkdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, token, shotDir] = process.argv.slice(2);
if (!url || !token || !shotDir) {
  console.error("usage: node launcher.mjs URL TOKEN SCREENSHOT_DIR");
  process.exit(2);
}
const base = url.replace(/\/+$/, "");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = 60_000;

class StepFailed extends Error {}
const fail = (msg) => {
  throw new StepFailed(msg);
};
const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${msg}`);

async function step(name, fn) {
  log(name);
  try {
    return await fn();
  } catch (e) {
    const err = new StepFailed(`step "${name}" failed: ${e instanceof StepFailed ? e.message : e.stack || e}`);
    err.cause = e;
    throw err;
  }
}

/** The API, from here, to compare the page with. */
async function apiGet(path) {
  const r = await fetch(base + path, { headers: { Authorization: `Bearer ${token}` } });
  return { status: r.status, body: await r.text() };
}

mkdirSync(shotDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "tycho-launcher-chromium-"));
const consoleLines = [];
const pageErrors = [];
let context;
let page;
let code = 0;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 800 },
    timeout: WAIT,
  });
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(WAIT);
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => pageErrors.push(String(e.stack || e)));
  // Nothing but the API's own origin: the page must not fetch anything external.
  const foreign = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(base + "/")) foreign.push(r.url());
  });

  await step(`open ${base}/`, async () => {
    const resp = await page.goto(base + "/");
    if (!resp || resp.status() !== 200) fail(`GET / answered ${resp && resp.status()}`);
    await page.getByTestId("signin-form").waitFor({ state: "visible" });
    if (await page.locator("#app").isVisible()) fail("the app shows before signing in");
  });

  await step("a wrong token is refused with the problem shown", async () => {
    await page.getByLabel("API token").fill("not-a-valid-token");
    await page.getByTestId("signin-submit").click();
    const err = page.getByTestId("signin-error");
    await err.waitFor({ state: "visible" });
    const text = await err.innerText();
    if (!/401/.test(text)) fail(`expected a 401 problem, the page says: ${text}`);
    if (await page.locator("#app").isVisible()) fail("the app shows after a wrong token");
  });

  const me = await step("sign in; the page shows who we are", async () => {
    const who = await apiGet("/v1/whoami");
    if (who.status !== 200) fail(`GET /v1/whoami with the token answered ${who.status}: ${who.body}`);
    const username = JSON.parse(who.body).identity.username;
    await page.getByLabel("API token").fill(token);
    await page.getByTestId("signin-submit").click();
    await page.locator("#app").waitFor({ state: "visible" });
    const shown = (await page.getByTestId("whoami").innerText()).trim();
    if (shown !== username) fail(`whoami shows "${shown}", the API says "${username}"`);
    if ((await page.getByTestId("namespace").inputValue()) !== "default") fail("the namespace is not `default`");
    return username;
  });

  await step("the event stream is live", async () => {
    await page.locator('[data-testid="stream"][data-state="live"]').waitFor();
  });

  // Marks this document: a reload would lose it, so a row that turns Ready with it still there did so live.
  await page.evaluate(() => {
    window.__launcherTest = true;
  });
  const name = `ui-nginx-${Math.random().toString(36).slice(2, 8)}`;
  const row = page.locator(`[data-testid="system-row"][data-name="${name}"]`);

  await step("the nginx example fills the form", async () => {
    await page.getByTestId("example-nginx").click();
    const image = await page.getByLabel("Image").inputValue();
    const ports = await page.getByLabel("Ports").inputValue();
    if (image !== "nginx" || ports.trim() !== "80") fail(`image "${image}", ports "${ports}"`);
  });

  await step(`launch it as ${name} with a new session held by the API`, async () => {
    await page.locator("#launch-name").fill(name);
    await page.getByTestId("launch-session").check();
    await page.getByLabel("Session length in seconds").fill("600");
    await page.getByTestId("launch-submit").click();
    const notice = page.getByTestId("notice");
    const error = page.getByTestId("launch-error");
    // Either the notice of success or the problem.
    await page
      .locator(`[data-testid="notice"]:has-text("Launched ${name}"), [data-testid="launch-error"]:not([hidden])`)
      .first()
      .waitFor();
    if (await error.isVisible()) fail(`launch error: ${await error.innerText()}`);
    const text = await notice.innerText();
    if (!/\(session [a-z0-9-]+\)/.test(text)) fail(`no session in the notice: "${text}"`);
    await row.waitFor({ state: "attached" });
  });

  await step("its row turns Ready live, with its endpoint as a link", async () => {
    await page.locator(`[data-testid="system-row"][data-name="${name}"][data-ready="true"]`).waitFor();
    const phase = (await row.getByTestId("system-phase").innerText()).trim();
    if (phase !== "Ready") fail(`phase "${phase}"`);
    if (!(await page.evaluate(() => window.__launcherTest === true))) fail("the page was reloaded");
    const owner = (await row.getByTestId("system-owner").innerText()).trim();
    if (owner !== me) fail(`owner "${owner}", expected "${me}"`);
    const api = JSON.parse((await apiGet(`/v1/namespaces/default/systems/${name}`)).body);
    const want = api.status && api.status.endpoints && api.status.endpoints[0] && api.status.endpoints[0].url;
    if (!want) fail(`the API gives no endpoint url: ${JSON.stringify(api.status)}`);
    const link = row.getByTestId("endpoint-link").first();
    await link.waitFor();
    const href = await link.getAttribute("href");
    const target = await link.getAttribute("target");
    if (href !== want || target !== "_blank") fail(`link href=${href} target=${target}, API url ${want}`);
    if (api.spec.session === undefined) fail("the System has no session");
  });

  await step("screenshots", async () => {
    const wide = join(shotDir, "launcher.png");
    await page.screenshot({ path: wide, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(shotDir, "launcher-narrow.png"), fullPage: true });
    // On a narrow window nothing spills sideways.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) fail(`the page is ${overflow} px wider than a 390 px window`);
    await page.setViewportSize({ width: 1280, height: 800 });
    if (statSync(wide).size < 10_000) fail(`${wide} is suspiciously small`);
  });

  await step("restart", async () => {
    await row.getByTestId("restart").click();
    await page.getByTestId("notice").filter({ hasText: `Restarting ${name}` }).waitFor();
    if (await page.getByTestId("action-error").isVisible()) {
      fail(await page.getByTestId("action-error").innerText());
    }
  });

  await step("a bad name shows the problem with its field", async () => {
    await page.getByTestId("example-redis").click();
    await page.locator("#launch-name").fill("Bad_Name");
    await page.getByTestId("launch-submit").click();
    const err = page.getByTestId("launch-error");
    await err.waitFor({ state: "visible" });
    const field = (await err.getByTestId("problem-field").innerText()).trim();
    if (field !== "name") fail(`field "${field}"; the error reads: ${await err.innerText()}`);
    if (!(await err.innerText()).includes("Bad_Name")) fail(`the detail does not name it: ${await err.innerText()}`);
    if ((await page.locator("#launch-name").getAttribute("aria-invalid")) !== "true") fail("the name input is not marked invalid");
    await page.screenshot({ path: join(shotDir, "launcher-error.png"), fullPage: true });
    if ((await page.locator('[data-testid="system-row"][data-name="Bad_Name"]').count()) !== 0) fail("a row for Bad_Name");
  });

  await step("stop it; its row goes", async () => {
    await row.getByTestId("stop").click();
    await row.waitFor({ state: "detached" });
    const after = await apiGet(`/v1/namespaces/default/systems/${name}`);
    if (after.status !== 404) fail(`the API still has it: ${after.status} ${after.body.slice(0, 200)}`);
    if (!(await page.evaluate(() => window.__launcherTest === true))) fail("the page was reloaded");
  });

  await step("sign out", async () => {
    await page.getByTestId("signout").click();
    await page.getByTestId("signin-form").waitFor({ state: "visible" });
    const stored = await page.evaluate(() => sessionStorage.getItem("tycho.token"));
    if (stored !== null) fail("the token is still in sessionStorage");
  });

  if (pageErrors.length) fail(`errors in the page:\n${pageErrors.join("\n")}`);
  const violations = consoleLines.filter((l) => /Content Security Policy|Refused to/i.test(l));
  if (violations.length) fail(`Content-Security-Policy violations:\n${violations.join("\n")}`);
  if (foreign.length) fail(`requests outside the API's origin:\n${foreign.join("\n")}`);
  log(`PASS: every step (screenshots in ${shotDir})`);
} catch (e) {
  code = 1;
  console.error(`FAIL: ${e instanceof StepFailed ? e.message : e.stack || e}`);
  if (page) {
    await page.screenshot({ path: join(shotDir, "launcher-failure.png"), fullPage: true }).catch(() => {});
    console.error(`(screenshot of the failure: ${join(shotDir, "launcher-failure.png")})`);
  }
  if (pageErrors.length) console.error(`page errors:\n  ${pageErrors.join("\n  ")}`);
  if (consoleLines.length) console.error(`page console:\n  ${consoleLines.slice(-30).join("\n  ")}`);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
