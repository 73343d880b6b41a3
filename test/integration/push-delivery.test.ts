/**
 * Delivery through the real bridge and push processes: one order for every subscriber, and no gap
 * when the push process is killed -9 mid-stream (clients resume from their offsets).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import WebSocket from 'ws'
import { PushClient } from '../../client/push-client.js'
import { startProc } from '../helpers/proc.js'
import { connect, startStack } from '../helpers/push.js'
import { root, until } from '../helpers/server.js'

const publisher = join(root, 'test/fixtures/publisher.mjs')

test('two publishing processes on one channel: every subscriber sees the same order, offsets 1..N without gaps', async (t) => {
  const stack = await startStack(t)
  const clients = [connect(stack.url), connect(stack.url), connect(stack.url)]
  for (const c of clients) {
    await c.opened
    c.send({ type: 'subscribe', channel: 'orders' })
  }
  await until('subscribed', () => clients.every((c) => c.messages.some((m) => m.type === 'subscribed')))
  const count = 400
  const pubs = ['a', 'b'].map((name) => startProc(t, [], { ...stack.env, NAME: name, CHANNEL: 'orders', COUNT: String(count) }, { script: publisher }))
  for (const p of pubs) {
    const done = await p.waitLog((l) => l.done === true, 'publisher done', 30_000)
    assert.equal(done.acked, count, p.raw())
  }
  await until('all delivered', () => clients.every((c) => c.messages.filter((m) => m.type === 'message').length === 2 * count), 15_000)
  const sequences = clients.map((c) => c.messages.filter((m) => m.type === 'message'))
  for (const seq of sequences) {
    assert.deepEqual(seq.map((m) => m.offset), Array.from({ length: 2 * count }, (_, i) => i + 1))
    for (const name of ['a', 'b']) {
      const mine = seq.map((m) => m.data as { from: string; i: number }).filter((d) => d.from === name).map((d) => d.i)
      assert.deepEqual(mine, Array.from({ length: count }, (_, i) => i), `publisher ${name} order kept`)
    }
  }
  const key = (m: Record<string, unknown>): string => JSON.stringify(m.data)
  assert.deepEqual(sequences[1]!.map(key), sequences[0]!.map(key))
  assert.deepEqual(sequences[2]!.map(key), sequences[0]!.map(key))
  for (const c of clients) c.ws.close()
})

test('kill -9 of the push process mid-stream: clients reconnect and resume with no gap and no duplicate', async (t) => {
  const stack = await startStack(t)
  const received: number[][] = [[], [], []]
  const recovered: number[] = [0, 0, 0]
  const gaps: unknown[] = []
  const clients = received.map((list, i) => {
    const c = new PushClient(stack.url, { WebSocket: WebSocket as unknown as typeof globalThis.WebSocket, minDelayMs: 50, maxDelayMs: 500 })
    c.subscribe('stream', (_data, msg) => list.push((msg as { offset: number }).offset))
    c.ongap = (g: unknown) => gaps.push(g)
    c.onrecovered = () => recovered[i]!++
    return c
  })
  t.after(() => clients.forEach((c) => c.close()))
  await until('clients subscribed', () => clients.every((c) => c.position('stream')?.epoch !== null))
  const count = 1500
  const pub = startProc(t, [], { ...stack.env, NAME: 'p', CHANNEL: 'stream', COUNT: String(count), INTERVAL_MS: '2' }, { script: publisher })
  await until('stream flowing', () => received.every((r) => r.length > 200), 20_000)
  await stack.push.stop('SIGKILL')
  const killedAt = Math.max(...received.map((r) => r.length))
  await stack.startPush()
  const done = await pub.waitLog((l) => l.done === true, 'publisher done', 60_000)
  assert.equal(done.acked, count)
  await until('every client has every message', () => received.every((r) => r.length >= count), 20_000).catch(() => undefined)
  for (const r of received) assert.deepEqual(r, Array.from({ length: count }, (_, i) => i + 1), `got ${r.length} of ${count}`)
  assert.ok(killedAt < count, 'the kill happened mid-stream')
  assert.ok(recovered.every((n) => n >= 1), `every client resumed with recovered: true (${recovered})`)
  assert.deepEqual(gaps, [])
})
