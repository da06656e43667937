// The gateway's admin API with every process real (no page: the browser is not started):
// 401 without a token and 403 for a customer on every admin route; the services view for an
// admin (each service ready, with version, uptime, rate, error ratio, p99, breaker, bulkhead);
// and the dead-letter queue: an event a consumer refuses is planted on the bus, shows in the
// order service's dead letters with its last error, and a redrive sends it back through the
// consumer (which refuses it again: a new dead letter replaces the old one).
import assert from 'node:assert/strict';

import { run } from './harness.mjs';

// sl_bus_partition: FNV-1a of the subject, modulo the partitions (8 by default).
function partition(subject, n = 8) {
  let h = 2166136261;
  for (const b of Buffer.from(subject)) {
    h ^= b;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h % n;
}

await run('admin_api', async (t) => {
  const admin = t.admin();
  const adminToken = await t.login(admin.email, admin.password);
  const email = `customer-${Date.now()}@example.com`;
  const reg = await t.api('POST', '/api/v1/auth/register',
    { body: { email, password: 'correct horse', name: 'Customer' } });
  assert.equal(reg.status, 201);
  const customer = await t.login(email, 'correct horse');

  const routes = [
    ['GET', '/api/v1/admin/services'],
    ['GET', '/api/v1/admin/dlq?service=order'],
    ['POST', '/api/v1/admin/dlq/redrive'],
    ['POST', '/api/v1/admin/dlq/order~shop.product.created.v1~1/redrive'],
  ];
  for (const [m, p] of routes) {
    const anon = await t.api(m, p);
    assert.equal(anon.status, 401, `${m} ${p} without a token`);
    assert.match(anon.headers.get('content-type'), /problem\+json/);
    const cust = await t.api(m, p, { token: customer });
    assert.equal(cust.status, 403, `${m} ${p} as a customer`);
  }
  // A service's own route refuses a caller without the gateway's identity.
  const direct = await fetch(`http://127.0.0.1:${t.ports.order}/admin/dlq`);
  assert.equal(direct.status, 401, 'a service\'s /admin/dlq without an identity');

  // The services view: every cluster, its endpoint scraped (ready, version, uptime, rates).
  const view = await t.waitFor(async () => {
    const r = await t.api('GET', '/api/v1/admin/services', { token: adminToken });
    assert.equal(r.status, 200);
    const all = r.json.items.every((s) => s.ready && s.endpoints.every((e) => e.version !== null &&
      e.request_rate !== null));
    return all && r.json.items.length === 7 ? r.json : null;
  }, { timeout_ms: 30000, what: 'every service scraped and ready' });
  for (const s of view.items) {
    assert.equal(s.instances, 1);
    assert.equal(typeof s.version, 'string', `${s.service} version`);
    assert.ok(s.request_rate >= 0 && s.error_ratio >= 0 && s.error_ratio <= 1, `${s.service} rates`);
    assert.equal(s.ready_instances, 1);
    assert.ok(['closed', 'open', 'half_open'].includes(s.breaker), `${s.service} breaker`);
    assert.ok(s.bulkhead.max_concurrent >= 1 && s.bulkhead.in_flight >= 0, `${s.service} bulkhead`);
    const e = s.endpoints[0];
    assert.ok(e.uptime_s >= 0, `${s.service} uptime`);
    assert.ok(e.error_ratio >= 0 && e.error_ratio <= 1, `${s.service} error ratio`);
    assert.ok(e.request_rate >= 0, `${s.service} rate`);
  }
  t.log(`services: ${view.items.map((s) => `${s.service} ${s.endpoints[0].request_rate.toFixed(2)}/s p99 ${s.endpoints[0].p99_ms}`).join(', ')}`);

  // The dead-letter queue needs a service: 400 naming the field; an unknown one is 404.
  let r = await t.api('GET', '/api/v1/admin/dlq', { token: adminToken });
  assert.equal(r.status, 400);
  assert.equal(r.json.errors[0].field, 'service');
  r = await t.api('GET', '/api/v1/admin/dlq?service=nosuch', { token: adminToken });
  assert.equal(r.status, 404);
  r = await t.api('POST', '/api/v1/admin/dlq/nosuch~x~1/redrive', { token: adminToken });
  assert.equal(r.status, 404);

  // Plant an event the consumers refuse: a product.created without a product_id.
  const subject = `poison-${Date.now()}`;
  const env = JSON.stringify({
    specversion: '1.0', id: subject, source: '/tests/browser', type: 'shop.product.created.v1',
    subject, time: new Date().toISOString(), datacontenttype: 'application/json',
    data: { nonsense: true },
  });
  await t.publishRaw(`shop.product.created.v1.p.${partition(subject)}`, env);
  const dead = async () => {
    const l = await t.api('GET', '/api/v1/admin/dlq?service=order&per_page=100', { token: adminToken });
    assert.equal(l.status, 200);
    return l.json.items.filter((i) => i.subject === subject);
  };
  const first = await t.waitFor(async () => { const d = await dead(); return d.length === 1 ? d[0] : null; },
    { timeout_ms: 30000, what: 'the refused event in order\'s dead letters' });
  t.log(`dead letter: ${JSON.stringify(first)}`);
  assert.equal(first.service, 'order');
  assert.equal(first.topic, 'shop.product.created.v1');
  assert.ok(first.message_id.startsWith('order~shop.product.created.v1~'));
  assert.ok(first.attempts >= 1);
  assert.match(first.last_error, /product_id/);
  assert.ok(!Number.isNaN(Date.parse(first.at)), 'at is a time');

  const red = await t.api('POST', `/api/v1/admin/dlq/${first.message_id}/redrive`, { token: adminToken });
  assert.equal(red.status, 200, red.text);
  assert.equal(red.json.redriven, 1);
  // Back through the consumer, refused again: a new dead letter, the old one gone.
  const again = await t.waitFor(async () => {
    const d = await dead();
    return d.length === 1 && d[0].message_id !== first.message_id ? d[0] : null;
  }, { timeout_ms: 30000, what: 'the redriven event dead-lettered again under a new id' });
  t.log(`redriven and refused again: ${again.message_id}`);
  // Redriving the old id again finds nothing.
  r = await t.api('POST', `/api/v1/admin/dlq/${first.message_id}/redrive`, { token: adminToken });
  assert.equal(r.status, 404);
  // Redrive all of one service, then of every service (each answers; none fails).
  r = await t.api('POST', '/api/v1/admin/dlq/redrive?service=order', { token: adminToken });
  assert.equal(r.status, 200);
  assert.ok(r.json.redriven >= 1);
  r = await t.api('POST', '/api/v1/admin/dlq/redrive', { token: adminToken });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.errors, {});
});
