// The operations console: admin routes of the gateway only (/api/v1/admin/...), with the
// admin's token. A customer's token gets 403 from each of them; the console says so plainly.
import { Api, ApiError, Session, newIdempotencyKey } from '/js/api.js';
import { h, clear, money, when, field, showError, clearFieldErrors, formMessage, values, busy } from '/js/ui.js';

const session = new Session('shoal.ops');
const api = new Api(session, { onSignedOut: () => { renderAccount(); go('#/login'); } });
const main = document.getElementById('main');
const statusEl = document.getElementById('status');
const alertEl = document.getElementById('alert');
const REFRESH_MS = 2000;

let view = 0;
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
const alarm = (t) => { alertEl.textContent = t || ''; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/services';
  const [path, qs] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(qs || '') };
}

let focusHeading = false; // set by a navigation: the next page's heading takes the focus

// A view draws only while it is the current one: a slow answer for a page the user has left
// (or an action's refresh) must not replace the page they are on.
const stale = (mine) => mine !== view;

function page(title, ...children) {
  document.title = `${title} · Shoal operations`;
  const h1 = h('h1', { tabindex: '-1' }, title);
  clear(main, h1, ...children);
  if (focusHeading) {
    focusHeading = false;
    h1.focus();
  }
}

// 403 is the answer every admin route gives a customer: say so, and offer to switch accounts.
function forbidden() {
  return h('div', { class: 'forbidden', id: 'forbidden' },
    h('h2', {}, 'Not an administrator (403 Forbidden)'),
    h('p', {}, `The account signed in${session.get('name') ? ` (${session.get('name')})` : ''} is a ${session.get('role') || 'customer'} account. The console's data is for administrators only; the gateway refused it.`),
    h('p', {}, h('button', { type: 'button', onclick: signOut }, 'Sign in as an administrator')));
}

function failed(title, err) {
  if (err.status === 403) return page(title, forbidden());
  page(title, h('p', { class: 'bad-text' }, err.message), h('p', {}, h('button', { type: 'button', class: 'secondary', onclick: () => route() }, 'Try again')));
}

function renderAccount() {
  const li = document.getElementById('nav-account');
  if (session.signedIn) {
    clear(li, h('span', { class: 'who' }, `${session.get('name') || 'Signed in'} (${session.get('role') || '?'})`), ' ',
      h('button', { type: 'button', class: 'secondary', onclick: signOut }, 'Sign out'));
  } else clear(li, h('a', { href: '#/login' }, 'Sign in'));
}

async function signOut() {
  await api.logout();
  renderAccount();
  go('#/login');
}

function markNav() {
  const first = `#/${parseHash().parts[0] || 'services'}`;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === first) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/* ---- generic rendering ------------------------------------------------------------------- */

const first = (o, ...names) => {
  for (const n of names) if (o && o[n] !== undefined && o[n] !== null) return o[n];
  return undefined;
};

function listOf(r, ...names) {
  if (Array.isArray(r)) return r;
  for (const n of [...names, 'items']) if (r && Array.isArray(r[n])) return r[n];
  if (r && typeof r === 'object') return Object.entries(r).filter(([, v]) => v && typeof v === 'object' && !Array.isArray(v)).map(([k, v]) => ({ name: k, ...v }));
  return [];
}

function num(v, digits = 2) {
  if (v === undefined || v === null || v === '') return '—';
  if (typeof v !== 'number') return String(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

function pct(v) {
  return typeof v === 'number' ? `${(v * 100).toFixed(2)} %` : num(v);
}

function duration(s) {
  if (typeof s !== 'number') return num(s);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = Math.floor(s % 60);
  return d ? `${d}d ${hh}h` : hh ? `${hh}h ${mm}m` : mm ? `${mm}m ${ss}s` : `${ss}s`;
}

// Any JSON value as readable text (nested objects as key: value lists).
function show(v) {
  if (v === null || v === undefined) return '—';
  if (Array.isArray(v)) return v.length ? h('ul', {}, v.map((x) => h('li', {}, show(x)))) : '—';
  if (typeof v === 'object') {
    return h('dl', { class: 'kv' }, Object.entries(v).map(([k, x]) => [h('dt', {}, k), h('dd', {}, show(x))]));
  }
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

function table(id, caption, cols, rows) {
  // A wide table scrolls sideways on a phone: its region can take the focus (keyboard scrolling).
  const label = caption || (id ? id.replace(/-/g, ' ') : cols.filter(Boolean).slice(0, 3).join(', '));
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': label }, h('table', { id },
    caption ? h('caption', { class: 'muted' }, caption) : null,
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows)));
}

/* ---- services ---------------------------------------------------------------------------- */

function isReady(s) {
  const r = first(s, 'ready', 'up');
  if (typeof r === 'boolean') return r;
  const st = first(s, 'status', 'state');
  return st === 'ready' || st === 'up';
}

// Each service is {service, ready, instances, ready_instances, breaker, breakers, bulkhead,
// endpoints: [{endpoint, ready, version, uptime_s, request_rate, error_ratio, p99_ms, ...}]}:
// the row sums the rates, weighs the error ratios by rate and takes the worst p99.
function endpointsOf(s) {
  const e = first(s, 'endpoints');
  return Array.isArray(e) ? e : [];
}

function rollup(s) {
  const eps = endpointsOf(s);
  const nums = (k) => eps.map((e) => e[k]).filter((v) => typeof v === 'number');
  const rates = nums('request_rate');
  const rate = rates.length ? rates.reduce((a, b) => a + b, 0) : undefined;
  let err;
  const withRate = eps.filter((e) => typeof e.error_ratio === 'number' && typeof e.request_rate === 'number');
  if (withRate.length) {
    const w = withRate.reduce((a, e) => a + e.request_rate, 0);
    err = w > 0 ? withRate.reduce((a, e) => a + e.error_ratio * e.request_rate, 0) / w : Math.max(...withRate.map((e) => e.error_ratio));
  }
  const p99s = nums('p99_ms');
  const ups = nums('uptime_s');
  const versions = [...new Set(eps.map((e) => e.version).filter(Boolean))];
  return {
    rate: first(s, 'request_rate') ?? rate,
    error_ratio: first(s, 'error_ratio') ?? err,
    p99_ms: first(s, 'p99_ms') ?? (p99s.length ? Math.max(...p99s) : undefined),
    uptime_s: first(s, 'uptime_s') ?? (ups.length ? Math.min(...ups) : undefined),
    version: first(s, 'version') ?? (versions.length ? versions.join(', ') : undefined),
  };
}

function bulkheadText(b) {
  if (!b || typeof b !== 'object') return show(b);
  const cap = b.max_concurrent ? `${b.in_flight ?? 0} of ${b.max_concurrent} in use` : `${b.in_flight ?? 0} in flight (no bound)`;
  return `${cap}; ${b.rejections ?? 0} rejected`;
}

function breakerText(b) {
  if (b === null || b === undefined) return '—';
  if (typeof b === 'string') return b;
  if (typeof b === 'object' && b.state) return String(b.state);
  return show(b);
}

function serviceRow(s) {
  const ready = isReady(s);
  const name = first(s, 'service', 'name', 'cluster') || '?';
  const total = typeof s.instances === 'number' ? s.instances : endpointsOf(s).length;
  const readyN = typeof s.ready_instances === 'number' ? s.ready_instances : endpointsOf(s).filter(isReady).length;
  const r = rollup(s);
  return h('tr', { 'data-service': name },
    h('th', { scope: 'row' }, name),
    h('td', {}, h('span', { class: ready ? 'state-up' : 'state-down' }, ready ? 'up' : 'down')),
    h('td', { class: 'num' }, `${readyN}/${total}`),
    h('td', {}, num(r.version)),
    h('td', {}, duration(r.uptime_s)),
    h('td', { class: 'num' }, typeof r.rate === 'number' ? r.rate.toFixed(2) : num(r.rate)),
    h('td', { class: 'num' }, pct(r.error_ratio)),
    h('td', { class: 'num' }, num(r.p99_ms, 1)),
    h('td', {}, breakerText(first(s, 'breaker'))),
    h('td', {}, bulkheadText(first(s, 'bulkhead'))));
}

function instanceTable(s) {
  const eps = endpointsOf(s);
  return table(null, null, ['Endpoint', 'Ready', 'Version', 'Uptime', 'Requests/s', 'Error ratio', 'p99 (ms)', 'Scraped'],
    eps.map((e) => h('tr', {},
      h('th', { scope: 'row' }, num(first(e, 'endpoint', 'address'))),
      h('td', {}, h('span', { class: isReady(e) ? 'state-up' : 'state-down' }, isReady(e) ? 'ready' : 'not ready')),
      h('td', {}, num(e.version)), h('td', {}, duration(e.uptime_s)), h('td', { class: 'num' }, typeof e.request_rate === 'number' ? e.request_rate.toFixed(2) : num(e.request_rate)),
      h('td', { class: 'num' }, pct(e.error_ratio)), h('td', { class: 'num' }, num(e.p99_ms, 1)), h('td', {}, when(e.scraped_at)))));
}

async function services() {
  const mine = ++view;
  const updated = h('p', { class: 'muted', id: 'services-updated' });
  const body = h('div', { id: 'services' });
  const extra = h('div', {});
  page('Services', h('p', {}, 'Readiness, traffic and resilience of every process, refreshed every two seconds.'), updated, body, extra);
  while (mine === view) {
    try {
      const r = await api.get('/admin/services');
      if (mine !== view) return;
      const list = listOf(r, 'services');
      clear(body, table('services-table', null,
        ['Service', 'State', 'Ready', 'Version', 'Uptime', 'Requests/s', 'Error ratio', 'p99 (ms)', 'Breaker', 'Bulkhead'],
        list.map(serviceRow)));
      // The instance tables stay as they are while one is open, so a reader is not interrupted.
      if (!extra.querySelector('details[open]')) {
        const details = list.filter((s) => endpointsOf(s).length);
        clear(extra, details.length ? [h('h2', {}, 'Instances'), details.map((s) => h('details', {},
          h('summary', {}, `${first(s, 'service', 'name')}: ${endpointsOf(s).length} instance(s)`), instanceTable(s)))] : null);
      }
      updated.textContent = `Updated ${new Date().toLocaleTimeString('en-GB')}; ${list.filter(isReady).length} of ${list.length} up.`;
      alarm('');
    } catch (e) {
      if (mine !== view) return;
      if (e.status === 403 || e.status === 401) return failed('Services', e);
      alarm(`Could not refresh: ${e.message}`);
    }
    await sleep(REFRESH_MS);
  }
}

/* ---- sagas ------------------------------------------------------------------------------- */

const SAGA_STATES = [['', 'All'], ['running', 'Running'], ['stuck', 'Stuck'], ['compensating', 'Compensating'], ['completed', 'Completed'], ['compensated', 'Compensated']];

async function sagas(query) {
  const mine = view;
  const status = query.get('status') || '';
  const pg = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);
  let r;
  const qs = new URLSearchParams({ page: String(pg), per_page: '50' });
  if (status) qs.set('status', status);
  try {
    r = await api.get(`/admin/sagas?${qs}`);
  } catch (e) {
    return stale(mine) ? undefined : failed('Sagas', e);
  }
  const filter = field('Status', { name: 'status', value: status, options: SAGA_STATES }, 'select');
  const form = h('form', { class: 'row', onsubmit: (ev) => { ev.preventDefault(); go(`#/sagas${filter.control.value ? `?status=${filter.control.value}` : ''}`); } },
    filter, h('button', { type: 'submit', class: 'secondary' }, 'Show'));
  const items = listOf(r, 'sagas');
  if (stale(mine)) return;
  page('Sagas', form,
    items.length ? table('sagas-table', `${r.total ?? items.length} saga(s)`, ['Saga', 'Type', 'Status', 'Step', 'Updated', 'Stuck because'],
      items.map((s) => h('tr', { 'data-saga': s.saga_id },
        h('td', {}, h('a', { href: `#/saga/${encodeURIComponent(s.saga_id)}` }, s.saga_id)),
        h('td', {}, num(s.type)), h('td', {}, num(s.status)), h('td', {}, num(s.step)),
        h('td', {}, when(s.updated_at)), h('td', {}, s.stuck_reason || '—'))))
      : h('p', { id: 'sagas-table' }, 'No sagas in this state.'),
    h('nav', { class: 'pager', 'aria-label': 'Pages' },
      pg > 1 ? h('a', { href: `#/sagas?${new URLSearchParams({ status, page: String(pg - 1) })}` }, '← Previous') : null,
      (r.total || 0) > pg * 50 ? h('a', { href: `#/sagas?${new URLSearchParams({ status, page: String(pg + 1) })}` }, 'Next →') : null));
}

async function saga(id) {
  const mine = view;
  let s;
  try {
    s = await api.get(`/admin/sagas/${encodeURIComponent(id)}`);
  } catch (e) {
    return stale(mine) ? undefined : failed('Saga', e);
  }
  const act = (verb, label, cls) => {
    const form = h('form', { onsubmit: async (ev) => {
      ev.preventDefault();
      await busy(form, async () => {
        try {
          await api.post(`/admin/sagas/${encodeURIComponent(id)}/${verb}`, undefined, { headers: { 'Idempotency-Key': newIdempotencyKey() } });
          if (!stale(mine)) await saga(id);
          say(`Saga ${verb === 'resume' ? 'resumed' : 'aborted; compensation runs'}.`);
        } catch (e) {
          if (e.status === 409) formMessage(form, verb === 'abort' ? `Cannot abort: the saga is past its pivot (${e.problem.detail || e.reason || 'conflict'}).` : `Cannot resume: ${e.problem.detail || e.reason || 'conflict'}.`);
          else showError(form, e);
        }
      });
    } }, h('button', { type: 'submit', class: cls, id: `saga-${verb}` }, label));
    return form;
  };
  const history = listOf(s.history || [], 'history');
  const cols = [...new Set(history.flatMap((e) => Object.keys(e)))];
  if (stale(mine)) return;
  page(`Saga ${s.type || ''}`.trim(),
    h('dl', { class: 'kv panel', id: 'saga-summary' },
      ['saga_id', 'type', 'status', 'step', 'call', 'attempt', 'reason', 'stuck_reason', 'next_wake_at', 'updated_at']
        .filter((k) => k in s || k === 'stuck_reason')
        .map((k) => [h('dt', {}, k.replace(/_/g, ' ')), h('dd', { 'data-key': k }, /_at$/.test(k) ? when(s[k]) : show(s[k]))])),
    Array.isArray(s.steps) ? [h('h2', {}, 'Steps'), h('ol', { class: 'steps' }, s.steps.map((st) => h('li', {}, `${st.name}: ${st.status}`)))] : null,
    h('div', { class: 'row' }, act('resume', 'Resume', ''), act('abort', 'Abort and compensate', 'danger')),
    h('h2', {}, 'History'),
    history.length ? table('saga-history', null, cols, history.map((e) => h('tr', {}, cols.map((c) => h('td', {}, /(^at$|_at$)/.test(c) ? when(e[c]) : show(e[c]))))))
      : h('p', {}, 'No history recorded.'),
    s.input !== undefined ? h('details', {}, h('summary', {}, 'Input'), show(s.input)) : null,
    h('p', {}, h('a', { href: '#/sagas' }, '← All sagas')));
}

/* ---- events ------------------------------------------------------------------------------ */

// The gateway lists dead letters per service: with no service chosen, the page asks each one
// (in parallel) and shows them together, oldest first.
async function events(query) {
  const mine = view;
  const service = query.get('service') || '';
  let svc;
  try {
    svc = await api.get('/admin/services');
  } catch (e) {
    return stale(mine) ? undefined : failed('Events', e);
  }
  const services = listOf(svc, 'services');
  const names = services.map((s) => first(s, 'service', 'name')).filter(Boolean);
  const targets = service ? [service] : names;
  const answers = await Promise.all(targets.map((n) => api.get(`/admin/dlq?service=${encodeURIComponent(n)}&per_page=100`)
    .then((r) => ({ n, r }), (e) => ({ n, e }))));
  const refused = answers.find((a) => a.e && (a.e.status === 403 || a.e.status === 401));
  if (refused) return stale(mine) ? undefined : failed('Events', refused.e);
  const items = answers.flatMap((a) => (a.r ? listOf(a.r, 'messages') : []))
    .sort((x, y) => String(x.at).localeCompare(String(y.at)));
  const total = answers.reduce((n, a) => n + (a.r ? a.r.total ?? listOf(a.r, 'messages').length : 0), 0);
  const unreachable = answers.filter((a) => a.e).map((a) => `${a.n}: ${a.e.message}`);

  const redrive = async (path, what) => {
    try {
      const r = await api.post(path, undefined);
      if (!stale(mine)) await events(query);
      const errs = r && r.errors && typeof r.errors === 'object' ? Object.entries(r.errors) : [];
      say(`Redrove ${what}${r && typeof r.redriven === 'number' ? ` (${r.redriven} sent back)` : ''}.` +
        (errs.length ? ` Not reached: ${errs.map(([k, v]) => `${k} (${v})`).join(', ')}.` : ''));
    } catch (e) {
      alarm(`Redrive failed: ${e.message}`);
    }
  };
  const filter = field('Service', { name: 'service', value: service, options: [['', 'All services'], ...names.map((n) => [n, n])] }, 'select');
  const form = h('form', { class: 'row', onsubmit: (ev) => { ev.preventDefault(); const v = filter.control.value; go(`#/events${v ? `?service=${encodeURIComponent(v)}` : ''}`); } },
    filter, h('button', { type: 'submit', class: 'secondary' }, 'Show'));
  // Outbox backlog and consumer lag, where the services route reports them.
  const backlog = services.flatMap((s) => {
    const out = first(s, 'outbox_backlog', 'outbox');
    const lag = first(s, 'consumer_lag', 'consumers', 'lag');
    return out === undefined && lag === undefined ? [] : [h('tr', {}, h('th', { scope: 'row' }, first(s, 'service', 'name')), h('td', {}, show(out)), h('td', {}, show(lag)))];
  });
  if (stale(mine)) return;
  page('Events',
    h('h2', {}, 'Dead-letter queue'), form,
    unreachable.length ? h('p', { class: 'warn-text' }, `Not listed: ${unreachable.join('; ')}`) : null,
    items.length ? [
      h('p', {}, h('button', { type: 'button', id: 'redrive-all', onclick: () => redrive(`/admin/dlq/redrive${service ? `?service=${encodeURIComponent(service)}` : ''}`, service ? `every dead letter of ${service}` : 'every dead letter') },
        `Redrive all (${total})`)),
      table('dlq-table', `${total} dead letter(s)${service ? ` of ${service}` : ''}; a redriven event goes back through its consumer.`,
        ['Service', 'Topic', 'Subject', 'Attempts', 'Last error', 'Dead-lettered', ''],
        items.map((m) => h('tr', { 'data-message': m.message_id },
          h('td', {}, num(m.service)), h('td', {}, num(m.topic)), h('td', {}, num(m.subject)),
          h('td', { class: 'num' }, num(m.attempts)), h('td', {}, num(m.last_error)), h('td', {}, when(m.at)),
          h('td', {}, h('button', { type: 'button', class: 'secondary', onclick: () => redrive(`/admin/dlq/${encodeURIComponent(m.message_id)}/redrive`, `message ${m.message_id}`) },
            'Redrive', h('span', { class: 'sr-only' }, ` ${m.topic} ${m.subject || ''}`))))))]
      : h('p', { id: 'dlq-table' }, 'The dead-letter queue is empty.'),
    h('h2', {}, 'Outbox backlog and consumer lag'),
    backlog.length ? table('lag-table', null, ['Service', 'Outbox backlog', 'Consumer lag'], backlog)
      : h('p', { class: 'muted' }, 'The services route reports no outbox or consumer figures.'));
}

/* ---- audit ------------------------------------------------------------------------------- */

async function audit() {
  const mine = view;
  let r;
  try {
    r = await api.get('/admin/audit');
  } catch (e) {
    return stale(mine) ? undefined : failed('Audit', e);
  }
  const checks = listOf(r, 'checks');
  if (stale(mine)) return;
  page('Audit',
    h('p', { class: r.ok ? 'state-up' : 'state-down', id: 'audit-overall' }, r.ok ? 'All invariants hold.' : 'An invariant is broken.'),
    table('audit-table', null, ['Check', 'Holds', 'Value', 'Detail'], checks.map((c) => h('tr', {},
      h('th', { scope: 'row' }, c.name), h('td', {}, h('span', { class: c.ok ? 'state-up' : 'state-down' }, c.ok ? 'yes' : 'no')),
      h('td', {}, show(c.value)), h('td', {}, show(c.detail))))),
    h('p', {}, h('a', { href: '#/audit' }, 'Run again')));
}

/* ---- products ---------------------------------------------------------------------------- */

function productForm(p, onDone) {
  const editing = Boolean(p);
  const f = [
    editing ? null : field('SKU', { name: 'sku', required: true, maxlength: 64, pattern: '[A-Za-z0-9_-]+' }),
    field('Name', { name: 'name', required: !editing, maxlength: 200, value: p ? p.name : '' }),
    field('Description', { name: 'description', maxlength: 2000, value: p ? p.description : '' }, 'textarea'),
    field('Category', { name: 'category', required: !editing, maxlength: 50, value: p ? p.category : '' }),
    field('Price (yen)', { name: 'price', type: 'number', min: 1, max: 1000000000, step: 1, required: !editing, value: p ? (p.price || {}).amount : '' }),
    editing ? null : field('Initial stock', { name: 'stock', type: 'number', min: 0, max: 1000000, step: 1, value: 0 }),
  ];
  const form = h('form', { class: 'narrow', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const v = values(form);
    const body = {};
    for (const k of ['sku', 'name', 'description', 'category']) if (v[k] !== undefined && (!editing || v[k] !== (p[k] || ''))) body[k] = v[k];
    if (v.price !== '' && (!editing || Number(v.price) !== (p.price || {}).amount)) body.price = Number(v.price);
    if (!editing) body.stock = Number(v.stock || 0);
    await busy(form, async () => {
      try {
        const r = editing
          ? await api.patch(`/admin/products/${encodeURIComponent(p.product_id)}`, body)
          : await api.post('/admin/products', body, { headers: { 'Idempotency-Key': newIdempotencyKey() } });
        await onDone(r);
        say(editing ? `Saved ${r.name}.` : `Created ${r.name}.`);
      } catch (e) {
        if (e.status === 409 && !editing) showError(form, new ApiError(409, { errors: [{ field: 'sku', message: 'This SKU is taken.' }] }));
        else showError(form, e);
      }
    });
  } }, f, h('button', { type: 'submit' }, editing ? 'Save changes' : 'Create product'));
  return form;
}

function restockForm(p, onDone) {
  const q = field(['Add stock', h('span', { class: 'sr-only' }, ` to ${p.name}`)], { name: 'quantity', type: 'number', min: 1, max: 1000000, step: 1, required: true });
  q.classList.add('compact');
  const form = h('form', { class: 'row', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const n = Number(q.control.value);
    if (!Number.isInteger(n) || n < 1) return showError(form, new ApiError(400, { errors: [{ field: 'quantity', message: 'Enter a whole number of at least 1.' }] }));
    await busy(form, async () => {
      try {
        const r = await api.post(`/admin/products/${encodeURIComponent(p.product_id)}/restock`, { quantity: n }, { headers: { 'Idempotency-Key': newIdempotencyKey() } });
        await onDone();
        say(`${p.name}: ${r.available} available.`);
      } catch (e) {
        showError(form, e);
      }
    });
  } }, q, h('button', { type: 'submit', class: 'secondary' }, 'Restock'));
  return form;
}

async function products(query) {
  const mine = view;
  const pg = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);
  const q = query.get('q') || '';
  const qs = new URLSearchParams({ page: String(pg), per_page: '20', sort: 'name' });
  if (q) qs.set('q', q);
  // The catalogue is public; whether this account may change it comes from an admin-only route
  // (the user list), so a customer is told at once rather than on the first write.
  let list;
  try {
    [list] = await Promise.all([api.get(`/products?${qs}`), api.get('/users?per_page=1')]);
  } catch (e) {
    return stale(mine) ? undefined : failed('Products', e);
  }
  const search = field('Search products', { name: 'q', type: 'search', value: q, maxlength: 200 });
  const sform = h('form', { role: 'search', class: 'row', onsubmit: (ev) => { ev.preventDefault(); go(`#/products?q=${encodeURIComponent(search.control.value.trim())}`); } },
    search, h('button', { type: 'submit', class: 'secondary' }, 'Search'));
  const reload = () => (stale(mine) ? undefined : products(query));
  if (stale(mine)) return;
  page('Products',
    h('details', {}, h('summary', {}, 'New product'), productForm(null, reload)),
    sform,
    table('products-table', `${list.total} product(s); catalogue reads follow writes within moments.`, ['Product', 'Category', 'Price', 'Available', 'Restock', 'Edit'],
      list.items.map((p) => h('tr', { 'data-sku': p.sku },
        h('th', { scope: 'row' }, p.name, h('br', {}), h('span', { class: 'muted' }, p.sku)),
        h('td', {}, p.category), h('td', { class: 'num' }, money(p.price)), h('td', { class: 'num' }, num(p.available)),
        h('td', {}, restockForm(p, reload)),
        h('td', {}, h('details', {}, h('summary', {}, `Edit ${p.name}`), productForm(p, reload)))))),
    h('nav', { class: 'pager', 'aria-label': 'Pages' },
      pg > 1 ? h('a', { href: `#/products?${new URLSearchParams({ q, page: String(pg - 1) })}` }, '← Previous') : null,
      h('span', {}, `Page ${pg} of ${Math.max(1, Math.ceil(list.total / 20))}`),
      list.total > pg * 20 ? h('a', { href: `#/products?${new URLSearchParams({ q, page: String(pg + 1) })}` }, 'Next →') : null));
}

/* ---- sign in ----------------------------------------------------------------------------- */

function login(query) {
  const next = query.get('next') || '/services';
  const email = field('Email', { name: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'narrow', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    await busy(form, async () => {
      try {
        await api.login(email.control.value.trim(), password.control.value);
        try {
          const me = await api.get('/users/me');
          session.set('name', me.name);
          session.set('role', me.role);
        } catch {
          /* shown as unknown */
        }
        renderAccount();
        say(session.get('role') === 'admin' ? 'Signed in.' : 'Signed in, but this account is not an administrator.');
        go(`#${next.startsWith('/') ? next : '/services'}`);
      } catch (e) {
        showError(form, e.status === 401 ? new ApiError(401, { detail: 'Wrong email or password.' }) : e);
      }
    });
  } }, email, password, h('button', { type: 'submit' }, 'Sign in'));
  page('Sign in to operations', h('p', {}, 'Administrators only. The first admin\'s password is in the data directory\'s admin-credentials file.'), form);
}

/* ---- router ------------------------------------------------------------------------------ */

async function route() {
  view++;
  alarm('');
  markNav();
  const { parts, query } = parseHash();
  const [a, b] = parts;
  if (a !== 'login' && !session.signedIn) return go(`#/login?next=${encodeURIComponent(`/${parts.join('/')}`)}`);
  try {
    if (a === 'login') login(query);
    else if (a === 'services' || !a) services().catch((e) => failed('Services', e));
    else if (a === 'sagas') await sagas(query);
    else if (a === 'saga' && b) await saga(b);
    else if (a === 'events') await events(query);
    else if (a === 'audit') await audit();
    else if (a === 'products') await products(query);
    else page('Not found', h('p', {}, h('a', { href: '#/services' }, 'Services')));
  } catch (e) {
    failed('Something went wrong', e instanceof ApiError ? e : new ApiError(500, { detail: String(e && e.message) }));
  }
  if (!document.body.dataset.ready) performance.mark('shoal:interactive');
  document.body.dataset.ready = 'true';
}

window.addEventListener('hashchange', () => {
  sayStale();
  focusHeading = true;
  route();
});

renderAccount();
route();
