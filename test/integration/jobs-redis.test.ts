/**
 * Tasks and singletons on the Redis engine (FORKYARD_ENGINE=redis://…, a real redis-server per
 * test): the cases every engine passes (jobs-cases.ts), retention and paging by BullMQ, and what
 * one host cannot show: two "hosts" (two servers with their own run and task directories) on one
 * Redis share the tasks and one singleton; a host killed -9 mid-task or holding the singleton is
 * replaced by the other within about a lease; a redis-server killed -9 and restarted is found again.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { isAlive } from '../../server/process/pidfile.js'
import { get } from '../helpers/load.js'
import { startRedis } from '../helpers/redis.js'
import { sleep, startServer, tempDir, until, type Started } from '../helpers/server.js'
import { app, envFor, jobsCases, lines, post } from './jobs-cases.js'

/** Short leases so that a dead host is replaced within seconds. */
const LEASES = { FORKYARD_TASKS_LEASE: '3s', FORKYARD_SINGLETON_LEASE: '3s' }

async function redisEnv(t: TestContext, aof = false): Promise<Record<string, string>> {
  const r = await startRedis(t, { aof })
  return { FORKYARD_ENGINE: r.url, ...LEASES }
}

jobsCases('redis', (t) => redisEnv(t))

async function record(s: Started, id: string): Promise<{ state: string; attempts: number; result?: unknown } | null> {
  return JSON.parse((await get(s.port, `/task/${id}`)).text) as { state: string; attempts: number } | null
}

async function killAll(s: Started): Promise<number[]> {
  const st = await s.status()
  const pids = [st.pid, ...(st.jobsPid !== undefined && st.jobsPid !== null ? [st.jobsPid] : []), ...st.workers.map((w) => w.pid)]
  for (const pid of pids) process.kill(pid, 'SIGKILL')
  await until('all dead', () => pids.every((p) => !isAlive(p)), 10_000)
  return pids
}

interface Ready {
  components: { jobs: { ok: boolean; singletons: { name: string; state: string; holder?: string; fencingToken?: number }[]; engine?: { ok: boolean }; error?: string } }
}

async function readyz(s: Started): Promise<Ready> {
  return JSON.parse((await get(s.port, '/readyz')).text) as Ready
}

test('redis: finished tasks are kept per FORKYARD_TASKS_KEEP_COUNT, keys with them; the list is paged', async (t) => {
  const dir = tempDir()
  const s = await startServer(t, { app, cwd: dir, env: { ...envFor(dir), ...(await redisEnv(t)), FORKYARD_TASKS_KEEP_COUNT: '2' } })
  const ids: string[] = []
  for (let i = 0; i < 6; i++) {
    const r = await post(s.port, `/enqueue?key=k${i}&ms=${i}`)
    ids.push(r.body.id)
    await until(`task ${i} done`, async () => (await record(s, r.body.id))?.state === 'done', 10_000)
  }
  const page1 = JSON.parse((await get(s.port, '/tasks?limit=1')).text) as { ids: string[]; next: string | null; list: number }
  assert.deepEqual(page1.ids, [ids[5]])
  assert.equal(page1.list, 2, 'two kept')
  const page2 = JSON.parse((await get(s.port, `/tasks?limit=1&before=${page1.next}`)).text) as { ids: string[]; next: string | null }
  assert.deepEqual(page2.ids, [ids[4]])
  assert.equal(page2.next, null)
  // A removed task's key is forgotten (new work); a kept one is still a duplicate.
  const forgotten = await post(s.port, '/enqueue?key=k0&ms=0')
  assert.equal(forgotten.body.duplicate, false)
  assert.deepEqual((await post(s.port, '/enqueue?key=k5&ms=5')).body, { id: ids[5], duplicate: true })
})

test('two hosts on one Redis: a task whose host is killed -9 mid-run completes on the other', async (t) => {
  const engine = await redisEnv(t)
  const dirA = tempDir()
  const dirB = tempDir()
  const a = await startServer(t, { app, cwd: dirA, env: { ...envFor(dirA), ...engine } })
  const r = await post(a.port, '/enqueue?ms=5000')
  await until('running on A', async () => (await record(a, r.body.id))?.state === 'running', 10_000)
  const b = await startServer(t, { app, cwd: dirB, env: { ...envFor(dirB), ...engine } })
  const bJobs = (await b.status()).jobsPid!
  await killAll(a)
  const killedAt = Date.now()
  await until('done on B', () => lines(join(dirB, 'done.txt')).some((l) => l.startsWith(r.body.id)), 20_000)
  const took = Date.now() - killedAt
  // The lock (3 s) runs out, a stalled check (every 3 s) queues it again, the task takes 5 s.
  assert.ok(took < 5000 + 3000 * 3 + 2000, `completed ${took} ms after the kill`)
  const line = lines(join(dirB, 'done.txt')).find((l) => l.startsWith(r.body.id))!
  assert.equal(Number(line.split(' ')[2]), bJobs, 'ran in B\'s jobs process')
  const rec = await until('recorded as done', async () => {
    const x = await record(b, r.body.id)
    return x?.state === 'done' ? x : undefined
  }, 5000)
  assert.equal(rec.attempts, 2)
  assert.equal(lines(join(dirA, 'done.txt')).length, 0)
})

test('two hosts on one Redis: one singleton, standby on the other; it moves within about a lease when its host dies, with a higher token', async (t) => {
  const engine = await redisEnv(t)
  const dirs = [tempDir(), tempDir()]
  // Both hosts tick into one file: exactly one process may write to it at a time.
  const tick = join(dirs[0]!, 'shared-ticks.txt')
  const hosts = await Promise.all(dirs.map((d) => startServer(t, { app, cwd: d, env: { ...envFor(d), ...engine, TICK_FILE: tick } })))
  await until('ticking', () => lines(tick).length >= 3, 10_000)
  const before = lines(tick).length
  await sleep(2000)
  const window = lines(tick).slice(before)
  assert.equal(new Set(window.map((l) => l.split(' ')[1])).size, 1, 'one process ticks')
  const holderPid = Number(window.at(-1)!.split(' ')[1])
  const token1 = Number(window.at(-1)!.split(' ')[2])
  assert.ok(token1 >= 1)
  const states = await Promise.all(hosts.map(async (h) => ({ h, st: await h.status(), ready: await readyz(h) })))
  const holder = states.find((x) => x.st.jobsPid === holderPid)!
  const other = states.find((x) => x.st.jobsPid !== holderPid)!
  assert.deepEqual(holder.ready.components.jobs.singletons.map((x) => [x.name, x.state, x.fencingToken]), [['ticker', 'running', token1]])
  const standby = other.ready.components.jobs.singletons[0]!
  assert.equal(standby.state, 'standby')
  assert.match(standby.holder ?? '', new RegExp(`:${holderPid}:${token1}$`), 'shows who holds it')
  assert.equal(other.ready.components.jobs.ok, true, 'standby is ready')

  await killAll(holder.h)
  const killedAt = Date.now()
  const otherPid = other.st.jobsPid!
  await until('ticking on the other host', () => lines(tick).some((l) => Number(l.split(' ')[1]) === otherPid), 15_000)
  const took = Date.now() - killedAt
  assert.ok(took < 3000 + 1000 + 1500, `moved ${took} ms after the kill (lease 3 s, tried every 1 s)`)
  const last = lines(tick).at(-1)!.split(' ')
  assert.ok(Number(last[2]) > token1, `token ${last[2]} > ${token1}`)
})

test('redis-server killed -9 and restarted (AOF): tasks and the singleton carry on', async (t) => {
  const r = await startRedis(t, { aof: true })
  const dir = tempDir()
  const s = await startServer(t, { app, cwd: dir, env: { ...envFor(dir), FORKYARD_ENGINE: r.url, ...LEASES } })
  await until('ticking', () => lines(join(dir, 'ticks.txt')).length >= 2, 10_000)
  const task = await post(s.port, '/enqueue?ms=3000')
  await until('running', async () => (await record(s, task.body.id))?.state === 'running', 10_000)
  await r.kill()
  const jobs = await until('readyz shows the engine down', async () => {
    const j = (await readyz(s)).components.jobs
    return j.ok === false && j.engine?.ok === false ? j : undefined
  }, 10_000)
  assert.equal(jobs.engine?.ok, false)
  await sleep(500)
  await r.start()
  await until('task done', () => lines(join(dir, 'done.txt')).some((l) => l.startsWith(task.body.id)), 30_000)
  const after = lines(join(dir, 'ticks.txt')).length
  await until('ticking after the restart', () => lines(join(dir, 'ticks.txt')).length >= after + 3, 15_000)
  await until('ready again', async () => (await readyz(s)).components.jobs.ok, 10_000)
  const next = await post(s.port, '/enqueue?ms=0')
  assert.equal(next.status, 202)
  await until('new task done', () => lines(join(dir, 'done.txt')).some((l) => l.startsWith(next.body.id)), 15_000)
})

test('a Redis engine down at start: the jobs process waits for it (no crash loop) and readyz says why; then it works', async (t) => {
  const r = await startRedis(t)
  await r.kill()
  const dir = tempDir()
  const s = await startServer(t, { app, cwd: dir, env: { ...envFor(dir), FORKYARD_ENGINE: r.url, ...LEASES } })
  const jobs = await until('readyz says the engine is down', async () => {
    const j = (await readyz(s)).components.jobs
    return j.engine?.ok === false ? j : undefined
  }, 10_000)
  assert.equal(jobs.ok, false)
  assert.match(jobs.error ?? '', /Redis engine .* not reachable/)
  const pid = (await s.status()).jobsPid
  await sleep(3000)
  assert.equal((await s.status()).jobsPid, pid, 'the same jobs process: no crash loop')
  await r.start()
  await until('ready once Redis is up', async () => (await readyz(s)).components.jobs.ok, 15_000)
  await until('ticking', () => lines(join(dir, 'ticks.txt')).length >= 2, 10_000)
  const task = await post(s.port, '/enqueue?ms=0')
  assert.equal(task.status, 202)
  await until('task done', () => lines(join(dir, 'done.txt')).some((l) => l.startsWith(task.body.id)), 15_000)
})

test('redis: a graceful stop lets a running task finish (FORKYARD_GRACEFUL_TIMEOUT); it is not run again', async (t) => {
  const engine = await redisEnv(t)
  const dir = tempDir()
  const s = await startServer(t, { app, cwd: dir, env: { ...envFor(dir), ...engine, FORKYARD_GRACEFUL_TIMEOUT: '10s' } })
  const task = await post(s.port, '/enqueue?ms=2000')
  await until('running', async () => (await record(s, task.body.id))?.state === 'running', 10_000)
  s.child.kill('SIGTERM')
  await s.exited
  assert.equal(lines(join(dir, 'done.txt')).filter((l) => l.startsWith(task.body.id)).length, 1, 'finished before the exit')
  // Another host started now finds it done: nothing to run again.
  const dir2 = tempDir()
  const b = await startServer(t, { app, cwd: dir2, env: { ...envFor(dir2), ...engine } })
  const rec = await until('done', async () => {
    const x = await record(b, task.body.id)
    return x?.state === 'done' ? x : undefined
  }, 5000)
  assert.equal(rec.attempts, 1)
  await sleep(1000)
  assert.equal(lines(join(dir2, 'done.txt')).length, 0)
})
