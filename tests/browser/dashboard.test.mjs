// The dashboard (src/server/dashboard/index.html) in a real headless browser: Debian's
// /usr/bin/chromium driven by playwright-core (never a downloaded browser).
//
// Two modes, both run by default (--mode fixture|real|all):
//  fixture  the page served by a small in-process HTTP server whose /v1/status is a document the
//           test edits: rendering, escaping of hostile server text, chart gaps, the disconnected
//           and unreadable states and their recovery, a narrow window. Fast; no bridgepool.
//  real     `bridgepool serve` with 2 workers: the page lists the workers, counters and charts
//           move under load, a SIGKILLed worker is replaced on the page, a screenshot is kept
//           (<artifacts>/dashboard.png), SIGTERM ends the server with 0 and the page says
//           disconnected.
// Both check that the page requested nothing outside its own origin and broke no CSP rule.
//
// Usage: node dashboard.test.mjs [--mode M] [--bridgepool BIN --handlers FILE --python EXE]
//        [--artifacts DIR] [--page FILE] [--chromium EXE]
// Exit codes: 0 all passed, 1 a check failed, 77 skipped (no chromium or no node_modules).

import { spawn } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants, mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import assert from "node:assert/strict";

const HERE = dirname(fileURLToPath(import.meta.url));
const { values: options } = parseArgs({
  options: {
    mode: { type: "string", default: "all" },
    bridgepool: { type: "string" },
    handlers: { type: "string", default: join(HERE, "../../examples/handlers.py") },
    python: { type: "string", default: "/usr/bin/python3" },
    artifacts: { type: "string", default: join(tmpdir(), "bridgepool-dashboard-artifacts") },
    page: { type: "string", default: join(HERE, "../../src/server/dashboard/index.html") },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
const WAIT_MS = 15000;  // how long the page may take to show a change (it polls every second)
const HOSTILE = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`;
// What the fixture serves: as strict as the real server's CSP may be (no remote origin at all).
const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
            "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'";

function skip(reason) {
  console.log(`SKIPPED: ${reason}`);
  process.exit(77);
}

async function loadChromium() {
  try {
    accessSync(options.chromium, constants.X_OK);
  } catch {
    skip(`${options.chromium} not found (scripts/setup installs Debian's chromium)`);
  }
  try {
    return (await import("playwright-core")).chromium;
  } catch (error) {
    skip(`playwright-core cannot be loaded from ${HERE}/node_modules (scripts/setup runs ` +
         `npm ci --prefix tests/browser; it needs node >= 20): ${error.message}`);
  }
}

// ---- a minimal runner: named checks in order, TAP-like lines, a closing count ----

const counts = { passed: 0, failed: 0 };
async function check(name, body) {
  try {
    await body();
    counts.passed++;
    console.log(`ok - ${name}`);
  } catch (error) {
    counts.failed++;
    console.log(`not ok - ${name}\n  ${String(error.stack ?? error).replace(/\n/g, "\n  ")}`);
  }
}

// ---- page helpers ----

// Opens the page in a fresh context that records every request and every CSP violation.
async function openPage(browser, url, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.requests = [];
  page.on("request", (request) => page.requests.push(request.url()));
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(url);
  return page;
}

async function waitFor(page, what, predicate, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: WAIT_MS, polling: 100 });
  } catch (error) {
    throw new Error(`the page did not show ${what} within ${WAIT_MS} ms: ${error.message}`);
  }
}

const waitForConnection = (page, state, what = state) =>
  waitFor(page, what, (want) =>
    document.querySelector('[data-testid="connection"]').dataset.state === want, state);

const testid = (id) => `[data-testid="${id}"]`;
const stat = (page, key) =>
  page.$eval(testid(`stat-${key}`), (node) => Number(node.dataset.value));
const rowPids = (page) =>
  page.$$eval(testid("worker-row"), (rows) => rows.map((row) => Number(row.dataset.pid)));
const connection = (page) => page.$eval(testid("connection"), (node) => node.dataset.state);
const canvasImage = (page, id) => page.$eval(testid(id), (canvas) => canvas.toDataURL());
const screenshot = (page, name) =>
  page.screenshot({ path: join(options.artifacts, name), fullPage: true });

async function assertOnlyOwnOrigin(page, origin) {
  const foreign = page.requests.filter((url) => !url.startsWith(`${origin}/`));
  assert.deepEqual(foreign, [], "the page requested something outside its own origin");
  assert.ok(page.requests.some((url) => url === `${origin}/v1/status`), "the page never polled");
  assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], "CSP violations");
}

// ---- fixture mode ----

function fixtureStatus(tick) {
  const series = (f) => Array.from({ length: 60 }, (_, i) => f(i));
  return {
    server: { version: "0.1.0", uptime_s: 12.5 + tick, listen: "127.0.0.1:1" },
    pool: {
      name: "default", kind: "pool", ready: true, min_ready: 1, size: 2, live: 2, idle: 1,
      busy: 1, degraded: 0, starting: 0, queue_length: 3, sessions: 1, generation: 1,
      started: 2, replaced: tick, init_failures: 0, exits: tick, requests: 100 + tick, ok: 90,
      circuit_rejected: 4, errors: { python: 7, timeout: 3 }, last_init_error: "",
    },
    workers: [
      { id: "w1", pid: 4242, state: "ready", health: "healthy", requests: 60, python_errors: 2,
        uptime_s: 3725, generation: 1, current_session: "", rss_bytes: 9437184 },
      { id: "w2", pid: 4343, state: "busy", health: "unknown", requests: 40, python_errors: 0,
        uptime_s: 42.4, generation: 1, current_session: "session-7", rss_bytes: 123456789 },
    ],
    breaker: { state: "open" },
    sessions: { live: 1 },
    alerts: [{ rule: "error_rate", severity: "warning", since: new Date().toISOString(),
               value: 0.3, threshold: 0.2, message: "error rate above threshold" }],
    series: { interval_s: 1, end_ms: Date.now(),
              requests_per_s: series((i) => (i < 30 ? null : 10 + (i % 5))),
              errors_per_s: series((i) => (i < 30 ? null : 1)),
              p50_ms: series((i) => (i % 10 === 0 ? null : 2.5)),
              p99_ms: series((i) => (i % 10 === 0 ? null : 9)) },
  };
}

// Serves the page and a /v1/status the test controls: fixture.reply is "json" (fixture.status),
// "garbage" (200 with a body that is not JSON) or "down" (the connection is dropped).
async function startFixture() {
  const fixture = { reply: "json", status: fixtureStatus(0) };
  const html = readFileSync(options.page);
  fixture.server = createServer((request, response) => {
    if (request.url === "/") {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8",
                                "content-security-policy": CSP });
      return response.end(html);
    }
    if (request.url !== "/v1/status") return response.writeHead(404).end();
    if (fixture.reply === "down") return request.socket.destroy();
    response.writeHead(200, { "content-type": "application/json" });
    const garbage = fixture.reply === "garbage";
    response.end(garbage ? "<html>proxy error</html>" : JSON.stringify(fixture.status));
  });
  fixture.server.listen(0, "127.0.0.1");
  await once(fixture.server, "listening");
  fixture.origin = `http://127.0.0.1:${fixture.server.address().port}`;
  return fixture;
}

// Counts the pixels of the requests line's colour left and right of the plot's middle.
function linePixels(canvas) {
  const ctx = canvas.getContext("2d");
  const { data, width, height } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const rgb = getComputedStyle(canvas).getPropertyValue("--c-requests").trim();
  const want = [1, 3, 5].map((i) => parseInt(rgb.slice(i, i + 2), 16));
  const plotMiddle = (44 + (canvas.getBoundingClientRect().width - 10)) / 2 * devicePixelRatio;
  const sides = { left: 0, right: 0 };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 4;
      if (want.every((v, i) => Math.abs(data[p + i] - v) < 8) && data[p + 3] > 200) {
        sides[x < plotMiddle ? "left" : "right"]++;
      }
    }
  }
  return sides;
}

async function fixtureChecks(browser) {
  const fixture = await startFixture();
  const page = await openPage(browser, `${fixture.origin}/`);
  try {
    await fixtureRenderChecks(page, fixture);
    await fixtureStateChecks(page, fixture);
    await check("fixture: readable at 1280x800 and on a 390 px wide window", async () => {
      const fits = () => [...document.querySelectorAll(".scroll")]
        .every((box) => box.scrollWidth <= box.clientWidth) &&
        document.documentElement.scrollWidth <= innerWidth;
      assert.ok(await page.evaluate(fits), "the worker table overflows at 1280x800");
      await screenshot(page, "dashboard-fixture.png");
      await page.setViewportSize({ width: 390, height: 844 });
      await waitFor(page, "charts redrawn at the narrow width",
                    () => document.querySelector('[data-testid="chart-latency"]').width <=
                          390 * devicePixelRatio);
      const pageWidth = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(pageWidth <= 390, `the page is ${pageWidth} px wide in a 390 px window`);
      await screenshot(page, "dashboard-narrow.png");
    });
    await check("fixture: no request outside the page's origin, no CSP violation",
                () => assertOnlyOwnOrigin(page, fixture.origin));
  } finally {
    await page.context().close();
    fixture.server.closeAllConnections();
    fixture.server.close();
  }
}

async function fixtureRenderChecks(page, fixture) {
  await check("fixture: summary, workers, breaker, errors and alerts are shown", async () => {
    await waitFor(page, "two worker rows", () =>
      document.querySelectorAll('[data-testid="worker-row"]').length === 2);
    assert.deepEqual(await rowPids(page), [4242, 4343]);
    assert.equal(await stat(page, "requests"), 100);
    assert.equal(await stat(page, "errors"), 10);
    assert.equal(await stat(page, "queue_length"), 3);
    assert.equal(await page.textContent(testid("stat-ready")), "readyyes");
    assert.equal(await page.getAttribute(testid("breaker"), "data-state"), "open");
    const rows = await page.$$eval(testid("error-row"), (r) => r.map((x) => x.textContent));
    assert.deepEqual(rows, ["python7", "timeout3"]);
    assert.match(await page.textContent(testid("alerts")), /error_rate error rate above threshold/);
    const cells = (id) => page.$$eval(`${testid("worker-row")}[data-worker-id="${id}"] td`,
                                      (tds) => tds.map((td) => td.textContent));
    // id, pid, state, health, requests, errors, RSS (9437184 B), session, uptime (3725 s), gen
    assert.deepEqual(await cells("w1"),
                     ["w1", "4242", "ready", "healthy", "60", "2", "9.0 MiB", "–", "1h 2m", "1"]);
    assert.deepEqual(await cells("w2"), ["w2", "4343", "busy", "unknown", "40", "0", "118 MiB",
                                         "session-7", "42s", "1"]);
    assert.equal(await connection(page), "live");
  });
  await check("fixture: text from the server is shown as text, never run as markup", async () => {
    const status = fixtureStatus(0);
    status.pool.name = HOSTILE;
    status.server.version = HOSTILE;
    status.pool.errors = { [HOSTILE]: 1 };
    status.pool.last_init_error = HOSTILE;
    status.workers[0].id = HOSTILE;
    status.workers[0].current_session = HOSTILE;
    status.workers[0].state = HOSTILE;
    status.alerts[0].message = HOSTILE;
    status.breaker.state = HOSTILE;
    fixture.status = status;
    await waitFor(page, "the hostile session id as text", (text) =>
      document.querySelector('[data-testid="workers"]').textContent.includes(text), HOSTILE);
    for (const id of ["pool-name", "server-info", "errors", "last-init-error", "alerts",
                      "breaker"]) {
      assert.ok((await page.textContent(testid(id))).includes(HOSTILE), `${id} lost the text`);
    }
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await page.locator("img").count(), 0, "markup from the server was inserted");
    assert.equal(await page.locator("script").count(), 1, "markup from the server was inserted");
  });
  await check("fixture: charts draw the series with null points as gaps", async () => {
    fixture.status = fixtureStatus(1);
    await waitFor(page, "the throughput chart of 60 points", () =>
      document.querySelector('[data-testid="chart-throughput"]').dataset.points === "60");
    assert.equal(await page.getAttribute(testid("chart-throughput"), "data-peak"), "14");
    assert.equal(await page.getAttribute(testid("chart-latency"), "data-points"), "108");
    assert.equal(await page.getAttribute(testid("legend-requests"), "data-last"), "14");
    // requests_per_s is null for its first 30 points: no line there.
    const sides = await page.$eval(testid("chart-throughput"), linePixels);
    assert.equal(sides.left, 0, "a line was drawn across the null half");
    assert.ok(sides.right > 50, `too few line pixels on the data half: ${sides.right}`);
  });
}

async function fixtureStateChecks(page, fixture) {
  await check("fixture: live updates", async () => {
    fixture.status = fixtureStatus(5);
    await waitFor(page, "requests 105", () =>
      document.querySelector('[data-testid="stat-requests"]').dataset.value === "105");
    assert.equal(await stat(page, "exits"), 5);
  });
  await check("fixture: server unreachable shows disconnected, then recovers", async () => {
    fixture.reply = "down";
    await waitForConnection(page, "disconnected");
    assert.ok(await page.evaluate(() => document.body.classList.contains("stale")));
    assert.equal(await rowPids(page).then((p) => p.length), 2, "the last data was dropped");
    fixture.status = fixtureStatus(6);
    fixture.reply = "json";
    await waitForConnection(page, "live", "live again");
    assert.equal(await stat(page, "requests"), 106);
    assert.ok(!(await page.evaluate(() => document.body.classList.contains("stale"))));
  });
  await check("fixture: an unreadable status is reported, then recovers", async () => {
    fixture.reply = "garbage";
    await waitForConnection(page, "invalid", "invalid (not JSON)");
    assert.match(await page.textContent(testid("connection")), /unreadable status/);
    assert.ok(await page.evaluate(() => document.body.classList.contains("stale")));
    fixture.reply = "json";
    await waitForConnection(page, "live", "live again");
  });
}

// ---- real mode: bridgepool serve ----

// Starts `bridgepool serve` and resolves with its origin once it printed its listening line.
async function startServe() {
  const args = ["serve", "--listen", "127.0.0.1:0", "--workers", "2",
                "--handlers", options.handlers, "--python", options.python];
  const child = spawn(options.bridgepool, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => { stderr = (stderr + chunk).slice(-4000); });
  child.exited = once(child, "exit");
  const lines = createInterface({ input: child.stdout });
  const timeout = setTimeout(() => child.kill("SIGKILL"), 30000);
  try {
    for await (const line of lines) {
      const match = /^bridgepool serve: listening on (http:\/\/\S+)$/.exec(line);
      if (match) return { child, origin: match[1] };
    }
    throw new Error(`bridgepool serve ended without its listening line; stderr:\n${stderr}`);
  } finally {
    clearTimeout(timeout);
  }
}

async function call(origin, path, body) {
  const response = await fetch(`${origin}${path}`, body && {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

// Sends `count` calls of `body`, `concurrency` at a time; returns every reply.
async function drive(origin, body, count, concurrency = 8) {
  const replies = [];
  let next = 0;
  const sender = async () => {
    while (next < count) {
      next++;
      replies.push(await call(origin, "/v1/execute", body));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, sender));
  return replies;
}

async function realChecks(browser) {
  mkdirSync(options.artifacts, { recursive: true });
  const serve = await startServe();
  const page = await openPage(browser, `${serve.origin}/`);
  try {
    await check("real: the page lists the pool's two workers", async () => {
      const { body } = await call(serve.origin, "/v1/status");
      const pids = body.workers.map((w) => w.pid);
      await waitFor(page, `workers ${pids}`, (want) => {
        const rows = [...document.querySelectorAll('[data-testid="worker-row"]')];
        return rows.map((r) => Number(r.dataset.pid)).sort().join() === [...want].sort().join();
      }, pids);
      assert.equal(await connection(page), "live");
      assert.equal(await stat(page, "size"), 2);
      const rss = await page.$$eval(`${testid("worker-row")} td:nth-child(7)`,
                                    (cells) => cells.map((cell) => cell.textContent));
      assert.ok(rss.every((text) => /^\d+(\.\d)? MiB$/.test(text)), `RSS shown as ${rss}`);
      assert.equal(await page.getAttribute(testid("breaker"), "data-state"), body.breaker.state);
    });
    await realLoadCheck(page, serve.origin);
    await realKillCheck(page, serve.origin);
    await check("real: no request outside the page's origin, no CSP violation",
                () => assertOnlyOwnOrigin(page, serve.origin));
    await check("real: SIGTERM ends the server with 0 and the page says disconnected", async () => {
      serve.child.kill("SIGTERM");
      const [code, signal] = await serve.child.exited;
      assert.deepEqual({ code, signal }, { code: 0, signal: null });
      await waitForConnection(page, "disconnected");
    });
  } finally {
    await page.context().close();
    const running = serve.child.exitCode === null && serve.child.signalCode === null;
    if (running) serve.child.kill("SIGKILL");
  }
}

async function realLoadCheck(page, origin) {
  await check("real: load moves the counters, the error categories and the charts", async () => {
    const requestsBefore = await stat(page, "requests");
    const chartBefore = await canvasImage(page, "chart-throughput");
    const echoes = await drive(origin, { command: "echo", args: { from: "dashboard test" } }, 200);
    assert.ok(echoes.every((r) => r.status === 200 && r.body.ok), "an echo call failed");
    const fails = await drive(origin, { command: "fail", args: { type: "ValueError" } }, 10, 2);
    assert.ok(fails.every((r) => !r.body.ok && r.body.error.category === "python"),
              `unexpected fail replies: ${JSON.stringify(fails[0])}`);
    await waitFor(page, "210 more requests and 10 python errors", (before) => {
      const value = (id) => Number(document.querySelector(`[data-testid="${id}"]`)?.dataset.value);
      const python = document.querySelector('[data-testid="error-row"][data-category="python"]');
      return value("stat-requests") >= before + 210 && value("stat-errors") >= 10 &&
             python && Number(python.dataset.value) >= 10;
    }, requestsBefore);
    await waitFor(page, "requests and latency on the charts", () => {
      const chart = (id) => document.querySelector(`[data-testid="chart-${id}"]`).dataset;
      return Number(chart("throughput").peak) > 0 && Number(chart("latency").points) > 0;
    });
    assert.notEqual(await canvasImage(page, "chart-throughput"), chartBefore, "chart unchanged");
  });
}

async function realKillCheck(page, origin) {
  await check("real: a SIGKILLed worker disappears from the page and its replacement appears",
    async () => {
      const { body } = await call(origin, "/v1/status");
      const before = { pids: body.workers.map((w) => w.pid), exits: body.pool.exits,
                       replaced: body.pool.replaced };
      const victim = before.pids[0];
      process.kill(victim, "SIGKILL");
      await waitFor(page, `worker ${victim} replaced`, (want) => {
        const value = (id) => Number(document.querySelector(`[data-testid="${id}"]`).dataset.value);
        const pids = [...document.querySelectorAll('[data-testid="worker-row"]')]
          .map((row) => Number(row.dataset.pid));
        return !pids.includes(want.victim) && pids.length === 2 &&
               pids.some((pid) => !want.pids.includes(pid)) &&
               value("stat-exits") > want.exits && value("stat-replaced") > want.replaced;
      }, { victim, ...before });
      await screenshot(page, "dashboard.png");
    });
}

// ---- main ----

const chromium = await loadChromium();
if (options.mode !== "fixture" && !options.bridgepool) {
  console.error("--bridgepool BIN is needed for --mode real or all");
  process.exit(2);
}
mkdirSync(options.artifacts, { recursive: true });
const browser = await chromium.launch({ executablePath: options.chromium, headless: true });
try {
  if (options.mode !== "real") await fixtureChecks(browser);
  if (options.mode !== "fixture") await realChecks(browser);
} catch (error) {
  counts.failed++;
  console.log(`not ok - setup\n  ${error.stack ?? error}`);
} finally {
  await browser.close();
}
console.log(`${counts.passed} passed, ${counts.failed} failed`);
process.exit(counts.failed > 0 ? 1 : 0);
