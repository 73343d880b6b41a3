/**
 * The whole stack end to end, natively: `forkyard up` (what `make up` runs without Docker), then
 * through nginx: health, readiness, an app request, a WebSocket message published by a worker;
 * kill -9 of each process (supervisord restarts it, readiness red then green); a reload under
 * POST load with zero failures; 413 and 431; one log file per process with the same request id
 * across nginx and worker; rotation under load losing no line; `forkyard down` leaving nothing.
 */
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { isAlive } from '../../server/process/pidfile.js'
import { startLoad } from '../helpers/load.js'
import { connect } from '../helpers/push.js'
import { startStackRun } from '../helpers/stack.js'
import { until } from '../helpers/server.js'

async function readyz(url: string): Promise<{ status: number; body: { ready?: boolean; components?: Record<string, { ok: boolean }> } }> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(3000) })
    return { status: r.status, body: (await r.json().catch(() => ({}))) as { ready?: boolean } }
  } catch {
    return { status: 0, body: {} }
  }
}

function logLines(dir: string): { file: string; line: Record<string, unknown> }[] {
  const out: { file: string; line: Record<string, unknown> }[] = []
  for (const f of readdirSync(dir).filter((f) => /\.log(\.\d+)?$/.test(f))) {
    for (const text of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (text === '') continue
      out.push({ file: f, line: JSON.parse(text) as Record<string, unknown> })
    }
  }
  return out
}

test('the stack natively: up, requests, WebSocket, kill -9 of each process, reload under load, limits, logs, rotation, down', async (t) => {
  const s = await startStackRun(t, { FORKYARD_LOG_MAX_SIZE: '64KiB', FORKYARD_LOG_KEEP: '200', FORKYARD_ACCESS_LOG_MAX_SIZE: '64KiB', FORKYARD_ACCESS_LOG_KEEP: '200' })

  // Health and readiness through nginx.
  assert.equal((await fetch(s.url('/healthz'))).status, 200)
  const ready = await readyz(s.url('/readyz'))
  assert.equal(ready.status, 200, JSON.stringify(ready.body))
  assert.deepEqual(Object.keys(ready.body.components ?? {}).sort(), ['bridge', 'config', 'jobs', 'push', 'supervisor', 'workers'])
  // /healthz and /readyz come from the arbiter (health.sock), not through a worker's event loop:
  // with every worker stopped (SIGSTOP), they still answer at once, and say so.
  const arbiter = Number(readFileSync(join(s.runDir, 'server.pid'), 'utf8'))
  const health = (await (await fetch(s.url('/healthz'))).json()) as { pid?: number; readyWorkers?: number }
  assert.equal(health.pid, arbiter, '/healthz answered by the arbiter')
  const workerPids = ((JSON.parse(s.cli('status', '--json').stdout) as { workers: { pid: number }[] }).workers).map((w) => w.pid)
  assert.equal(workerPids.length, 2)
  for (const pid of workerPids) process.kill(pid, 'SIGSTOP')
  try {
    await until('/healthz says no worker is live', async () => {
      const t0 = performance.now()
      const r = await fetch(s.url('/healthz'), { signal: AbortSignal.timeout(2000) })
      const ms = performance.now() - t0
      assert.ok(ms < 1000, `/healthz answered in ${Math.round(ms)} ms with every worker stopped`)
      return r.status === 503
    }, 10_000, 250)
    const r = await fetch(s.url('/readyz'), { signal: AbortSignal.timeout(2000) })
    assert.equal(r.status, 503, '/readyz answers, red, with every worker stopped')
  } finally {
    for (const pid of workerPids) process.kill(pid, 'SIGCONT')
  }
  await until('/healthz green again', async () => (await fetch(s.url('/healthz'))).status === 200, 10_000, 100)
  const hello = await fetch(s.url('/api/pipelines'))
  assert.equal(hello.status, 200)
  assert.ok(Array.isArray(((await hello.json()) as { pipelines: unknown }).pipelines))
  assert.match(hello.headers.get('x-request-id') ?? '', /^[0-9a-f]{32}$/)
  const page = await fetch(s.url('/'))
  assert.equal(page.status, 200, 'the example page, through the redirect to /static/index.html')
  assert.match(await page.text(), /<title>forkyard/)

  // A message published by a worker reaches a browser connected through nginx.
  const client = connect(`ws://127.0.0.1:${s.port}/ws`)
  await client.opened
  client.send({ type: 'subscribe', channel: 'news' })
  await until('subscribed', () => client.messages.some((m) => m.type === 'subscribed'))
  const published = await fetch(s.url('/api/notify'), { method: 'POST', body: JSON.stringify({ channel: 'news', message: 'hello browsers' }) })
  assert.equal(published.status, 202)
  const reqId = published.headers.get('x-request-id') ?? ''
  const msg = await until('message through nginx', () => client.messages.find((m) => m.type === 'message'))
  assert.deepEqual(msg.data, { message: 'hello browsers' })
  assert.equal(msg.reqId, reqId)
  client.ws.close()

  // Limits answered, not hung.
  assert.equal((await fetch(s.url('/api/notify'), { method: 'POST', body: 'x'.repeat(2 * 1024 * 1024) })).status, 413)
  assert.equal((await fetch(s.url('/'), { headers: { 'X-Big': 'x'.repeat(40 * 1024) } })).status, 431)

  // kill -9 of each process: supervisord restarts it; readiness goes red, then green.
  const nginxPid = (): number => Number(readFileSync(join(s.runDir, 'nginx.pid'), 'utf8').trim())
  const victims: [string, () => number | null][] = [
    ['bridge', () => s.programPid('bridge')],
    ['push', () => s.programPid('push')],
    ['server', () => s.programPid('server')],
    ['nginx', () => nginxPid()],
  ]
  for (const [name, pidOf] of victims) {
    const pid = pidOf()
    assert.ok(pid !== null && pid > 0, `${name} pid`)
    process.kill(pid, 'SIGKILL')
    // nginx's wrapper starts a new nginx within milliseconds, too soon to see red reliably: that
    // restart is waited for instead (kill-matrix.test.ts counts what a kill of nginx drops).
    if (name === 'nginx') await until('nginx: a new master', () => (existsSync(join(s.runDir, 'nginx.pid')) && ![0, pid].includes(pidOf() ?? 0) && isAlive(pidOf()!) ? true : null), 15_000, 20)
    else await until(`${name}: readiness red`, async () => (await readyz(s.url('/readyz'))).status !== 200, 15_000, 20)
    await until(`${name}: readiness green again`, async () => (await readyz(s.url('/readyz'))).status === 200, 60_000, 200)
    assert.notEqual(pidOf(), pid, `${name} was restarted`)
  }

  // A rolling reload under POST load through nginx over keep-alive: zero failed requests.
  const load = startLoad(s.port, { path: '/api/notify', concurrency: 8, check: (st) => (st === 400 ? null : `status ${st}`) })
  await until('load flowing', () => load.result.ok > 200, 20_000)
  const reload = s.cli('reload')
  assert.equal(reload.status, 0, reload.stdout + reload.stderr)
  const after = load.result.ok
  await until('load after reload', () => load.result.ok > after + 200, 20_000)
  const result = await load.stop()
  assert.deepEqual(result.failures.slice(0, 5), [], `${result.failures.length} failed requests during the reload`)

  // The logs: one parseable file per process, rotated under load without losing a line. Log
  // writes are asynchronous: wait (bounded) until every request's lines are there.
  const accessCount = (lines: { line: Record<string, unknown> }[], svc: string): number =>
    lines.filter((l) => l.line.svc === svc && l.line.msg === 'request' && l.line.path === '/api/notify' && l.line.status === 400).length
  let lines = logLines(s.logDir)
  try {
    await until('every access line written', () => {
      lines = logLines(s.logDir)
      return accessCount(lines, 'nginx') >= result.ok
    }, 15_000, 200)
  } catch {
    // the exact counts are asserted below
  }
  // Each request is logged once, by nginx into access.log (FORKYARD_ACCESS_LOG=auto: the workers
  // behind the kit's nginx do not log it again), across its rotations.
  assert.equal(accessCount(lines, 'nginx'), result.ok, 'every request has its access line')
  assert.equal(accessCount(lines, 'server'), 0, 'no second access line from the workers')
  // nginx's upstreamMs is milliseconds: a number close to the request's ms (nginx times the two on
  // different clocks, truncated to whole ms), null when no upstream answered.
  const proxied = lines.filter((l) => l.line.svc === 'nginx' && l.line.path === '/api/notify')
  const badUpstream = proxied.filter((l) =>
    l.line.upstream === '' ? l.line.upstreamMs !== null : typeof l.line.upstreamMs !== 'number' || (l.line.upstreamMs as number) > (l.line.ms as number) + 2,
  )
  assert.ok(proxied.length > 0 && badUpstream.length === 0, JSON.stringify(badUpstream.slice(0, 3).map((l) => l.line)))
  assert.ok(proxied.some((l) => (l.line.upstreamMs as number) >= 1), 'some upstream took a millisecond or more (not seconds)')
  const services = new Set(lines.map((l) => l.line.svc))
  for (const svc of ['nginx', 'server', 'push', 'bridge']) assert.ok(services.has(svc), `${svc} logged`)
  for (const { file, line } of lines) {
    assert.equal(typeof line.time, 'string', file)
    assert.equal(typeof line.level, 'string', file)
    assert.equal(typeof line.msg, 'string', file)
    const writer = file.startsWith('access.log') ? 'nginx' : file.split('.')[0]
    assert.equal(line.svc, writer, `${file} has one writer: ${String(line.svc)}`)
  }
  const forReq = lines.filter((l) => l.line.reqId === reqId).map((l) => l.line.svc)
  for (const svc of ['nginx', 'bridge', 'push']) assert.ok(forReq.includes(svc), `request ${reqId} traced in ${svc}: ${forReq.join(',')}`)
  const rotated = readdirSync(s.logDir).filter((f) => /^access\.log\.\d+$/.test(f))
  // Checked once a second: at least one cut happened during the load, with lines on both sides.
  assert.ok(rotated.length >= 1, `access.log rotated by forkyard nginx: ${rotated.join(',')}`)
  // A cut right after the load may leave access.log without a line of it: two generations are enough.
  const withLoad = new Set(lines.filter((l) => l.file.startsWith('access.log') && l.line.path === '/api/notify').map((l) => l.file))
  assert.ok(withLoad.size >= 2, `the load's access lines on both sides of a cut, got them in ${[...withLoad].join(', ')}`)

  // down: graceful, and nothing left behind.
  const pids = [s.supervisordPid(), nginxPid(), ...['bridge', 'push', 'server', 'nginx'].map((n) => s.programPid(n)!)]
  const status = JSON.parse(s.cli('status', '--json').stdout) as { workers: { pid: number }[] }
  pids.push(...status.workers.map((w) => w.pid))
  const down = s.cli('down')
  assert.equal(down.status, 0, down.stdout + down.stderr)
  await until('every process gone', () => pids.every((p) => !isAlive(p)), 20_000)
})
