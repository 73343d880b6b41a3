import assert from 'node:assert/strict'
import { test } from 'node:test'

interface Row { key: string; label: string; ok: boolean; text: string; detail: string }
interface Shown { state: 'ok' | 'outage' | 'recovered'; headline?: string; since?: string }
interface HealthModule {
  describe: (body: unknown) => Row[]
  OutageBanner: new (o?: { recoverPolls?: number; recoveredShowMs?: number }) => { update: (rows: Row[], now: number) => Shown }
}
// The page's own module (plain browser ESM, no build step).
const { describe, OutageBanner } = (await import(new URL('../../example/public/health.js', import.meta.url).href)) as HealthModule

const healthy = {
  ready: true,
  components: {
    workers: { ok: true, up: 2, expected: 2, generation: 3, reloading: false },
    push: { ok: true, connections: 1, heartbeatLagMs: 4 },
    bridge: { ok: true, epoch: 'a1b2c3', accepted: 12 },
    jobs: { ok: true, tasks: { queued: 0, running: 1 } },
    config: { ok: true, version: '9f8e7d6c5b4a' },
  },
}
const pushDown = {
  ready: false,
  components: {
    ...healthy.components,
    push: { ok: false, error: 'push process unreachable at 127.0.0.1:8001: connect ECONNREFUSED' },
    bridge: { ok: false, error: 'unknown: the push process did not answer' },
  },
}

test('health rows are sentences, not raw errors or bare hashes (those go to the detail)', () => {
  const rows = describe(healthy)
  assert.deepEqual(rows.map((r) => r.label), ['Pages and API', 'Live updates', 'Messages', 'Background jobs', 'Settings'])
  assert.equal(rows[0]!.text, 'working: 2 web workers ready')
  assert.equal(rows[1]!.text, 'working: 1 browser connected, messages reach this page in about 4 ms')
  assert.equal(rows[4]!.text, 'every process runs the current settings')
  const down = describe(pushDown)
  assert.equal(down[1]!.text, 'interrupted: the live-update process is not answering (it restarts by itself)')
  for (const r of [...rows, ...down]) assert.doesNotMatch(r.text, /ECONNREFUSED|[0-9a-f]{12}|undefined|\?/, r.text)
  assert.match(down[1]!.detail, /ECONNREFUSED/, 'the raw reason stays available (title)')
  assert.deepEqual(describe(null).map((r) => [r.key, r.ok]), [['site', false]])
})

test('the banner is steady: one outage, the most serious part named, no flip-flop between polls, cleared after two good polls', () => {
  const b = new OutageBanner({ recoverPolls: 2, recoveredShowMs: 10_000 })
  assert.equal(b.update(describe(healthy), 0).state, 'ok')
  // The answers an outage of push gives on successive polls, flapping as processes come and go.
  const polls = [pushDown, null, pushDown, healthy, pushDown, healthy, healthy, healthy]
  const shown = polls.map((p, i) => b.update(describe(p), 2000 * (i + 1)))
  const outage = shown.filter((s) => s.state === 'outage')
  assert.equal(outage.length, 6, 'outage until two good polls in a row')
  assert.deepEqual(new Set(outage.map((s) => s.headline)), new Set(['Live updates are interrupted. The page catches up by itself when they are back.', 'The site is not answering. This page keeps trying.']))
  // Once the worse part was seen, the headline stays on it: no flipping back.
  assert.deepEqual(outage.slice(1).map((s) => s.headline), Array(5).fill('The site is not answering. This page keeps trying.'))
  assert.equal(new Set(outage.map((s) => s.since)).size, 1, 'one "since" for the whole outage')
  assert.equal(shown[6]!.state, 'recovered')
  assert.match(shown[6]!.headline ?? '', /^Everything works again \(interrupted at .* for 12 s\)\.$/)
  assert.equal(b.update(describe(healthy), 2000 * 8 + 10_001).state, 'ok', 'the recovered note goes away')
})
