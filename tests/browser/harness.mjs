// The browser test harness (docs/browser-tests.md). A scenario file is a Node ES
// module that calls run(name, async (t) => { ... }). run():
//   - starts the whole shop with `shoal up` on a fresh data directory and its own free ports
//     (every service, nats-server and the gateway are real processes), with the gateway's
//     static roots pointing at this source tree;
//   - launches Debian's chromium (/usr/bin/chromium, or SHOAL_CHROMIUM) through playwright-core,
//     headless, with a fresh profile (Playwright gives each launch a new --user-data-dir);
//   - hands the scenario `t` (below), and fails the test on any console error, uncaught page
//     error, CSP violation or failed request (network failure or HTTP status >= 400) that the
//     scenario did not declare with t.allow();
//   - stops the browser and the shop afterwards, whatever happened.
//
// SHOAL_E2E_SHAPE chooses how the shop hosts its seven services, as for the C end-to-end suites
// (tests/support/shape.c writes the same `hosting:` block): separate (the default: every service
// its own process), monolith (all seven in one shoal-shop process named "shop") or mixed (order
// and payment their own processes, the other five in "shop").
//
// What `t` offers:
//   t.base                  "http://127.0.0.1:<gateway port>"
//   t.out                   the test's output directory (screenshots, the shop's logs on failure)
//   t.src                   the source tree
//   t.newPage({viewport})   a page in a new browser context (its own cookies and storage)
//   t.check(page, label)    axe-core (WCAG 2.1 A and AA) at desktop and phone sizes, failing on
//                           any violation, with screenshots <label>-desktop.png (1280x800) and
//                           <label>-phone.png (390x844) in t.out (in the monolith and mixed
//                           shapes: desktop size only, no screenshots)
//   t.measure(page)         {transfer_bytes, requests, dom_interactive_ms, load_ms} of the
//                           page's first load (Performance API), for reporting only
//   t.allow(pattern)        a RegExp matched against "<status> <METHOD> <url>" of responses and
//                           failed requests and against console messages: those are expected
//   t.api(method, path, {token, body, headers})  a call to the gateway from Node:
//                           {status, headers, json, text}
//   t.admin()               {email, password} of the admin account `shoal up` made
//   t.login(email, password) the access token
//   t.shape                 the hosting shape: "separate", "monolith" or "mixed"
//   t.mesh                  true with SHOAL_E2E_MESH=1 (every process behind its sidecar)
//   t.processOf(service)    the process that runs a service in this shape ("shop" or its own)
//   t.pid(name)             the current pid of a process of the shop ("payment", "gateway", ...;
//                           a service's name stands for the process that runs it)
//   t.signal(name, sig)     sends sig (e.g. "SIGSTOP", "SIGCONT", "SIGKILL": `shoal up` restarts
//                           a killed process) to that process (with the services it hosts)
//   t.waitFor(fn, {timeout_ms, what})  polls an async predicate until it returns truthy
//   t.natsPort, t.ports     the shop's nats-server port; each service's port by name
//   t.publishRaw(subject, payload)  a core NATS publish straight to nats-server (a stream
//                           captures it): how a test plants an event a consumer refuses
//   t.log(...)              prints a line to the test's output
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const SRC = process.env.SHOAL_SOURCE_DIR || path.resolve(here, '../..');
const BIN = process.env.SHOAL_BIN_DIR || path.join(SRC, 'build', 'bin');
const CHROMIUM = process.env.SHOAL_CHROMIUM || '/usr/bin/chromium';
const SERVICES = ['user', 'product', 'cart', 'inventory', 'order', 'payment', 'notification'];
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

// The hosting shape (SHOAL_E2E_SHAPE): which services share the shoal-shop process "shop".
const SHAPES = {
  separate: [],
  monolith: SERVICES,
  mixed: ['user', 'product', 'cart', 'inventory', 'notification'],
};
export const SHAPE = process.env.SHOAL_E2E_SHAPE || 'separate';
if (!Object.hasOwn(SHAPES, SHAPE))
  throw new Error(`SHOAL_E2E_SHAPE: must be separate, monolith or mixed (not '${SHAPE}')`);

// SHOAL_E2E_MESH=1 (separate shape only): every process behind its shoal-proxy sidecar, mTLS
// between them, NATS with TLS and one user per service (docs/mesh.md), as `shoal up --mesh` runs
// it. The services' ports are then their sidecars' (tests/support/shape.c picks them the same way).
export const MESH = (() => {
  const v = process.env.SHOAL_E2E_MESH || '0';
  if (v !== '0' && v !== '1') throw new Error(`SHOAL_E2E_MESH: must be 0 or 1 (not '${v}')`);
  if (v === '1' && SHAPE !== 'separate') throw new Error('SHOAL_E2E_MESH=1 needs the separate shape');
  return v === '1';
})();
const MESH_LOCAL_OFFSET = 100; // TH_MESH_LOCAL_OFFSET: a service's own port = its sidecar's + 100

function bindable(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

// A free block of 512 ports below 30000 (the mesh's outbound and admin bases sit inside it, and
// every port of it must be below the kernel's ephemeral range): the first 8 for the sidecars of
// the seven services and the gateway, `mesh_ports` for the rest.
async function meshPorts() {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 12000 + 512 * Math.floor(Math.random() * 36);
    let ok = true;
    for (let p = base; ok && p < base + 512; p++) ok = !handedOut.has(p) && (await bindable(p));
    if (!ok) continue;
    for (let p = base; p < base + 512; p++) handedOut.add(p);
    return {
      base,
      lines: ['mesh: true',
        `mesh_ports: {local_offset: ${MESH_LOCAL_OFFSET}, outbound_base: ${base + 200}, admin_base: ${base + 500}}`,
        'mesh_sidecars: {breaker_recovery_ms: 2000}'],
    };
  }
  throw new Error('no free block of 512 ports below 30000 for the mesh');
}

// The process (as `shoal up` names it) that runs `name` in this shape; other names unchanged.
export function processOf(name) {
  return SHAPES[SHAPE].includes(name) ? 'shop' : name;
}

export function log(...args) {
  const ts = new Date().toISOString().slice(11, 23);
  console.log(`[${ts}]`, ...args);
}

// A port the kernel hands out for port 0 is free now, but the next call may get the same one
// back once it is closed: every port is handed out once per run (as th_free_port does in C).
const handedOut = new Set();

function anyFreePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function freePort() {
  for (let i = 0; i < 1000; i++) {
    const port = await anyFreePort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port that was not handed out before');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, { timeout_ms = 30000, interval_ms = 200, what = 'a condition' } = {}) {
  const end = Date.now() + timeout_ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end)
      throw new Error(`timed out after ${timeout_ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(interval_ms);
  }
}

// ---- the shop ---------------------------------------------------------------------------------

class Shop {
  constructor(dir) {
    this.dir = dir;
    this.data = path.join(dir, 'data');
    this.uplog = path.join(dir, 'up.log');
    this.proc = null;
  }

  async start() {
    const ports = {};
    const mesh = MESH ? await meshPorts() : null;
    for (const [i, s] of SERVICES.entries()) ports[s] = mesh ? mesh.base + i : await freePort();
    const admin = await freePort();
    this.gateway = mesh ? mesh.base + SERVICES.length : await freePort();
    const nats = await freePort();
    this.nats = nats;
    this.ports = ports;
    // The gateway's configuration as shipped, on this run's ports, with absolute static roots
    // and the harness's own fixture site at /__harness/.
    let gw = fs.readFileSync(path.join(SRC, 'config', 'gateway.yaml'), 'utf8');
    // Every cluster's breaker recovers in 2 s like payment's below (the default is 30 s): a
    // process a scenario stopped or killed (in the monolith or mixed shape, several services) is
    // reached again soon after it is back.
    SERVICES.forEach((s, i) => {
      const breaker = s === 'payment' ? '' : '    breaker: {recovery_timeout_ms: 2000}\n';
      gw = gw.replaceAll(`127.0.0.1:${8101 + i}]\n`, `127.0.0.1:${ports[s]}]\n${breaker}`);
    });
    gw = gw.replaceAll('port: 9901', `port: ${admin}`);
    gw = gw.replaceAll('recovery_timeout_ms: 30000', 'recovery_timeout_ms: 2000');
    gw = gw.replace(/root: (?!\/)([^\s},]+)/g, (_, r) => `root: ${path.join(SRC, r)}`);
    if (!/^static:/m.test(gw)) gw += '\nstatic:\n';
    gw = gw.replace(/^static:\n/m,
      `static:\n  - {prefix: /__harness/, root: ${path.join(here, 'fixture')}}\n`);
    const gwPath = path.join(this.dir, 'gateway.yaml');
    fs.writeFileSync(gwPath, gw);
    this.adminPort = admin;

    const common = 'SHOAL_BUS__ACK_WAIT_MS: "3000", SHOAL_LOG__LEVEL: warn';
    const lines = [`data_dir: ${this.data}`, 'nats:', `  port: ${nats}`, ...(mesh ? mesh.lines : []), 'services:'];
    for (const s of SERVICES) {
      let extra = '';
      if (s === 'user') extra = ', SHOAL_USER__BOOTSTRAP_ADMIN: "true", SHOAL_USER__PASSWORD_COST: min';
      if (s === 'product') extra = ', SHOAL_PRODUCT__DEMO: "true"';
      if (s === 'order')
        extra = `, SHOAL_UPSTREAMS__INVENTORY__URL: "http://127.0.0.1:${ports.inventory}"` +
          `, SHOAL_UPSTREAMS__PAYMENT__URL: "http://127.0.0.1:${ports.payment}"`;
      const calls = s === 'order' ? ', calls: [inventory, payment]' : '';
      lines.push(`  - {name: ${s}, port: ${ports[s]}${calls}, env: {${common}${extra}}}`);
    }
    lines.push(`  - {name: gateway, port: ${this.gateway}, config: ${gwPath}, env: {SHOAL_LOG__LEVEL: warn}}`);
    if (SHAPES[SHAPE].length) lines.push('hosting:', `  - {name: shop, services: [${SHAPES[SHAPE].join(', ')}]}`);
    const local = path.join(this.dir, 'local.yaml');
    fs.writeFileSync(local, lines.join('\n') + '\n');

    const out = fs.openSync(this.uplog, 'a');
    const shoal = path.join(BIN, 'shoal');
    if (!fs.existsSync(shoal)) throw new Error(`${shoal} is not built (SHOAL_BIN_DIR)`);
    // The working directory is the source tree, as for `make run`.
    this.proc = spawn(shoal, ['up', '--config', local], { cwd: SRC, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    this.exited = once(this.proc, 'exit');
    this.base = `http://127.0.0.1:${this.gateway}`;
    await waitFor(async () => {
      if (this.proc.exitCode !== null) throw new Error(`shoal up exited (${this.proc.exitCode})`);
      const r = await fetch(`${this.base}/readyz`).catch(() => null);
      return r && r.status === 200;
    }, { timeout_ms: 120000, what: 'the shop to be ready (gateway /readyz)' });
  }

  pid(name) {
    const text = fs.existsSync(this.uplog) ? fs.readFileSync(this.uplog, 'utf8') : '';
    const proc = processOf(name);
    let pid = 0;
    for (const line of text.split('\n')) {
      const m = line.match(/started \(pid (\d+)/);
      if (m && line.includes(`${proc} `)) pid = Number(m[1]);
    }
    return pid;
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 60000);
    await this.exited;
    clearTimeout(t);
  }

  // The end of each log, for a failure's output.
  tails() {
    const parts = [];
    const tail = (f, n) => {
      try {
        const lines = fs.readFileSync(f, 'utf8').trimEnd().split('\n');
        parts.push(`== ${f}\n${lines.slice(-n).join('\n')}`);
      } catch { /* not written */ }
    };
    tail(this.uplog, 30);
    const logs = path.join(this.data, 'logs');
    if (fs.existsSync(logs)) for (const f of fs.readdirSync(logs)) tail(path.join(logs, f), 10);
    return parts.join('\n');
  }
}

// ---- pages --------------------------------------------------------------------------------------

class Test {
  constructor(name, shop, launch, out) {
    this.name = name;
    this.shop = shop;
    this.launch = launch;
    this.browser = null;
    this.natsPort = shop.nats;
    this.shape = SHAPE;
    this.mesh = MESH;
    this.processOf = processOf;
    this.ports = shop.ports;
    this.out = out;
    this.src = SRC;
    this.base = shop.base;
    this.allowed = [];
    this.problems = [];
    this.contexts = [];
    this.waitFor = waitFor;
    this.log = log;
  }

  allow(re) {
    this.allowed.push(re);
  }

  expected(s) {
    return this.allowed.some((re) => re.test(s));
  }

  problem(s) {
    if (this.expected(s)) return;
    log(`UNEXPECTED ${s}`);
    this.problems.push(s);
  }

  async newPage({ viewport = DESKTOP } = {}) {
    if (!this.browser) this.browser = await this.launch();
    const ctx = await this.browser.newContext({ viewport, baseURL: this.base });
    this.contexts.push(ctx);
    // Records CSP violations the page reports (also logged by chromium as console errors).
    await ctx.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
      });
    });
    const page = await ctx.newPage();
    page.setDefaultTimeout(30000);
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const text = m.text();
      // An HTTP error status is reported below with its URL and method; not twice.
      if (/^Failed to load resource: the server responded with a status of/.test(text)) return;
      this.problem(`console error: ${text} (${m.location()?.url || ''})`);
    });
    page.on('pageerror', (e) => this.problem(`page error: ${e.message}`));
    page.on('requestfailed', (r) => {
      const f = r.failure()?.errorText || 'failed';
      // Navigating away aborts what was still loading: not a failure of the page.
      if (f === 'net::ERR_ABORTED') return;
      this.problem(`failed ${r.method()} ${r.url()}: ${f}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) this.problem(`${r.status()} ${r.request().method()} ${r.url()}`);
    });
    return page;
  }

  async axe(page, label) {
    const axe = fs.readFileSync(path.join(SRC, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
    // Evaluated through the DevTools protocol, which the page's CSP does not govern.
    const has = await page.evaluate('typeof window.axe === "object"');
    if (!has) await page.evaluate(axe);
    const res = await page.evaluate(
      (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] }),
      AXE_TAGS);
    for (const v of res.violations) {
      const nodes = v.nodes.slice(0, 5).map((n) => `      ${n.target.join(' ')}: ${n.failureSummary?.split('\n').join(' ')}`);
      this.problems.push(`axe ${label}: ${v.id} (${v.impact}): ${v.help}\n${nodes.join('\n')}`);
      log(`axe ${label}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.length} node(s)\n${nodes.join('\n')}`);
    }
    return res.violations.length;
  }

  // In the monolith and mixed shapes and in mesh mode the pages and the data they show are those
  // of the plain separate shape, where every page is checked at both sizes and photographed:
  // there one axe pass at desktop size, no screenshots (CI's time budget).
  async check(page, label) {
    const size = page.viewportSize() || DESKTOP;
    const full = SHAPE === 'separate' && !MESH;
    const sizes = full ? [['desktop', DESKTOP], ['phone', PHONE]] : [['desktop', DESKTOP]];
    let n = 0;
    for (const [kind, vp] of sizes) {
      await page.setViewportSize(vp);
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
      n += await this.axe(page, `${label} (${kind})`);
      if (!full) continue;
      const file = path.join(this.out, `${label}-${kind}.png`);
      await page.screenshot({ path: file, fullPage: true });
      log(`screenshot ${file}`);
    }
    await page.setViewportSize(size);
    if (n === 0) log(`axe ${label}: no WCAG 2.1 A/AA violations at ${sizes.length === 2 ? 'either size' : 'desktop size'}`);
    return n;
  }

  async measure(page) {
    return page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const res = performance.getEntriesByType('resource');
      const bytes = (nav ? nav.transferSize : 0) + res.reduce((s, r) => s + (r.transferSize || 0), 0);
      return {
        transfer_bytes: bytes,
        requests: 1 + res.length,
        dom_interactive_ms: nav ? Math.round(nav.domInteractive) : null,
        dom_content_loaded_ms: nav ? Math.round(nav.domContentLoadedEventEnd) : null,
        load_ms: nav ? Math.round(nav.loadEventEnd) : null,
      };
    });
  }

  async api(method, p, { token, body, headers = {} } = {}) {
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    if (body !== undefined) h['content-type'] = 'application/json';
    const r = await fetch(this.base + p, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: r.status, headers: r.headers, json, text };
  }

  admin() {
    const text = fs.readFileSync(path.join(this.shop.data, 'admin-credentials'), 'utf8');
    return { email: text.match(/email: (\S+)/)[1], password: text.match(/password: (\S+)/)[1] };
  }

  async login(email, password) {
    const r = await this.api('POST', '/api/v1/auth/login', { body: { email, password } });
    if (r.status !== 200) throw new Error(`login ${email}: ${r.status} ${r.text}`);
    return r.json.access_token;
  }

  pid(name) {
    return this.shop.pid(name);
  }

  publishRaw(subject, payload) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.natsPort, '127.0.0.1');
      let buf = '';
      sock.on('error', reject);
      sock.on('data', (d) => {
        buf += d.toString();
        if (buf.includes('INFO') && !sock.sent) {
          sock.sent = true;
          const body = Buffer.from(payload);
          sock.write(`CONNECT {"verbose":false}\r\nPUB ${subject} ${body.length}\r\n`);
          sock.write(body);
          sock.write('\r\nPING\r\n');
        }
        if (buf.includes('PONG')) {
          sock.end();
          resolve();
        } else if (buf.includes('-ERR')) {
          sock.destroy();
          reject(new Error(`nats: ${buf.trim()}`));
        }
      });
    });
  }

  signal(name, sig) {
    const pid = this.shop.pid(name);
    if (!pid) throw new Error(`no pid for ${name}`);
    process.kill(pid, sig);
    log(`${sig} → ${processOf(name)} (pid ${pid})`);
  }
}

// ---- the runner -----------------------------------------------------------------------------------

export async function run(name, scenario) {
  const t0 = Date.now();
  const out = path.resolve(process.env.SHOAL_BROWSER_OUT || path.join(os.tmpdir(), `shoal-browser-${name}`));
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-browser-'));
  const shop = new Shop(dir);
  let browser = null;
  let t = null;
  let failure = null;
  const onSignal = async () => {
    await browser?.close().catch(() => {});
    await shop.stop().catch(() => {});
    process.exit(1);
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    log(`${name}: starting the shop (${SHAPE}) in ${dir}`);
    await shop.start();
    log(`${name}: shop ready at ${shop.base} (${Date.now() - t0} ms; ${SHAPE} shape${MESH ? ", mesh mode" : ""})`);
    // The browser starts with the scenario's first page (a scenario may only call the API).
    const launch = async () => {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        // The sandbox needs user namespaces that root in a container does not get.
        chromiumSandbox: process.getuid?.() !== 0,
        args: ['--disable-background-networking', '--disable-component-update', '--disable-sync',
          '--no-first-run'],
      });
      return browser;
    };
    t = new Test(name, shop, launch, out);
    await scenario(t);
    if (t.problems.length) failure = new Error(`${t.problems.length} problem(s):\n  ${t.problems.join('\n  ')}`);
  } catch (e) {
    failure = e;
    if (t?.problems.length) log(`also: ${t.problems.join('\n  ')}`);
  } finally {
    for (const c of t?.contexts || []) await c.close().catch(() => {});
    await browser?.close().catch(() => {});
    if (failure) {
      console.error(shop.tails());
      fs.writeFileSync(path.join(out, 'logs.txt'), shop.tails());
    }
    await shop.stop().catch((e) => log(`stopping the shop: ${e.message}`));
    if (!process.env.SHOAL_BROWSER_KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
  if (failure) {
    console.error(`FAIL ${name}: ${failure.stack || failure.message}`);
    process.exit(1);
  }
  log(`PASS ${name} (${Date.now() - t0} ms; output in ${out})`);
}
