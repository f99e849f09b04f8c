// The run page: the run's status, its stage graph, a timeline of attempts, the stages, the
// output of one stage (live while it runs) and the error files. The run's event stream moves
// stages along as they start and end; the full picture is then fetched again (debounced), so
// what is shown always ends up equal to the manifest. A `plan_update` (a stage's plan patch
// added stages) fetches it at once: the new stages appear in the graph and the table, each
// marked with the stage that added it.
import { el, svg, getJSON, duration, when, badge, ms, ansiState, renderAnsi, stripAnsi } from './common.js';
import { renderApprovals } from './approvals.js';

const main = document.getElementById('run');
const runId = main.dataset.runId;
const api = `/api/runs/${encodeURIComponent(runId)}`;
const live = document.getElementById('live');
const S = { status: null, info: null, selected: null, ended: false, events: 0, error: null, expected: new Set() };

const TERMINAL = ['succeeded', 'failed', 'cancelled'];

function stages() {
  return (S.info && S.info.stages) || [];
}

function stageById(id) {
  return stages().find((s) => s.id === id);
}

function runEnd() {
  const ends = stages().flatMap((s) => s.spans.map((sp) => ms(sp.ended_at))).filter((t) => !Number.isNaN(t));
  const done = S.status && TERMINAL.includes(S.status.status);
  if (done && S.status.completed_at) return ms(S.status.completed_at);
  return done && ends.length ? Math.max(...ends) : Date.now();
}

function stageDuration(s) {
  if (s.duration_ms !== null && s.duration_ms !== undefined && s.status !== 'running') return s.duration_ms;
  if (s.status === 'running' && s.started_at) return Date.now() - ms(s.started_at);
  return s.duration_ms;
}

// ---- head ---------------------------------------------------------------------------------

function renderHead() {
  const st = S.status;
  const info = S.info;
  if (!st) return;
  document.getElementById('status').replaceChildren(badge(st.status));
  main.dataset.status = st.status;
  if (info) document.getElementById('title').textContent = info.pipeline_title || st.pipeline_id;
  document.title = `${st.status === 'in_progress' ? 'running' : st.status} · ${st.pipeline_id} · codex-orchestrator`;
  const facts = [
    ['Run', el('span', { class: 'mono' }, st.run_id)],
    ['Pipeline', el('span', { class: 'mono' }, st.pipeline_id)],
    ['Task', el('span', { class: 'mono' }, st.task_id)],
    ['Started', when(st.started_at)],
    ['Duration', el('span', { id: 'rundur' }, duration(runEnd() - ms(st.started_at)))],
  ];
  if (st.status_detail) facts.push(['Detail', el('span', { class: 'mono' }, st.status_detail)]);
  const patches = (info && info.plan_patches) || [];
  if (patches.length) {
    const added = patches.reduce((n, p) => n + p.stage_ids.length, 0);
    facts.push(['Plan patches', el('span', { id: 'patches' }, `${added} stage${added === 1 ? '' : 's'} added by ${[...new Set(patches.map((p) => p.added_by))].join(', ')}`)]);
  }
  if (info && info.parent_run_id) {
    facts.push(['Parent run', el('a', { href: `/runs/${encodeURIComponent(info.parent_run_id)}`, class: 'mono' }, info.parent_run_id)]);
  }
  const act = st.activity || {};
  if (st.status === 'in_progress') {
    facts.push(['Runner', act.runner_alive ? `alive, heartbeat ${act.age_seconds === null ? 'never' : `${Math.round(act.age_seconds)} s ago`}` : 'none']);
  }
  document.getElementById('facts').replaceChildren(...facts.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, v))));
  const summary = document.getElementById('summary');
  summary.replaceChildren();
  if (st.summary) renderAnsi(st.summary, summary, ansiState());
  const notice = document.getElementById('notice');
  let text = '';
  if (act.abandoned) text = `No runner holds this run: it was abandoned (its runner died). \`codex-orchestrator resume --run ${st.run_id}\` continues it.`;
  else if (act.stale) text = 'The runner has not written a heartbeat for a while: it may have died.';
  notice.textContent = text;
  notice.hidden = !text;
  const cancel = document.getElementById('cancel');
  cancel.hidden = !(st.status === 'in_progress' && act.runner_alive);
}

// ---- graph --------------------------------------------------------------------------------

const NW = 176;
const NH = 48;
const GX = 64;
const GY = 14;
const PAD = 12;

function deps(s, i, all) {
  if (Array.isArray(s.depends_on)) return s.depends_on;
  return i > 0 ? [all[i - 1].id] : [];
}

/** The mark of a stage a plan patch added: which stage added it, and when. */
function addedTitle(s) {
  return `added to the plan by stage ${s.added_by}${s.added_at ? ` at ${s.added_at}` : ''}`;
}

/** A stage's status in words: a stage still pending when the run has ended was never run. */
function label(s) {
  if (s.waiting === 'approval') return 'waiting for approval';
  if (s.waiting === 'locks') return 'waiting for locks';
  return s.status === 'pending' && S.status && TERMINAL.includes(S.status.status) ? 'not run' : s.status;
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

function renderGraph() {
  const all = stages();
  const box = document.getElementById('graph');
  if (!all.length) {
    box.replaceChildren(el('p', { class: 'muted' }, 'This run has no stages.'));
    return;
  }
  const cols = [];
  for (const s of all) (cols[s.level] ||= []).push(s);
  const pos = new Map();
  cols.forEach((col, x) => (col || []).forEach((s, y) => pos.set(s.id, { x: PAD + x * (NW + GX), y: PAD + y * (NH + GY) })));
  const width = PAD * 2 + cols.length * (NW + GX) - GX;
  const height = PAD * 2 + Math.max(...cols.map((c) => (c || []).length)) * (NH + GY) - GY;
  const g = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'graph', role: 'img', 'aria-label': 'stage graph' });
  g.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))));
  all.forEach((s, i) => {
    const to = pos.get(s.id);
    for (const d of deps(s, i, all)) {
      const from = pos.get(d);
      if (!from || !to) continue;
      const x1 = from.x + NW;
      const y1 = from.y + NH / 2;
      const x2 = to.x - 2;
      const y2 = to.y + NH / 2;
      const mid = (x1 + x2) / 2;
      g.append(svg('path', { d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`, class: `edge st-${stageById(d)?.status || 'pending'}`, 'marker-end': 'url(#arrow)' }));
    }
  });
  for (const s of all) {
    const p = pos.get(s.id);
    const data = { stage: s.id, status: s.status };
    if (s.added_by) data.addedBy = s.added_by;
    const node = svg('g', { class: `node st-${s.status}${s.added_by ? ' added' : ''}${S.selected === s.id ? ' selected' : ''}`, transform: `translate(${p.x},${p.y})`, tabindex: 0, dataset: data, onclick: () => select(s.id) },
      svg('title', {}, `${s.title} (${s.id})\n${s.status}${s.summary ? `\n${stripAnsi(s.summary)}` : ''}${s.added_by ? `\n${addedTitle(s)}` : ''}`),
      svg('rect', { width: NW, height: NH, rx: 7 }),
      svg('text', { x: 10, y: 19, class: 'ntitle' }, clip(s.title, 22)),
      svg('text', { x: 10, y: 37, class: 'nsub' }, `${label(s)} · ${duration(stageDuration(s))}${s.attempts > 1 ? ` · ${s.attempts} attempts` : ''}`));
    if (s.added_by) {
      node.append(svg('text', { x: NW - 10, y: 19, class: 'nadded', 'text-anchor': 'end' }, `+ ${clip(s.added_by, 12)}`));
    }
    if (s.kind === 'subpipeline' && s.sub_run_id) {
      node.append(svg('a', { href: `/runs/${encodeURIComponent(s.sub_run_id)}` },
        svg('text', { x: NW - 10, y: 19, class: 'nlink', 'text-anchor': 'end' }, 'child run ↗')));
    }
    g.append(node);
  }
  box.replaceChildren(g);
}

// ---- timeline -----------------------------------------------------------------------------

const LABEL = 170;
const ROW = 22;
const STEPS = [100, 250, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 144e5];

function renderGantt() {
  const all = stages();
  const box = document.getElementById('gantt');
  const st = S.status;
  if (!all.length || !st) {
    box.replaceChildren();
    return;
  }
  const t0 = ms(st.started_at);
  const t1 = Math.max(runEnd(), t0 + 1);
  const width = Math.max(640, box.clientWidth - 4);
  const plot = width - LABEL - 16;
  const scale = plot / (t1 - t0);
  const height = all.length * ROW + 26;
  const g = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'gantt', role: 'img', 'aria-label': 'timeline of attempts' });
  const step = STEPS.find((s) => (t1 - t0) / s <= 8) || STEPS[STEPS.length - 1];
  for (let t = 0; t <= t1 - t0; t += step) {
    const x = LABEL + t * scale;
    g.append(svg('line', { x1: x, x2: x, y1: 0, y2: height - 20, class: 'tick' }),
      svg('text', { x, y: height - 6, class: 'ticklabel', 'text-anchor': 'middle' }, duration(t)));
  }
  all.forEach((s, i) => {
    const y = i * ROW + 4;
    const row = svg('g', { class: `grow${S.selected === s.id ? ' selected' : ''}`, dataset: { stage: s.id }, onclick: () => select(s.id) },
      svg('text', { x: LABEL - 8, y: y + 13, class: 'glabel', 'text-anchor': 'end' }, clip(s.title, 24)));
    for (const sp of s.spans) {
      const a = ms(sp.started_at);
      const b = sp.ended_at ? ms(sp.ended_at) : (s.status === 'running' ? Date.now() : a);
      if (Number.isNaN(a)) continue;
      const x = LABEL + Math.max(0, a - t0) * scale;
      const w = Math.max(3, (b - a) * scale);
      const status = sp.ended_at ? (sp.status || s.status) : (s.status === 'running' ? 'running' : s.status);
      row.append(svg('rect', { x, y, width: w, height: ROW - 8, rx: 3, class: `gbar st-${status}` },
        svg('title', {}, `${s.title}${sp.attempt ? ` · attempt ${sp.attempt}` : ''}\n${status} in ${duration(b - a)}${sp.exit_code !== null && sp.exit_code !== undefined ? ` · exit ${sp.exit_code}` : ''}${sp.signal ? ` · ${sp.signal}` : ''}`)));
      if (w > 28 && sp.attempt && s.spans.length > 1) {
        row.append(svg('text', { x: x + 4, y: y + 11, class: 'gattempt' }, `#${sp.attempt}`));
      }
    }
    g.append(row);
  });
  box.replaceChildren(g);
}

// ---- stages table -------------------------------------------------------------------------

function exitText(s) {
  if (s.signal) return s.signal;
  if (s.outcome === 'timed_out' || s.outcome === 'timed-out') return 'timed out';
  if (s.exit_code !== null && s.exit_code !== undefined) return String(s.exit_code);
  return '';
}

function renderTable() {
  const tbody = document.querySelector('#stages tbody');
  tbody.replaceChildren(...stages().map((s) => {
    const summary = el('td', { class: 'summary' });
    if (s.summary) renderAnsi(s.summary.split('\n')[0], summary, ansiState());
    else if (s.skip_reason) summary.append(el('span', { class: 'muted' }, s.skip_reason));
    const name = el('td', {}, el('span', {}, s.title), s.title !== s.id ? el('small', { class: 'muted mono' }, ` ${s.id}`) : null);
    if (s.kind === 'subpipeline' && s.sub_run_id) {
      name.append(' ', el('a', { href: `/runs/${encodeURIComponent(s.sub_run_id)}`, onclick: (ev) => ev.stopPropagation() }, 'child run ↗'));
    }
    const data = { stage: s.id, status: s.status };
    if (s.added_by) {
      data.addedBy = s.added_by;
      name.append(' ', el('span', { class: 'added', title: addedTitle(s) }, `added by ${s.added_by}`));
    }
    return el('tr', { class: S.selected === s.id ? 'selected' : '', dataset: data, onclick: () => select(s.id) },
      el('td', { class: 'num muted' }, String(s.index).padStart(2, '0')),
      name,
      el('td', {}, badge(s.status, label(s))),
      el('td', { class: 'num' }, duration(stageDuration(s))),
      el('td', { class: 'num' }, s.attempts ?? ''),
      el('td', { class: 'mono' }, exitText(s)),
      summary);
  }));
}

// ---- error files --------------------------------------------------------------------------

function renderErrors() {
  const withErrors = stages().filter((s) => s.error_file);
  document.getElementById('errsec').hidden = !withErrors.length;
  document.getElementById('errors').replaceChildren(...withErrors.map((s) => {
    const e = s.error || {};
    const d = e.details || {};
    const pre = el('pre', { class: 'log small' });
    const tail = d.stderr || d.stdout || '';
    if (tail) renderAnsi(tail, pre, ansiState());
    return el('div', { class: 'errcard', dataset: { stage: s.id } },
      el('div', { class: 'cardhead' },
        el('a', { href: '#', onclick: (ev) => { ev.preventDefault(); select(s.id); } }, s.title),
        el('span', { class: 'mono muted' }, ` ${e.reason || ''}${d.exit_code !== undefined && d.exit_code !== null ? ` · exit ${d.exit_code}` : ''}${d.failure_reason ? ` · ${d.failure_reason}` : ''}`),
        el('a', { href: `${api}/files/${s.error_file.split('/').map(encodeURIComponent).join('/')}`, class: 'raw' }, s.error_file)),
      tail ? pre : el('p', { class: 'muted' }, 'No output recorded.'));
  }));
}

// ---- log ----------------------------------------------------------------------------------

const logBox = document.getElementById('log');
const L = { stage: null, es: null, from: 0, states: null, lastAttempt: null, attempts: 1, opened: 0 };

function chunkEl(c, states) {
  const span = el('span', { class: c.stream === 'stderr' ? 'err' : 'out' });
  renderAnsi(c.text, span, states[c.stream] || (states[c.stream] = ansiState()));
  return span;
}

function attemptEl(n, after) {
  const nl = after && !after.endsWith('\n') ? '\n' : '';
  return el('span', { class: 'attempt' }, `${nl}── attempt ${n} ──\n`);
}

function atBottom() {
  return logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 24;
}

function appendChunks(chunks) {
  const stick = atBottom();
  for (const c of chunks) {
    if (c.attempt && c.attempt !== L.lastAttempt && (L.lastAttempt !== null || L.attempts > 1)) {
      logBox.append(attemptEl(c.attempt, logBox.textContent));
    }
    if (c.attempt) L.lastAttempt = c.attempt;
    logBox.append(chunkEl(c, L.states));
  }
  if (stick) logBox.scrollTop = logBox.scrollHeight;
  logBox.dataset.bytes = String(logBox.textContent.length);
}

function closeLog() {
  if (L.es) L.es.close();
  L.es = null;
}

async function openLog() {
  closeLog();
  // The last call wins: an earlier one still waiting for its tail must not add to the box.
  const opened = ++L.opened;
  const s = stageById(S.selected);
  L.stage = S.selected;
  L.states = {};
  L.lastAttempt = null;
  L.attempts = (s && s.attempts) || 1;
  logBox.replaceChildren();
  document.getElementById('earlier').hidden = true;
  document.getElementById('logstage').textContent = s ? s.title : '—';
  const enc = encodeURIComponent(S.selected || '');
  document.getElementById('dl-out').href = `${api}/stages/${enc}/log?stream=stdout`;
  document.getElementById('dl-err').href = `${api}/stages/${enc}/log?stream=stderr`;
  const raw = document.getElementById('rawlog');
  raw.hidden = !(s && s.log_file);
  if (s && s.log_file) raw.href = `${api}/files/${s.log_file.split('/').map(encodeURIComponent).join('/')}`;
  const info = document.getElementById('loginfo');
  info.textContent = s && (s.stdout_bytes !== null || s.stderr_bytes !== null)
    ? `${s.stdout_bytes ?? 0} bytes on stdout, ${s.stderr_bytes ?? 0} on stderr` : '';
  if (!s) return;
  if (!s.log_file) {
    logBox.append(el('span', { class: 'muted' }, s.kind === 'subpipeline'
      ? 'A sub-pipeline stage has no output of its own: open its child run.'
      : s.status === 'pending' ? 'Not started yet: output appears here when the stage starts.' : 'No output recorded.'));
    logBox.dataset.state = 'empty';
    return;
  }
  const wanted = S.selected;
  let data;
  try {
    data = await getJSON(`${api}/stages/${enc}/tail`);
  } catch (e) {
    logBox.append(el('span', { class: 'error' }, `Cannot load the output: ${e.message}`));
    return;
  }
  if (L.stage !== wanted || L.opened !== opened) return;
  appendChunks(data.chunks);
  if (!data.chunks.length) logBox.append(el('span', { class: 'muted placeholder' }, 'No output yet.'));
  L.from = data.from;
  document.getElementById('earlier').hidden = !data.earlier;
  logBox.dataset.state = data.ended ? 'ended' : 'following';
  if (!data.ended) follow(enc, data.end);
}

function follow(enc, from) {
  const es = new EventSource(`${api}/stages/${enc}/log/events?from=${from}`);
  L.es = es;
  es.addEventListener('chunk', (ev) => {
    logBox.querySelector('.placeholder')?.remove();
    appendChunks([JSON.parse(ev.data)]);
  });
  es.addEventListener('end', () => {
    es.close();
    if (L.es === es) L.es = null;
    logBox.dataset.state = 'ended';
  });
}

async function loadEarlier() {
  const enc = encodeURIComponent(L.stage || '');
  const button = document.getElementById('earlier');
  button.disabled = true;
  try {
    const data = await getJSON(`${api}/stages/${enc}/tail?before=${L.from}`);
    const states = {};
    const frag = document.createDocumentFragment();
    let last = null;
    let text = '';
    for (const c of data.chunks) {
      if (c.attempt && c.attempt !== last && (last !== null || L.attempts > 1)) frag.append(attemptEl(c.attempt, text));
      last = c.attempt || last;
      frag.append(chunkEl(c, states));
      text = c.text;
    }
    const keep = logBox.scrollHeight - logBox.scrollTop;
    logBox.prepend(frag);
    logBox.scrollTop = logBox.scrollHeight - keep;
    L.from = data.from;
    button.hidden = !data.earlier;
  } finally {
    button.disabled = false;
  }
}

function select(id, fromHash = false) {
  if (!stageById(id)) return;
  const changed = S.selected !== id;
  S.selected = id;
  if (!fromHash) history.replaceState(null, '', `#stage=${encodeURIComponent(id)}`);
  renderGraph();
  renderGantt();
  renderTable();
  if (changed) openLog();
}

function defaultStage() {
  const all = stages();
  const pick = all.find((s) => s.status === 'running') || all.find((s) => s.status === 'failed')
    || [...all].reverse().find((s) => s.status !== 'pending') || all[0];
  return pick && pick.id;
}

// ---- data ---------------------------------------------------------------------------------

function render() {
  renderHead();
  renderApprovals(document.getElementById('approvals'), api, stages(), refreshSoon);
  renderGraph();
  renderGantt();
  renderTable();
  renderErrors();
}

// One fetch of the full picture at a time, so an older answer never lands after a newer one;
// one asked for meanwhile follows it.
let inflight = null;
let again = false;
function refreshNow() {
  if (inflight) {
    again = true;
    return inflight;
  }
  inflight = refresh().finally(() => {
    inflight = null;
    if (again) {
      again = false;
      refreshNow();
    }
  });
  return inflight;
}

async function refresh() {
  try {
    const [status, info] = await Promise.all([getJSON(api), getJSON(`${api}/stages`)]);
    S.status = status;
    S.info = info;
    S.error = null;
  } catch (e) {
    S.error = e;
    const notice = document.getElementById('notice');
    notice.textContent = e.status === 404 ? 'This run no longer exists: its directory was deleted.' : `This run cannot be shown: ${e.message}`;
    notice.hidden = false;
    if (e.status === 404 || e.status === 422) {
      document.getElementById('status').replaceChildren(badge(e.status === 404 ? 'removed' : 'unreadable'));
    }
    return;
  }
  for (const id of [...S.expected]) if (stageById(id)) S.expected.delete(id);
  if (S.expected.size) refreshSoon();
  const before = S.selected;
  const hash = new URLSearchParams(location.hash.slice(1)).get('stage');
  if (!S.selected) S.selected = (hash && stageById(hash) && hash) || defaultStage();
  render();
  const s = stageById(S.selected);
  if (S.selected !== before || (s && s.log_file && logBox.dataset.state === 'empty')) openLog();
}

let timer = null;
let lastRefresh = 0;
function refreshSoon() {
  if (timer) return;
  const wait = Math.max(150, 700 - (Date.now() - lastRefresh));
  timer = setTimeout(async () => {
    timer = null;
    lastRefresh = Date.now();
    await refreshNow();
  }, wait);
}

/** An event from `events.jsonl`: move the stage along at once, then fetch the full picture. */
function apply(env) {
  const p = env.payload || {};
  const s = p.stage_id ? stageById(p.stage_id) : null;
  if (s) {
    if (env.event === 'step_started') {
      s.status = 'running';
      s.started_at = s.started_at || env.timestamp;
      s.spans = [...s.spans, { attempt: 1, started_at: env.timestamp, ended_at: null }];
    } else if (env.event === 'step_completed' || env.event === 'step_failed' || env.event === 'step_skipped') {
      s.status = p.status || (env.event === 'step_failed' ? 'failed' : env.event === 'step_skipped' ? 'skipped' : 'succeeded');
      if (p.exit_code !== undefined) s.exit_code = p.exit_code;
      if (p.summary !== undefined) s.summary = p.summary;
      if (p.attempts !== undefined) s.attempts = p.attempts;
      s.spans = s.spans.map((sp) => (sp.ended_at ? sp : { ...sp, ended_at: env.timestamp, status: s.status }));
    }
  }
  if (S.status && ['run_completed', 'run_failed'].includes(env.event)) {
    S.status.status = p.status || S.status.status;
  }
  if (env.event === 'plan_update') {
    // New stages: the runner records them before it says so; fetch them now, and again
    // until they are there (a fetch under way may have read the manifest before).
    for (const id of p.stage_ids || []) S.expected.add(id);
    refreshNow();
    return;
  }
  render();
  if (s && s.id === S.selected && env.event === 'step_started') openLog();
  refreshSoon();
}

function connect() {
  const es = new EventSource(`${api}/events`);
  es.onopen = () => {
    live.dataset.state = 'live';
    live.textContent = '● live';
  };
  es.onerror = () => {
    if (S.ended) return;
    live.dataset.state = 'reconnecting';
    live.textContent = 'reconnecting…';
  };
  es.onmessage = (ev) => {
    S.events += 1;
    main.dataset.events = String(S.events);
    try {
      apply(JSON.parse(ev.data));
    } catch {
      refreshSoon();
    }
  };
  es.addEventListener('end', () => {
    es.close();
    S.ended = true;
    live.dataset.state = 'ended';
    live.textContent = 'run ended';
    refreshNow();
  });
}

// ---- actions ------------------------------------------------------------------------------

const cancelButton = document.getElementById('cancel');
let confirmTimer = null;
cancelButton.addEventListener('click', async () => {
  if (cancelButton.dataset.confirm !== 'yes') {
    cancelButton.dataset.confirm = 'yes';
    cancelButton.textContent = 'Click again to cancel the run';
    clearTimeout(confirmTimer);
    confirmTimer = setTimeout(() => {
      cancelButton.dataset.confirm = '';
      cancelButton.textContent = 'Cancel run';
    }, 5000);
    return;
  }
  clearTimeout(confirmTimer);
  cancelButton.disabled = true;
  cancelButton.textContent = 'Cancelling…';
  try {
    const res = await fetch(`${api}/cancel`, { method: 'POST' });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error || res.statusText);
    cancelButton.textContent = 'Cancel requested';
  } catch (e) {
    cancelButton.textContent = 'Cancel run';
    cancelButton.dataset.confirm = '';
    cancelButton.disabled = false;
    const notice = document.getElementById('notice');
    notice.textContent = `Cannot cancel: ${e.message}`;
    notice.hidden = false;
  }
  refreshSoon();
});

for (const b of document.querySelectorAll('#logfilter button')) {
  b.addEventListener('click', () => {
    for (const o of document.querySelectorAll('#logfilter button')) o.classList.toggle('on', o === b);
    logBox.className = `log show-${b.dataset.show}`;
  });
}
document.getElementById('earlier').addEventListener('click', loadEarlier);
window.addEventListener('hashchange', () => {
  const id = new URLSearchParams(location.hash.slice(1)).get('stage');
  if (id) select(id, true);
});

const file = (p) => `${api}/files/${p}`;
document.getElementById('f-manifest').href = file('manifest.json');
document.getElementById('f-events').href = file('events.jsonl');
document.getElementById('f-runner').href = file('runner.ndjson');
document.getElementById('f-junit').href = `${api}/junit.xml`;

setInterval(() => {
  if (!S.status || TERMINAL.includes(S.status.status)) return;
  const d = document.getElementById('rundur');
  if (d) d.textContent = duration(runEnd() - ms(S.status.started_at));
  if (stages().some((s) => s.status === 'running')) {
    renderGantt();
    for (const tr of document.querySelectorAll('#stages tr[data-status="running"]')) {
      const s = stageById(tr.dataset.stage);
      if (s) tr.children[3].textContent = duration(stageDuration(s));
    }
  }
}, 1000);

// Heartbeat and runner liveness are not events: look again now and then while it runs.
setInterval(() => {
  if (S.status && S.status.status === 'in_progress' && !timer) refreshSoon();
}, 10000);

refreshNow().then(connect);
