// The dashboard page bench's browser half (bench/page runs it): opens a URL
// in headless Chromium over the DevTools protocol (--remote-debugging-pipe:
// commands on the browser's fd 3, answers on its fd 4, NUL-terminated JSON)
// and prints, as one JSON line, when the page became usable, in milliseconds
// from the navigation's start (the page's own performance clock):
//
//   orders_table_ms  the orders table's first page is in the document
//   ready_ms         the page says data-state="ready" (every section drawn)
//   load_ms          the load event
//
// A script added before any of the page's own (Page.addScriptToEvaluateOnNewDocument)
// watches the document with a MutationObserver and stamps performance.now()
// at the first moment each holds, so polling adds nothing to the figures.
//
// Usage: node bench/page.mjs CHROMIUM URL [RUNS]
// Each run is a fresh navigation in a fresh tab (cold page, warm server).
import { spawn } from "node:child_process";

const [browser, url, runsText] = process.argv.slice(2);
const runs = Number(runsText || 5);
if (!browser || !url) {
  console.error("usage: node bench/page.mjs CHROMIUM URL [RUNS]");
  process.exit(2);
}

const child = spawn(browser, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-extensions", "--remote-debugging-pipe", `--user-data-dir=${process.env.PROFILE_DIR}`,
  "about:blank",
], { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] });

const commands = child.stdio[3];
const answers = child.stdio[4];
let nextId = 0;
const waiting = new Map();
let buffer = Buffer.alloc(0);
answers.on("data", (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  let end;
  while ((end = buffer.indexOf(0)) >= 0) {
    const message = JSON.parse(buffer.subarray(0, end).toString("utf8"));
    buffer = buffer.subarray(end + 1);
    if (message.id !== undefined && waiting.has(message.id)) {
      const { resolve, reject, method } = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.error) reject(new Error(`${method}: ${JSON.stringify(message.error)}`));
      else resolve(message.result);
    }
  }
});

function call(method, params = {}, sessionId) {
  const id = ++nextId;
  const message = { id, method, params };
  if (sessionId) message.sessionId = sessionId;
  commands.write(JSON.stringify(message) + "\0");
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject, method });
    setTimeout(() => reject(new Error(`${method}: no answer within 120 s`)), 120_000).unref();
  });
}

const WATCH = `
(function () {
  window.__bench = {};
  function stamp(name) { if (!(name in window.__bench)) window.__bench[name] = performance.now(); }
  function look() {
    if (document.querySelector('#shop-orders-table tbody tr')) stamp('orders_table_ms');
    var app = document.getElementById('app');
    if (app && app.getAttribute('data-state') === 'ready') stamp('ready_ms');
  }
  new MutationObserver(look).observe(document, { subtree: true, childList: true, attributes: true });
  window.addEventListener('load', function () { stamp('load_ms'); });
})();`;

async function once() {
  const { targetId } = await call("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await call("Target.attachToTarget", { targetId, flatten: true });
  await call("Page.enable", {}, sessionId);
  await call("Runtime.enable", {}, sessionId);
  await call("Emulation.setDeviceMetricsOverride", { width: 1280, height: 1400, deviceScaleFactor: 1, mobile: false }, sessionId);
  await call("Page.addScriptToEvaluateOnNewDocument", { source: WATCH }, sessionId);
  await call("Page.navigate", { url }, sessionId);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { result } = await call("Runtime.evaluate", {
      expression: "JSON.stringify({ bench: window.__bench || {}, state: document.getElementById('app') && document.getElementById('app').getAttribute('data-state'), rows: document.querySelectorAll('#shop-orders-table tbody tr').length, nodes: document.getElementsByTagName('*').length })",
      returnByValue: true,
    }, sessionId).catch(() => ({ result: { value: "{}" } }));
    const seen = JSON.parse(result.value || "{}");
    if (seen.state === "error") throw new Error(`the page shows an error: ${url}`);
    if (seen.bench && "ready_ms" in seen.bench && "orders_table_ms" in seen.bench) {
      await call("Target.closeTarget", { targetId });
      return { ...seen.bench, rows: seen.rows, nodes: seen.nodes };
    }
    if (Date.now() > deadline) throw new Error(`the page never became ready within 120 s: ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

try {
  const results = [];
  for (let i = 0; i < runs; i++) results.push(await once());
  const median = (key) => {
    const values = results.map((r) => r[key]).filter((v) => v !== undefined).sort((a, b) => a - b);
    return values.length ? Math.round(values[Math.floor(values.length / 2)]) : null;
  };
  console.log(JSON.stringify({
    url, runs,
    orders_table_ms: median("orders_table_ms"), ready_ms: median("ready_ms"), load_ms: median("load_ms"),
    rows: results[0].rows, dom_nodes: results[0].nodes,
    each: results.map((r) => ({ orders_table_ms: Math.round(r.orders_table_ms), ready_ms: Math.round(r.ready_ms) })),
  }));
  child.kill();
  process.exit(0);
} catch (error) {
  console.error(`bench/page.mjs: ${error.message}`);
  child.kill();
  process.exit(1);
}
