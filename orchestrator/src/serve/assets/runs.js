// The runs page: pipelines with their pass rate and duration trend, and every run newest first
// with filters and paging. `/api/events` keeps it live: a run that starts, progresses, ends or
// is deleted shows up without a reload.
import { el, svg, getJSON, duration, when, ago, badge, ms, stripAnsi } from './common.js';

const PAGE = 50;
const tbody = document.querySelector('#runs tbody');
const form = document.getElementById('filters');
const live = document.getElementById('live');
const state = { offset: 0, hasMore: false, rows: new Map() };

function filters() {
  const f = new FormData(form);
  return {
    status: (f.get('status') || '').trim(),
    pipeline: (f.get('pipeline') || '').trim(),
    task: (f.get('task') || '').trim(),
  };
}

function query() {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filters())) if (v) q.set(k, v);
  if (state.offset) q.set('offset', String(state.offset));
  return q;
}

/** Filters and page live in the address, so a view can be shared or reloaded. */
function fromAddress() {
  const q = new URLSearchParams(location.search);
  for (const k of ['status', 'pipeline', 'task']) {
    const input = form.elements.namedItem(k);
    const v = q.get(k) || '';
    if (input.tagName === 'SELECT' && v && ![...input.options].some((o) => o.value === v)) {
      input.append(el('option', { value: v }, v));
    }
    input.value = v;
  }
  state.offset = Math.max(0, parseInt(q.get('offset') || '0', 10) || 0);
}

function toAddress() {
  const q = query();
  const url = q.toString() ? `?${q}` : location.pathname;
  history.replaceState(null, '', url);
}

function matches(r) {
  const f = filters();
  return (!f.status || f.status === r.status)
    && (!f.pipeline || f.pipeline === r.pipeline_id)
    && (!f.task || f.task === r.task_id);
}

function runDuration(r) {
  if (r.duration_ms !== null && r.duration_ms !== undefined) return r.duration_ms;
  // An abandoned run is not getting any longer: its runner is gone.
  if ((r.status === 'in_progress' || r.status === 'queued') && !r.abandoned) return Date.now() - ms(r.started_at);
  return null;
}

function rowEl(r) {
  const link = `/runs/${encodeURIComponent(r.run_id)}`;
  const tr = el('tr', { dataset: { run: r.run_id, status: r.status } });
  if (r.abandoned) tr.dataset.abandoned = 'yes';
  if (r.status === 'unreadable') {
    tr.append(
      el('td', {}, badge('unreadable')),
      el('td', { class: 'mono' }, el('a', { href: link }, r.run_id)),
      el('td', { colspan: 6, class: 'muted' }, `manifest cannot be read: ${r.error || ''}`),
    );
    tr.querySelectorAll('td')[2].prepend(el('span', { class: 'mono' }, `${r.task_id} · `));
    return tr;
  }
  const total = r.stages_total || 0;
  const running = Math.max(0, total - r.stages_passed - r.stages_failed - r.stages_skipped);
  const bar = el('span', { class: 'stagebar', title: `${r.stages_passed} passed, ${r.stages_failed} failed, ${running} running, ${r.stages_skipped} skipped or not started, of ${total}` });
  for (const [n, cls] of [[r.stages_passed, 'succeeded'], [r.stages_failed, 'failed'], [running, 'running'], [r.stages_skipped, 'pending']]) {
    if (n > 0 && total > 0) {
      const part = el('span', { class: `seg-${cls}` });
      part.style.width = `${(100 * n) / total}%`;
      bar.append(part);
    }
  }
  const failed = r.failed_stage
    ? el('a', { href: `${link}#stage=${encodeURIComponent(r.failed_stage)}`, class: 'mono' }, r.failed_stage)
    : el('span', { class: 'muted' }, r.status_detail && r.status !== 'succeeded' ? r.status_detail : '');
  tr.append(
    el('td', {}, r.abandoned
      ? el('span', { title: `No runner holds this run: it died. codex-orchestrator resume --run ${r.run_id} continues it.` }, badge('abandoned'))
      : badge(r.status)),
    el('td', { class: 'mono' }, el('a', { href: link, title: stripAnsi(r.summary || '') }, r.run_id),
      r.parent_run_id ? el('small', { class: 'muted' }, ' ↳ child of ', el('a', { href: `/runs/${encodeURIComponent(r.parent_run_id)}` }, r.parent_run_id.slice(-8))) : null),
    el('td', {}, el('span', { title: r.pipeline_title || '' }, r.pipeline_id)),
    el('td', { class: 'mono' }, r.task_id),
    el('td', { title: r.started_at }, when(r.started_at), el('small', { class: 'muted' }, ` ${ago(r.started_at)}`)),
    el('td', { class: 'num dur' }, duration(runDuration(r))),
    el('td', {}, bar, el('small', {}, ` ${r.stages_passed}/${total}`)),
    el('td', {}, failed),
  );
  tr._row = r;
  return tr;
}

function sortKey(r) {
  return `${r.started_at || r.run_id}\u0000${r.run_id}`;
}

function showEmpty() {
  document.getElementById('empty').hidden = tbody.children.length > 0;
  document.getElementById('newer').disabled = state.offset === 0;
  document.getElementById('older').disabled = !state.hasMore;
  const first = state.offset + 1;
  const last = state.offset + tbody.children.length;
  document.getElementById('pageinfo').textContent = tbody.children.length ? `runs ${first}–${last}` : '';
}

async function load() {
  toAddress();
  try {
    const data = await getJSON(`/api/runs?${query()}&limit=${PAGE}`);
    state.hasMore = data.has_more;
    state.rows.clear();
    tbody.replaceChildren(...data.runs.map((r) => {
      const tr = rowEl(r);
      state.rows.set(r.run_id, tr);
      return tr;
    }));
  } catch (e) {
    tbody.replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'error' }, `Cannot load runs: ${e.message}`)));
  }
  showEmpty();
}

/** A run changed (or appeared): update its row, or insert it in order on the first page. */
function upsert(r) {
  const old = state.rows.get(r.run_id);
  if (!matches(r)) {
    if (old) {
      old.remove();
      state.rows.delete(r.run_id);
      showEmpty();
    }
    return;
  }
  const tr = rowEl(r);
  tr.classList.add('flash');
  if (old) {
    old.replaceWith(tr);
  } else {
    if (state.offset > 0) return; // an older page: new runs belong on the first one
    const key = sortKey(r);
    const after = [...tbody.children].find((row) => row._row && sortKey(row._row) < key);
    tbody.insertBefore(tr, after || null);
    while (tbody.children.length > PAGE) {
      const lastRow = tbody.lastElementChild;
      state.rows.delete(lastRow.dataset.run);
      lastRow.remove();
      state.hasMore = true;
    }
  }
  state.rows.set(r.run_id, tr);
  showEmpty();
}

function remove(runId) {
  const tr = state.rows.get(runId);
  if (tr) {
    tr.remove();
    state.rows.delete(runId);
    showEmpty();
  }
}

function trend(p) {
  const recent = [...p.recent].reverse(); // oldest first: newest on the right
  const W = 180;
  const H = 36;
  const n = Math.max(recent.length, 1);
  const bw = Math.max(2, Math.floor(W / n) - 2);
  const max = Math.max(1, ...recent.map((r) => r.duration_ms || 0));
  const g = svg('svg', { class: 'trend', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `durations of the last ${recent.length} runs` });
  recent.forEach((r, i) => {
    const h = Math.max(2, Math.round(((r.duration_ms || 0) / max) * (H - 2)));
    const a = svg('a', { href: `/runs/${encodeURIComponent(r.run_id)}` },
      svg('rect', { x: i * (bw + 2), y: H - h, width: bw, height: h, class: `bar st-${r.status}` },
        svg('title', {}, `${r.run_id}\n${r.status} in ${duration(r.duration_ms)}\n${when(r.started_at)}`)));
    g.append(a);
  });
  return g;
}

async function loadPipelines() {
  const box = document.getElementById('pipelines');
  try {
    const data = await getJSON('/api/pipelines?last=20');
    const select = form.elements.namedItem('pipeline');
    const chosen = select.value;
    const known = new Set([...select.options].map((o) => o.value));
    for (const p of data.pipelines) {
      if (!known.has(p.pipeline_id)) select.append(el('option', { value: p.pipeline_id }, p.pipeline_id));
    }
    select.value = chosen;
    if (!data.pipelines.length) {
      box.replaceChildren(el('p', { class: 'muted' }, 'No finished runs recorded yet.'));
      return;
    }
    box.replaceChildren(...data.pipelines.map((p) => {
      const rate = p.pass_rate === null ? '—' : `${Math.round(p.pass_rate * 100)}%`;
      const durations = p.recent.map((r) => r.duration_ms).filter((d) => d !== null);
      const typical = durations.length ? [...durations].sort((a, b) => a - b)[Math.floor(durations.length / 2)] : null;
      return el('div', { class: 'card', dataset: { pipeline: p.pipeline_id } },
        el('div', { class: 'cardhead' },
          el('a', { href: `?pipeline=${encodeURIComponent(p.pipeline_id)}`, class: 'mono', onclick: (ev) => {
            ev.preventDefault();
            select.value = p.pipeline_id;
            state.offset = 0;
            load();
          } }, p.pipeline_id),
          el('span', { class: `rate ${p.pass_rate !== null && p.pass_rate < 0.8 ? 'low' : ''}`, title: 'succeeded / finished runs' }, rate)),
        trend(p),
        el('small', { class: 'muted' }, `${p.runs} runs · ${p.succeeded} passed · ${p.failed} failed · ${p.cancelled} cancelled · median ${duration(typical)}`));
    }));
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, `Cannot load pipelines: ${e.message}`));
  }
}

let pipelinesTimer = null;
function reloadPipelinesSoon() {
  clearTimeout(pipelinesTimer);
  pipelinesTimer = setTimeout(loadPipelines, 1500);
}

function connect() {
  const es = new EventSource('/api/events');
  es.onopen = () => {
    live.dataset.state = 'live';
    live.textContent = '● live';
    load(); // anything that changed while disconnected
  };
  es.onerror = () => {
    live.dataset.state = 'reconnecting';
    live.textContent = 'reconnecting…';
  };
  es.addEventListener('run', (ev) => {
    const r = JSON.parse(ev.data);
    upsert(r);
    if (['succeeded', 'failed', 'cancelled'].includes(r.status)) reloadPipelinesSoon();
  });
  es.addEventListener('removed', (ev) => remove(JSON.parse(ev.data).run_id));
  es.addEventListener('resync', () => load());
}

form.addEventListener('submit', (ev) => ev.preventDefault());
form.addEventListener('change', () => { state.offset = 0; load(); });
form.addEventListener('reset', () => setTimeout(() => { state.offset = 0; load(); }, 0));
document.getElementById('older').addEventListener('click', () => { state.offset += PAGE; load(); });
document.getElementById('newer').addEventListener('click', () => { state.offset = Math.max(0, state.offset - PAGE); load(); });
// A runner that dies (kill -9) writes nothing, so no event says so: while runs are in
// progress, look at the list again now and then (each row says whether it is abandoned).
setInterval(() => {
  if (tbody.querySelector('tr[data-status="in_progress"]:not([data-abandoned])')) load();
}, 10000);
setInterval(() => {
  for (const tr of tbody.querySelectorAll('tr[data-status="in_progress"]')) {
    const cell = tr.querySelector('.dur');
    if (cell && tr._row) cell.textContent = duration(runDuration(tr._row));
  }
}, 1000);

fromAddress();
loadPipelines();
load();
connect();
