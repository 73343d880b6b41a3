/**
 * Rolling reload (SIGHUP) and recycling under continuous POST load over keep-alive connections:
 * zero failed requests, the new code everywhere, a broken new version refused.
 */
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { get, startLoad } from '../helpers/load.js'
import { root, sleep, startServer, tempDir, until } from '../helpers/server.js'

function appCopy(): { dir: string; app: string; setVersion: (v: string) => void; breakIt: () => void } {
  const dir = tempDir()
  const app = join(dir, 'app.mjs')
  // The fixture imports the kit relatively (../../dist/index.js): the copy needs the absolute path.
  const original = readFileSync(join(root, 'test/fixtures/app.mjs'), 'utf8').replace("'../../dist/index.js'", JSON.stringify(join(root, 'dist/index.js')))
  writeFileSync(app, original)
  return {
    dir,
    app,
    setVersion: (v) => writeFileSync(app, original.replace("export const VERSION = 'v1'", `export const VERSION = '${v}'`)),
    breakIt: () => writeFileSync(app, `throw new Error('broken release')\n${original}`),
  }
}

const helloCheck = (status: number, text: string): string | null => (status === 200 && /^hello v\d+ \d+\n$/.test(text) ? null : `unexpected ${status} ${JSON.stringify(text.slice(0, 100))}`)
const version = (text: string): string => text.split(' ')[1] ?? '?'

test('SIGHUP under continuous POST load: zero failed requests, every worker serves the new code', async (t) => {
  const a = appCopy()
  const s = await startServer(t, { app: a.app, cwd: a.dir, env: { FORKYARD_WORKERS: '3', FORKYARD_GRACEFUL_TIMEOUT: '5s' } })
  const before = await s.status()
  const load = startLoad(s.port, { path: '/', concurrency: 12, check: helloCheck, classify: version })
  await until('load flowing', () => load.result.ok > 200)
  a.setVersion('v2')
  s.child.kill('SIGHUP')
  await s.waitLog((l) => l.msg === 'reload complete', 'reload complete', 30_000)
  const seenBeforeStop = load.result.bodies.get('v2') ?? 0
  await until('v2 served under load', () => (load.result.bodies.get('v2') ?? 0) > seenBeforeStop + 200)
  const result = await load.stop()
  assert.deepEqual(result.failures.slice(0, 5), [], `${result.failures.length} failed requests`)
  assert.ok((result.bodies.get('v1') ?? 0) > 0 && (result.bodies.get('v2') ?? 0) > 0)

  const after = await s.status()
  assert.equal(after.generation, 2)
  const ready = after.workers.filter((w) => w.state === 'ready')
  assert.equal(ready.length, 3)
  assert.ok(ready.every((w) => w.generation === 2))
  const oldPids = new Set(before.workers.map((w) => w.pid))
  assert.ok(ready.every((w) => !oldPids.has(w.pid)), 'every worker is a new process')
  // Fresh connections reach every new worker, and each serves v2.
  const pids = new Set<string>()
  for (let i = 0; i < 60 && pids.size < 3; i++) {
    const r = await get(s.port, '/')
    assert.equal(version(r.text), 'v2')
    pids.add(r.text.trim().split(' ')[2] ?? '')
  }
  for (const w of ready) assert.ok(pids.has(String(w.pid)), `worker ${w.pid} served v2`)
  // Readiness-gated: each old worker was drained only after a new one was ready.
  const order = s.logs.filter((l) => (l.msg === 'worker ready' && l.generation === 2) || (l.msg === 'draining: stopped accepting' && l.reason === 'reload'))
  let readyCount = 0
  let drained = 0
  for (const l of order) {
    if (l.msg === 'worker ready') readyCount++
    else assert.ok(++drained <= readyCount, 'an old worker drained before its replacement was ready')
  }
})

test('a reload to code that throws on import is aborted and the old code keeps serving', async (t) => {
  const a = appCopy()
  const s = await startServer(t, { app: a.app, cwd: a.dir, env: { FORKYARD_WORKERS: '2' } })
  const load = startLoad(s.port, { path: '/', concurrency: 4, check: helloCheck, classify: version })
  await until('load flowing', () => load.result.ok > 50)
  a.breakIt()
  s.child.kill('SIGHUP')
  const aborted = await s.waitLog((l) => l.msg?.startsWith('reload aborted') === true, 'reload aborted', 30_000)
  assert.match(JSON.stringify(aborted.err), /broken release/)
  const seen = load.result.ok
  await until('still serving', () => load.result.ok > seen + 100)
  const result = await load.stop()
  assert.deepEqual(result.failures.slice(0, 5), [], `${result.failures.length} failed requests`)
  assert.deepEqual([...result.bodies.keys()], ['v1'])
  const status = await s.status()
  assert.equal(status.generation, 1)
  assert.equal(status.readyWorkers, 2)
  assert.ok(status.workers.every((w) => w.generation === 1 && w.state === 'ready'))
  // Fixed again: the next reload goes through.
  a.setVersion('v3')
  assert.deepEqual(await s.control('reload'), { reloaded: true })
  assert.equal(version((await get(s.port, '/')).text), 'v3')
})

test('max-requests recycling under load: replacements one at a time, zero failed requests', async (t) => {
  const s = await startServer(t, { app: join(root, 'test/fixtures/app.mjs'), env: { FORKYARD_WORKERS: '2', FORKYARD_MAX_REQUESTS: '150', FORKYARD_MAX_REQUESTS_JITTER: '20', FORKYARD_GRACEFUL_TIMEOUT: '5s' } })
  const load = startLoad(s.port, { path: '/', concurrency: 8, check: helloCheck })
  await until('three recycles', () => s.logs.filter((l) => l.msg === 'worker spawned' && l.reason === 'recycle').length >= 3, 30_000)
  const result = await load.stop()
  assert.deepEqual(result.failures.slice(0, 5), [], `${result.failures.length} failed requests`)
  const asks = s.logs.filter((l) => l.msg === 'worker asks to be recycled')
  assert.ok(asks.length >= 3)
  for (const ask of asks) {
    assert.equal(ask.reason, 'max-requests')
    assert.ok(Number(ask.value) >= 150 && Number(ask.value) <= 170 + 20, JSON.stringify(ask))
  }
  // At most one recycle at once: a recycle replacement is spawned only after the previous one is ready.
  let booting = 0
  const recycleIds = new Set<unknown>()
  for (const l of s.logs) {
    if (l.msg === 'worker spawned' && l.reason === 'recycle') {
      assert.equal(booting, 0, 'two recycles at once')
      booting++
      recycleIds.add(l.worker)
    } else if (l.msg === 'worker ready' && recycleIds.has(l.worker)) booting--
  }
  await sleep(200)
  assert.equal((await s.status()).readyWorkers, 2)
})
