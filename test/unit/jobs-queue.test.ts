import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import fs from 'node:fs'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { syncBuiltinESMExports } from 'node:module'
import { mock, test, type TestContext } from 'node:test'
import { ForkyardError, codes } from '../../server/errors.js'
import { KEY_STALE_MS, LIST_MAX, TaskQueue, newTaskId, timeOfId, type TaskRecord, type TaskState } from '../../server/jobs/queue.js'

function queue(t: TestContext): TaskQueue {
  const dir = mkdtempSync(join(tmpdir(), 'fy-queue-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return new TaskQueue(dir)
}

function fileOf(q: TaskQueue, state: TaskState, id: string): string {
  return join(q.dir, state, `${id}.json`)
}

function states(q: TaskQueue, id: string): TaskState[] {
  return (['queued', 'running', 'done', 'failed'] as const).filter((s) => existsSync(fileOf(q, s, id)))
}

/** Gives a task another creation time (rewrites it in place), for ordering tests. */
function created(q: TaskQueue, id: string, iso: string): TaskRecord {
  const r = q.get(id)
  assert.ok(r !== null)
  return q.move(r, r.state, { createdAt: iso })
}

test('the constructor makes every state directory', (t) => {
  const q = queue(t)
  assert.deepEqual(readdirSync(q.dir).sort(), ['done', 'failed', 'keys', 'queued', 'running', 'tmp'])
})

test('enqueue writes queued/<id>.json before it returns', (t) => {
  const q = queue(t)
  const { id, duplicate } = q.enqueue('mail', { to: 'a@example.com' }, { reqId: 'req-1' })
  assert.equal(duplicate, false)
  assert.match(id, /^[0-9a-f]{32}$/)
  const onDisk = JSON.parse(readFileSync(fileOf(q, 'queued', id), 'utf8')) as TaskRecord
  assert.equal(onDisk.id, id)
  assert.equal(onDisk.name, 'mail')
  assert.deepEqual(onDisk.payload, { to: 'a@example.com' })
  assert.equal(onDisk.state, 'queued')
  assert.equal(onDisk.attempts, 0)
  assert.equal(onDisk.reqId, 'req-1')
  assert.equal(onDisk.notBefore, 0)
  assert.ok(!Number.isNaN(Date.parse(onDisk.createdAt)))
  assert.deepEqual(readdirSync(join(q.dir, 'tmp')), [], 'no temp file left behind')
  assert.equal(q.enqueue('mail', null).id === id, false, 'without a key every task is new')
  assert.equal(q.get(q.enqueue('x', 1).id)?.reqId, null)
})

test('the same idempotency key gives the same task once, even after it is done', (t) => {
  const q = queue(t)
  const first = q.enqueue('charge', { cents: 100, currency: 'EUR' }, { idempotencyKey: 'order-42' })
  const again = q.enqueue('charge', { currency: 'EUR', cents: 100 }, { idempotencyKey: 'order-42' })
  assert.deepEqual(again, { id: first.id, duplicate: true }, 'the same payload (key order aside) is a duplicate')
  assert.deepEqual(q.get(first.id)?.payload, { cents: 100, currency: 'EUR' })
  assert.equal(q.counts().queued, 1)
  // Another task name with the same key is another task.
  const other = q.enqueue('refund', {}, { idempotencyKey: 'order-42' })
  assert.equal(other.duplicate, false)
  assert.notEqual(other.id, first.id)
  // Through running to done: still a duplicate, no new queued file.
  const running = q.claim(q.get(first.id)!)
  assert.ok(running !== null)
  q.move(running, 'done', { result: 'ok' })
  assert.deepEqual(q.enqueue('charge', { cents: 100, currency: 'EUR' }, { idempotencyKey: 'order-42' }), { id: first.id, duplicate: true })
  assert.deepEqual(states(q, first.id), ['done'])
})

test('a key reused with another payload is refused, not merged', async (t) => {
  const q = queue(t)
  const first = q.enqueue('charge', { cents: 100 }, { idempotencyKey: 'order-42' })
  for (const other of [{ cents: 999 }, { cents: 100, extra: true }, null, [100]]) {
    assert.throws(() => q.enqueue('charge', other, { idempotencyKey: 'order-42' }), (err: Error & { code?: string }) => {
      assert.ok(err instanceof ForkyardError)
      assert.equal(err.code, codes.TASK_KEY_CONFLICT)
      assert.match(err.message, /"order-42"/)
      assert.match(err.message, /payload differs/)
      assert.ok(err.message.includes(first.id))
      return true
    })
  }
  await assert.rejects(q.enqueueAsync('charge', { cents: 1 }, { idempotencyKey: 'order-42' }), { code: codes.TASK_KEY_CONFLICT })
  assert.deepEqual(await q.enqueueAsync('charge', { cents: 100 }, { idempotencyKey: 'order-42' }), { id: first.id, duplicate: true })
  assert.deepEqual(q.get(first.id)?.payload, { cents: 100 }, 'the first payload stays')
  // Payloads compare as stored (JSON): undefined members and no payload at all are duplicates.
  const bare = q.enqueue('ping', undefined, { idempotencyKey: 'p' })
  assert.deepEqual(q.enqueue('ping', undefined, { idempotencyKey: 'p' }), { id: bare.id, duplicate: true })
  const sparse = q.enqueue('ping', { a: 1, b: undefined }, { idempotencyKey: 's' })
  assert.deepEqual(q.enqueue('ping', { a: 1 }, { idempotencyKey: 's' }), { id: sparse.id, duplicate: true })
  assert.equal(q.counts().queued, 3)
})

test('a key left by an enqueue killed before its task does not swallow the task', (t) => {
  const q = queue(t)
  const keyOf = (name: string, key: string): string => join(q.dir, 'keys', createHash('sha256').update(`${name}\0${key}`).digest('hex').slice(0, 32))
  // Written by a process of this host that is gone (pid 2^22 + 1 is above any pid_max default).
  const orphan = newTaskId()
  writeFileSync(keyOf('charge', 'k1'), JSON.stringify({ id: orphan, pid: 4_194_305, host: hostname(), at: Date.now() }))
  const started = Date.now()
  assert.deepEqual(q.enqueue('charge', { cents: 1 }, { idempotencyKey: 'k1' }), { id: orphan, duplicate: false }, 'taken over at once, with the id the key names')
  assert.ok(Date.now() - started < 1000)
  assert.deepEqual(q.enqueue('charge', { cents: 1 }, { idempotencyKey: 'k1' }), { id: orphan, duplicate: true })
  // Written on another host (the pid says nothing here): taken over once older than KEY_STALE_MS.
  const far = newTaskId()
  writeFileSync(keyOf('charge', 'k2'), JSON.stringify({ id: far, pid: 1, host: 'elsewhere', at: Date.now() - KEY_STALE_MS - 1 }))
  assert.deepEqual(q.enqueue('charge', { cents: 2 }, { idempotencyKey: 'k2' }), { id: far, duplicate: false })
  // An empty key file of the previous version (its task id was the key's hash), from a killed enqueue.
  const legacy = keyOf('charge', 'k3')
  writeFileSync(legacy, '')
  utimesSync(legacy, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000))
  const r = q.enqueue('charge', { cents: 3 }, { idempotencyKey: 'k3' })
  assert.deepEqual(r, { id: legacy.slice(-32), duplicate: false })
  assert.deepEqual(q.get(r.id)?.payload, { cents: 3 })
  assert.deepEqual(readdirSync(q.dir + '/keys').filter((f) => f.endsWith('.takeover')), [], 'no takeover marker left')
  // A taker killed while holding its marker: the marker goes once it is stale.
  const stuck = newTaskId()
  const owner = { id: stuck, pid: 4_194_305, host: hostname(), at: Date.now() }
  writeFileSync(keyOf('charge', 'k4'), JSON.stringify(owner))
  const marker = `${keyOf('charge', 'k4')}.${owner.pid}.${owner.at}.takeover`
  writeFileSync(marker, '')
  utimesSync(marker, new Date(Date.now() - KEY_STALE_MS - 1000), new Date(Date.now() - KEY_STALE_MS - 1000))
  assert.deepEqual(q.enqueue('charge', { cents: 4 }, { idempotencyKey: 'k4' }), { id: stuck, duplicate: false })
  assert.ok(!existsSync(marker))
})

test('a failed enqueue does not burn its idempotency key', (t) => {
  const q = queue(t)
  // Make the task write fail: tmp/ is a file, not a directory.
  rmSync(join(q.dir, 'tmp'), { recursive: true })
  writeFileSync(join(q.dir, 'tmp'), '')
  assert.throws(() => q.enqueue('charge', { cents: 1 }, { idempotencyKey: 'k' }))
  rmSync(join(q.dir, 'tmp'))
  mkdirSync(join(q.dir, 'tmp'))
  const retry = q.enqueue('charge', { cents: 1 }, { idempotencyKey: 'k' })
  assert.ok(q.get(retry.id) !== null, `enqueue answered ${JSON.stringify(retry)} but there is no such task`)
})

test('get finds a task in any state; unknown and malformed ids are null', (t) => {
  const q = queue(t)
  const { id } = q.enqueue('a', 1)
  assert.equal(q.get(id)?.state, 'queued')
  const running = q.claim(q.get(id)!)!
  assert.equal(q.get(id)?.state, 'running')
  q.move(running, 'failed', { error: 'boom' })
  assert.equal(q.get(id)?.state, 'failed')
  assert.equal(q.get(id)?.error, 'boom')
  const { id: id2 } = q.enqueue('b', 2)
  q.move(q.claim(q.get(id2)!)!, 'done', { result: 3 })
  assert.deepEqual(q.get(id2)?.result, 3)
  assert.equal(q.get('0'.repeat(32)), null)
  for (const bad of ['', 'xyz', id.toUpperCase(), `${id}0`, `../${id.slice(3)}`, `${id.slice(0, 31)}/`]) assert.equal(q.get(bad), null, bad)
})

test('ready skips tasks whose notBefore is in the future and returns the oldest first', (t) => {
  const q = queue(t)
  const a = q.enqueue('a', 1).id
  const b = q.enqueue('b', 2).id
  const c = q.enqueue('c', 3).id
  created(q, a, '2030-01-01T00:00:03.000Z')
  created(q, b, '2030-01-01T00:00:01.000Z')
  created(q, c, '2030-01-01T00:00:02.000Z')
  assert.deepEqual(q.ready(1000, 10).map((r) => r.id), [b, c, a])
  assert.deepEqual(q.ready(1000, 2).map((r) => r.id), [b, c])
  const later = q.move(q.get(b)!, 'queued', { notBefore: 5000 })
  assert.equal(later.notBefore, 5000)
  assert.deepEqual(q.ready(4999, 10).map((r) => r.id), [c, a])
  assert.deepEqual(q.ready(5000, 10).map((r) => r.id), [b, c, a])
  // Only queued tasks are ready.
  q.claim(q.get(c)!)
  assert.deepEqual(q.ready(5000, 10).map((r) => r.id), [b, a])
})

test('claim moves to running and counts the attempt; a second claim of the same record is null', (t) => {
  const q = queue(t)
  const { id } = q.enqueue('a', 1)
  const [r] = q.ready(Date.now(), 1)
  assert.ok(r !== undefined)
  const running = q.claim(r)
  assert.ok(running !== null)
  assert.equal(running.state, 'running')
  assert.equal(running.attempts, 1)
  assert.deepEqual(states(q, id), ['running'])
  assert.equal((JSON.parse(readFileSync(fileOf(q, 'running', id), 'utf8')) as TaskRecord).attempts, 1, 'the running record is on disk')
  assert.equal(q.claim(r), null)
  assert.deepEqual(states(q, id), ['running'])
  // Retried: back to queued, claimed again, second attempt.
  const back = q.move(running, 'queued', { notBefore: 0, error: 'try again' })
  assert.deepEqual(states(q, id), ['queued'])
  assert.equal(q.claim(back)?.attempts, 2)
})

test('move to done or failed writes the new record and removes the old file', (t) => {
  const q = queue(t)
  const a = q.claim(q.get(q.enqueue('a', 1).id)!)!
  const done = q.move(a, 'done', { result: { ok: true }, progress: 100 })
  assert.equal(done.state, 'done')
  assert.deepEqual(states(q, a.id), ['done'])
  assert.deepEqual((JSON.parse(readFileSync(fileOf(q, 'done', a.id), 'utf8')) as TaskRecord).result, { ok: true })
  const b = q.claim(q.get(q.enqueue('b', 1).id)!)!
  q.move(b, 'failed', { error: 'no' })
  assert.deepEqual(states(q, b.id), ['failed'])
  assert.deepEqual(readdirSync(join(q.dir, 'tmp')), [])
})

test('recoverInterrupted puts running tasks back in queued with an error note', (t) => {
  const q = queue(t)
  const a = q.claim(q.get(q.enqueue('a', 1).id)!)!
  const b = q.claim(q.get(q.enqueue('b', 2).id)!)!
  const c = q.enqueue('c', 3).id
  writeFileSync(join(q.dir, 'running', 'notes.txt'), 'not a task')
  const recovered = q.recoverInterrupted()
  assert.deepEqual(recovered.map((r) => r.id).sort(), [a.id, b.id].sort())
  for (const r of recovered) {
    assert.equal(r.state, 'queued')
    assert.equal(r.attempts, 1, 'the interrupted attempt still counts')
    assert.match(r.error ?? '', /interrupted/)
    assert.deepEqual(states(q, r.id), ['queued'])
  }
  assert.deepEqual(states(q, c), ['queued'])
  assert.equal(q.counts().running, 0)
  assert.deepEqual(q.recoverInterrupted(), [])
})

test('recoverInterrupted leaves an unreadable file where it is', (t) => {
  const q = queue(t)
  writeFileSync(join(q.dir, 'running', `${'a'.repeat(32)}.json`), '{"id":')
  assert.deepEqual(q.recoverInterrupted(), [])
  assert.ok(existsSync(join(q.dir, 'running', `${'a'.repeat(32)}.json`)))
})

test('list is newest first, filtered by name, limited, without duplicates', (t) => {
  const q = queue(t)
  const ids: string[] = []
  for (let i = 0; i < 5; i++) {
    const { id } = q.enqueue(i % 2 === 0 ? 'even' : 'odd', i)
    created(q, id, `2030-01-01T00:00:0${i}.000Z`)
    ids.push(id)
  }
  q.move(q.claim(q.get(ids[1]!)!)!, 'done', {})
  q.move(q.claim(q.get(ids[2]!)!)!, 'failed', { error: 'x' })
  q.claim(q.get(ids[3]!)!)
  assert.deepEqual(q.list(10).map((r) => r.id), [...ids].reverse())
  assert.deepEqual(q.list(2).map((r) => r.id), [ids[4], ids[3]])
  assert.deepEqual(q.list(10, 'even').map((r) => r.id), [ids[4], ids[2], ids[0]])
  assert.deepEqual(q.list(10, 'odd').map((r) => r.payload), [3, 1])
  assert.deepEqual(q.list(10, 'none'), [])
  // A task caught between two states (new file written, old not yet removed) is listed once.
  copyFileSync(fileOf(q, 'done', ids[1]!), fileOf(q, 'running', ids[1]!))
  const listed = q.list(10).map((r) => r.id)
  assert.equal(listed.length, 5)
  assert.deepEqual(listed, [...ids].reverse())
})

test('counts per state', (t) => {
  const q = queue(t)
  assert.deepEqual(q.counts(), { queued: 0, running: 0, done: 0, failed: 0 })
  const ids = [1, 2, 3, 4, 5].map((i) => q.enqueue('t', i).id)
  q.claim(q.get(ids[0]!)!)
  q.move(q.claim(q.get(ids[1]!)!)!, 'done', {})
  q.move(q.claim(q.get(ids[2]!)!)!, 'failed', {})
  writeFileSync(join(q.dir, 'queued', 'README'), 'not counted')
  assert.deepEqual(q.counts(), { queued: 2, running: 1, done: 1, failed: 1 })
})

/** Writes a finished task file directly (fast: no fsync), created `ageMs` ago and finished then. */
function finished(q: TaskQueue, name: string, state: 'done' | 'failed', createdMs: number, extra: Partial<TaskRecord> = {}): string {
  const id = newTaskId(createdMs)
  const iso = new Date(createdMs).toISOString()
  const file = fileOf(q, state, id)
  writeFileSync(file, JSON.stringify({ id, name, payload: null, state, attempts: 1, reqId: null, createdAt: iso, updatedAt: iso, notBefore: 0, ...extra }))
  utimesSync(file, new Date(createdMs), new Date(createdMs))
  return id
}

/** Counts the task files read while fn runs (readFileSync of <dir>/<state>/*.json). */
function filesRead<T>(q: TaskQueue, fn: () => T): { value: T; reads: number } {
  let reads = 0
  const real = fs.readFileSync
  const spy = mock.method(fs, 'readFileSync', (...args: Parameters<typeof fs.readFileSync>) => {
    if (String(args[0]).startsWith(q.dir) && String(args[0]).endsWith('.json')) reads++
    return real(...args)
  })
  syncBuiltinESMExports()
  try {
    return { value: fn(), reads }
  } finally {
    spy.mock.restore()
    syncBuiltinESMExports()
  }
}

test('task ids are time-ordered, 32 hex digits, increasing within a process', () => {
  const ids = Array.from({ length: 5000 }, () => newTaskId())
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/)
  assert.deepEqual([...ids].sort(), ids)
  assert.equal(new Set(ids).size, ids.length)
  assert.ok(Math.abs((timeOfId(ids[0]!) ?? 0) - Date.now()) < 5000)
  assert.equal(timeOfId('0'.repeat(32)), null)
  assert.equal(timeOfId(randomUUID().replaceAll('-', '')), null, 'a v4 id of an earlier version')
})

test('list reads only as many task files as it returns, whatever the number of tasks', (t) => {
  const q = queue(t)
  const now = Date.now()
  const ids: string[] = []
  for (let i = 0; i < 300; i++) ids.push(finished(q, i % 2 === 0 ? 'a' : 'b', i % 3 === 0 ? 'failed' : 'done', now - (300 - i) * 1000))
  const newest = q.enqueue('a', 'new').id
  const first = filesRead(q, () => q.list(5))
  assert.deepEqual(first.value.map((r) => r.id), [newest, ...ids.slice(-4).reverse()])
  assert.equal(first.reads, 5, `${first.reads} task files read for 5 tasks`)
  const named = filesRead(q, () => q.list(5, 'b'))
  assert.deepEqual(named.value.map((r) => r.id), ids.filter((_, i) => i % 2 === 1).slice(-5).reverse())
  assert.ok(named.reads <= 11, `${named.reads} read`)
  // The example app's call still works.
  assert.equal(q.list(50, 'a').length, 50)
})

test('page: states, cursor, no task twice or missed, and a hard cap on files read per call', (t) => {
  const q = queue(t)
  const now = Date.now()
  const ids: string[] = []
  for (let i = 0; i < LIST_MAX + 100; i++) ids.push(finished(q, i === 3 ? 'rare' : 'common', i % 2 === 0 ? 'done' : 'failed', now - 10_000_000 + i * 1000))
  const all: string[] = []
  let before: string | undefined
  for (let pages = 0; pages < 100; pages++) {
    const p = q.page({ limit: 70, ...(before !== undefined ? { before } : {}) })
    all.push(...p.tasks.map((r) => r.id))
    if (p.next === null) break
    before = p.next
  }
  assert.deepEqual(all, [...ids].reverse(), 'pages cover every task once, newest first')
  assert.deepEqual(q.page({ state: 'failed', limit: 3 }).tasks.map((r) => r.id), [ids.at(-1), ids.at(-3), ids.at(-5)])
  assert.deepEqual(q.list(3, undefined, { state: ['done'] }).map((r) => r.state), ['done', 'done', 'done'])
  assert.deepEqual(q.list(2, undefined, { before: ids[10]! }).map((r) => r.id), [ids[9], ids[8]], 'a task id is a cursor too')
  // A rare name: one call reads at most LIST_MAX files and says where to go on.
  const rare = filesRead(q, () => q.page({ name: 'rare', limit: 10 }))
  assert.equal(rare.reads, LIST_MAX)
  assert.deepEqual(rare.value.tasks, [])
  assert.ok(rare.value.next !== null)
  const rest = q.page({ name: 'rare', limit: 10, before: rare.value.next })
  assert.deepEqual(rest.tasks.map((r) => r.id), [ids[3]])
  assert.equal(rest.next, null)
  assert.equal(q.page({ limit: 1_000_000 }).tasks.length, LIST_MAX, 'the limit is capped too')
})

test('list orders tasks of an earlier version (random ids) by file time, before every new one', (t) => {
  const q = queue(t)
  const old = randomUUID().replaceAll('-', '')
  const iso = new Date(Date.now() - 60_000).toISOString()
  writeFileSync(fileOf(q, 'done', old), JSON.stringify({ id: old, name: 'a', payload: 1, state: 'done', attempts: 1, reqId: null, createdAt: iso, updatedAt: iso, notBefore: 0 }))
  utimesSync(fileOf(q, 'done', old), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000))
  const newer = q.enqueue('a', 2).id
  assert.deepEqual(q.list(10).map((r) => r.id), [newer, old])
  const p = q.page({ limit: 1 })
  assert.deepEqual(q.page({ limit: 1, before: p.next! }).tasks.map((r) => r.id), [old])
})

test('prune removes finished tasks past the age (since they finished) and beyond the count; never queued or running', (t) => {
  const q = queue(t)
  const now = Date.now()
  const hour = 3_600_000
  const oldDone = finished(q, 'a', 'done', now - 50 * hour)
  const oldFailed = finished(q, 'a', 'failed', now - 49 * hour)
  // Created long ago, finished recently (retried for days): kept by age.
  const lateFinish = finished(q, 'a', 'done', now - 48 * hour)
  utimesSync(fileOf(q, 'done', lateFinish), new Date(now - hour), new Date(now - hour))
  const recent = [1, 2, 3].map((i) => finished(q, 'a', 'done', now - i * hour))
  const queuedOld = q.enqueue('b', 1).id
  const runningOld = q.claim(q.get(q.enqueue('b', 2).id)!)!.id
  for (const [s, id] of [['queued', queuedOld], ['running', runningOld]] as const) utimesSync(fileOf(q, s, id), new Date(now - 100 * hour), new Date(now - 100 * hour))

  assert.equal(q.prune({ maxAgeMs: 24 * hour, maxCount: 0, now }), 2)
  for (const id of [oldDone, oldFailed]) assert.equal(q.get(id), null)
  for (const id of [lateFinish, ...recent, queuedOld, runningOld]) assert.ok(q.get(id) !== null)

  // By count: the 2 most recent finished tasks stay.
  assert.equal(q.prune({ maxAgeMs: 0, maxCount: 2, now }), 2)
  assert.deepEqual(q.list(10, undefined, { state: ['done', 'failed'] }).map((r) => r.id), [recent[0], recent[1]])
  assert.deepEqual(q.counts(), { queued: 1, running: 1, done: 2, failed: 0 })
  assert.equal(q.prune({ maxAgeMs: 0, maxCount: 0, now }), 0, '0 and 0 keep everything')
})

test('a pruned task takes its idempotency key with it: the key is remembered as long as the task is kept', (t) => {
  const q = queue(t)
  const keyed = q.enqueue('charge', { cents: 5 }, { idempotencyKey: 'order-7' })
  const other = q.enqueue('charge', { cents: 5 }, { idempotencyKey: 'order-8' })
  q.move(q.claim(q.get(keyed.id)!)!, 'done', {})
  assert.equal(q.enqueue('charge', { cents: 5 }, { idempotencyKey: 'order-7' }).duplicate, true)
  assert.equal(q.prune({ maxAgeMs: 3_600_000, maxCount: 0, now: Date.now() + 2 * 3_600_000 }), 1)
  assert.equal(q.get(keyed.id), null)
  assert.equal(readdirSync(join(q.dir, 'keys')).length, 1, 'only the key of the queued task is left')
  assert.deepEqual(q.enqueue('charge', { cents: 5 }, { idempotencyKey: 'order-8' }), { id: other.id, duplicate: true })
  const again = q.enqueue('charge', { cents: 6 }, { idempotencyKey: 'order-7' })
  assert.equal(again.duplicate, false, 'a pruned key is forgotten: new work, any payload')
  assert.notEqual(again.id, keyed.id)
})

test('prune reads only the files it removes', (t) => {
  const q = queue(t)
  const now = Date.now()
  for (let i = 0; i < 200; i++) finished(q, 'a', 'done', now - i * 60_000)
  const r = filesRead(q, () => q.prune({ maxAgeMs: 3_600_000, maxCount: 150, now }))
  // Older than an hour: 61..199 (139); beyond the 150 most recent: already among them.
  assert.equal(r.value, 139)
  assert.equal(r.reads, 139)
  assert.equal(q.counts().done, 61)
})

test('a key left behind by its removed task is taken over by the next enqueue of that key', (t) => {
  const q = queue(t)
  const first = q.enqueue('charge', 1, { idempotencyKey: 'k' })
  q.move(q.claim(q.get(first.id)!)!, 'done', {})
  // The task gone, its key left: the next enqueue takes the key over.
  rmSync(fileOf(q, 'done', first.id))
  const keyPath = join(q.dir, 'keys', readdirSync(join(q.dir, 'keys'))[0]!)
  writeFileSync(keyPath, JSON.stringify({ ...JSON.parse(readFileSync(keyPath, 'utf8')), at: Date.now() - KEY_STALE_MS - 1 }))
  assert.deepEqual(q.enqueue('charge', 1, { idempotencyKey: 'k' }), { id: first.id, duplicate: false })
})

test('counts lists directories without reading a task file, and sees every change', (t) => {
  const q = queue(t)
  for (let i = 0; i < 50; i++) finished(q, 'a', 'done', Date.now() - i)
  const r = filesRead(q, () => q.counts())
  assert.equal(r.reads, 0)
  assert.equal(r.value.done, 50)
  q.move(q.claim(q.get(q.enqueue('a', 1).id)!)!, 'done', {})
  assert.equal(q.counts().done, 51)
  q.prune({ maxAgeMs: 0, maxCount: 10 })
  assert.equal(q.counts().done, 10)
})

test('ready() reads the queued files again only when queued/ changed (or a second passed), not on every poll', (t) => {
  const q = queue(t)
  for (let i = 0; i < 50; i++) q.enqueue('job', { i })
  const now = Date.now()
  const first = filesRead(q, () => q.ready(now, 10))
  assert.equal(first.value.length, 10)
  assert.equal(first.reads, 50)
  const again = filesRead(q, () => q.ready(now + 100, 10))
  assert.equal(again.reads, 0, 'nothing changed: nothing read')
  assert.deepEqual(again.value.map((r) => r.id), first.value.map((r) => r.id))
  // A claim renames a file out of queued/: the next poll sees it gone.
  assert.notEqual(q.claim(first.value[0]!), null)
  const afterClaim = filesRead(q, () => q.ready(now + 200, 10))
  assert.equal(afterClaim.reads, 49)
  assert.ok(!afterClaim.value.some((r) => r.id === first.value[0]!.id))
  // At least once a second whatever the mtime says.
  assert.equal(filesRead(q, () => q.ready(now + 1300, 10)).reads, 49)
})
