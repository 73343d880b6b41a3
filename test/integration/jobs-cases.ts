/**
 * The jobs cases that hold for every engine (FORKYARD_ENGINE): jobs.test.ts runs them embedded,
 * jobs-redis.test.ts on a real redis-server. Failures 1, 2 and 3 of background.md, reproduced: a
 * task accepted with 202 runs even when the worker (or the whole server) is killed -9; the same
 * idempotency key runs once, also from 8 concurrent requests; a singleton runs once per deployment.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { isAlive } from '../../server/process/pidfile.js'
import { get } from '../helpers/load.js'
import { root, sleep, startServer, tempDir, until } from '../helpers/server.js'

export const app = join(root, 'test/fixtures/jobs-app.mjs')

export function post(port: number, path: string): Promise<{ status: number; body: { id: string; duplicate: boolean }; pid: number }> {
  return fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST' }).then(async (r) => ({ status: r.status, body: (await r.json()) as { id: string; duplicate: boolean }, pid: Number(r.headers.get('x-worker-pid')) }))
}

export function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : []
}

export function envFor(dir: string): Record<string, string> {
  return { DONE_FILE: join(dir, 'done.txt'), TICK_FILE: join(dir, 'ticks.txt'), FORKYARD_TASKS_DIR: join(dir, 'tasks'), FORKYARD_ACCESS_LOG: 'false' }
}

/** Registers the shared cases; engineEnv gives each test the engine's settings (and starts what it needs). */
export function jobsCases(engine: string, engineEnv: (t: TestContext) => Promise<Record<string, string>>): void {
  test(`${engine}: a task accepted with 202 runs even when the accepting worker is killed -9 at once; an idempotency key runs once`, async (t) => {
    const extra = await engineEnv(t)
    const dir = tempDir()
    const s = await startServer(t, { app, cwd: dir, env: { ...envFor(dir), ...extra, FORKYARD_WORKERS: '2' } })
    const r = await post(s.port, '/enqueue?ms=300')
    assert.equal(r.status, 202)
    process.kill(r.pid, 'SIGKILL')
    await until('task done', () => lines(join(dir, 'done.txt')).some((l) => l.startsWith(r.body.id)), 15_000)
    // The handler's side effect lands before the queue records the task as done.
    const record = await until('recorded as done', async () => {
      const rec = JSON.parse((await get(s.port, `/task/${r.body.id}`)).text) as { state: string; attempts: number; result: unknown }
      return rec.state === 'done' ? rec : undefined
    }, 5_000)
    assert.deepEqual(record.result, { wrote: true })
    const started = await s.waitLog((l) => l.msg === 'task started' && l.taskId === r.body.id, 'task started line')
    assert.equal(started.role, 'jobs')
    assert.equal(typeof started.reqId, 'string', 'logged with the request id')

    const a = await post(s.port, '/enqueue?key=order-42')
    const b = await post(s.port, '/enqueue?key=order-42')
    assert.equal(a.body.id, b.body.id)
    assert.deepEqual([a.body.duplicate, b.body.duplicate], [false, true])
    await until('keyed task done', () => lines(join(dir, 'done.txt')).some((l) => l.startsWith(a.body.id)), 15_000).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${(await get(s.port, `/task/${a.body.id}`)).text}\n${s.raw()}`)
    })
    await sleep(500)
    assert.equal(lines(join(dir, 'done.txt')).filter((l) => l.startsWith(a.body.id)).length, 1, 'ran once')

    // The same key with another payload: refused, not merged.
    const conflict = await fetch(`http://127.0.0.1:${s.port}/enqueue?key=order-42&ms=7`, { method: 'POST' })
    assert.equal(conflict.status, 409)
    const why = (await conflict.json()) as { code: string; error: string }
    assert.equal(why.code, 'FORKYARD_ERR_TASK_KEY_CONFLICT')
    assert.match(why.error, /"order-42".*payload differs/)

    // One key from 8 concurrent requests spread over the workers: one winner, the same id for all.
    const racing = await Promise.all(Array.from({ length: 8 }, () => post(s.port, '/enqueue?key=order-43&ms=1')))
    assert.deepEqual(racing.map((x) => x.status), Array(8).fill(202))
    assert.equal(racing.filter((x) => !x.body.duplicate).length, 1, JSON.stringify(racing.map((x) => x.body)))
    assert.equal(new Set(racing.map((x) => x.body.id)).size, 1)
  })
  test(`${engine}: kill -9 of the whole server mid-task: after a restart the task runs again and completes`, async (t) => {
    const extra = await engineEnv(t)
    const dir = tempDir()
    const first = await startServer(t, { app, cwd: dir, env: { ...envFor(dir), ...extra } })
    const r = await post(first.port, '/enqueue?ms=4000')
    await until('running', async () => (JSON.parse((await get(first.port, `/task/${r.body.id}`)).text) as { state: string }).state === 'running', 10_000)
    const st = await first.status()
    const pids = [st.pid, st.jobsPid!, ...st.workers.map((w) => w.pid)]
    for (const pid of pids) process.kill(pid, 'SIGKILL')
    await until('all dead', () => pids.every((p) => !isAlive(p)), 10_000)
    assert.equal(lines(join(dir, 'done.txt')).length, 0)
    const second = await startServer(t, { app, cwd: dir, env: { ...envFor(dir), ...extra } })
    await second.waitLog((l) => l.msg === 'task interrupted by a stop or crash: queued again' && l.taskId === r.body.id, 'requeued after the crash')
    await until('done after restart', () => lines(join(dir, 'done.txt')).some((l) => l.startsWith(r.body.id)), 20_000)
    // The handler's side effect (done.txt) lands before the queue records the task as done.
    const record = async (): Promise<{ state: string; attempts: number }> => JSON.parse((await get(second.port, `/task/${r.body.id}`)).text) as { state: string; attempts: number }
    await until('recorded as done', async () => (await record()).state === 'done', 5_000)
    assert.equal((await record()).attempts, 2)
  })
  test(`${engine}: a singleton runs once per deployment with 4 workers (once per tick), and comes back after kill -9`, async (t) => {
    const extra = await engineEnv(t)
    const dir = tempDir()
    const s = await startServer(t, { app, cwd: dir, env: { ...envFor(dir), ...extra, FORKYARD_WORKERS: '4', FORKYARD_READY_CHECKS: 'workers' } })
    await until('ticking', () => lines(join(dir, 'ticks.txt')).length >= 3, 10_000)
    const before = lines(join(dir, 'ticks.txt')).length
    await sleep(2000)
    const window = lines(join(dir, 'ticks.txt')).slice(before)
    // One tick every 200 ms: about 10 in 2 s from one process; 4 copies would give about 40.
    assert.ok(window.length >= 6 && window.length <= 14, `${window.length} ticks in 2 s`)
    assert.equal(new Set(window.map((l) => l.split(' ')[1])).size, 1, 'one process ticks')
    const ready = JSON.parse((await get(s.port, '/readyz')).text) as { components: { jobs: { ok: boolean; singletons: { name: string; state: string; pid: number }[] } } }
    assert.equal(ready.components.jobs.ok, true)
    assert.deepEqual(ready.components.jobs.singletons.map((x) => [x.name, x.state]), [['ticker', 'running']])
    const jobsPid = (await s.status()).jobsPid!
    assert.equal(ready.components.jobs.singletons[0]!.pid, jobsPid, 'readyz says where it runs')
    process.kill(jobsPid, 'SIGKILL')
    await until('ticking again from a new process', () => {
      const last = lines(join(dir, 'ticks.txt')).at(-1)
      return last !== undefined && Number(last.split(' ')[1]) !== jobsPid
    }, 15_000)
    const after = lines(join(dir, 'ticks.txt'))
    await sleep(1000)
    const window2 = lines(join(dir, 'ticks.txt')).slice(after.length)
    assert.equal(new Set(window2.map((l) => l.split(' ')[1])).size, 1, 'still exactly one')
  })
}
