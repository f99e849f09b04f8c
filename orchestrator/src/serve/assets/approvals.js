// The run page's approvals: for every stage waiting for a decision, its prompt, who may decide
// and until when, an actor field (remembered in this browser), an optional reason, and
// Approve / Reject buttons. A click posts to `/api/runs/{id}/approvals`, which goes through
// the same path as `codex-orchestrator approve` / `reject` (source `dashboard`): the server
// checks the actor against the stage's approvers and the first decision wins; the runner then
// records it and the run goes on. A card stays as it is while its request waits, so what the
// person typed survives the page's redraws.
import { el, when } from './common.js';

const ACTOR_KEY = 'codex-orchestrator.actor';

function savedActor() {
  try {
    return localStorage.getItem(ACTOR_KEY) || '';
  } catch {
    return '';
  }
}

function saveActor(actor) {
  try {
    localStorage.setItem(ACTOR_KEY, actor);
  } catch {
    // Storage refused (private mode): the field is simply not remembered.
  }
}

function card(api, s, onDecided) {
  const a = s.approval;
  const actor = el('input', { type: 'text', name: 'actor', class: 'actor', placeholder: 'your name', value: savedActor(), 'aria-label': 'actor', autocomplete: 'username' });
  const reason = el('input', { type: 'text', name: 'reason', class: 'reason', placeholder: 'reason (optional)', 'aria-label': 'reason' });
  const result = el('p', { class: 'result', role: 'status' });
  const buttons = [];
  async function decide(decision) {
    const who = actor.value.trim();
    if (!who) {
      result.className = 'result error';
      result.textContent = 'Enter your name as the actor first.';
      actor.focus();
      return;
    }
    saveActor(who);
    for (const b of buttons) b.disabled = true;
    result.className = 'result';
    result.textContent = decision === 'approve' ? 'Approving…' : 'Rejecting…';
    try {
      const res = await fetch(`${api}/approvals`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ stage: s.id, decision, actor: who, reason: reason.value.trim() || undefined }),
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(body.error || res.statusText);
      result.textContent = `${body.decision === 'approved' ? 'Approved' : 'Rejected'} as ${body.actor}. ${body.runner_alive
        ? 'The runner records it and the run goes on.'
        : `No runner holds the run now: \`codex-orchestrator resume --run ${body.run_id}\` applies it.`}`;
      node.dataset.decided = body.decision;
    } catch (e) {
      result.className = 'result error';
      result.textContent = `Not recorded: ${e.message}`;
      for (const b of buttons) b.disabled = false;
    }
    onDecided();
  }
  const approve = el('button', { type: 'button', class: 'approve', onclick: () => decide('approve') }, 'Approve');
  const reject = el('button', { type: 'button', class: 'reject danger', onclick: () => decide('reject') }, 'Reject');
  buttons.push(approve, reject);
  const who = a.approvers ? a.approvers.join(', ') : 'anyone';
  const deadline = a.deadline ? ` · ${a.on_timeout === 'approve' ? 'approved' : 'rejected'} automatically at ${when(a.deadline)}` : '';
  const node = el('div', { class: 'approvalcard card', dataset: { stage: s.id, request: String(a.request) } },
    el('div', { class: 'cardhead' }, el('span', {}, s.title), el('span', { class: 'muted' }, `waiting since ${when(a.requested_at)}`)),
    el('p', { class: 'prompt' }, a.prompt),
    el('p', { class: 'muted' }, `May decide: ${who}${deadline}`),
    el('div', { class: 'decide' }, actor, reason, approve, reject),
    result);
  return node;
}

/** Shows a card per stage waiting for approval in `box` (hidden when none waits). */
export function renderApprovals(box, api, stages, onDecided) {
  const waiting = stages.filter((s) => s.waiting === 'approval' && s.approval);
  const keep = new Set(waiting.map((s) => `${s.id}#${s.approval.request}`));
  for (const c of [...box.children]) {
    if (!keep.has(`${c.dataset.stage}#${c.dataset.request}`)) c.remove();
  }
  const shown = new Set([...box.children].map((c) => `${c.dataset.stage}#${c.dataset.request}`));
  for (const s of waiting) {
    if (!shown.has(`${s.id}#${s.approval.request}`)) box.append(card(api, s, onDecided));
  }
  box.closest('section').hidden = !waiting.length;
}
