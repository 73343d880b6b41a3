// The example page: no build step, plain ESM. Submits pipelines, follows their steps live over the
// WebSocket (resuming after a dropped connection), and shows /readyz.
import { PushClient } from '/static/forkyard/push-client.js'
import { OutageBanner, describe } from '/static/health.js'

const $ = (sel) => document.querySelector(sel)
const pipelines = new Map()
const tokens = new Map()

const client = new PushClient(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`, {
  // Tokens come with each pipeline from POST /api/pipelines; they are reused on every reconnect.
  getToken: (channel) => tokens.get(channel) ?? '',
})

client.onstatus = ({ state, code, reason }) => {
  const el = $('#connection')
  el.dataset.state = state
  el.textContent = state === 'open' ? 'live' : state === 'connecting' ? 'reconnecting…' : `connection lost (${code ?? ''} ${reason ?? ''}), retrying…`
}

// History could not cover a gap: read the pipeline's state from the API instead.
client.ongap = ({ channel }) => {
  const id = channel.split(':').pop()
  void refresh(id)
}

function render(p) {
  let li = document.getElementById(`p-${p.id}`)
  if (li === null) {
    li = document.createElement('li')
    li.id = `p-${p.id}`
    li.className = 'pipeline'
    $('#pipelines').prepend(li)
  }
  li.dataset.state = p.state
  li.innerHTML = ''
  const head = document.createElement('header')
  head.innerHTML = `<strong></strong> <span class="state"></span>`
  head.querySelector('strong').textContent = p.name
  // The end of the id: ids are time-ordered (UUIDv7), their beginnings alike.
  head.querySelector('.state').textContent = `${p.state} · ${p.id.slice(-8)}`
  const steps = document.createElement('ul')
  steps.className = 'steps'
  for (const s of p.steps) {
    const item = document.createElement('li')
    item.className = 'step'
    item.dataset.state = s.state
    item.textContent = `${s.name} (${s.kind}) ${s.state === 'done' ? '✓' : s.state === 'running' ? '…' : ''}`
    steps.append(item)
  }
  li.append(head, steps)
}

async function refresh(id) {
  const res = await fetch(`/api/pipelines/${id}`)
  if (!res.ok) return
  const p = await res.json()
  pipelines.set(id, p)
  render(p)
}

function follow(p, channel) {
  pipelines.set(p.id, p)
  render(p)
  client.subscribe(channel, (data) => {
    const current = pipelines.get(p.id)
    if (data.state === 'running' && Array.isArray(data.progress?.steps)) {
      current.state = 'running'
      current.steps = current.steps.map((s, i) => ({ ...s, state: data.progress.steps[i] }))
    } else if (data.state === 'done') {
      current.state = 'done'
      current.steps = current.steps.map((s) => ({ ...s, state: 'done' }))
    } else if (data.state === 'failed') {
      current.state = 'failed'
    }
    render(current)
  }, { offset: 0 })
}

$('#new-pipeline').addEventListener('submit', async (event) => {
  event.preventDefault()
  const form = new FormData(event.target)
  const steps = String(form.get('steps')).split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const [name, kind, ms] = l.split(':')
    return { name, kind, ms: Number(ms) }
  })
  // One key per submission: a retried POST (a double click, a flaky network) starts one pipeline.
  const res = await fetch('/api/pipelines', { method: 'POST', headers: { 'Content-Type': 'application/json', 'Idempotency-Key': crypto.randomUUID() }, body: JSON.stringify({ name: form.get('name'), steps }) })
  const body = await res.json()
  $('#form-error').textContent = res.ok ? '' : body.error
  if (!res.ok) return
  if (body.token === null) return poll(body.state)
  tokens.set(body.channel, body.token)
  follow(body.state, body.channel)
})

// No token (the server has no FORKYARD_PUSH_SECRET): read the state once a second until it ends.
async function poll(p) {
  pipelines.set(p.id, p)
  render(p)
  for (let i = 0; i < 3600 && !['done', 'failed'].includes(pipelines.get(p.id)?.state); i++) {
    await new Promise((r) => setTimeout(r, 1000))
    await refresh(p.id).catch(() => {})
  }
}

// Every pipeline's state, whoever started it (another tab, another user): the public channel
// "pipelines". One this page has not seen is read from the API (its steps) first; the event's
// state then wins (it is announced before the task queue records it).
client.subscribe('pipelines', async (event) => {
  if (!pipelines.has(event.id)) await refresh(event.id).catch(() => {})
  const p = pipelines.get(event.id)
  if (p === undefined) return
  if (event.state === 'done') {
    p.state = 'done'
    p.steps = p.steps.map((s) => ({ ...s, state: 'done' }))
  } else if (event.state === 'failed') p.state = 'failed'
  else if (p.state !== 'done' && p.state !== 'failed') p.state = event.state
  render(p)
})

// Pipelines submitted before this page was opened (or by another tab): their current state.
fetch('/api/pipelines')
  .then((res) => res.json())
  .then(({ pipelines: list }) => {
    for (const p of list.reverse()) if (!pipelines.has(p.id)) render(p)
  })
  .catch(() => {})

// Health in words, polled every 2 s; the banner stays steady through an outage (health.js).
const banner = new OutageBanner()
async function health() {
  let body = null
  try {
    const res = await fetch('/readyz', { cache: 'no-store' })
    body = await res.json()
  } catch {
    body = null
  }
  const rows = describe(body)
  const esc = (t) => String(t).replace(/[&<>"]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[ch])
  $('#health').innerHTML = rows.map((r) => `<dt>${esc(r.label)}</dt><dd class="${r.ok ? 'ok' : 'bad'}" title="${esc(r.detail)}">${esc(r.text)}</dd>`).join('')
  const b = banner.update(rows, Date.now())
  const el = $('#outage')
  el.dataset.state = b.state
  el.hidden = b.state === 'ok'
  const text = b.state === 'outage' ? `${b.headline} ${b.since}` : b.state === 'recovered' ? b.headline : ''
  if (el.textContent !== text) el.textContent = text
}
health()
setInterval(health, 2000)
