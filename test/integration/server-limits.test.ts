/**
 * Per-request deadline, memory recycling, the status command and the pidfile guard.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { get, startLoad } from '../helpers/load.js'
import { bin, root, startServer, until } from '../helpers/server.js'

const app = join(root, 'test/fixtures/app.mjs')

test('FORKYARD_REQUEST_TIMEOUT answers 504, logs the request, and the worker keeps serving', async (t) => {
  const s = await startServer(t, { app, env: { FORKYARD_WORKERS: '1', FORKYARD_REQUEST_TIMEOUT: '300ms' } })
  const r = await get(s.port, '/slow?ms=1500', { 'X-Request-ID': 'too-slow-1' })
  assert.equal(r.status, 504)
  assert.match(r.text, /FORKYARD_REQUEST_TIMEOUT/)
  const line = await s.waitLog((l) => l.msg === 'request deadline exceeded', 'deadline line')
  assert.equal(line.reqId, 'too-slow-1')
  assert.equal(line.path, '/slow')
  assert.equal(line.limitMs, 300)
  // The app answers late into a neutralised response: no crash, the worker goes on.
  await new Promise((res) => setTimeout(res, 1500))
  const ok = await get(s.port, '/')
  assert.equal(ok.status, 200)
  assert.equal((await s.status()).workers[0]!.pid, Number(ok.text.trim().split(' ')[2]))
  assert.equal(s.logs.filter((l) => l.level === 'fatal').length, 0)
})

test('FORKYARD_MAX_RSS recycles a worker above the limit, with a ready replacement first', async (t) => {
  const s = await startServer(t, { app, env: { FORKYARD_WORKERS: '2', FORKYARD_MAX_RSS: '20MiB', FORKYARD_GRACEFUL_TIMEOUT: '3s' } })
  const load = startLoad(s.port, { path: '/', concurrency: 4, check: (st) => (st === 200 ? null : `status ${st}`) })
  const ask = await s.waitLog((l) => l.msg === 'worker asks to be recycled', 'recycle request', 20_000)
  assert.equal(ask.reason, 'max-rss')
  assert.ok(Number(ask.value) > 20 * 1024 * 1024)
  assert.equal(ask.limit, 20 * 1024 * 1024)
  await s.waitLog((l) => l.msg === 'worker spawned' && l.reason === 'recycle', 'replacement spawned')
  const result = await load.stop()
  assert.deepEqual(result.failures.slice(0, 5), [], `${result.failures.length} failures`)
})

test('forkyard status lists every worker; a second arbiter on the same pidfile is refused', async (t) => {
  const s = await startServer(t, { app, env: { FORKYARD_WORKERS: '2' } })
  await get(s.port, '/')
  await until('heartbeat counted the request', async () => (await s.status()).workers.some((w) => w.served > 0))
  const env = { PATH: process.env.PATH ?? '', FORKYARD_RUN_DIR: s.runDir }
  const text = spawnSync(process.execPath, [bin, 'status'], { env, encoding: 'utf8', timeout: 20_000 })
  assert.equal(text.status, 0, text.stderr)
  assert.match(text.stdout, /2\/2 workers ready/)
  assert.match(text.stdout, /WORKER\s+PID\s+GEN\s+STATE\s+SERVED\s+INFLIGHT\s+RSS\s+HEARTBEAT/)
  const json = spawnSync(process.execPath, [bin, 'status', '--json'], { env, encoding: 'utf8', timeout: 20_000 })
  const st = JSON.parse(json.stdout) as { workers: { pid: number; rssBytes: number; lastHeartbeatMsAgo: number }[] }
  assert.equal(st.workers.length, 2)
  for (const w of st.workers) {
    assert.ok(w.rssBytes > 1024 * 1024)
    assert.ok(w.lastHeartbeatMsAgo < 5000)
  }
  const second = spawnSync(process.execPath, [bin, 'serve', app], { env: { ...env, FORKYARD_BIND: '127.0.0.1:0' }, encoding: 'utf8', timeout: 20_000 })
  assert.equal(second.status, 1)
  assert.match(second.stderr, /already runs with pidfile/)
  const missing = spawnSync(process.execPath, [bin, 'status'], { env: { PATH: env.PATH, FORKYARD_RUN_DIR: join(s.dir, 'nowhere') }, encoding: 'utf8', timeout: 20_000 })
  assert.equal(missing.status, 1)
  assert.match(missing.stderr, /Cannot reach the forkyard control socket/)
})
