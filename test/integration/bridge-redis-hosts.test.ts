/**
 * Two "hosts" on one Redis (FORKYARD_ENGINE=redis://…): two run directories, each with its own
 * `forkyard bridge` and `forkyard push`, as processes. What one host publishes reaches the other's
 * clients; a client resumes on the other host with nothing missing or repeated; an idempotency key
 * published through both bridges is stored once; and a Redis that lost its data is announced to
 * subscribers by the push process's own heartbeat, with no app publish.
 */
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import WebSocket from 'ws'
import { PushClient, type PushMessage } from '../../client/push-client.js'
import { publisherScript, watchPublisher, type PublisherRun } from '../conformance/engine.js'
import { startProc } from '../helpers/proc.js'
import { startStack, type Stack } from '../helpers/push.js'
import { startRedis } from '../helpers/redis.js'
import { sleep, until } from '../helpers/server.js'

const WS = WebSocket as unknown as typeof globalThis.WebSocket
const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, k) => from + k)

function publisher(t: TestContext, host: Stack, spec: { channel: string; name: string; count: number; intervalMs?: number; key?: string }): PublisherRun {
  const env = { ...host.env, NAME: spec.name, CHANNEL: spec.channel, COUNT: String(spec.count), INTERVAL_MS: String(spec.intervalMs ?? 0), ACKS: '1', IDEMPOTENCY_KEY: spec.key ?? '' }
  return watchPublisher(startProc(t, [], env, { script: publisherScript }))
}

function watch(t: TestContext, url: string, channel: string): { c: PushClient; seen: { epoch: string; offset: number }[]; gaps: { reason: string }[] } {
  const seen: { epoch: string; offset: number }[] = []
  const gaps: { reason: string }[] = []
  const c = new PushClient(url, { WebSocket: WS, minDelayMs: 50, maxDelayMs: 500 })
  c.subscribe(channel, (_d, msg: PushMessage) => seen.push({ epoch: msg.epoch, offset: msg.offset }))
  c.ongap = (g: { reason: string }) => gaps.push(g)
  t.after(() => c.close())
  return { c, seen, gaps }
}

const push = { FORKYARD_PUSH_HEARTBEAT_STALE: '1500ms' }

test('two hosts, one Redis: published through bridge A, delivered by push B, resumed on push A; one key stored once', async (t) => {
  const redis = await startRedis(t, { aof: true })
  const engine = { FORKYARD_ENGINE: redis.url }
  const a = await startStack(t, { bridge: engine, push })
  const b = await startStack(t, { bridge: engine, push })
  const client = watch(t, b.url, 'hosts')
  await until('subscribed on host B', () => client.c.position('hosts')?.epoch != null, 10_000)
  const epoch = client.c.position('hosts')!.epoch
  const count = 300
  const run = publisher(t, a, { channel: 'hosts', name: 'a', count, intervalMs: 5 })
  await until('flowing from host A to host B', () => client.seen.length > 50, 20_000)
  // Host B's push process dies: the client goes to host A and resumes from its offset.
  // (push-client.js reads its `url` field at every connect; a load balancer would do this in production.)
  ;(client.c as unknown as { url: string }).url = a.url
  await b.push.stop('SIGKILL')
  const done = await run.done
  assert.equal(done.acked, count)
  assert.ok(run.acks.every((x) => x.epoch === epoch), 'bridge A acknowledges in the epoch push B gave the client')
  await until('all delivered', () => client.seen.length >= count, 20_000).catch(() => undefined)
  assert.deepEqual(client.seen.map((s) => s.offset), range(1, count), '0 missing, 0 duplicated, in order')
  assert.ok(client.seen.every((s) => s.epoch === epoch))
  assert.deepEqual(client.gaps, [], 'no gap reported')

  // The same idempotency keys through both bridges: stored once, both acknowledged with the first offset.
  const n = 10
  const viaA = publisher(t, a, { channel: 'hosts-idem', name: 'a', count: n, key: 'evt' })
  const viaB = publisher(t, b, { channel: 'hosts-idem', name: 'b', count: n, key: 'evt' })
  assert.equal((await viaA.done).acked, n)
  assert.equal((await viaB.done).acked, n)
  for (const i of range(0, n - 1)) {
    assert.equal(viaA.acks.find((x) => x.i === i)?.offset, viaB.acks.find((x) => x.i === i)?.offset, `key evt-${i}: the same offset from both bridges`)
  }
  assert.deepEqual([...new Set(viaA.acks.map((x) => x.offset))].sort((x, y) => x - y), range(1, n))
  const r = redis.client()
  const [, keys] = await r.scan('0', 'MATCH', 'forkyard:hist:*:hosts-idem', 'COUNT', 1000)
  assert.equal(keys.length, 1)
  assert.equal(await r.xlen(keys[0]!), n, 'the stream holds each key once')
})

test('Redis restarted without its data: the push heartbeat alone brings the new epoch, subscribers are reset', async (t) => {
  const redis = await startRedis(t, { aof: false })
  const host = await startStack(t, { bridge: { FORKYARD_ENGINE: redis.url }, push })
  const client = watch(t, host.url, 'quiet')
  await until('subscribed', () => client.c.position('quiet')?.epoch != null, 10_000)
  const before = client.c.position('quiet')!.epoch
  assert.equal((await publisher(t, host, { channel: 'quiet', name: 'a', count: 3 }).done).acked, 3)
  await until('delivered', () => client.seen.length >= 3, 10_000)
  await redis.kill()
  await redis.start({ aof: false })
  // No app publish from here on: only push's $sys:heartbeat goes through the bridge.
  const started = Date.now()
  await until('told the history is gone', () => client.gaps.find((g) => g.reason === 'epoch-changed'), 15_000)
  t.diagnostic(`reset ${Date.now() - started} ms after redis-server came back`)
  await until('the new epoch', () => client.c.position('quiet')?.epoch !== before, 5000)
  const after = publisher(t, host, { channel: 'quiet', name: 'b', count: 2 })
  assert.equal((await after.done).acked, 2)
  assert.deepEqual(after.acks.map((x) => x.offset).sort(), [1, 2], 'the new epoch starts at 1')
  await until('new epoch delivered', () => client.seen.length >= 5, 10_000)
  await sleep(200)
  assert.deepEqual(client.seen.map((s) => s.offset), [1, 2, 3, 1, 2])
})

test('a bridge started before Redis subscribes once Redis is up: the push heartbeat goes through', async (t) => {
  const redis = await startRedis(t)
  await redis.kill()
  // Redis comes up after the bridge has given up waiting for it at start (10 s) and listens anyway.
  const started = Date.now()
  const late = new Promise<void>((resolve, reject) => setTimeout(() => void redis.start().then(resolve, reject), 12_000))
  const host = await startStack(t, { bridge: { FORKYARD_ENGINE: redis.url }, push })
  await late
  assert.ok(Date.now() - started >= 12_000, 'push was ready only once Redis was up')
  assert.ok(host.bridge.logs.some((l) => l.msg === 'Redis engine not reachable: the bridge answers no publish until it is'), 'the bridge said Redis was down')
  const client = watch(t, host.url, 'late')
  await until('subscribed', () => client.c.position('late')?.epoch != null, 10_000)
  const run = publisher(t, host, { channel: 'late', name: 'late', count: 20 })
  assert.equal((await run.done).acked, 20)
  await until('all 20 delivered', () => client.seen.length >= 20, 10_000)
  assert.deepEqual(client.seen.map((s) => s.offset), range(1, 20))
})
