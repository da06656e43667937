// The storefront: a single page with hash routes (#/, #/product/ID, #/cart, #/checkout,
// #/wallet, #/orders, #/order/ID, #/login, #/register). Every call goes through the gateway.
import { Api, ApiError, Session, newIdempotencyKey } from './api.js';
import {
  h, clear, money, amountOf, when, field, showError, clearFieldErrors, formMessage, values, busy,
} from './ui.js';

const session = new Session('shoal.shop');
const api = new Api(session, { onSignedOut: () => { renderAccount(); say('Your session ended; please sign in again.'); } });
const main = document.getElementById('main');
const statusEl = document.getElementById('status');
const alertEl = document.getElementById('alert');
const PER_PAGE = 12;

const REASONS = {
  insufficient_funds: 'the wallet did not hold enough money',
  insufficient_stock: 'an item is no longer in stock',
  payment_failed: 'the payment failed',
  customer_request: 'you cancelled it',
  timeout: 'checkout could not finish in time',
  aborted: 'checkout was stopped by the shop',
};
const reasonText = (r) => (r ? REASONS[r] || r.replace(/_/g, ' ') : '');

let view = 0; // bumps on every navigation, so a poll of an old view stops

// The status line (a polite live region). A navigation clears it, except for a message said
// just before it ("Signed in.", "Order placed…"), which belongs to the new page.
let saidAt = 0;
function say(text) {
  statusEl.textContent = text || '';
  saidAt = Date.now();
}
function sayStale() {
  if (Date.now() - saidAt > 1000) statusEl.textContent = '';
}
function alarm(text) { alertEl.textContent = text || ''; }

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(qs || '') };
}

// A view draws only while it is the current one: a slow answer for a page the user has left
// (or an action's refresh) must not replace the page they are on.
const stale = (mine) => mine !== view;

let focusHeading = false; // set by a navigation: the next page's heading takes the focus

function page(title, ...children) {
  document.title = `${title} · Shoal shop`;
  const h1 = h('h1', { tabindex: '-1' }, title);
  clear(main, h1, ...children);
  if (focusHeading) {
    focusHeading = false;
    h1.focus();
  }
  return h1;
}

// Errors that are not tied to a form: never a blank page, always a sentence and a way on.
function failed(title, err) {
  page(title, h('p', { class: 'bad-text' }, err.message),
    h('p', { class: 'row' }, h('button', { type: 'button', class: 'secondary', onclick: () => route() }, 'Try again'), h('a', { href: '#/' }, 'Back to the catalogue')));
}

function needSignIn(where) {
  if (session.signedIn) return false;
  go(`#/login?next=${encodeURIComponent(where)}`);
  return true;
}

/* ---- header ------------------------------------------------------------------------------ */

function renderAccount() {
  const li = document.getElementById('nav-account');
  if (session.signedIn) {
    clear(li, h('span', { class: 'who' }, session.get('name') || 'Signed in'), ' ',
      h('button', { type: 'button', class: 'secondary', id: 'signout', onclick: signOut }, 'Sign out'));
  } else {
    clear(li, h('a', { href: '#/login' }, 'Sign in'), ' · ', h('a', { href: '#/register' }, 'Register'));
  }
  if (!session.signedIn) setCartCount(null);
}

async function signOut() {
  await api.logout();
  renderAccount();
  say('You are signed out.');
  go('#/');
}

function setCartCount(cart) {
  const a = document.getElementById('nav-cart');
  const n = cart ? cart.items.reduce((s, i) => s + i.qty, 0) : 0;
  a.textContent = n ? `Cart (${n})` : 'Cart';
}

function markNav() {
  const first = `#/${parseHash().parts[0] || ''}`;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === first) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/* ---- catalogue --------------------------------------------------------------------------- */

let categories = null;
async function loadCategories() {
  if (categories) return categories;
  const seen = new Set();
  const r = await api.get('/products?per_page=100&sort=name', { anonymous: true });
  for (const p of r.items) if (p.category) seen.add(p.category);
  categories = [...seen].sort();
  return categories;
}

function catalogueHref(q) {
  const s = new URLSearchParams();
  for (const k of ['q', 'category', 'sort', 'page']) if (q[k]) s.set(k, q[k]);
  const str = s.toString();
  return str ? `#/?${str}` : '#/';
}

async function catalogue(query) {
  const mine = view;
  const q = { q: query.get('q') || '', category: query.get('category') || '', sort: query.get('sort') || '', page: Math.max(1, parseInt(query.get('page') || '1', 10) || 1) };
  const heading = q.q ? `Search: ${q.q}` : q.category ? `Category: ${q.category}` : 'Catalogue';
  const params = new URLSearchParams({ page: String(q.page), per_page: String(PER_PAGE) });
  if (q.q) params.set('q', q.q);
  if (q.category) params.set('category', q.category);
  if (q.sort) params.set('sort', q.sort);
  let list;
  let cats = [];
  try {
    [list, cats] = await Promise.all([api.get(`/products?${params}`, { anonymous: true }), loadCategories().catch(() => [])]);
  } catch (e) {
    return stale(mine) ? undefined : failed(heading, e);
  }

  const search = field('Search', { name: 'q', type: 'search', value: q.q, maxlength: 200, autocomplete: 'off' });
  const sort = field('Sort by', { name: 'sort', value: q.sort, options: [q.q ? ['', 'Relevance'] : ['', 'Name'], q.q ? ['name', 'Name'] : null, ['price', 'Price: low to high'], ['-price', 'Price: high to low']].filter(Boolean) }, 'select');
  const cat = field('Category', { name: 'category', value: q.category, options: [['', 'All categories'], ...cats.map((c) => [c, c])] }, 'select');
  const form = h('form', { role: 'search', class: 'row', onsubmit: (ev) => {
    ev.preventDefault();
    const v = values(form);
    go(catalogueHref({ q: v.q.trim(), category: v.category, sort: v.sort }));
  } }, search, cat, sort, h('button', { type: 'submit' }, 'Search'));

  const catNav = h('nav', { 'aria-label': 'Categories' }, h('ul', { class: 'cats' },
    h('li', {}, h('a', { href: catalogueHref({ sort: q.sort }), 'aria-current': !q.category && !q.q ? 'page' : null }, 'All')),
    cats.map((c) => h('li', {}, h('a', { href: catalogueHref({ category: c, sort: q.sort }), 'aria-current': q.category === c && !q.q ? 'page' : null }, c)))));

  const pages = Math.max(1, Math.ceil((list.total || 0) / PER_PAGE));
  const results = list.items.length
    ? h('ul', { class: 'grid', id: 'results' }, list.items.map(productCard))
    : h('p', { id: 'results' }, 'No products match.');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' },
    q.page > 1 ? h('a', { href: catalogueHref({ ...q, page: q.page - 1 }), rel: 'prev' }, '← Previous') : null,
    h('span', {}, `Page ${q.page} of ${pages} (${list.total} products)`),
    q.page < pages ? h('a', { href: catalogueHref({ ...q, page: q.page + 1 }), rel: 'next' }, 'Next →') : null);
  if (stale(mine)) return;
  page(heading, form, catNav, h('h2', { class: 'muted' }, `${list.total} products`), results, pager);
}

function availability(p) {
  return p.available > 0
    ? h('span', { class: 'pill ok' }, `In stock: ${p.available}`)
    : h('span', { class: 'pill bad' }, 'Out of stock');
}

function productCard(p) {
  return h('li', { class: 'card' },
    h('h3', {}, h('a', { href: `#/product/${encodeURIComponent(p.product_id)}` }, p.name)),
    h('span', { class: 'muted' }, p.category),
    h('span', { class: 'price' }, money(p.price)),
    availability(p),
    h('button', { type: 'button', disabled: p.available > 0 ? null : true, onclick: (ev) => addToCart(p, 1, ev.currentTarget) },
      'Add ', h('span', { class: 'sr-only' }, `${p.name} `), 'to cart'));
}

async function addToCart(p, n, button) {
  if (needSignIn(location.hash.replace(/^#/, '') || '/')) return;
  alarm('');
  if (button) button.disabled = true;
  try {
    const cart = await api.get('/cart');
    const have = (cart.items.find((i) => i.product_id === p.product_id) || { qty: 0 }).qty;
    const updated = await api.put(`/cart/items/${encodeURIComponent(p.product_id)}`, { qty: have + n });
    setCartCount(updated);
    say(`Added ${p.name} to the cart (${have + n} in the cart).`);
  } catch (e) {
    alarm(`Could not add ${p.name}: ${e.message}`);
  } finally {
    if (button) button.disabled = false;
  }
}

async function product(id) {
  const mine = view;
  let p;
  try {
    p = await api.get(`/products/${encodeURIComponent(id)}`, { anonymous: true });
  } catch (e) {
    return stale(mine) ? undefined : failed(e.status === 404 ? 'Product not found' : 'Product', e);
  }
  const qty = field('Quantity', { name: 'qty', type: 'number', min: 1, max: 99, value: 1, inputmode: 'numeric', required: true });
  const form = h('form', { class: 'row', onsubmit: async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const n = parseInt(qty.control.value, 10);
    if (!(n >= 1 && n <= 99)) return showError(form, new ApiError(400, { errors: [{ field: 'qty', message: 'Enter a quantity from 1 to 99.' }] }));
    await busy(form, () => addToCart(p, n, null));
  } }, qty, h('button', { type: 'submit', disabled: p.available > 0 ? null : true }, 'Add to cart'));
  if (stale(mine)) return;
  page(p.name,
    h('p', { class: 'muted' }, h('a', { href: catalogueHref({ category: p.category }) }, p.category), ` · SKU ${p.sku}`),
    h('p', { class: 'big' }, money(p.price)),
    h('p', {}, availability(p)),
    h('p', {}, p.description || ''),
    form,
    h('p', {}, h('a', { href: '#/' }, '← Back to the catalogue')));
}

/* ---- cart and checkout ------------------------------------------------------------------- */

async function productNames(ids) {
  const names = new Map();
  const uniq = [...new Set(ids)];
  for (let i = 0; i < uniq.length; i += 100) {
    const r = await api.get(`/products?ids=${uniq.slice(i, i + 100).map(encodeURIComponent).join(',')}`, { anonymous: true });
    for (const p of r.items) names.set(p.product_id, p);
  }
  return names;
}

async function cartView() {
  const mine = view;
  if (needSignIn('/cart')) return;
  let cart;
  let names;
  try {
    cart = await api.get('/cart');
    names = await productNames(cart.items.map((i) => i.product_id)).catch(() => new Map());
  } catch (e) {
    return stale(mine) ? undefined : failed('Your cart', e);
  }
  if (stale(mine)) return;
  setCartCount(cart);
  if (!cart.items.length) {
    return page('Your cart', h('p', {}, 'Your cart is empty. ', h('a', { href: '#/' }, 'Browse the catalogue')));
  }
  const rows = cart.items.map((item) => {
    const name = (names.get(item.product_id) || {}).name || item.product_id;
    const qty = field(['Quantity', h('span', { class: 'sr-only' }, ` of ${name}`)], { name: 'qty', type: 'number', min: 0, max: 99, value: item.qty, inputmode: 'numeric', class: 'qty' });
    qty.classList.add('compact');
    const form = h('form', { class: 'row', onsubmit: async (ev) => {
      ev.preventDefault();
      const n = parseInt(qty.control.value, 10);
      if (!(n >= 0 && n <= 99)) return showError(form, new ApiError(400, { errors: [{ field: 'qty', message: 'Enter a quantity from 0 to 99.' }] }));
      await busy(form, async () => {
        try {
          await api.put(`/cart/items/${encodeURIComponent(item.product_id)}`, { qty: n });
          if (!stale(mine)) await cartView();
          say(n ? `${name}: quantity ${n}.` : `${name} removed from the cart.`);
        } catch (e) {
          showError(form, e);
        }
      });
    } }, qty, h('button', { type: 'submit', class: 'secondary' }, 'Update'),
    h('button', { type: 'button', class: 'secondary', 'aria-label': `Remove ${name}`, onclick: async () => {
      try {
        await api.del(`/cart/items/${encodeURIComponent(item.product_id)}`);
        if (!stale(mine)) await cartView();
        say(`${name} removed from the cart.`);
      } catch (e) {
        showError(form, e);
      }
    } }, 'Remove'));
    return h('tr', {},
      h('td', {}, h('a', { href: `#/product/${encodeURIComponent(item.product_id)}` }, name)),
      h('td', { class: 'num' }, money(item.unit_price)),
      h('td', {}, form),
      h('td', { class: 'num' }, money({ amount: amountOf(item.unit_price) * item.qty, currency: (item.unit_price || {}).currency || 'JPY' })));
  });
  if (stale(mine)) return;
  page('Your cart',
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Cart items' }, h('table', {},
      h('caption', { class: 'muted' }, 'Set a quantity to 0 or press Remove to take an item out.'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Product'), h('th', { scope: 'col', class: 'num' }, 'Unit price'), h('th', { scope: 'col' }, 'Quantity'), h('th', { scope: 'col', class: 'num' }, 'Subtotal'))),
      h('tbody', {}, rows),
      h('tfoot', {}, h('tr', {}, h('th', { scope: 'row', colspan: 3 }, 'Total'), h('td', { class: 'num', id: 'cart-total' }, cart.total ? money(cart.total) : 'Prices changed currency; update the cart'))))),
    h('p', {}, h('a', { href: '#/checkout', class: 'button-link', id: 'to-checkout' }, 'Proceed to checkout →')));
}

let justPlaced = null; // the 202 answer of the order just placed: its first status
let checkoutAttempt = null; // {body, key}: a repeat of the same order reuses its Idempotency-Key

async function checkout() {
  const mine = view;
  if (needSignIn('/checkout')) return;
  let cart;
  let wallet;
  try {
    [cart, wallet] = await Promise.all([api.get('/cart'), api.get('/wallet').catch(() => null)]);
  } catch (e) {
    return stale(mine) ? undefined : failed('Checkout', e);
  }
  if (stale(mine)) return;
  if (!cart.items.length) return page('Checkout', h('p', {}, 'Your cart is empty. ', h('a', { href: '#/' }, 'Browse the catalogue')));
  const f = {
    name: field('Full name', { name: 'name', autocomplete: 'name', required: true, maxlength: 200, value: session.get('name') || '' }),
    line1: field('Address', { name: 'line1', autocomplete: 'address-line1', required: true, maxlength: 200 }),
    city: field('City', { name: 'city', autocomplete: 'address-level2', required: true, maxlength: 100 }),
    postal_code: field('Postal code', { name: 'postal_code', autocomplete: 'postal-code', required: true, maxlength: 20 }),
    country: field('Country (two letters)', { name: 'country', autocomplete: 'country', required: true, maxlength: 2, value: 'JP' }),
  };
  const form = h('form', { class: 'narrow', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const v = values(form);
    const body = {
      items: cart.items.map((i) => ({ product_id: i.product_id, qty: i.qty })),
      shipping_address: { name: v.name.trim(), line1: v.line1.trim(), city: v.city.trim(), postal_code: v.postal_code.trim(), country: v.country.trim().toUpperCase() },
    };
    const missing = Object.entries(body.shipping_address).filter(([, x]) => !x).map(([k]) => ({ field: k, message: 'Required.' }));
    if (missing.length) return showError(form, new ApiError(400, { errors: missing }));
    const text = JSON.stringify(body);
    if (!checkoutAttempt || checkoutAttempt.body !== text) checkoutAttempt = { body: text, key: newIdempotencyKey() };
    await busy(form, async () => {
      try {
        const r = await api.post('/orders', body, { headers: { 'Idempotency-Key': checkoutAttempt.key } });
        checkoutAttempt = null;
        justPlaced = r;
        say('Order placed; waiting for confirmation.');
        go(`#/order/${encodeURIComponent(r.order_id)}`);
      } catch (e) {
        showError(form, e);
      }
    });
  } },
  h('fieldset', {}, h('legend', {}, 'Shipping address'), Object.values(f)),
  h('button', { type: 'submit', id: 'place-order' }, `Place order · ${money(cart.total)}`));
  if (stale(mine)) return;
  page('Checkout',
    h('div', { class: 'panel' }, h('dl', { class: 'kv' },
      h('dt', {}, 'Items'), h('dd', {}, String(cart.items.reduce((s, i) => s + i.qty, 0))),
      h('dt', {}, 'Total'), h('dd', {}, money(cart.total)),
      h('dt', {}, 'Wallet balance'), h('dd', {}, wallet ? money(wallet.balance) : '—'))),
    h('p', { class: 'muted' }, 'The total is paid from your wallet. ', h('a', { href: '#/wallet' }, 'Add money')),
    form);
}

/* ---- orders ------------------------------------------------------------------------------ */

function statusPill(o) {
  const kind = { confirmed: 'ok', shipped: 'ok', delivered: 'ok', cancelled: 'bad', pending: 'warn' }[o.status] || '';
  return h('span', { class: `pill ${kind}` }, o.status);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function orderView(id) {
  if (needSignIn(`/order/${id}`)) return;
  const mine = ++view;
  let o;
  try {
    o = await api.get(`/orders/${encodeURIComponent(id)}`);
  } catch (e) {
    return failed('Order', e);
  }
  const names = await productNames((o.items || []).map((i) => i.product_id)).catch(() => new Map());
  if (mine !== view) return;
  const seen = justPlaced && justPlaced.order_id === o.order_id && justPlaced.status !== o.status ? [justPlaced.status, o.status] : [o.status];
  justPlaced = null;
  const statusLine = h('p', { class: 'big', id: 'order-status' });
  const trail = h('ol', { class: 'steps', id: 'order-trail', 'aria-label': 'Status so far' });
  const actions = h('div', { id: 'order-actions' });
  const details = h('div', {});
  page('Order', h('p', { class: 'muted' }, `Order ${o.order_id}`), statusLine, trail, actions, details,
    h('p', {}, h('a', { href: '#/orders' }, 'All orders'), ' · ', h('a', { href: '#/wallet' }, 'Wallet')));

  const draw = () => {
    clear(statusLine, 'Status: ', statusPill(o), o.status === 'pending' ? ' (processing…)' : '');
    clear(trail, seen.map((s) => h('li', {}, s)));
    clear(details,
      o.cancel_reason ? h('p', { id: 'cancel-reason', class: 'bad-text' }, `Cancelled because ${reasonText(o.cancel_reason)} (${o.cancel_reason}).`) : null,
      h('dl', { class: 'kv' }, h('dt', {}, 'Total'), h('dd', {}, money(o.total_amount)),
        h('dt', {}, 'Placed'), h('dd', {}, when(o.created_at)), h('dt', {}, 'Updated'), h('dd', {}, when(o.updated_at)),
        o.shipping_address ? [h('dt', {}, 'Ship to'), h('dd', {}, [o.shipping_address.name, o.shipping_address.line1, o.shipping_address.city, o.shipping_address.postal_code, o.shipping_address.country].filter(Boolean).join(', '))] : null),
      h('h2', {}, 'Items'),
      h('ul', {}, (o.items || []).map((i) => h('li', {}, `${(names.get(i.product_id) || {}).name || i.name || i.product_id} × ${i.qty} at ${money(i.unit_price)}`))));
    clear(actions, cancelControl(o, () => orderView(id)));
  };
  draw();
  // Poll while the saga runs; the live region announces the outcome once.
  let delay = 400;
  while (o.status === 'pending' && mine === view) {
    await sleep(delay);
    delay = Math.min(delay * 1.5, 3000);
    if (mine !== view) return;
    try {
      o = await api.get(`/orders/${encodeURIComponent(id)}`);
      alarm('');
    } catch (e) {
      alarm(`Could not refresh the order: ${e.message}`);
      continue;
    }
    if (seen[seen.length - 1] !== o.status) seen.push(o.status);
    draw();
  }
  if (mine !== view) return;
  if (o.status === 'confirmed') {
    say('Order confirmed: the payment was taken from your wallet.');
    // The ordered items leave the cart once the confirmation event reaches it.
    setTimeout(() => api.get('/cart').then(setCartCount, () => {}), 1500);
  }
  else if (o.status === 'cancelled') say(`Order cancelled: ${reasonText(o.cancel_reason)}.`);
}

function cancelControl(o, after) {
  if (!['pending', 'confirmed'].includes(o.status)) return null;
  const note = field('Reason (optional)', { name: 'reason', maxlength: 500 });
  const form = h('form', { class: 'row', hidden: true, onsubmit: async (ev) => {
    ev.preventDefault();
    await busy(form, async () => {
      try {
        const reason = note.control.value.trim();
        await api.post(`/orders/${encodeURIComponent(o.order_id)}/cancel`, reason ? { reason } : {});
        say('Order cancelled; the payment is refunded to your wallet.');
        await after();
      } catch (e) {
        if (e.reason === 'checkout_in_progress') formMessage(form, 'Checkout is still running; try again in a moment.');
        else showError(form, e);
      }
    });
  } }, note, h('button', { type: 'submit', class: 'danger', id: 'confirm-cancel' }, 'Confirm cancellation'));
  const open = h('button', { type: 'button', class: 'secondary', id: 'cancel-order', 'aria-expanded': 'false', onclick: () => {
    form.hidden = !form.hidden;
    open.setAttribute('aria-expanded', String(!form.hidden));
    if (!form.hidden) note.control.focus();
  } }, 'Cancel this order…');
  return h('div', {}, open, form);
}

async function orders() {
  const mine = view;
  if (needSignIn('/orders')) return;
  let r;
  try {
    r = await api.get(`/users/${encodeURIComponent(session.userId)}/orders`);
  } catch (e) {
    return stale(mine) ? undefined : failed('Your orders', e);
  }
  const list = r.orders || [];
  if (stale(mine)) return;
  if (!list.length) return page('Your orders', h('p', {}, 'No orders yet. ', h('a', { href: '#/' }, 'Browse the catalogue')));
  page('Your orders', h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Orders' }, h('table', { id: 'orders' },
    h('thead', {}, h('tr', {}, ['Placed', 'Items', 'Total', 'Status', ''].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, list.map((o) => {
      const details = o.product_details || [];
      const items = (o.items || []).map((i, n) => `${(details[n] && details[n].name) || i.name || i.product_id} × ${i.qty}`).join(', ');
      return h('tr', {},
        h('td', {}, when(o.created_at)),
        h('td', {}, items),
        h('td', { class: 'num' }, money(o.total_amount)),
        h('td', {}, statusPill(o), o.cancel_reason ? h('span', { class: 'muted' }, ` (${reasonText(o.cancel_reason)})`) : null),
        h('td', {}, h('a', { href: `#/order/${encodeURIComponent(o.order_id)}` }, 'Details', h('span', { class: 'sr-only' }, ` of the order placed ${when(o.created_at)}`))));
    })))));
}

/* ---- wallet ------------------------------------------------------------------------------ */

async function wallet(query) {
  const mine = view;
  if (needSignIn('/wallet')) return;
  const pg = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);
  let w;
  let hist;
  try {
    [w, hist] = await Promise.all([api.get('/wallet'), api.get(`/wallet/history?page=${pg}&per_page=10`)]);
  } catch (e) {
    return stale(mine) ? undefined : failed('Wallet', e);
  }
  const amount = field('Amount (yen)', { name: 'amount', type: 'number', min: 1, max: 1000000000, step: 1, inputmode: 'numeric', required: true });
  const deposit = h('form', { class: 'row', id: 'deposit', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    clearFieldErrors(deposit);
    const n = Number(amount.control.value);
    if (!Number.isInteger(n) || n < 1 || n > 1e9) return showError(deposit, new ApiError(400, { errors: [{ field: 'amount', message: 'Enter a whole number of yen from 1 to 1,000,000,000.' }] }));
    await busy(deposit, async () => {
      try {
        await api.post('/wallet/deposits', { amount: n }, { headers: { 'Idempotency-Key': newIdempotencyKey() } });
        if (!stale(mine)) await wallet(new URLSearchParams());
        say(`Deposited ${money(n)}.`);
      } catch (e) {
        if (e.reason === 'deposit_limit') showError(deposit, new ApiError(e.status, { errors: [{ field: 'amount', message: `Today's deposit limit is reached${e.problem.detail ? `: ${e.problem.detail}` : ''}.` }] }));
        else showError(deposit, e);
      }
    });
  } }, amount, h('button', { type: 'submit' }, 'Deposit'));

  const asOf = field('Date and time (UTC)', { name: 'as_of', type: 'datetime-local', step: 1, required: true });
  const asOfOut = h('output', { id: 'as-of-result', for: asOf.control.id });
  const asOfForm = h('form', { class: 'row', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    clearFieldErrors(asOfForm);
    const v = asOf.control.value;
    if (!v) return showError(asOfForm, new ApiError(400, { errors: [{ field: 'as_of', message: 'Choose a date and time.' }] }));
    const iso = `${v.length === 16 ? `${v}:00` : v}Z`;
    await busy(asOfForm, async () => {
      try {
        const r = await api.get(`/wallet/balance?as_of=${encodeURIComponent(iso)}`);
        asOfOut.textContent = `Balance at ${iso}: ${money(r.balance)} (after ${r.version} events)`;
      } catch (e) {
        showError(asOfForm, e);
      }
    });
  } }, asOf, h('button', { type: 'submit', class: 'secondary' }, 'Show balance'), asOfOut);

  const pages = Math.max(1, Math.ceil((hist.total || 0) / 10));
  const OUTGOING = new Set(['PaymentCharged', 'MoneyWithdrawn']);
  const label = { AccountOpened: 'Wallet opened', MoneyDeposited: 'Deposit', MoneyWithdrawn: 'Transfer out', PaymentCharged: 'Payment', PaymentRefunded: 'Refund' };
  if (stale(mine)) return;
  page('Wallet',
    h('div', { class: 'panel' }, h('p', {}, 'Balance'), h('p', { class: 'big', id: 'balance' }, money(w.balance))),
    h('h2', {}, 'Add money'), deposit,
    h('h2', {}, 'History'),
    hist.items.length ? h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Wallet history' }, h('table', { id: 'history' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'When'), h('th', { scope: 'col' }, 'What'), h('th', { scope: 'col', class: 'num' }, 'Amount'), h('th', { scope: 'col', class: 'num' }, 'Balance after'))),
      h('tbody', {}, hist.items.map((e) => h('tr', {},
        h('td', {}, when(e.at)),
        h('td', {}, label[e.type] || String(e.type).replace(/_/g, ' '), e.order_id ? h('span', { class: 'muted' }, ' · order ', h('a', { href: `#/order/${encodeURIComponent(e.order_id)}` }, String(e.order_id).slice(-8))) : null),
        h('td', { class: 'num' }, OUTGOING.has(e.type) ? `−${money(e.amount)}` : money(e.amount)),
        h('td', { class: 'num' }, money(e.balance_after))))))) : h('p', {}, 'No movements yet.'),
    pages > 1 ? h('nav', { class: 'pager', 'aria-label': 'History pages' },
      pg > 1 ? h('a', { href: `#/wallet?page=${pg - 1}` }, '← Newer') : null,
      h('span', {}, `Page ${pg} of ${pages}`),
      pg < pages ? h('a', { href: `#/wallet?page=${pg + 1}` }, 'Older →') : null) : null,
    h('h2', {}, 'Balance at a past moment'), asOfForm);
}

/* ---- sign in and register ---------------------------------------------------------------- */

async function afterLogin(next) {
  try {
    const me = await api.get('/users/me');
    session.set('name', me.name);
    session.set('role', me.role);
    if (!session.userId) session.set('user', me.user_id);
  } catch {
    /* the name is decoration; the token works */
  }
  renderAccount();
  api.get('/cart').then(setCartCount, () => {});
  go(`#${next && next.startsWith('/') ? next : '/'}`);
}

function login(query) {
  const next = query.get('next') || '/';
  const email = field('Email', { name: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'narrow', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    await busy(form, async () => {
      try {
        await api.login(email.control.value.trim(), password.control.value);
        say('Signed in.');
        await afterLogin(next);
      } catch (e) {
        showError(form, e.status === 401 ? new ApiError(401, { detail: 'Wrong email or password.' }) : e);
      }
    });
  } }, email, password, h('button', { type: 'submit' }, 'Sign in'));
  page('Sign in', form, h('p', {}, 'New here? ', h('a', { href: `#/register?next=${encodeURIComponent(next)}` }, 'Create an account')));
}

function register(query) {
  const next = query.get('next') || '/';
  const name = field('Name', { name: 'name', autocomplete: 'name', required: true, maxlength: 200 });
  const email = field('Email', { name: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = field('Password (at least 8 characters)', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const form = h('form', { class: 'narrow', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const v = values(form);
    await busy(form, async () => {
      try {
        await api.post('/auth/register', { email: v.email.trim(), password: v.password, name: v.name.trim() }, { anonymous: true });
      } catch (e) {
        if (e.status === 409) return showError(form, new ApiError(409, { errors: [{ field: 'email', message: 'An account with this email exists. Sign in instead.' }] }));
        return showError(form, e);
      }
      try {
        await api.login(v.email.trim(), v.password);
        say('Welcome! Your account is ready.');
        await afterLogin(next);
      } catch (e) {
        showError(form, e);
      }
    });
  } }, name, email, password, h('button', { type: 'submit' }, 'Create account'));
  page('Create an account', form, h('p', {}, 'Have an account? ', h('a', { href: `#/login?next=${encodeURIComponent(next)}` }, 'Sign in')));
}

/* ---- router ------------------------------------------------------------------------------ */

async function route() {
  view++;
  alarm('');
  markNav();
  const { parts, query } = parseHash();
  const [a, b] = parts;
  try {
    if (!a) await catalogue(query);
    else if (a === 'product' && b) await product(b);
    else if (a === 'cart') await cartView();
    else if (a === 'checkout') await checkout();
    else if (a === 'order' && b) await orderView(b);
    else if (a === 'orders') await orders();
    else if (a === 'wallet') await wallet(query);
    else if (a === 'login') login(query);
    else if (a === 'register') register(query);
    else page('Not found', h('p', {}, 'There is no such page. ', h('a', { href: '#/' }, 'Back to the catalogue')));
  } catch (e) {
    failed('Something went wrong', e instanceof ApiError ? e : new ApiError(500, { detail: String(e && e.message) }));
  }
  if (!document.body.dataset.ready) performance.mark('shoal:interactive');
  document.body.dataset.ready = 'true';
}

// Focus moves to the new page's heading so keyboard and screen reader users land there.
window.addEventListener('hashchange', () => {
  sayStale();
  focusHeading = true;
  route();
});

renderAccount();
if (session.signedIn) api.get('/cart').then(setCartCount, () => {});
route();
