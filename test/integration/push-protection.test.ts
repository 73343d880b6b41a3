/**
 * Bad input and abuse against the real push process: each is refused with its documented code,
 * and the process keeps serving everyone else.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import WebSocket from 'ws'
import { signPushToken } from '../../server/push/tokens.js'
import { startProc } from '../helpers/proc.js'
import { connect, startStack, type Recorder } from '../helpers/push.js'
import { root, until } from '../helpers/server.js'

const publisher = join(root, 'test/fixtures/publisher.mjs')
const secret = 'test-secret-test-secret-test-secret!'

async function closedWith(r: Recorder, send: (r: Recorder) => void): Promise<{ code: number; reason: string }> {
  await r.opened
  send(r)
  return r.closed
}

function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers })
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0)
      ws.terminate()
    })
    ws.on('open', () => {
      resolve(101)
      ws.close()
    })
    ws.on('error', () => undefined)
  })
}

test('malformed, oversized, binary, unauthorised and excessive input: documented close codes, others keep receiving', async (t) => {
  const stack = await startStack(t, { push: { FORKYARD_PUSH_MAX_MESSAGE: '4KiB', FORKYARD_PUSH_MAX_SUBSCRIPTIONS: '3', FORKYARD_PUSH_ORIGINS: 'https://app.example' } })
  const bystander = connect(stack.url)
  await bystander.opened
  bystander.send({ type: 'subscribe', channel: 'public' })

  const cases: [string, (r: Recorder) => void, number, RegExp][] = [
    ['invalid JSON', (r) => r.send('{not json'), 4400, /invalid JSON/],
    ['unknown type', (r) => r.send({ type: 'publish', channel: 'x' }), 4400, /expected type/],
    ['bad channel', (r) => r.send({ type: 'subscribe', channel: 'bad channel!' }), 4400, /channel/],
    ['oversized frame', (r) => r.send({ type: 'subscribe', channel: 'x'.repeat(8000) }), 1009, /.*/],
    ['binary frame', (r) => r.ws.send(Buffer.from([1, 2, 3]), { binary: true }), 1003, /binary/],
    ['private without token', (r) => r.send({ type: 'subscribe', channel: 'private:alice' }), 4401, /token required/],
    ['bad signature', (r) => r.send({ type: 'subscribe', channel: 'private:alice', token: signPushToken('x'.repeat(32), { channels: ['private:alice'] }) }), 4401, /bad token signature/],
    ['expired token', (r) => r.send({ type: 'subscribe', channel: 'private:alice', token: signPushToken(secret, { channels: ['private:alice'], ttlSeconds: -10 }) }), 4401, /expired/],
    ['token for another channel', (r) => r.send({ type: 'subscribe', channel: 'private:alice', token: signPushToken(secret, { channels: ['private:bob'] }) }), 4401, /does not grant/],
    ['reserved channel', (r) => r.send({ type: 'subscribe', channel: '$sys:heartbeat' }), 4403, /reserved/],
    ['too many subscriptions', (r) => ['a', 'b', 'c', 'd'].forEach((c) => r.send({ type: 'subscribe', channel: c })), 4413, /at most 3/],
  ]
  for (const [name, send, code, reason] of cases) {
    const closed = await closedWith(connect(stack.url), send)
    assert.equal(closed.code, code, name)
    assert.match(closed.reason, reason, name)
  }

  // A valid token opens the private channel.
  const alice = connect(stack.url)
  await alice.opened
  alice.send({ type: 'subscribe', channel: 'private:alice', token: signPushToken(secret, { channels: ['private:alice'] }) })
  await until('alice subscribed', () => alice.messages.some((m) => m.type === 'subscribed'))

  // Origins: the allowlisted one passes, another is refused before the upgrade.
  assert.equal(await upgradeStatus(stack.url, { Origin: 'https://evil.example' }), 403)
  assert.equal(await upgradeStatus(stack.url, { Origin: 'https://app.example' }), 101)

  // The process kept serving: the bystander still receives, readiness is green.
  const pub = startProc(t, [], { ...stack.env, NAME: 'p', CHANNEL: 'public', COUNT: '10' }, { script: publisher })
  await pub.waitLog((l) => l.done === true, 'published')
  await until('bystander received', () => bystander.messages.filter((m) => m.type === 'message').length === 10)
  assert.equal((await fetch(`http://127.0.0.1:${stack.pushPort}/readyz`)).status, 200)
  bystander.ws.close()
  alice.ws.close()
})

test('a reconnect storm is rate-limited with 429 and the process keeps serving', async (t) => {
  const stack = await startStack(t, { push: { FORKYARD_PUSH_CONN_RATE: '5' } })
  const statuses: number[] = []
  for (let i = 0; i < 30; i++) statuses.push(await upgradeStatus(stack.url))
  assert.ok(statuses.filter((s) => s === 101).length >= 10, statuses.join(','))
  assert.ok(statuses.filter((s) => s === 429).length >= 5, statuses.join(','))
  await new Promise((r) => setTimeout(r, 1000))
  assert.equal(await upgradeStatus(stack.url), 101, 'allowed again after a second')
})

test('a slow consumer is cut off with 4408 and logged, while others keep receiving everything', async (t) => {
  const stack = await startStack(t, { push: { FORKYARD_PUSH_MAX_BUFFER: '256KiB' } })
  const fast = connect(stack.url)
  const slow = connect(stack.url)
  await Promise.all([fast.opened, slow.opened])
  fast.send({ type: 'subscribe', channel: 'firehose' })
  slow.send({ type: 'subscribe', channel: 'firehose' })
  await until('subscribed', () => fast.messages.length > 0 && slow.messages.length > 0)
  // Stop reading: the kernel buffers fill, then the push process's send buffer grows.
  ;(slow.ws as unknown as { _socket: { pause: () => void; resume: () => void } })._socket.pause()
  const count = 3000
  const big = startProc(t, [], { ...stack.env, NAME: 'x'.repeat(4000), CHANNEL: 'firehose', COUNT: String(count) }, { script: publisher })
  await big.waitLog((l) => l.done === true, 'published', 60_000)
  const cut = await stack.push.waitLog((l) => l.msg === 'slow consumer disconnected', 'slow consumer line', 20_000)
  assert.equal(typeof cut.conn, 'string')
  assert.ok(Number(cut.bufferedBytes) > 256 * 1024)
  ;(slow.ws as unknown as { _socket: { resume: () => void } })._socket.resume()
  const closed = await slow.closed
  assert.equal(closed.code, 4408)
  await until('fast client got everything', () => fast.messages.filter((m) => m.type === 'message').length === count, 30_000)
  fast.ws.close()
})
