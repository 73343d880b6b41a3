import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { PushMessage } from '../../client/push-client.js'
import { CHANNEL, REQUEST_ID, bridgeEndpoints, envelopeOf, isReserved, type Envelope } from '../../server/bridge/wire.js'
import { messageFrame, parseClientMessage } from '../../server/push/protocol.js'

test('the envelope has the request id when one is given', () => {
  const env = envelopeOf('orders', 3, 'ep', 1000, '{"x":1}', 'req-42')
  assert.deepEqual(JSON.parse(env), { channel: 'orders', offset: 3, epoch: 'ep', ts: 1000, reqId: 'req-42', data: { x: 1 } } satisfies Envelope)
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

type Simplify<T> = { [K in keyof T]: T[K] }
/** true when A and B are the same type, optional fields and all (not merely assignable). */
type Equal<A, B> = (<T>() => T extends Simplify<A> ? 1 : 2) extends <T>() => T extends Simplify<B> ? 1 : 2 ? true : false

// Type-level: `tsc -p tsconfig.test.json` fails here when the client's PushMessage
// (client/push-client.d.ts) and the server's Envelope with type "message" diverge.
const clientTypeMatchesServer: Equal<PushMessage, { type: 'message' } & Envelope> = true

test('a message frame is the envelope with type "message" in front, as the client types it', () => {
  assert.equal(clientTypeMatchesServer, true)
  const frame = messageFrame(envelopeOf('orders', 3, 'ep', 1000, '{"x":1}', 'req-42')).toString()
  const expected: PushMessage = { type: 'message', channel: 'orders', offset: 3, epoch: 'ep', ts: 1000, reqId: 'req-42', data: { x: 1 } }
  assert.deepEqual(JSON.parse(frame), expected)
  assert.ok(frame.startsWith('{"type":"message","channel":'), frame)
  assert.deepEqual(JSON.parse(messageFrame(envelopeOf('c', 1, 'ep', 0, 'null')).toString()), { type: 'message', channel: 'c', offset: 1, epoch: 'ep', ts: 0, data: null })
})

test('channel names: one rule for the bridge, publishers and browsers', () => {
  const long = 'a'.repeat(200)
  // [name, valid, reserved]
  const cases: [string, boolean, boolean][] = [
    ['news', true, false],
    ['private:u42', true, false],
    ['task:0b8f-11/progress', true, false],
    ['A.b_c-d:e/f', true, false],
    [long, true, false],
    ['$sys:heartbeat', true, true],
    ['$' + long, true, true],
    ['', false, false],
    ['has space', false, false],
    ['a'.repeat(201), false, false],
    ['$', false, true],
    ['$$x', false, true],
    ['news$', false, false],
    ['$sys heartbeat', false, true],
    ['caf\u00e9', false, false],
    ['news\n', false, false],
    ['a?b', false, false],
  ]
  for (const [name, valid, reserved] of cases) {
    assert.equal(CHANNEL.test(name), valid, `valid ${JSON.stringify(name)}`)
    assert.equal(isReserved(name), reserved, `reserved ${JSON.stringify(name)}`)
  }
})

test('browsers: a reserved name parses (the push server then refuses it as forbidden), a malformed one does not', () => {
  const parse = (channel: string): boolean => parseClientMessage(JSON.stringify({ type: 'subscribe', channel })).ok
  assert.equal(parse('news'), true)
  assert.equal(parse('$sys:heartbeat'), true, 'answered with 4403 FORBIDDEN by the push server')
  // Before the rules were one, any "$..." parsed and was answered FORBIDDEN; a name no part of the
  // kit accepts is a bad message (4400), like "has space".
  assert.equal(parse('$sys heartbeat'), false)
  assert.equal(parse('$'), false)
  assert.equal(parse('$' + 'a'.repeat(201)), false)
  assert.equal(parse('has space'), false)
})

test('request ids: what nginx and the worker make passes; anything else is not carried', () => {
  const cases: [string, boolean][] = [
    ['5f0c2a9e8b7d4c3a2b1f0e9d8c7b6a59', true], // nginx $request_id
    ['0b8f1e9c-6f6e-4a47-9a57-3f1d2e8c9b10', true], // randomUUID()
    ['svc.name:1_2-3', true],
    ['r'.repeat(128), true],
    ['', false],
    ['r'.repeat(129), false],
    ['has space', false],
    ['a"b', false],
    ['a/b', false],
    ['line\nbreak', false],
  ]
  for (const [id, ok] of cases) assert.equal(REQUEST_ID.test(id), ok, JSON.stringify(id))
})

test('bridge endpoints are ipc sockets in the bridge directory', () => {
  assert.deepEqual(bridgeEndpoints('/run/fy/bridge'), { in: 'ipc:///run/fy/bridge/in.sock', out: 'ipc:///run/fy/bridge/out.sock' })
})
