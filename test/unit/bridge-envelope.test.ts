import assert from 'node:assert/strict'
import { test } from 'node:test'
import { envelopeOf, History } from '../../server/bridge/history.js'

test('the envelope has the request id when one is given', () => {
  const env = envelopeOf('orders', 3, 'ep', 1000, '{"x":1}', 'req-42')
  assert.deepEqual(JSON.parse(env), { channel: 'orders', offset: 3, epoch: 'ep', ts: 1000, reqId: 'req-42', data: { x: 1 } })
})

test('the envelope has no reqId field when the request id is empty or not given', () => {
  for (const env of [envelopeOf('orders', 3, 'ep', 1000, '{"x":1}', ''), envelopeOf('orders', 3, 'ep', 1000, '{"x":1}')]) {
    assert.deepEqual(JSON.parse(env), { channel: 'orders', offset: 3, epoch: 'ep', ts: 1000, data: { x: 1 } })
    assert.ok(!env.includes('reqId'), env)
  }
})

test('names and request ids that need escaping stay valid JSON', () => {
  const env = envelopeOf('a"b\\c\n', 1, 'e"p', 0, '"text"', 'r"1\u2028')
  assert.deepEqual(JSON.parse(env), { channel: 'a"b\\c\n', offset: 1, epoch: 'e"p', ts: 0, reqId: 'r"1\u2028', data: 'text' })
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
