import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RESTART_CAUSES, describeExit } from '../../server/arbiter/exits.js'
import { RestartLedger, restartCause, type ExitedWorker } from '../../server/arbiter/restarts.js'

const worker = (over: Partial<ExitedWorker> = {}): ExitedWorker => ({ slot: 1, expectedExit: false, killed: null, drainReason: null, recycleReason: null, ...over })

test('restartCause: crash, timeout, memory, max-requests, reload; none for a stop or fewer workers', () => {
  assert.equal(restartCause(worker(), false), 'crash')
  assert.equal(restartCause(worker({ killed: 'timeout' }), false), 'timeout')
  assert.equal(restartCause(worker({ killed: 'boot-timeout' }), false), 'timeout')
  assert.equal(restartCause(worker({ expectedExit: true, drainReason: 'recycle', recycleReason: 'max-rss' }), false), 'memory')
  assert.equal(restartCause(worker({ expectedExit: true, drainReason: 'recycle', recycleReason: 'max-requests' }), false), 'max-requests')
  assert.equal(restartCause(worker({ expectedExit: true, drainReason: 'reload', killed: 'drain-timeout' }), false), 'reload')
  assert.equal(restartCause(worker({ expectedExit: true, drainReason: 'fewer workers' }), false), null)
  assert.equal(restartCause(worker(), true), null, 'nothing counts while the arbiter stops')
})

test('RestartLedger: totals by cause (every cause present), per slot count and last exit', () => {
  const l = new RestartLedger()
  assert.deepEqual(Object.keys(l.totals()), [...RESTART_CAUSES])
  assert.equal(l.exited(worker({ slot: 2 }), null, 'SIGKILL', false, 1000), 'crash')
  l.exited(worker({ slot: 2, expectedExit: true, drainReason: 'reload' }), 0, null, false, 2000)
  l.exited(worker({ slot: 1, expectedExit: true, drainReason: 'fewer workers' }), 0, null, false, 3000)
  assert.deepEqual(l.totals(), { crash: 1, timeout: 0, memory: 0, 'max-requests': 0, reload: 1 })
  assert.deepEqual(l.slot(2), { restarts: 2, lastExit: { cause: 'reload', code: 0, signal: null, at: 2000 } })
  assert.deepEqual(l.slot(1), { restarts: 0, lastExit: null })
  assert.equal(describeExit({ cause: 'crash', code: null, signal: 'SIGKILL' }), 'crash: SIGKILL')
})

test('RestartLedger.freeSlot: the lowest slot no serving worker holds', () => {
  assert.equal(RestartLedger.freeSlot([]), 1)
  assert.equal(RestartLedger.freeSlot([2, 1, 4]), 3)
})
