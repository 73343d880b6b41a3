/**
 * The bridge + push contract, as README's "Messages to browsers" and "WebSocket protocol" sections
 * document it, written once against MessagingEngine (engine.ts) so that every engine runs the same
 * tests: `conformanceSuite('zeromq', zeromqEngine)`. Each test starts its own engine; every wait
 * is bounded in time and every loop in count.
 */
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import WebSocket from 'ws'
import { PushClient, type PushMessage } from '../../client/push-client.js'
import { connect, type Recorder } from '../helpers/push.js'
import { sleep, until } from '../helpers/server.js'
import type { EngineFactory, EngineOptions, MessagingEngine } from './engine.js'

const WS = WebSocket as unknown as typeof globalThis.WebSocket
type Msg = Record<string, unknown>

const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, k) => from + k)

async function started(t: TestContext, make: EngineFactory, options?: EngineOptions): Promise<MessagingEngine> {
  const engine = make(t)
  t.after(() => engine.stop())
  await engine.start(options)
  return engine
}

/** A raw protocol client: connects, sends one subscribe, returns the recorder and the `subscribed` reply. */
async function subscribeRaw(t: TestContext, url: string, sub: Msg): Promise<{ r: Recorder; subscribed: Msg }> {
  const r = connect(url)
  t.after(() => r.ws.terminate())
  await r.opened
  r.send({ type: 'subscribe', ...sub })
  const subscribed = await until(`subscribed to ${String(sub.channel)}`, () => r.messages.find((m) => m.type === 'subscribed' && m.channel === sub.channel), 10_000)
  return { r, subscribed }
}

const messagesOf = (r: Recorder, channel: string): Msg[] => r.messages.filter((m) => m.type === 'message' && m.channel === channel)
const offsetsOf = (r: Recorder, channel: string): number[] => messagesOf(r, channel).map((m) => m.offset as number)

interface Watcher {
  c: PushClient
  seen: { epoch: string; offset: number }[]
  gaps: { channel: string; reason: string }[]
}

function watch(t: TestContext, url: string, channel: string): Watcher {
  const seen: { epoch: string; offset: number }[] = []
  const gaps: { channel: string; reason: string }[] = []
  const c = new PushClient(url, { WebSocket: WS, minDelayMs: 50, maxDelayMs: 500 })
  c.subscribe(channel, (_d, msg: PushMessage) => seen.push({ epoch: msg.epoch, offset: msg.offset }))
  c.ongap = (g: { channel: string; reason: string }) => gaps.push(g)
  t.after(() => c.close())
  return { c, seen, gaps }
}

async function published(run: { done: Promise<{ acked: number; failed: number }> }, count: number): Promise<void> {
  const d = await run.done
  assert.equal(d.acked, count, `every publish acknowledged (${d.failed} failed)`)
}

export function conformanceSuite(name: string, make: EngineFactory): void {
  test(`${name}: publish is acknowledged with the offset and the epoch; offsets 1..N contiguous per channel with several publishers`, async (t) => {
    const e = await started(t, make)
    const { r, subscribed } = await subscribeRaw(t, e.url, { channel: 'conf-a' })
    const other = await subscribeRaw(t, e.url, { channel: 'conf-b' })
    const epoch = subscribed.epoch as string
    assert.equal(typeof epoch, 'string')
    assert.equal(subscribed.offset, 0, 'a new channel starts at offset 0')
    const runs = ['p1', 'p2', 'p3'].map((n) => e.publisher({ channel: 'conf-a', name: n, count: 40 }))
    const side = e.publisher({ channel: 'conf-b', name: 'q', count: 7 })
    for (const run of runs) await published(run, 40)
    await published(side, 7)
    const acks = runs.flatMap((run) => run.acks)
    assert.deepEqual(acks.map((a) => a.offset).sort((a, b) => a - b), range(1, 120), 'every acknowledged offset once, 1..120')
    assert.ok(acks.every((a) => a.epoch === epoch), 'every ack names the epoch the subscriber was given')
    for (const run of runs) {
      const own = [...run.acks].sort((a, b) => a.i - b.i).map((a) => a.offset)
      assert.deepEqual(own, [...own].sort((a, b) => a - b), "one publisher's messages keep their order")
    }
    assert.deepEqual(side.acks.map((a) => a.offset).sort((a, b) => a - b), range(1, 7), 'another channel has its own offsets')
    await until('all delivered', () => offsetsOf(r, 'conf-a').length >= 120 && offsetsOf(other.r, 'conf-b').length >= 7, 10_000)
    assert.deepEqual(offsetsOf(r, 'conf-a'), range(1, 120), 'delivered in offset order, each once')
    assert.deepEqual(offsetsOf(other.r, 'conf-b'), range(1, 7))
    const byOffset = new Map(acks.map((a) => [a.offset, a]))
    for (const m of messagesOf(r, 'conf-a')) {
      const ack = byOffset.get(m.offset as number)!
      assert.equal(m.epoch, epoch)
      assert.deepEqual((m.data as { i: number }).i, ack.i, `offset ${String(m.offset)} carries the message acknowledged with it`)
    }
  })

  test(`${name}: the same (publisher id, seq) twice is acknowledged with the first offset and delivered once`, async (t) => {
    const e = await started(t, make)
    const { r } = await subscribeRaw(t, e.url, { channel: 'conf-dup' })
    await published(e.publisher({ channel: 'conf-dup', name: 'before', count: 2 }), 2)
    const [first, second] = await e.publishDuplicate('conf-dup', 'dup')
    assert.equal(first.offset, 3)
    assert.equal(second.offset, first.offset, 'the duplicate is acknowledged with the first offset')
    assert.equal(second.epoch, first.epoch)
    await published(e.publisher({ channel: 'conf-dup', name: 'after', count: 1 }), 1)
    await until('the later message delivered', () => offsetsOf(r, 'conf-dup').includes(4), 10_000)
    await sleep(200)
    assert.deepEqual(offsetsOf(r, 'conf-dup'), [1, 2, 3, 4], 'no offset for the duplicate')
    assert.equal(messagesOf(r, 'conf-dup').filter((m) => (m.data as { from: string }).from === 'dup').length, 1, 'delivered once')
  })

  test(`${name}: the same idempotency key from two publishers is stored once, both acknowledged with the first offset`, async (t) => {
    const e = await started(t, make)
    const { r } = await subscribeRaw(t, e.url, { channel: 'conf-idem' })
    const count = 10
    const a = e.publisher({ channel: 'conf-idem', name: 'a', count, idempotencyKey: 'order' })
    const b = e.publisher({ channel: 'conf-idem', name: 'b', count, idempotencyKey: 'order' })
    await published(a, count)
    await published(b, count)
    for (const i of range(0, count - 1)) {
      const offsets = [a, b].map((run) => run.acks.find((x) => x.i === i)?.offset)
      assert.equal(offsets[0], offsets[1], `key order-${i}: both publishers acknowledged with the same offset`)
    }
    assert.deepEqual([...new Set(a.acks.map((x) => x.offset))].sort((x, y) => x - y), range(1, count), 'each key stored once')
    await until('all delivered', () => offsetsOf(r, 'conf-idem').length >= count, 10_000)
    await sleep(200)
    assert.deepEqual(offsetsOf(r, 'conf-idem'), range(1, count), 'delivered once each')
    for (const m of messagesOf(r, 'conf-idem')) {
      const i = (m.data as { i: number }).i
      assert.equal(m.offset, a.acks.find((x) => x.i === i)?.offset, 'the offset carries the message with that key')
    }
  })

  test(`${name}: a duplicate sent after the message store restarted with its history is still recognised`, async (t) => {
    const e = await started(t, make)
    const { r } = await subscribeRaw(t, e.url, { channel: 'conf-dup2' })
    const [first, second] = await e.publishDuplicate('conf-dup2', 'dup', () => e.restartStore({ keepHistory: true }))
    assert.equal(first.offset, 1)
    assert.deepEqual(second, { ...first, i: 1 }, 'the resend after the restart gets the first offset and epoch')
    await published(e.publisher({ channel: 'conf-dup2', name: 'after', count: 1 }), 1)
    await until('the later message delivered', () => offsetsOf(r, 'conf-dup2').includes(2), 10_000)
    await sleep(200)
    assert.deepEqual(offsetsOf(r, 'conf-dup2'), [1, 2], 'no offset for the duplicate')
  })

  test(`${name}: subscribe without an offset: subscribed names the latest offset, then only live messages`, async (t) => {
    const e = await started(t, make)
    await published(e.publisher({ channel: 'conf-live', count: 5 }), 5)
    const { r, subscribed } = await subscribeRaw(t, e.url, { channel: 'conf-live' })
    assert.equal(subscribed.offset, 5, "offset is the channel's latest")
    assert.equal(subscribed.recovered, undefined, 'no recovery was asked for')
    await published(e.publisher({ channel: 'conf-live', count: 3 }), 3)
    await until('live messages', () => offsetsOf(r, 'conf-live').length >= 3, 10_000)
    await sleep(200)
    assert.deepEqual(offsetsOf(r, 'conf-live'), [6, 7, 8], 'nothing from before the subscription, every live one')
  })

  test(`${name}: resume within history: recovered true, every missed message in order, then live ones, no duplicate`, async (t) => {
    const e = await started(t, make)
    const run = e.publisher({ channel: 'conf-resume', count: 10 })
    await published(run, 10)
    const epoch = run.acks[0]!.epoch
    const { r, subscribed } = await subscribeRaw(t, e.url, { channel: 'conf-resume', offset: 4, epoch })
    assert.equal(subscribed.recovered, true)
    assert.equal(subscribed.epoch, epoch)
    await until('missed messages', () => offsetsOf(r, 'conf-resume').length >= 6, 10_000)
    await published(e.publisher({ channel: 'conf-resume', count: 2 }), 2)
    await until('live messages', () => offsetsOf(r, 'conf-resume').length >= 8, 10_000)
    await sleep(200)
    assert.deepEqual(offsetsOf(r, 'conf-resume'), range(5, 12), 'offsets 5..10 recovered, 11..12 live, each once')
    const subscribedAt = r.messages.findIndex((m) => m.type === 'subscribed')
    const firstMessage = r.messages.findIndex((m) => m.type === 'message')
    assert.ok(subscribedAt < firstMessage, 'subscribed comes before the recovered messages')
  })

  test(`${name}: resume with an unknown epoch: recovered false, reason epoch-changed, then live messages`, async (t) => {
    const e = await started(t, make)
    await published(e.publisher({ channel: 'conf-epoch', count: 3 }), 3)
    const { r, subscribed } = await subscribeRaw(t, e.url, { channel: 'conf-epoch', offset: 2, epoch: 'not-an-epoch-of-this-store' })
    assert.equal(subscribed.recovered, false)
    assert.equal(subscribed.reason, 'epoch-changed')
    assert.equal(subscribed.offset, 3, 'live messages follow from the latest offset')
    await published(e.publisher({ channel: 'conf-epoch', count: 1 }), 1)
    await until('live message', () => offsetsOf(r, 'conf-epoch').length >= 1, 10_000)
    await sleep(200)
    assert.deepEqual(offsetsOf(r, 'conf-epoch'), [4], 'nothing replayed from an unknown epoch')
  })

  test(`${name}: history trimmed past the resume point: recovered false, reason history-trimmed`, async (t) => {
    const e = await started(t, make, { historyCount: 5 })
    const run = e.publisher({ channel: 'conf-trim', count: 20 })
    await published(run, 20)
    const epoch = run.acks[0]!.epoch
    const { r, subscribed } = await subscribeRaw(t, e.url, { channel: 'conf-trim', offset: 2, epoch })
    assert.equal(subscribed.recovered, false)
    assert.equal(subscribed.reason, 'history-trimmed')
    assert.equal(subscribed.offset, 20)
    // Within the kept history, resume still works.
    const inside = await subscribeRaw(t, e.url, { channel: 'conf-trim', offset: 16, epoch })
    assert.equal(inside.subscribed.recovered, true)
    await until('kept history replayed', () => offsetsOf(inside.r, 'conf-trim').length >= 4, 10_000)
    await sleep(200)
    assert.deepEqual(offsetsOf(inside.r, 'conf-trim'), [17, 18, 19, 20])
    assert.deepEqual(offsetsOf(r, 'conf-trim'), [], 'no partial replay after history-trimmed')
  })

  test(`${name}: message store killed -9 and restarted with its history: same epoch, clients miss nothing`, async (t) => {
    const e = await started(t, make)
    const clients = [watch(t, e.url, 'conf-durable'), watch(t, e.url, 'conf-durable')]
    await until('subscribed', () => clients.every(({ c }) => c.position('conf-durable')?.epoch !== null), 10_000)
    const epoch = clients[0]!.c.position('conf-durable')!.epoch
    const count = 300
    const run = e.publisher({ channel: 'conf-durable', count, intervalMs: 5 })
    await until('flowing', () => clients.every(({ seen }) => seen.length > 50), 20_000)
    await e.restartStore({ keepHistory: true })
    await published(run, count)
    assert.ok(run.acks.every((a) => a.epoch === epoch), 'every acknowledgement in the same epoch')
    assert.deepEqual(run.acks.map((a) => a.offset).sort((a, b) => a - b), range(1, count))
    await until('all delivered', () => clients.every(({ seen }) => seen.length >= count), 20_000).catch(() => undefined)
    for (const [i, { seen, gaps }] of clients.entries()) {
      assert.deepEqual(seen.map((s) => s.offset), range(1, count), `client ${i}: every offset once, in order`)
      assert.ok(seen.every((s) => s.epoch === epoch), `client ${i}: same epoch`)
      assert.deepEqual(gaps, [], `client ${i}: no gap reported`)
    }
  })

  test(`${name}: message store killed -9 and restarted without history: every subscriber is told, then gets the new epoch from offset 1`, async (t) => {
    const e = await started(t, make)
    const clients = [watch(t, e.url, 'conf-lost'), watch(t, e.url, 'conf-lost'), watch(t, e.url, 'conf-lost')]
    const { r } = await subscribeRaw(t, e.url, { channel: 'conf-lost' })
    await until('subscribed', () => clients.every(({ c }) => c.position('conf-lost')?.epoch !== null), 10_000)
    const oldEpoch = clients[0]!.c.position('conf-lost')!.epoch
    const count = 200
    const run = e.publisher({ channel: 'conf-lost', count, intervalMs: 10 })
    await until('flowing', () => clients.every(({ seen }) => seen.length > 30), 20_000)
    await e.restartStore({ keepHistory: false })
    await published(run, count)
    const newEpoch = run.acks.find((a) => a.epoch !== oldEpoch)?.epoch
    assert.ok(newEpoch !== undefined, 'acknowledgements after the restart name a new epoch')
    const last = Math.max(...run.acks.filter((a) => a.epoch === newEpoch).map((a) => a.offset))
    assert.deepEqual(run.acks.filter((a) => a.epoch === newEpoch).map((a) => a.offset).sort((a, b) => a - b), range(1, last), 'the new epoch starts at 1')
    await until('every client caught up', () => clients.every(({ seen }) => seen.filter((s) => s.epoch === newEpoch).length >= last), 20_000).catch(() => undefined)
    for (const [i, { seen, gaps }] of clients.entries()) {
      assert.deepEqual(seen.filter((s) => s.epoch === newEpoch).map((s) => s.offset), range(1, last), `client ${i}: every offset of the new epoch from 1, in order`)
      assert.ok(gaps.some((g) => g.reason === 'epoch-changed'), `client ${i}: told the epoch changed`)
      assert.deepEqual(gaps.filter((g) => g.reason === 'offset-jump'), [], `client ${i}: no unannounced jump`)
    }
    // The raw protocol: a reset (or a resubscribe answered recovered:false) before the first message of the new epoch.
    await until('raw client caught up', () => messagesOf(r, 'conf-lost').filter((m) => m.epoch === newEpoch).length >= last, 10_000).catch(() => undefined)
    const firstNew = r.messages.findIndex((m) => m.type === 'message' && m.epoch === newEpoch)
    const told = r.messages.findIndex((m) => (m.type === 'reset' || (m.type === 'subscribed' && m.recovered === false)) && m.epoch === newEpoch)
    assert.ok(told >= 0 && told < firstNew, `raw client: reset before the new epoch's messages (${JSON.stringify(r.messages.filter((m) => m.type !== 'message'))})`)
    assert.deepEqual(messagesOf(r, 'conf-lost').filter((m) => m.epoch === newEpoch).map((m) => m.offset), range(1, last), 'raw client: the new epoch from 1')
  })

  test(`${name}: push process killed -9 and restarted: clients resume with no gap and no duplicate`, async (t) => {
    const e = await started(t, make)
    const clients = [watch(t, e.url, 'conf-push'), watch(t, e.url, 'conf-push')]
    await until('subscribed', () => clients.every(({ c }) => c.position('conf-push')?.epoch !== null), 10_000)
    const count = 300
    const run = e.publisher({ channel: 'conf-push', count, intervalMs: 5 })
    await until('flowing', () => clients.every(({ seen }) => seen.length > 50), 20_000)
    await e.restartPush()
    await published(run, count)
    await until('all delivered', () => clients.every(({ seen }) => seen.length >= count), 20_000).catch(() => undefined)
    for (const [i, { seen, gaps }] of clients.entries()) {
      assert.deepEqual(seen.map((s) => s.offset), range(1, count), `client ${i}: every offset once, in order`)
      assert.deepEqual(gaps, [], `client ${i}: no gap reported`)
    }
  })

  test(`${name}: private channels: no token 4401, a token for another channel 4401, a valid token works until it expires`, async (t) => {
    const e = await started(t, make)
    const bare = connect(e.url)
    await bare.opened
    bare.send({ type: 'subscribe', channel: 'private:conf' })
    assert.equal((await bare.closed).code, 4401, 'no token')
    const wrong = connect(e.url)
    await wrong.opened
    wrong.send({ type: 'subscribe', channel: 'private:conf', token: e.signToken(['private:other'], 60) })
    assert.equal((await wrong.closed).code, 4401, 'a token for another channel')
    const { r, subscribed } = await subscribeRaw(t, e.url, { channel: 'private:conf', token: e.signToken(['private:conf'], 2) })
    assert.equal(subscribed.offset, 0)
    await published(e.publisher({ channel: 'private:conf', count: 3 }), 3)
    await until('delivered with a valid token', () => offsetsOf(r, 'private:conf').length >= 3, 10_000)
    const ended = await until('told the token expired', () => r.messages.find((m) => m.type === 'unsubscribed'), 5000)
    assert.equal(ended.channel, 'private:conf')
    assert.equal(ended.reason, 'token-expired')
    assert.equal(ended.offset, 3, 'the last offset delivered')
    await published(e.publisher({ channel: 'private:conf', count: 2 }), 2)
    await sleep(300)
    assert.deepEqual(offsetsOf(r, 'private:conf'), [1, 2, 3], 'nothing delivered past the expiry')
    // As README says: subscribe again with a fresh token and the offset to miss nothing.
    r.send({ type: 'subscribe', channel: 'private:conf', token: e.signToken(['private:conf'], 60), offset: 3, epoch: subscribed.epoch })
    const again = await until('subscribed again', () => r.messages.filter((m) => m.type === 'subscribed').at(1), 5000)
    assert.equal(again.recovered, true)
    await until('the messages published after the expiry', () => offsetsOf(r, 'private:conf').length >= 5, 5000)
    await sleep(200)
    assert.deepEqual(offsetsOf(r, 'private:conf'), [1, 2, 3, 4, 5], 'no gap, no duplicate across the token refresh')
  })

  test(`${name}: reserved $ channels: browsers cannot subscribe (4403), app code cannot publish`, async (t) => {
    const e = await started(t, make)
    const c = connect(e.url)
    await c.opened
    c.send({ type: 'subscribe', channel: '$sys:heartbeat' })
    assert.equal((await c.closed).code, 4403)
    const run = e.publisher({ channel: '$sys:heartbeat', count: 1 })
    const d = await run.done
    assert.equal(d.acked, 0)
    assert.equal(run.refusals[0]?.code, 'FORKYARD_ERR_PUBLISH_INVALID')
    const other = e.publisher({ channel: '$conf', count: 1 })
    await other.done
    assert.equal(other.refusals[0]?.code, 'FORKYARD_ERR_PUBLISH_INVALID')
  })
}
