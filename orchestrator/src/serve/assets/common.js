// Shared by the runs page and the run page: DOM helpers, formatting, JSON fetches and the ANSI
// colour renderer for stage output. Text from runs (ids, titles, output) only ever reaches the
// page through textContent / createTextNode, never as HTML.

/** Creates an element: el('a', {href: '/x', class: 'y'}, 'text', child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Creates an SVG element. */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === 'class') node.setAttribute('class', v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** GET a JSON resource; throws an Error carrying the API's message on failure. */
export async function getJSON(url) {
  const res = await fetch(url, { headers: { Accept: 'application/json' } });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const err = new Error((body && body.error) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

/** "1.2 s", "3 min 04 s", "2 h 05 min". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** Milliseconds since the epoch of an RFC 3339 time, or NaN. */
export function ms(ts) {
  return ts ? Date.parse(ts) : NaN;
}

/** Local date and time, to the second. */
export function when(ts) {
  const t = ms(ts);
  if (Number.isNaN(t)) return '—';
  const d = new Date(t);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "5 s ago", "3 min ago", ... */
export function ago(ts) {
  const t = ms(ts);
  if (Number.isNaN(t)) return '';
  const d = Date.now() - t;
  if (d < 0) return 'just now';
  return `${duration(d).replace(/\.\d/, '')} ago`;
}

const LABELS = {
  in_progress: 'running',
  queued: 'queued',
  succeeded: 'succeeded',
  failed: 'failed',
  cancelled: 'cancelled',
  running: 'running',
  pending: 'pending',
  skipped: 'skipped',
  unreadable: 'unreadable',
  abandoned: 'abandoned',
};

/** A status badge; the status is also in data-status for tests and styles. */
export function badge(status, text) {
  const s = status || 'unknown';
  return el('span', { class: `badge st-${s}`, dataset: { status: s } }, text || LABELS[s] || s);
}

// ANSI SGR colours. Codes 30–37/90–97 (and 40–47/100–107 for backgrounds) map to classes;
// 256-colour and true-colour codes become a colour set through the CSSOM, which the page's
// Content-Security-Policy allows (it forbids style attributes written as text).
const BASIC = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];

function color256(n) {
  if (n < 16) return null;
  if (n < 232) {
    const v = n - 16;
    const c = (x) => [0, 95, 135, 175, 215, 255][x];
    return `rgb(${c(Math.floor(v / 36))},${c(Math.floor(v / 6) % 6)},${c(v % 6)})`;
  }
  const g = 8 + (n - 232) * 10;
  return `rgb(${g},${g},${g})`;
}

/** Fresh colour state for one stream. */
export function ansiState() {
  return { fg: null, bg: null, fgRgb: null, bgRgb: null, bold: false, dim: false, italic: false, underline: false };
}

function applySgr(st, params) {
  const p = params.length ? params : [0];
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === 0) Object.assign(st, ansiState());
    else if (c === 1) st.bold = true;
    else if (c === 2) st.dim = true;
    else if (c === 3) st.italic = true;
    else if (c === 4) st.underline = true;
    else if (c === 22) { st.bold = false; st.dim = false; }
    else if (c === 23) st.italic = false;
    else if (c === 24) st.underline = false;
    else if (c >= 30 && c <= 37) { st.fg = BASIC[c - 30]; st.fgRgb = null; }
    else if (c >= 90 && c <= 97) { st.fg = `bright-${BASIC[c - 90]}`; st.fgRgb = null; }
    else if (c === 39) { st.fg = null; st.fgRgb = null; }
    else if (c >= 40 && c <= 47) { st.bg = BASIC[c - 40]; st.bgRgb = null; }
    else if (c >= 100 && c <= 107) { st.bg = `bright-${BASIC[c - 100]}`; st.bgRgb = null; }
    else if (c === 49) { st.bg = null; st.bgRgb = null; }
    else if ((c === 38 || c === 48) && p[i + 1] === 5) {
      const n = p[i + 2] ?? 0;
      const rgb = color256(n);
      const name = n < 8 ? BASIC[n] : n < 16 ? `bright-${BASIC[n - 8]}` : null;
      if (c === 38) { st.fg = name; st.fgRgb = rgb; } else { st.bg = name; st.bgRgb = rgb; }
      i += 2;
    } else if ((c === 38 || c === 48) && p[i + 1] === 2) {
      const rgb = `rgb(${p[i + 2] ?? 0},${p[i + 3] ?? 0},${p[i + 4] ?? 0})`;
      if (c === 38) { st.fg = null; st.fgRgb = rgb; } else { st.bg = null; st.bgRgb = rgb; }
      i += 4;
    }
  }
}

function styled(st, text) {
  const plain = !st.fg && !st.bg && !st.fgRgb && !st.bgRgb && !st.bold && !st.dim && !st.italic && !st.underline;
  if (plain) return document.createTextNode(text);
  const span = document.createElement('span');
  const cls = [];
  if (st.fg) cls.push(`fg-${st.fg}`);
  if (st.bg) cls.push(`bg-${st.bg}`);
  if (st.bold) cls.push('ansi-bold');
  if (st.dim) cls.push('ansi-dim');
  if (st.italic) cls.push('ansi-italic');
  if (st.underline) cls.push('ansi-underline');
  span.className = cls.join(' ');
  if (st.fgRgb) span.style.color = st.fgRgb;
  if (st.bgRgb) span.style.backgroundColor = st.bgRgb;
  span.textContent = text;
  return span;
}

// CSI sequences (colours and cursor moves), OSC sequences (titles, links) and other escapes.
const ESCAPES = /\x1b\[([0-9;?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]/g;

/**
 * Appends `text` to `parent` with its colours rendered; `st` carries the colour state from one
 * piece of output to the next. Escapes other than colours are dropped; a carriage return that
 * does not end a line starts a new one (progress bars stay readable).
 */
export function renderAnsi(text, parent, st) {
  const clean = text.replace(/\r\n/g, '\n').replace(/\r/g, '\n');
  let last = 0;
  ESCAPES.lastIndex = 0;
  let m;
  while ((m = ESCAPES.exec(clean)) !== null) {
    if (m.index > last) parent.append(styled(st, clean.slice(last, m.index)));
    if (m[2] === 'm') {
      applySgr(st, m[1] === '' ? [] : m[1].split(';').map((x) => parseInt(x, 10) || 0));
    }
    last = ESCAPES.lastIndex;
  }
  if (last < clean.length) parent.append(styled(st, clean.slice(last)));
}

/** Text without escape sequences (for one-line summaries). */
export function stripAnsi(text) {
  return (text || '').replace(ESCAPES, '');
}
