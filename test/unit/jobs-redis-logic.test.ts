/** The pure parts of the Redis engine's tasks and singletons: state mapping, retention, cursors, lease timing. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { holderValue, leaseMargin, leaseRunOut, parseHolder } from '../../server/jobs/leases.js'
import { bullPrefix, cursorOf, keepJobs, keyedJobId, recordOfJob, stateOfJob } from '../../server/jobs/redis-tasks.js'

test('BullMQ states map to queued, running, done, failed', () => {
  for (const s of ['waiting', 'wait', 'delayed', 'prioritized', 'paused', 'waiting-children']) assert.equal(stateOfJob(s), 'queued', s)
  assert.equal(stateOfJob('active'), 'running')
  assert.equal(stateOfJob('completed'), 'done')
  assert.equal(stateOfJob('failed'), 'failed')
  assert.equal(stateOfJob('unknown'), null)
})

test('a job becomes a task record: attempts started, result, error, progress, reqId, backoff time', () => {
  const job = { id: 'k-ab', name: 'write', data: { payload: { ms: 1 }, reqId: 'r1', nonce: 'n' }, timestamp: Date.UTC(2026, 0, 1), delay: 0, attemptsStarted: 2, attemptsMade: 1, progress: 0, returnvalue: { wrote: true }, failedReason: 'boom', finishedOn: Date.UTC(2026, 0, 1, 0, 0, 5) }
  const done = recordOfJob(job, 'done')
  assert.equal(done.attempts, 2)
  assert.deepEqual(done.result, { wrote: true })
  assert.equal(done.error, undefined, 'a done task shows no earlier error')
  assert.equal(done.progress, undefined, 'no progress reported')
  assert.equal(done.reqId, 'r1')
  assert.equal(done.updatedAt, '2026-01-01T00:00:05.000Z')
  const retrying = recordOfJob({ ...job, delay: 400, progress: { step: 2 }, finishedOn: undefined }, 'queued')
  assert.equal(retrying.error, 'boom')
  assert.equal(retrying.notBefore, job.timestamp + 400)
  assert.deepEqual(retrying.progress, { step: 2 })
  assert.equal(recordOfJob({ ...job, data: {} }, 'running').payload, null)
})

test('retention as removeOn* options; keys as job ids; prefix; cursors order by creation', () => {
  assert.equal(keepJobs({ maxAgeMs: 0, maxCount: 0 }), false)
  assert.deepEqual(keepJobs({ maxAgeMs: 0, maxCount: 5 }), { count: 5 })
  assert.deepEqual(keepJobs({ maxAgeMs: 1500, maxCount: 0 }), { age: 2 })
  assert.deepEqual(keepJobs({ maxAgeMs: 168 * 3_600_000, maxCount: 10 }), { age: 168 * 3600, count: 10 })
  assert.match(keyedJobId('write', 'order-42'), /^k-[0-9a-f]{64}$/)
  assert.equal(keyedJobId('write', 'a'), keyedJobId('write', 'a'))
  assert.notEqual(keyedJobId('write', 'a'), keyedJobId('other', 'a'))
  assert.ok(!keyedJobId('write', 'a').includes(':'), 'BullMQ refuses : in ids')
  assert.equal(bullPrefix({ kind: 'redis', url: '', shown: '', sentinel: null, prefix: 'forkyard:' }), 'forkyard')
  const older = cursorOf({ createdAt: '2026-01-01T00:00:00.000Z', id: 'b' })
  const newer = cursorOf({ createdAt: '2026-01-01T00:00:01.000Z', id: 'a' })
  assert.ok(older < newer)
})

test('a holder gives up its lease before it runs out, on its own clock', () => {
  assert.equal(leaseMargin(10_000), 2000)
  assert.equal(leaseRunOut(0, 7999, 10_000), false)
  assert.equal(leaseRunOut(0, 8000, 10_000), true)
  // Renewed every third of the lease: two renews may fail before it gives up.
  assert.equal(leaseRunOut(0, 2 * 3333, 10_000), false)
})

test('lease values name host, pid and token', () => {
  assert.deepEqual(parseHolder(holderValue(7, 'web-1', 42)), { host: 'web-1', pid: 42, token: 7 })
  assert.equal(parseHolder('garbage'), null)
})
