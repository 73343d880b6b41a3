/**
 * What happens at 3 a.m.: a worker killed -9 under load, and a worker whose event loop blocks.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { get, startLoad } from '../helpers/load.js'
import { root, startServer, until } from '../helpers/server.js'

const app = join(root, 'test/fixtures/app.mjs')
const helloCheck = (status: number, text: string): string | null => (status === 200 && /^hello v1 \d+\n$/.test(text) ? null : `unexpected ${status} ${JSON.stringify(text.slice(0, 100))}`)
const pidOf = (text: string): string => text.trim().split(' ')[2] ?? '?'

test('kill -9 of a worker under load: it is respawned, only its own connections are affected', async (t) => {
  const s = await startServer(t, { app, env: { FORKYARD_WORKERS: '3' } })
  const concurrency = 12
  const load = startLoad(s.port, { path: '/', concurrency, check: helloCheck, classify: pidOf })
  await until('load flowing', () => load.result.ok > 300)
  const before = await s.status()
  const victim = before.workers[0]!
  process.kill(victim.pid, 'SIGKILL')
  const respawned = await until('respawned', async () => {
    const st = await s.status()
    return st.readyWorkers === 3 && !st.workers.some((w) => w.pid === victim.pid) ? st : null
  })
  const fresh = respawned.workers.find((w) => !before.workers.some((b) => b.pid === w.pid))!
  const result = await load.stop()
  // The load's kept-alive connections stay on the survivors; fresh connections reach the new worker.
  await until('the new worker serves', async () => pidOf((await get(s.port, '/')).text) === String(fresh.pid), 15_000, 0)
  // A request in flight on the killed worker, or sent on one of its kept-alive connections, fails;
  // at most one per client connection. Everything else succeeds.
  assert.ok(result.failures.length <= concurrency, `${result.failures.length} failures: ${result.failures.slice(0, 5).join('; ')}`)
  for (const f of result.failures) assert.match(f, /ECONNRESET|socket hang up|EPIPE/)
  const exit = await s.waitLog((l) => l.msg === 'worker killed by SIGKILL, possibly by the OOM killer', 'SIGKILL exit line')
  assert.equal(exit.level, 'error')
  assert.equal(exit.workerPid, victim.pid)
  await s.waitLog((l) => l.msg === 'worker spawned' && l.reason === 'respawn', 'respawn line')
})

test('a worker whose event loop blocks past FORKYARD_TIMEOUT is killed and logged with the request it was serving', async (t) => {
  const s = await startServer(t, { app, env: { FORKYARD_WORKERS: '2', FORKYARD_TIMEOUT: '2s' } })
  const before = await s.status()
  const blocked = get(s.port, '/block?ms=15000', { 'X-Request-ID': 'blocked-req-1' }).then(
    (r) => ({ ok: true as const, r }),
    (err: Error) => ({ ok: false as const, err }),
  )
  const warn = await s.waitLog((l) => l.msg === 'worker event loop blocked', 'blocked warning')
  // While one worker is blocked, new connections are served by the other one.
  const other = before.workers.find((w) => w.pid !== warn.workerPid)!
  for (let i = 0; i < 5; i++) {
    const r = await get(s.port, '/')
    assert.equal(r.status, 200)
    assert.equal(pidOf(r.text), String(other.pid))
  }
  const line = await s.waitLog((l) => l.msg?.startsWith('worker timed out') === true, 'timeout line', 10_000)
  assert.equal(line.level, 'error')
  assert.equal(line.workerPid, warn.workerPid)
  assert.equal(typeof line.worker, 'number')
  const requests = line.requests as { method: string; path: string; reqId: string; ageMs: number }[]
  assert.equal(requests.length, 1)
  assert.deepEqual({ method: requests[0]!.method, path: requests[0]!.path, reqId: requests[0]!.reqId }, { method: 'GET', path: '/block', reqId: 'blocked-req-1' })
  assert.ok(requests[0]!.ageMs >= 1500, JSON.stringify(requests))
  const outcome = await blocked
  assert.equal(outcome.ok, false, 'the blocked request was cut when its worker was killed')
  await until('respawned', async () => {
    const st = await s.status()
    return st.readyWorkers === 2 && !st.workers.some((w) => w.pid === warn.workerPid)
  })
  assert.equal((await get(s.port, '/')).status, 200)
})
