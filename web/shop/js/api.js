// The one way the pages talk to the shop: relative /api/v1 URLs through the gateway,
// JSON in and out, problem+json turned into one error shape the views can show.
// Shared by the storefront and the operations console (each keeps its own session).

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(ApiError.describe(status, problem, retryAfter));
    this.status = status;
    this.problem = problem || {};
    this.retryAfter = retryAfter;
    this.reason = this.problem.reason || null;
    // [{field, message}] from a validation problem; [] otherwise.
    this.fieldErrors = Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }

  static describe(status, problem, retryAfter) {
    const p = problem || {};
    const wait = retryAfter ? ` Try again in ${retryAfter} s.` : ' Try again in a moment.';
    if (status === 0) return 'The shop cannot be reached. Check the connection and try again.';
    if (status === 429) return `Too many requests.${wait}`;
    if (status === 503) {
      if (p.reason === 'overloaded') return `The shop is at capacity right now; nothing was done.${wait}`;
      return `A service is unavailable right now.${wait}`;
    }
    if (status === 504) return 'The shop took too long to answer. Try again.';
    if (status === 401) return p.detail || 'Please sign in again.';
    if (status === 403) return 'Forbidden (403): this account may not do that.';
    const text = [p.title, p.detail].filter(Boolean).join(': ');
    return text || `The request failed (${status}).`;
  }
}

const JSON_TYPES = /^application\/(problem\+)?json/i;

// A session: where the tokens live (sessionStorage, one key prefix per app).
export class Session {
  constructor(prefix) {
    this.prefix = prefix;
  }
  get(name) {
    try {
      return sessionStorage.getItem(`${this.prefix}.${name}`);
    } catch {
      return null;
    }
  }
  set(name, value) {
    try {
      if (value === null || value === undefined) sessionStorage.removeItem(`${this.prefix}.${name}`);
      else sessionStorage.setItem(`${this.prefix}.${name}`, String(value));
    } catch {
      /* storage refused (private mode): the session lasts as long as the page */
    }
  }
  get token() { return this.get('token'); }
  get userId() { return this.get('user'); }
  get signedIn() { return Boolean(this.token); }
  store(login) {
    this.set('token', login.access_token);
    if (login.refresh_token) this.set('refresh', login.refresh_token);
    if (login.user_id) this.set('user', login.user_id);
  }
  clear() {
    for (const k of ['token', 'refresh', 'user', 'role', 'name']) this.set(k, null);
  }
}

export function newIdempotencyKey() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

async function send(method, path, { body, token, headers } = {}) {
  const h = { Accept: 'application/json, application/problem+json', ...(headers || {}) };
  if (token) h.Authorization = `Bearer ${token}`;
  const init = { method, headers: h, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/api/v1${path}`, init);
  } catch {
    throw new ApiError(0, null, null);
  }
  let data = null;
  const type = res.headers.get('content-type') || '';
  if (res.status !== 204 && JSON_TYPES.test(type)) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) throw new ApiError(res.status, data, res.headers.get('retry-after'));
  return data;
}

// A client bound to a session. On a 401 it spends the refresh token once (if the session has
// one) and repeats the request; if that fails too, the session ends and onSignedOut runs.
export class Api {
  constructor(session, { onSignedOut } = {}) {
    this.session = session;
    this.onSignedOut = onSignedOut || (() => {});
    this.refreshing = null;
  }

  async call(method, path, opts = {}) {
    const token = opts.anonymous ? null : this.session.token;
    try {
      return await send(method, path, { ...opts, token });
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401 || !token) throw e;
      if (await this.refresh()) return send(method, path, { ...opts, token: this.session.token });
      this.session.clear();
      this.onSignedOut();
      throw e;
    }
  }

  async refresh() {
    const rt = this.session.get('refresh');
    if (!rt) return false;
    if (!this.refreshing) {
      this.refreshing = send('POST', '/auth/refresh', { body: { refresh_token: rt } })
        .then((r) => {
          this.session.store(r);
          return true;
        })
        .catch(() => false)
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  get(path, opts) { return this.call('GET', path, opts); }
  post(path, body, opts = {}) { return this.call('POST', path, { ...opts, body }); }
  put(path, body, opts = {}) { return this.call('PUT', path, { ...opts, body }); }
  patch(path, body, opts = {}) { return this.call('PATCH', path, { ...opts, body }); }
  del(path, opts) { return this.call('DELETE', path, opts); }

  async login(email, password) {
    const r = await send('POST', '/auth/login', { body: { email, password } });
    this.session.store(r);
    return r;
  }

  async logout() {
    const rt = this.session.get('refresh');
    const token = this.session.token;
    this.session.clear();
    if (rt) {
      try {
        await send('POST', '/auth/logout', { body: { refresh_token: rt }, token });
      } catch {
        /* the tokens are gone from this page either way */
      }
    }
  }
}
