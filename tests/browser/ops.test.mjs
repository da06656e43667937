// The operations console in a real browser against the whole shop. A customer who signs in gets
// a plain "not an administrator (403)" on every console page, and the gateway refuses every admin
// route with 403. The admin: sees every service up; a service the test stops shows as down, and
// as up again once `shoal up` has restarted it; a checkout whose payment never answers is parked
// as a stuck saga (the order service is told to give up after a short while), shown with its
// history, and resumed once payment is back, after which the order is confirmed; a dead-lettered
// event is listed with its last error and redriven; the audit shows its checks; a product is
// created, edited and restocked. Every page gets an axe check and desktop and phone screenshots.
import assert from 'node:assert/strict';

import { run } from './harness.mjs';

// A checkout call that fails for this long parks its saga as stuck (the order service's
// default is never); every other process ignores the variable.
process.env.SHOAL_ORDER__SAGA__STUCK_AFTER_MS = '3000';

async function checked(t, page, label) {
  assert.equal(await t.check(page, label), 0, `axe violations on ${label}`);
}

async function signIn(page, email, password) {
  await page.goto('/ops/');
  await page.getByRole('heading', { level: 1, name: 'Sign in to operations' }).waitFor();
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const serviceState = (page, name) => page.locator(`#services-table tr[data-service="${name}"] td`).first();

await run('ops', async (t) => {
  const admin = t.admin();

  // ---- a customer: 403 from every admin route, and the console says so -------------------
  const email = `customer-${Date.now()}@example.com`;
  const reg = await t.api('POST', '/api/v1/auth/register', { body: { email, password: 'correct horse battery', name: 'Carol' } });
  assert.equal(reg.status, 201);
  const customer = await t.login(email, 'correct horse battery');
  for (const [method, path] of [['GET', '/api/v1/admin/services'], ['GET', '/api/v1/admin/sagas'],
    ['GET', '/api/v1/admin/dlq?service=order'], ['POST', '/api/v1/admin/dlq/redrive'], ['GET', '/api/v1/admin/audit'],
    ['POST', '/api/v1/admin/products']]) {
    const r = await t.api(method, path, { token: customer, body: method === 'POST' ? {} : undefined });
    assert.equal(r.status, 403, `${method} ${path} with a customer's token`);
  }
  t.allow(/^403 (GET|POST) .*\/api\/v1\/(admin\/|users\?)/);
  const cpage = await t.newPage();
  await signIn(cpage, email, 'correct horse battery');
  for (const [tab, title] of [['Services', 'Services'], ['Sagas', 'Sagas'], ['Events', 'Events'], ['Audit', 'Audit'], ['Products', 'Products']]) {
    await cpage.getByRole('link', { name: tab, exact: true }).click();
    await cpage.getByRole('heading', { level: 1, name: title }).waitFor();
    await cpage.getByRole('heading', { name: 'Not an administrator (403 Forbidden)' }).waitFor();
  }
  assert.equal(await cpage.locator('#services-table, #sagas-table, #dlq-table, #audit-table, #products-table').count(), 0,
    'a customer saw console data');
  await checked(t, cpage, 'ops-customer-forbidden');
  t.allowed.pop();

  // ---- the admin: services, live ------------------------------------------------------------
  const page = await t.newPage();
  await signIn(page, admin.email, admin.password);
  await page.getByRole('heading', { level: 1, name: 'Services' }).waitFor();
  for (const s of ['user', 'product', 'cart', 'inventory', 'order', 'payment', 'notification'])
    await serviceState(page, s).filter({ hasText: 'up' }).waitFor();
  t.log(`services: ${await page.locator('#services-updated').textContent()}`);
  await checked(t, page, 'ops-services');

  // A stopped service shows as down; after `shoal up` restarts it, as up again.
  const before = t.pid('cart');
  t.signal('cart', 'SIGSTOP');
  await serviceState(page, 'cart').filter({ hasText: 'down' }).waitFor({ timeout: 60000 });
  await checked(t, page, 'ops-service-down');
  t.signal('cart', 'SIGKILL');
  await t.waitFor(() => t.pid('cart') !== before, { timeout_ms: 60000, what: 'shoal up to restart cart' });
  await serviceState(page, 'cart').filter({ hasText: 'up' }).waitFor({ timeout: 60000 });
  t.log(`cart restarted: pid ${before} → ${t.pid('cart')}`);
  await checked(t, page, 'ops-service-recovered');

  // ---- a stuck saga, resumed ------------------------------------------------------------------
  const shopper = `stuck-${Date.now()}@example.com`;
  // Where cart shares its process (the mixed shape), the user service stopped and restarted with
  // it: until the gateway's breaker for user closes again (2 s), a call is refused with 503
  // before it reaches the service, and the shopper tries again.
  const sreg = await t.waitFor(async () => {
    const r = await t.api('POST', '/api/v1/auth/register', { body: { email: shopper, password: 'correct horse battery', name: 'Sam' } });
    return r.status === 503 && t.processOf('cart') !== 'cart' ? null : r;
  }, { timeout_ms: 30000, what: 'the user service through the gateway after the restart' });
  assert.equal(sreg.status, 201);
  const st = await t.login(shopper, 'correct horse battery');
  assert.equal((await t.api('POST', '/api/v1/wallet/deposits', { token: st, body: { amount: 100000 } })).status, 200);
  const products = (await t.api('GET', '/api/v1/products?per_page=1')).json.items;
  t.signal('payment', 'SIGSTOP');
  // The order service prices from its own replica of the catalogue, fed by the product
  // service's events. Where the catalogue shares the process the test just killed (the mixed
  // shape), its first events may still be on their way: until the replica has the product the
  // answer is 422 "no such product" (nothing is stored), and the shopper tries again.
  let attempt = 0;
  const placed = await t.waitFor(async () => {
    const r = await t.api('POST', '/api/v1/orders', {
      token: st,
      headers: { 'idempotency-key': `stuck-${Date.now()}-${attempt++}` },
      body: { items: [{ product_id: products[0].product_id, qty: 1 }], shipping_address: { name: 'Sam', line1: '1 Main St', city: 'Tokyo', postal_code: '100-0001', country: 'JP' } },
    });
    return r.status === 422 && /no such product/.test(r.text) ? null : r;
  }, { timeout_ms: 60000, interval_ms: 500, what: "the order service's replica of the catalogue" });
  if (attempt > 1) t.log(`order placed after ${attempt} tries (the catalogue replica was behind)`);
  assert.equal(placed.status, 202, placed.text);
  const orderId = placed.json.order_id;

  // Meanwhile the shopper's wallet page, whose service is not answering, says so in a sentence
  // (the gateway's 504 or, once the breaker opens, 503 with Retry-After) instead of going blank.
  t.allow(/^(502|503|504) GET .*\/api\/v1\/wallet/);
  const spage = await t.newPage();
  await spage.goto('/#/login?next=/wallet');
  await spage.getByLabel('Email').fill(shopper);
  await spage.getByLabel('Password').fill('correct horse battery');
  await spage.getByRole('button', { name: 'Sign in' }).click();
  await spage.getByRole('heading', { level: 1, name: 'Wallet' }).waitFor({ timeout: 60000 });
  const outage = spage.locator('main .bad-text');
  await outage.waitFor();
  t.log(`wallet while payment is stopped: ${await outage.textContent()}`);
  assert.match(await outage.textContent(), /unavailable|took too long|try again/i);
  await checked(t, spage, 'shop-wallet-outage');
  await page.getByRole('link', { name: 'Sagas' }).click();
  await page.getByRole('heading', { level: 1, name: 'Sagas' }).waitFor();
  await t.waitFor(async () => {
    await page.getByLabel('Status').selectOption('stuck');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sagas' }).waitFor();
    return (await page.locator('#sagas-table tbody tr').count()) > 0;
  }, { timeout_ms: 90000, interval_ms: 1000, what: 'the checkout saga to be listed as stuck' });
  await checked(t, page, 'ops-sagas-stuck');
  await page.locator('#sagas-table tbody tr').first().getByRole('link').click();
  await page.locator('#saga-summary [data-key="status"]').filter({ hasText: 'stuck' }).waitFor();
  assert.ok(await page.locator('#saga-history tbody tr').count() > 0, 'the stuck saga shows no history');
  t.log(`stuck because: ${await page.locator('#saga-summary [data-key="stuck_reason"]').textContent()}`);
  await checked(t, page, 'ops-saga-stuck');
  t.signal('payment', 'SIGCONT');
  // Until the gateway's breaker for payment closes again (2 s after it opened), a console call
  // to payment (the dead-letter list below) can still be refused with 503 and Retry-After; the
  // page says so and its next load shows the list.
  t.allow(/^503 GET .*\/api\/v1\/admin\/dlq\?service=payment/);
  await page.getByRole('button', { name: 'Resume' }).click();
  await page.locator('#status').filter({ hasText: 'Saga resumed' }).waitFor();
  await t.waitFor(async () => (await t.api('GET', `/api/v1/orders/${orderId}`, { token: st })).json?.status === 'confirmed',
    { timeout_ms: 60000, what: 'the resumed checkout to confirm its order' });
  await t.waitFor(async () => {
    await page.reload();
    await page.locator('#saga-summary').waitFor();
    return (await page.locator('#saga-summary [data-key="status"]').textContent()) === 'completed';
  }, { timeout_ms: 60000, interval_ms: 1000, what: 'the resumed saga to complete' });
  await checked(t, page, 'ops-saga-resumed');

  // ---- a dead-lettered event, redriven ------------------------------------------------------
  await poison(t, page);

  // ---- audit ----------------------------------------------------------------------------------
  await page.getByRole('link', { name: 'Audit' }).click();
  await page.getByRole('heading', { level: 1, name: 'Audit' }).waitFor();
  await page.locator('#audit-table tbody tr').first().waitFor();
  t.log(`audit: ${await page.locator('#audit-overall').textContent()} ` +
    `${(await page.locator('#audit-table tbody tr').allTextContents()).join(' | ')}`);
  await checked(t, page, 'ops-audit');

  // ---- products: create, edit, restock --------------------------------------------------------
  await page.getByRole('link', { name: 'Products' }).click();
  await page.getByRole('heading', { level: 1, name: 'Products' }).waitFor();
  await page.getByText('New product').click();
  const form = page.locator('details', { hasText: 'New product' });
  await form.getByLabel('SKU').fill('OPS-TEST-1');
  await form.getByLabel('Name').fill('Console Kettle');
  await form.getByLabel('Category').fill('kitchen');
  await form.getByLabel('Price (yen)').fill('4321');
  await form.getByLabel('Initial stock').fill('3');
  await form.getByRole('button', { name: 'Create product' }).click();
  await page.locator('#status').filter({ hasText: 'Created Console Kettle' }).waitFor();
  // Catalogue reads follow writes within moments: search until the view has it.
  await t.waitFor(async () => {
    await page.getByLabel('Search products').fill('Console Kettle');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Products' }).waitFor();
    return (await page.locator('#products-table tr[data-sku="OPS-TEST-1"]').count()) === 1;
  }, { timeout_ms: 30000, interval_ms: 500, what: 'the new product in the catalogue' });
  const row = page.locator('#products-table tr[data-sku="OPS-TEST-1"]');
  await row.getByText('Edit Console Kettle').click();
  await row.getByLabel('Price (yen)').fill('3999');
  await row.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('#status').filter({ hasText: 'Saved Console Kettle' }).waitFor();
  await row.getByLabel('Add stock to Console Kettle').fill('7');
  await row.getByRole('button', { name: 'Restock' }).click();
  await page.locator('#status').filter({ hasText: 'Console Kettle: 10 available' }).waitFor();
  await checked(t, page, 'ops-products');
  const id = (await t.api('GET', '/api/v1/products?q=Console%20Kettle')).json.items[0].product_id;
  await t.waitFor(async () => (await t.api('GET', `/api/v1/products/${id}`)).json?.price?.amount === 3999,
    { timeout_ms: 30000, what: 'the edited price in the catalogue' });
});

// sl_bus_partition: FNV-1a of the subject, modulo the partitions (8 by default).
function partition(subject, n = 8) {
  let h = 2166136261;
  for (const b of Buffer.from(subject)) {
    h ^= b;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h % n;
}

// Plants an event its consumers can never apply (a product.created without a product id) on the
// bus, the way a broken producer would: the order service dead-letters it with its reason. The
// console lists it with its last error and redrives it; the consumer refuses it again, so it
// comes back under a new id while the old one is gone.
async function poison(t, page) {
  const subject = `poison-${Date.now()}`;
  await t.publishRaw(`shop.product.created.v1.p.${partition(subject)}`, JSON.stringify({
    specversion: '1.0', id: subject, source: '/tests/browser', type: 'shop.product.created.v1',
    subject, time: new Date().toISOString(), datacontenttype: 'application/json', data: { nonsense: true },
  }));
  const row = page.locator('#dlq-table tbody tr', { hasText: subject });
  await page.getByRole('link', { name: 'Events' }).click();
  await page.getByRole('heading', { level: 1, name: 'Events' }).waitFor();
  await t.waitFor(async () => {
    await page.getByLabel('Service').selectOption('order');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('heading', { level: 1, name: 'Events' }).waitFor();
    return (await row.count()) === 1;
  }, { timeout_ms: 60000, interval_ms: 1000, what: 'the planted event in order\'s dead letters' });
  const id = await row.getAttribute('data-message');
  const text = await row.textContent();
  t.log(`dead letter: ${text}`);
  assert.match(text, /product_id/, 'the last error is shown');
  await checked(t, page, 'ops-dlq');
  await row.getByRole('button', { name: /^Redrive/ }).click();
  await page.locator('#status').filter({ hasText: `Redrove message ${id}` }).waitFor();
  await t.waitFor(async () => {
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('heading', { level: 1, name: 'Events' }).waitFor();
    return (await row.count()) === 1 && (await row.getAttribute('data-message')) !== id;
  }, { timeout_ms: 60000, interval_ms: 1000, what: 'the redriven event refused again under a new id' });
  t.log(`redriven, refused again as ${await row.getAttribute('data-message')}`);
}
