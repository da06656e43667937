// Small DOM helpers shared by both apps. Text always goes in as text nodes, never as HTML.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Money arrives as {amount, currency} (or, from older answers, a bare integer of yen).
export function money(m) {
  if (m === null || m === undefined) return '—';
  const amount = typeof m === 'object' ? m.amount : m;
  const currency = (typeof m === 'object' && m.currency) || 'JPY';
  if (typeof amount !== 'number') return '—';
  try {
    return new Intl.NumberFormat('en-US', { style: 'currency', currency }).format(amount);
  } catch {
    return `${amount} ${currency}`;
  }
}

export function amountOf(m) {
  if (m === null || m === undefined) return 0;
  return typeof m === 'object' ? Number(m.amount) || 0 : Number(m) || 0;
}

export function when(t) {
  if (!t) return '—';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString('en-GB', { timeZone: 'UTC' }) + ' UTC';
}

let uid = 0;
// A labelled form control with a place for its error. Returns the wrapper; the control is
// wrapper.control. Field errors from the API are shown by showFieldErrors below.
export function field(label, attrs = {}, kind = 'input') {
  const id = attrs.id || `f${++uid}`;
  const errId = `${id}-error`;
  const control = kind === 'select'
    ? h('select', { ...attrs, id, 'aria-describedby': errId }, ...(attrs.options || []).map(
        ([v, t]) => h('option', { value: v, selected: String(attrs.value) === String(v) || null }, t)))
    : h(kind, { ...attrs, id, 'aria-describedby': errId });
  if (kind === 'select') control.removeAttribute('options');
  const wrap = h('div', { class: 'field', 'data-field': attrs.name || '' },
    h('label', { for: id }, label), control, h('p', { class: 'field-error', id: errId }));
  wrap.control = control;
  return wrap;
}

export function clearFieldErrors(form) {
  for (const p of form.querySelectorAll('.field-error')) p.textContent = '';
  for (const c of form.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
}

// Puts each {field, message} next to its control (matched on name, or on the last part of a
// dotted path such as "shipping_address.city" or "items[0].qty"); returns the errors that had
// no control, for the form's general message.
export function showFieldErrors(form, errors) {
  const rest = [];
  let first = null;
  for (const e of errors || []) {
    const f = String(e.field || '');
    const candidates = [f, f.replace(/^.*[.\]]/, ''), f.replace(/^\//, '').replace(/\//g, '.')];
    let wrap = null;
    for (const c of candidates) {
      if (!c) continue;
      wrap = form.querySelector(`.field[data-field="${CSS.escape(c)}"]`);
      if (wrap) break;
    }
    if (!wrap) {
      rest.push(e);
      continue;
    }
    wrap.querySelector('.field-error').textContent = e.message || 'Invalid value.';
    const control = wrap.querySelector('input, select, textarea');
    control.setAttribute('aria-invalid', 'true');
    if (!first) first = control;
  }
  if (first) first.focus();
  return rest;
}

// The form's own message line (role=alert so screen readers hear it).
export function formMessage(form, text, kind = 'error') {
  let p = form.querySelector(':scope > .form-message');
  if (!p) {
    p = h('p', { class: 'form-message', role: 'alert' });
    form.append(p);
  }
  p.className = `form-message ${kind}`;
  p.textContent = text || '';
}

// Shows an ApiError on a form: field errors beside their fields, the rest as the message.
export function showError(form, err) {
  clearFieldErrors(form);
  const rest = showFieldErrors(form, err.fieldErrors || []);
  const extra = rest.map((e) => `${e.field}: ${e.message}`).join('; ');
  const base = err.fieldErrors && err.fieldErrors.length && !rest.length ? 'Please correct the marked fields.' : err.message;
  formMessage(form, extra ? `${base} (${extra})` : base);
}

export function values(form) {
  const out = {};
  for (const el of form.elements) if (el.name) out[el.name] = el.value;
  return out;
}

// Disables a form's submit button while its work runs, so one click makes one request.
export async function busy(form, work) {
  const btns = form.querySelectorAll('button');
  for (const b of btns) b.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    for (const b of btns) b.disabled = false;
    form.removeAttribute('aria-busy');
  }
}
