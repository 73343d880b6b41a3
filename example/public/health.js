// The health card and the outage banner, in words a user of the page understands. GET /readyz
// answers with components (workers, push, bridge, jobs, config, supervisor); this turns each into a
// sentence, and keeps the banner steady through an outage: it appears at the first failing poll,
// names the most serious part that failed since (the set of failed parts only grows while the
// outage lasts, so the words never flip back and forth), and clears only after two good polls.

/** The parts of the stack a user cares about, most serious first. */
const PARTS = [
  { key: 'site', label: 'Site', down: 'The site is not answering. This page keeps trying.' },
  { key: 'workers', label: 'Pages and API', down: 'The site is partly down: pages and actions may fail for a moment.' },
  { key: 'push', label: 'Live updates', down: 'Live updates are interrupted. The page catches up by itself when they are back.' },
  { key: 'bridge', label: 'Messages', down: 'Messages are delayed. Nothing is lost: they are sent when the message store is back.' },
  { key: 'jobs', label: 'Background jobs', down: 'Background jobs are paused. Queued jobs wait and run when they are back.' },
  { key: 'supervisor', label: 'Process manager', down: 'A part of the service failed to start and is being restarted.' },
  { key: 'config', label: 'Settings', down: 'A settings change has not reached every part yet.' },
]
const RANK = new Map(PARTS.map((p, i) => [p.key, i]))

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`

/** Rows of the health card: [{ key, label, ok, text, detail }] from a /readyz body, or null = unreachable. */
export function describe(body) {
  if (body === null) return [{ key: 'site', label: 'Site', ok: false, text: 'not answering', detail: '' }]
  const c = body.components ?? {}
  const rows = []
  const w = c.workers
  if (w !== undefined) {
    const text = w.ok
      ? `working: ${plural(w.up, 'web worker', 'web workers')} ready${w.reloading ? ', updating to new code without dropping requests' : ''}`
      : w.up > 0
        ? `partly working: ${w.up} of ${w.expected} web workers ready (the others are restarting)`
        : 'down: no web worker is ready (restarting)'
    rows.push({ key: 'workers', label: 'Pages and API', ok: w.ok, text, detail: `generation ${w.generation}` })
  }
  if (c.push !== undefined) {
    const p = c.push
    const lag = typeof p.heartbeatLagMs === 'number' ? `, messages reach this page in about ${p.heartbeatLagMs} ms` : ''
    rows.push({ key: 'push', label: 'Live updates', ok: p.ok, text: p.ok ? `working: ${plural(p.connections ?? 0, 'browser', 'browsers')} connected${lag}` : 'interrupted: the live-update process is not answering (it restarts by itself)', detail: p.error ?? '' })
  }
  if (c.bridge !== undefined) {
    const b = c.bridge
    rows.push({ key: 'bridge', label: 'Messages', ok: b.ok, text: b.ok ? `working: ${plural(b.accepted ?? 0, 'message', 'messages')} sent since the message store started` : 'delayed: the message store is not answering; nothing is lost, messages wait', detail: b.error ?? (b.epoch ? `history ${b.epoch}` : '') })
  }
  if (c.jobs !== undefined) {
    const j = c.jobs
    const queued = j.tasks?.queued ?? 0
    const running = j.tasks?.running ?? 0
    rows.push({ key: 'jobs', label: 'Background jobs', ok: j.ok, text: j.ok ? `working: ${running} running, ${queued} waiting` : 'paused: the jobs process is restarting; queued jobs wait and run afterwards', detail: j.error ?? '' })
  }
  if (c.supervisor !== undefined) {
    rows.push({ key: 'supervisor', label: 'Process manager', ok: c.supervisor.ok, text: c.supervisor.ok ? 'every process running' : 'a process failed to start and is being restarted', detail: c.supervisor.error ?? '' })
  }
  if (c.config !== undefined) {
    rows.push({ key: 'config', label: 'Settings', ok: c.config.ok, text: c.config.ok ? 'every process runs the current settings' : 'a change has not reached every process yet', detail: c.config.version ? `version ${c.config.version}` : '' })
  }
  return rows
}

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })

/**
 * The banner's state machine. `update(rows, now)` after each poll returns what to show:
 * { state: 'ok' } (nothing), { state: 'outage', headline, since }, or { state: 'recovered', headline }.
 */
export class OutageBanner {
  constructor({ recoverPolls = 2, recoveredShowMs = 10_000 } = {}) {
    this.recoverPolls = recoverPolls
    this.recoveredShowMs = recoveredShowMs
    this.since = null
    this.worst = null
    this.good = 0
    this.recoveredAt = null
    this.recoveredText = ''
  }

  update(rows, now) {
    const failing = rows.filter((r) => !r.ok).map((r) => r.key)
    if (failing.length > 0) {
      this.good = 0
      this.recoveredAt = null
      if (this.since === null) this.since = now
      for (const key of failing) if (this.worst === null || (RANK.get(key) ?? 99) < (RANK.get(this.worst) ?? 99)) this.worst = key
    } else if (this.since !== null) {
      this.good++
      if (this.good >= this.recoverPolls) {
        this.recoveredText = `Everything works again (interrupted at ${clock(this.since)} for ${Math.max(1, Math.round((now - this.since) / 1000))} s).`
        this.recoveredAt = now
        this.since = null
        this.worst = null
      }
    }
    if (this.since !== null) {
      const part = PARTS.find((p) => p.key === this.worst) ?? PARTS[0]
      return { state: 'outage', headline: part.down, since: `Since ${clock(this.since)}.` }
    }
    if (this.recoveredAt !== null && now - this.recoveredAt < this.recoveredShowMs) return { state: 'recovered', headline: this.recoveredText }
    return { state: 'ok' }
  }
}
