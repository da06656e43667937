// Smoke scenario of the browser harness: the gateway serves a page with its CSP and security
// headers, the page's module script runs and reaches the API, an inline script is refused by the
// CSP, axe finds no WCAG 2.1 A/AA violation; then the same for the storefront index (web/shop)
// and its first-load weight and timing (reported, not asserted).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { run } from './harness.mjs';

function assertPageHeaders(resp, what) {
  assert.equal(resp.status(), 200, `${what}: status`);
  const h = resp.headers();
  const csp = h['content-security-policy'] || '';
  assert.match(csp, /default-src 'self'/, `${what}: CSP default-src`);
  assert.match(csp, /frame-ancestors 'none'/, `${what}: CSP frame-ancestors`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, `${what}: CSP allows nothing inline`);
  assert.equal(h['x-content-type-options'], 'nosniff', `${what}: nosniff`);
  assert.ok(h['referrer-policy'], `${what}: Referrer-Policy`);
  assert.match(h['content-type'], /^text\/html/, `${what}: content type`);
  assert.equal(h['cache-control'], 'no-cache', `${what}: HTML is revalidated`);
}

await run('smoke', async (t) => {
  const page = await t.newPage();
  const resp = await page.goto('/__harness/');
  assertPageHeaders(resp, 'fixture');
  await page.locator('#status[data-state="ok"]').waitFor();
  t.log(`fixture: ${await page.locator('#status').textContent()}`);

  // The CSP is enforced: an inline script added to the page does not run, and chromium says so.
  t.allow(/console error: .*(Content Security Policy|CSP violation: script-src)/);
  const ran = await page.evaluate(() => new Promise((resolve) => {
    window.__inline = false;
    const s = document.createElement('script');
    s.textContent = 'window.__inline = true;';
    document.body.appendChild(s);
    setTimeout(() => resolve(window.__inline), 200);
  }));
  assert.equal(ran, false, 'an inline script ran despite the CSP');
  t.allowed.pop();

  const n = await t.check(page, 'harness');
  assert.equal(n, 0, 'axe violations on the harness page');

  // The operations console's index is served with the same headers (its data needs a login).
  if (fs.existsSync(path.join(t.src, 'web', 'ops', 'index.html'))) {
    const ops = await t.api('GET', '/ops/');
    assert.equal(ops.status, 200, '/ops/');
    assert.match(ops.headers.get('content-security-policy') || '', /frame-ancestors 'none'/);
    const bare = await fetch(`${t.base}/ops`, { redirect: 'manual' });
    assert.equal(bare.status, 301, '/ops redirects to /ops/');
    assert.equal(bare.headers.get('location'), '/ops/');
  }

  // The storefront's index, once the pages are in the tree.
  if (!fs.existsSync(path.join(t.src, 'web', 'shop', 'index.html'))) {
    t.log('web/shop/index.html is not in this tree: the storefront part is not run');
    return;
  }
  const shop = await t.newPage();
  const r2 = await shop.goto('/', { waitUntil: 'load' });
  assertPageHeaders(r2, 'storefront');
  await shop.waitForLoadState('networkidle');
  const m = await t.measure(shop);
  t.log(`storefront first load: ${JSON.stringify(m)}`);
  assert.equal(await t.check(shop, 'storefront'), 0, 'axe violations on the storefront');
});
