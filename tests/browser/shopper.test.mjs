// The storefront in a real browser against the whole shop: a shopper registers (a too-short
// password is refused next to its field first), searches with a sort, fills the cart (quantity
// changed, an item removed, the running total follows), deposits, checks out and sees the order
// move to confirmed and the wallet charged, finds it in the order history, cancels and sees the
// refund; a second shopper with an empty wallet checks out and sees the refusal's reason. Every
// page is checked with axe (WCAG 2.1 A/AA) and photographed at desktop and phone sizes; the
// storefront's first load is measured (weight asserted against the 200 KB budget, time printed).
import assert from 'node:assert/strict';

import { run } from './harness.mjs';

const BUDGET_BYTES = 200 * 1024;
const yen = (text) => Number(String(text).replace(/[^0-9]/g, ''));

async function checked(t, page, label) {
  assert.equal(await t.check(page, label), 0, `axe violations on ${label}`);
}

async function status(page, text, timeout = 30000) {
  await page.locator('#status').filter({ hasText: text }).waitFor({ timeout });
}

await run('shopper', async (t) => {
  const page = await t.newPage();

  // First load: weight and time to interactive, from the browser's own Performance API.
  await page.goto('/', { waitUntil: 'load' });
  await page.getByRole('heading', { level: 1, name: 'Catalogue' }).waitFor();
  await page.waitForLoadState('networkidle');
  const m = await t.measure(page);
  const interactive = await page.evaluate(() => {
    const mark = performance.getEntriesByName('shoal:interactive')[0];
    return mark ? Math.round(mark.startTime) : null;
  });
  t.log(`storefront first load: ${m.transfer_bytes} bytes in ${m.requests} requests; DOM interactive ` +
    `${m.dom_interactive_ms} ms, catalogue shown (interactive) at ${interactive} ms, load ${m.load_ms} ms`);
  assert.ok(m.transfer_bytes > 0, 'the Performance API reported no transfer');
  assert.ok(m.transfer_bytes <= BUDGET_BYTES, `first load ${m.transfer_bytes} B exceeds the ${BUDGET_BYTES} B budget`);
  assert.ok(interactive !== null, 'the storefront never marked itself interactive');
  await checked(t, page, 'catalogue');

  // Register: the API's field error appears next to the password field.
  await page.getByRole('link', { name: 'Register' }).click();
  await page.getByRole('heading', { level: 1, name: 'Create an account' }).waitFor();
  const email = `shopper-${Date.now()}@example.com`;
  await page.getByLabel('Name').fill('Ann Shopper');
  await page.getByLabel('Email').fill(email);
  const password = page.getByLabel('Password (at least 8 characters)');
  await password.fill('short');
  t.allow(/^400 POST .*\/api\/v1\/auth\/register$/);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('[data-field="password"] .field-error:not(:empty)').waitFor();
  assert.equal(await password.getAttribute('aria-invalid'), 'true');
  t.log(`field error shown: ${await page.locator('[data-field="password"] .field-error').textContent()}`);
  await checked(t, page, 'register-field-error');
  t.allowed.pop();
  await password.fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { level: 1, name: 'Catalogue' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();

  // Search with a sort: the results come back cheapest first.
  await page.getByLabel('Search', { exact: true }).fill('tea');
  await page.getByLabel('Sort by').selectOption('price');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('heading', { level: 1, name: 'Search: tea' }).waitFor();
  const cards = page.locator('#results > li');
  await cards.first().waitFor();
  const prices = (await page.locator('#results .price').allTextContents()).map(yen);
  assert.ok(prices.length >= 2, `search "tea" found ${prices.length} products`);
  assert.deepEqual(prices, [...prices].sort((a, b) => a - b), 'search results are not sorted by price');
  await checked(t, page, 'search');

  // The product page, with its availability.
  const firstName = await cards.nth(0).locator('h3').textContent();
  const secondName = await cards.nth(1).locator('h3').textContent();
  await cards.nth(0).getByRole('link').click();
  await page.getByRole('heading', { level: 1, name: firstName }).waitFor();
  await page.getByText(/In stock: \d+/).waitFor();
  await checked(t, page, 'product');
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await status(page, `Added ${firstName}`);
  await page.goBack();
  await page.getByRole('heading', { level: 1, name: 'Search: tea' }).waitFor();
  await page.getByRole('button', { name: `Add ${secondName} to cart` }).click();
  await status(page, `Added ${secondName}`);

  // The cart: change a quantity, remove an item; the total follows.
  await page.getByRole('link', { name: /^Cart/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Your cart' }).waitFor();
  await page.getByLabel(`Quantity of ${firstName}`).fill('2');
  await page.getByRole('row', { name: new RegExp(firstName) }).getByRole('button', { name: 'Update' }).click();
  await status(page, `${firstName}: quantity 2.`);
  const total2 = yen(await page.locator('#cart-total').textContent());
  assert.equal(total2, prices[0] * 2 + prices[1], 'cart total after changing a quantity');
  await page.getByRole('button', { name: `Remove ${secondName}` }).click();
  await status(page, `${secondName} removed`);
  const total = yen(await page.locator('#cart-total').textContent());
  assert.equal(total, prices[0] * 2, 'cart total after removing an item');
  await checked(t, page, 'cart');

  // The wallet: a deposit.
  await page.getByRole('link', { name: 'Wallet' }).click();
  await page.getByRole('heading', { level: 1, name: 'Wallet' }).waitFor();
  await page.getByLabel('Amount (yen)').fill('50000');
  await page.getByRole('button', { name: 'Deposit' }).click();
  await status(page, 'Deposited');
  assert.equal(yen(await page.locator('#balance').textContent()), 50000);
  await checked(t, page, 'wallet');

  // Checkout: the order goes from pending to confirmed while the page polls.
  await page.getByRole('link', { name: /^Cart/ }).click();
  await page.getByRole('link', { name: /Proceed to checkout/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Checkout' }).waitFor();
  await page.getByLabel('Address').fill('1-2-3 Shibuya');
  await page.getByLabel('City').fill('Tokyo');
  await page.getByLabel('Postal code').fill('150-0002');
  await checked(t, page, 'checkout');
  await page.getByRole('button', { name: /Place order/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Order' }).waitFor();
  await page.locator('#order-status').filter({ hasText: 'confirmed' }).waitFor({ timeout: 60000 });
  await status(page, 'Order confirmed');
  t.log(`statuses seen: ${(await page.locator('#order-trail li').allTextContents()).join(' → ')}`);
  await checked(t, page, 'order-confirmed');
  const orderUrl = page.url();

  // The wallet was charged the order's total.
  await page.getByRole('link', { name: 'Wallet', exact: true }).first().click();
  await page.getByRole('heading', { level: 1, name: 'Wallet' }).waitFor();
  assert.equal(yen(await page.locator('#balance').textContent()), 50000 - total, 'wallet charged');
  await page.locator('#history').getByText('Payment').waitFor();

  // The order history (the gateway's aggregate) lists it, with product names.
  await page.getByRole('link', { name: 'Orders' }).click();
  await page.getByRole('heading', { level: 1, name: 'Your orders' }).waitFor();
  const row = page.locator('#orders tbody tr').first();
  await row.getByText('confirmed').waitFor();
  await row.getByText(firstName).waitFor();
  await checked(t, page, 'orders');

  // Cancel: the order is cancelled and the money comes back.
  await page.goto(orderUrl);
  await page.locator('#order-status').filter({ hasText: 'confirmed' }).waitFor();
  await page.getByRole('button', { name: 'Cancel this order…' }).click();
  await page.getByLabel('Reason (optional)').fill('changed my mind');
  await page.getByRole('button', { name: 'Confirm cancellation' }).click();
  await page.locator('#order-status').filter({ hasText: 'cancelled' }).waitFor();
  await page.locator('#cancel-reason').filter({ hasText: 'customer_request' }).waitFor();
  await t.waitFor(async () => {
    await page.goto('/#/wallet');
    await page.getByRole('heading', { level: 1, name: 'Wallet' }).waitFor();
    return yen(await page.locator('#balance').textContent()) === 50000;
  }, { timeout_ms: 60000, what: 'the refund to reach the wallet' });
  await page.locator('#history').getByText('Refund').waitFor();
  // The balance at a past moment, rebuilt from the ledger: now, it is the current balance.
  await page.getByLabel('Date and time (UTC)').fill(new Date(Date.now() + 1000).toISOString().slice(0, 19));
  await page.getByRole('button', { name: 'Show balance' }).click();
  await page.locator('#as-of-result').filter({ hasText: '¥50,000' }).waitFor();
  await checked(t, page, 'refunded');

  // A second shopper with an empty wallet: checkout is refused and the page says why.
  const bob = `broke-${Date.now()}@example.com`;
  const reg = await t.api('POST', '/api/v1/auth/register', { body: { email: bob, password: 'correct horse battery', name: 'Bob' } });
  assert.equal(reg.status, 201);
  const p2 = await t.newPage();
  await p2.goto('/#/login');
  await p2.getByLabel('Email').fill(bob);
  await p2.getByLabel('Password').fill('correct horse battery');
  await p2.getByRole('button', { name: 'Sign in' }).click();
  await p2.getByRole('heading', { level: 1, name: 'Catalogue' }).waitFor();
  await p2.locator('#results > li').first().getByRole('button', { name: /Add .* to cart/ }).click();
  await status(p2, 'Added');
  await p2.goto('/#/checkout');
  await p2.getByLabel('Address').fill('4-5-6 Umeda');
  await p2.getByLabel('City').fill('Osaka');
  await p2.getByLabel('Postal code').fill('530-0001');
  await p2.getByRole('button', { name: /Place order/ }).click();
  await p2.locator('#order-status').filter({ hasText: 'cancelled' }).waitFor({ timeout: 60000 });
  await p2.locator('#cancel-reason').filter({ hasText: 'insufficient_funds' }).waitFor();
  t.log(`refusal shown: ${await p2.locator('#cancel-reason').textContent()}`);
  await checked(t, p2, 'order-refused');
});
