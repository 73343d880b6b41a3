/**
 * The jobs cases of jobs-cases.ts on the embedded engine (files and pidfiles), and what is the
 * embedded engine's own: pruning by the jobs process; offload() of CPU work.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { TaskQueue } from '../../server/jobs/queue.js'
import { get } from '../helpers/load.js'
import { startServer, tempDir } from '../helpers/server.js'
import { app, envFor, jobsCases, post } from './jobs-cases.js'

jobsCases('embedded', () => Promise.resolve({}))

test('finished tasks are pruned by the jobs process (FORKYARD_TASKS_KEEP_COUNT), keys with them; the list is paged', async (t) => {
  const dir = tempDir()
  const q = new TaskQueue(join(dir, 'tasks'))
  const ids = Array.from({ length: 6 }, (_, i) => {
    const { id } = q.enqueue('write', { ms: i }, { idempotencyKey: `k${i}` })
    return q.move(q.claim(q.get(id)!)!, 'done', { result: i }).id
  })
  const s = await startServer(t, { app, cwd: dir, env: { ...envFor(dir), FORKYARD_TASKS_KEEP_COUNT: '2' } })
  const line = await s.waitLog((l) => l.msg === 'finished tasks pruned', 'prune line')
  assert.equal(line.role, 'jobs')
  assert.equal(line.removed, 4)
  const page1 = JSON.parse((await get(s.port, '/tasks?limit=1')).text) as { ids: string[]; next: string | null; list: number }
  assert.deepEqual(page1.ids, [ids[5]])
  assert.equal(page1.list, 2)
  const page2 = JSON.parse((await get(s.port, `/tasks?limit=1&before=${page1.next}`)).text) as { ids: string[]; next: string | null }
  assert.deepEqual(page2.ids, [ids[4]])
  // A pruned task's key is forgotten (new work); a kept one is still a duplicate.
  const forgotten = await post(s.port, '/enqueue?key=k0&ms=0')
  assert.equal(forgotten.body.duplicate, false)
  assert.notEqual(forgotten.body.id, ids[0])
  assert.deepEqual((await post(s.port, '/enqueue?key=k5&ms=5')).body, { id: ids[5], duplicate: true })
})

test('a 5 s CPU job offloaded with a 2 s FORKYARD_TIMEOUT completes and the worker survives; a 5 s block is killed', async (t) => {
  const dir = tempDir()
  const s = await startServer(t, { app, cwd: dir, env: { ...envFor(dir), FORKYARD_WORKERS: '1', FORKYARD_TIMEOUT: '2s', FORKYARD_JOBS: 'false' } })
  const pid = (await s.status()).workers[0]!.pid
  const r = await get(s.port, '/cpu?ms=5000')
  assert.equal(r.status, 200)
  assert.match(r.text, new RegExp(`^cpu done \\d+ ${pid}\\n$`))
  assert.equal(s.logs.filter((l) => l.msg?.startsWith('worker timed out') === true).length, 0)
  assert.equal((await s.status()).workers[0]!.pid, pid, 'same worker')
  const blocked = await get(s.port, '/block?ms=5000', { 'X-Request-ID': 'blocking-1' }).catch((err: Error) => err)
  assert.ok(blocked instanceof Error, 'the blocking request was cut')
  const line = await s.waitLog((l) => l.msg?.startsWith('worker timed out') === true, 'timeout line')
  assert.equal((line.requests as { reqId: string }[])[0]?.reqId, 'blocking-1')
})
