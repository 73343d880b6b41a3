import assert from 'node:assert/strict'
import { test } from 'node:test'
import { History } from '../../server/bridge/history.js'

const limits = { count: 3, ageMs: 60_000 }

test('offsets count per channel from 1, with the epoch in every envelope', () => {
  const h = new History('e1', limits)
  assert.equal(h.accept('p', 1, 'a', '{"x":1}', 1000).offset, 1)
  assert.equal(h.accept('p', 2, 'a', '{"x":2}', 1000).offset, 2)
  assert.equal(h.accept('p', 3, 'b', '"hi"', 1000).offset, 1)
  const r = h.range('a', 0, 'e1', 1000)
  assert.deepEqual(r.messages.map((m) => JSON.parse(m) as unknown), [
    { channel: 'a', offset: 1, epoch: 'e1', ts: 1000, data: { x: 1 } },
    { channel: 'a', offset: 2, epoch: 'e1', ts: 1000, data: { x: 2 } },
  ])
  assert.equal(r.complete, true)
  assert.equal(r.last, 2)
})

test('the same (publisher, seq) twice is a duplicate with the first offset; another publisher is not', () => {
  const h = new History('e1', limits)
  const first = h.accept('p1', 7, 'a', '1', 0)
  const again = h.accept('p1', 7, 'a', '1', 0)
  assert.deepEqual([again.offset, again.duplicate, again.stored], [first.offset, true, null])
  assert.equal(h.accept('p2', 7, 'a', '1', 0).offset, 2)
  // A lower sequence that was never seen (sent before a bridge restart, resent after) is accepted.
  assert.equal(h.accept('p1', 5, 'a', '1', 0).duplicate, false)
})

test('history keeps at most `count` per channel: an older resume point is not complete', () => {
  const h = new History('e1', limits)
  for (let i = 1; i <= 5; i++) h.accept('p', i, 'a', String(i), 0)
  const tail = h.range('a', 2, 'e1', 0)
  assert.equal(tail.complete, true)
  assert.deepEqual(tail.messages.map((m) => (JSON.parse(m) as { offset: number }).offset), [3, 4, 5])
  const old = h.range('a', 1, 'e1', 0)
  assert.equal(old.complete, false)
  assert.equal(old.last, 5)
})

test('messages older than the age limit are dropped', () => {
  const h = new History('e1', { count: 100, ageMs: 1000 })
  h.accept('p', 1, 'a', '1', 0)
  h.accept('p', 2, 'a', '2', 900)
  const r = h.range('a', 0, 'e1', 1500)
  assert.deepEqual(r.messages.map((m) => (JSON.parse(m) as { offset: number }).offset), [2])
  assert.equal(r.complete, false)
})

test('another epoch is never complete; the current offset is an empty, complete range', () => {
  const h = new History('e2', limits)
  h.accept('p', 1, 'a', '1', 0)
  assert.equal(h.range('a', 0, 'e1', 0).complete, false)
  assert.equal(h.range('a', 0, 'e1', 0).epoch, 'e2')
  assert.deepEqual(h.range('a', 1, 'e2', 0), { epoch: 'e2', last: 1, messages: [], complete: true })
  assert.equal(h.range('unknown', 5, 'e1', 0).complete, false)
  assert.equal(h.range('unknown', 0, null, 0).complete, true)
})

test('system channels keep only their latest message', () => {
  const h = new History('e', { count: 100, ageMs: 60_000 })
  for (let i = 1; i <= 10; i++) h.accept('p', i, '$sys:heartbeat', String(i), 0)
  assert.equal(h.range('$sys:heartbeat', 0, 'e', 0).messages.length, 1)
  assert.equal(h.keptCount(), 1)
})

test('restoreLast keeps a channel offset with no message kept', () => {
  const h = new History('e', limits)
  h.restoreLast('a', 41)
  assert.equal(h.accept('p', 1, 'a', '1', 0).offset, 42)
})

test('History.accept puts the request id in the stored message and its envelope', () => {
  const h = new History('ep', { count: 10, ageMs: 60_000 })
  const withReq = h.accept('p', 1, 'c', '[1]', 5, 'req-1').stored
  assert.ok(withReq !== null)
  assert.equal(withReq.reqId, 'req-1')
  assert.equal((JSON.parse(withReq.envelope) as { reqId?: string }).reqId, 'req-1')
  const without = h.accept('p', 2, 'c', '[2]', 6).stored
  assert.ok(without !== null)
  assert.equal(without.reqId, '')
  assert.ok(!without.envelope.includes('reqId'), without.envelope)
  assert.deepEqual(h.range('c', 0, 'ep', 6).messages, [withReq.envelope, without.envelope])
})
