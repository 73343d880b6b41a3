/**
 * Restarting the bridge: with its history file, clients resume with no gap; without it, the new
 * epoch is announced to every subscriber (an explicit gap, never a silent one). Readiness follows
 * the heartbeat through the bridge.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import WebSocket from 'ws'
import { PushClient } from '../../client/push-client.js'
import { startProc } from '../helpers/proc.js'
import { startStack } from '../helpers/push.js'
import { root, until } from '../helpers/server.js'

const publisher = join(root, 'test/fixtures/publisher.mjs')
const WS = WebSocket as unknown as typeof globalThis.WebSocket

test('bridge killed -9 and restarted with its history file: publishers queue and resend, clients miss nothing', async (t) => {
  const stack = await startStack(t, { bridge: { FORKYARD_BRIDGE_DATA_DIR: 'data' } })
  const got: number[] = []
  const gaps: unknown[] = []
  const client = new PushClient(stack.url, { WebSocket: WS, minDelayMs: 50, maxDelayMs: 500 })
  client.subscribe('durable', (_d, msg) => got.push((msg as { offset: number }).offset))
  client.ongap = (g: unknown) => gaps.push(g)
  t.after(() => client.close())
  await until('subscribed', () => client.position('durable')?.epoch !== null)
  const count = 1000
  const pub = startProc(t, [], { ...stack.env, NAME: 'p', CHANNEL: 'durable', COUNT: String(count), INTERVAL_MS: '2' }, { script: publisher })
  await until('flowing', () => got.length > 150, 20_000)
  const epoch = client.position('durable')?.epoch
  await stack.bridge.stop('SIGKILL')
  const restarted = await stack.startBridge()
  const restored = await restarted.waitLog((l) => l.msg === 'history restored from file', 'history restored')
  assert.equal(restored.epoch, epoch, 'same epoch after a restart with the history file')
  const done = await pub.waitLog((l) => l.done === true, 'publisher done', 60_000)
  assert.equal(done.acked, count, pub.raw())
  await until('all delivered', () => got.length >= count, 20_000).catch(() => undefined)
  assert.deepEqual(got, Array.from({ length: count }, (_, i) => i + 1))
  assert.deepEqual(gaps, [])
})

test('bridge restarted without a history file: every subscriber is told the epoch changed; readiness red then green', async (t) => {
  const stack = await startStack(t, { bridge: { FORKYARD_BRIDGE_DATA_DIR: 'none' }, push: { FORKYARD_PUSH_HEARTBEAT_STALE: '1500ms' } })
  const gaps: { channel: string; reason: string }[] = []
  const got: unknown[] = []
  const client = new PushClient(stack.url, { WebSocket: WS, minDelayMs: 50, maxDelayMs: 500 })
  client.subscribe('volatile', (d) => got.push(d))
  client.ongap = (g: { channel: string; reason: string }) => gaps.push(g)
  t.after(() => client.close())
  await until('subscribed', () => client.position('volatile')?.epoch !== null)
  const first = startProc(t, [], { ...stack.env, NAME: 'one', CHANNEL: 'volatile', COUNT: '20' }, { script: publisher })
  await first.waitLog((l) => l.done === true, 'first batch')
  await until('first batch delivered', () => got.length === 20)
  const oldEpoch = client.position('volatile')!.epoch
  await stack.bridge.stop('SIGKILL')
  const readyz = `http://127.0.0.1:${stack.pushPort}/readyz`
  const red = await until('not ready without the bridge', async () => {
    const r = await fetch(readyz)
    return r.status === 503 ? ((await r.json()) as { ready: boolean }) : null
  }, 10_000)
  assert.equal(red.ready, false)
  assert.equal((await fetch(`http://127.0.0.1:${stack.pushPort}/healthz`)).status, 200, 'still alive')
  await stack.startBridge()
  await until('ready again', async () => (await fetch(readyz)).status === 200, 15_000)
  const second = startProc(t, [], { ...stack.env, NAME: 'two', CHANNEL: 'volatile', COUNT: '5' }, { script: publisher })
  await second.waitLog((l) => l.done === true, 'second batch')
  await until('told about the gap', () => gaps.length > 0, 10_000)
  assert.equal(gaps[0]!.channel, 'volatile')
  assert.equal(gaps[0]!.reason, 'epoch-changed')
  await until('second batch delivered', () => got.length === 25, 10_000)
  assert.notEqual(client.position('volatile')!.epoch, oldEpoch)
  assert.equal(client.position('volatile')!.offset, 5)
})

test('bridge killed -9 without a history file mid-stream: after the reset every client gets every offset of the new epoch from 1, no silent gap', async (t) => {
  const stack = await startStack(t, { bridge: { FORKYARD_BRIDGE_DATA_DIR: 'none' } })
  const clients = Array.from({ length: 10 }, () => {
    const seen: { epoch: string; offset: number }[] = []
    const gaps: { reason: string }[] = []
    const c = new PushClient(stack.url, { WebSocket: WS, minDelayMs: 50, maxDelayMs: 500 })
    c.subscribe('stream', (_d, msg) => seen.push({ epoch: (msg as { epoch: string }).epoch, offset: (msg as { offset: number }).offset }))
    c.ongap = (g: { reason: string }) => gaps.push(g)
    t.after(() => c.close())
    return { c, seen, gaps }
  })
  await until('all subscribed', () => clients.every(({ c }) => c.position('stream')?.epoch !== null))
  const count = 300
  const pub = startProc(t, [], { ...stack.env, NAME: 'p', CHANNEL: 'stream', COUNT: String(count), INTERVAL_MS: '20' }, { script: publisher })
  await until('flowing', () => clients.every(({ seen }) => seen.length > 50), 20_000)
  const oldEpoch = clients[0]!.c.position('stream')!.epoch
  await stack.bridge.stop('SIGKILL')
  await stack.startBridge()
  const done = await pub.waitLog((l) => l.done === true, 'publisher done', 60_000)
  assert.equal(done.acked, count, pub.raw())
  const newEpoch = await until('a new epoch reached the clients', () => {
    const e = clients[0]!.c.position('stream')?.epoch
    return e !== undefined && e !== null && e !== oldEpoch ? e : null
  }, 15_000)
  // The publisher's acknowledged messages after the restart are offsets 1..last of the new epoch.
  const last = await until('every client caught up', () => {
    const lasts = clients.map(({ seen }) => seen.filter((s) => s.epoch === newEpoch).at(-1)?.offset ?? 0)
    return lasts.every((l) => l === lasts[0] && l > 0) ? lasts[0] : null
  }, 20_000)
  for (const [i, { seen, gaps }] of clients.entries()) {
    const offsets = seen.filter((s) => s.epoch === newEpoch).map((s) => s.offset)
    assert.deepEqual(offsets, Array.from({ length: last! }, (_, k) => k + 1), `client ${i}: every offset of the new epoch from 1, in order`)
    assert.ok(gaps.some((g) => g.reason === 'epoch-changed'), `client ${i} was told the epoch changed`)
    assert.deepEqual(gaps.filter((g) => g.reason === 'offset-jump'), [], `client ${i}: no unannounced jump`)
  }
})
