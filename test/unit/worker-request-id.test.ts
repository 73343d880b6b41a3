import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { test } from 'node:test'
import { blockListOf, isTrusted, trustedAddresses } from '../../server/config/trust.js'
import { parseTraceparent, requestIdOf, traceContext } from '../../server/worker/request-id.js'

const fakeReq = (remoteAddress: string | undefined, headers: Record<string, string>): IncomingMessage => ({ headers: { ...headers }, socket: { remoteAddress } }) as unknown as IncomingMessage

test('FORKYARD_TRUSTED_ADDRESSES: addresses and CIDR blocks of both families, none, and a clear error', () => {
  const list = blockListOf(trustedAddresses('X', '127.0.0.1, ::1,10.0.0.0/8'))
  assert.equal(isTrusted(list, '127.0.0.1'), true)
  assert.equal(isTrusted(list, '::ffff:10.1.2.3'), true, 'IPv4-mapped IPv6')
  assert.equal(isTrusted(list, '::1'), true)
  assert.equal(isTrusted(list, '192.168.1.1'), false)
  assert.equal(isTrusted(list, undefined), true, 'a Unix socket peer (nginx) is trusted')
  assert.deepEqual(trustedAddresses('X', 'none'), [])
  assert.throws(() => trustedAddresses('FORKYARD_TRUSTED_ADDRESSES', '127.0.0.1,lb.example'), /Expected FORKYARD_TRUSTED_ADDRESSES to be IP addresses or CIDR blocks .* got "lb.example"/)
  assert.throws(() => trustedAddresses('X', '10.0.0.0/33'), /got "10.0.0.0\/33"/)
})

test('traceparent: version 00, lowercase hex, all-zero ids refused', () => {
  assert.deepEqual(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentSpanId: '00f067aa0ba902b7', flags: '01' })
  for (const bad of ['', '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`]) {
    assert.equal(parseTraceparent(bad), null, bad)
  }
})

test('requestIdOf keeps a trusted peer\'s id and trace, replaces an untrusted one\'s and strips its trace headers', () => {
  const trust = blockListOf(trustedAddresses('X', '10.0.0.1'))
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'
  const lb = fakeReq('10.0.0.1', { 'x-request-id': 'lb-1', traceparent: tp, tracestate: 'a=1' })
  assert.equal(requestIdOf(lb, trust), 'lb-1')
  const c = traceContext(lb)!
  assert.equal(c.traceId, '4bf92f3577b34da6a3ce929d0e0e4736')
  assert.equal(c.parentSpanId, '00f067aa0ba902b7')
  assert.equal(c.flags, '00')
  assert.equal(c.tracestate, 'a=1')
  assert.match(c.traceparent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/)

  const client = fakeReq('203.0.113.9', { 'x-request-id': 'chosen-by-client', traceparent: tp, tracestate: 'a=1' })
  const id = requestIdOf(client, trust)
  assert.notEqual(id, 'chosen-by-client')
  assert.equal(client.headers['x-request-id'], id)
  assert.equal(client.headers.traceparent, undefined)
  assert.notEqual(traceContext(client)!.traceId, '4bf92f3577b34da6a3ce929d0e0e4736')
  assert.equal(traceContext(client)!.parentSpanId, null)

  const bad = fakeReq('10.0.0.1', { 'x-request-id': 'spaces are not allowed' })
  assert.notEqual(requestIdOf(bad, trust), 'spaces are not allowed')
})

test('requestIdOf: a keep-alive connection is checked once per trust list; a new list (a .env edit) checks again', () => {
  const socket = { remoteAddress: '10.0.0.1' }
  const req = (): IncomingMessage => ({ headers: { 'x-request-id': 'lb-2' }, socket }) as unknown as IncomingMessage
  const trusting = blockListOf(trustedAddresses('X', '10.0.0.0/8'))
  assert.equal(requestIdOf(req(), trusting), 'lb-2')
  assert.equal(requestIdOf(req(), trusting), 'lb-2', 'the same connection, still trusted')
  const other = blockListOf(trustedAddresses('X', '127.0.0.1'))
  assert.notEqual(requestIdOf(req(), other), 'lb-2', 'the new list no longer trusts this peer')
  assert.equal(requestIdOf(req(), trusting), 'lb-2')
})
