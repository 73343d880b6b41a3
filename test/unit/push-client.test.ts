/**
 * The browser client's bookkeeping, with a stand-in WebSocket: an offset jump the server did not
 * announce is reported (ongap, naming the missed offsets), duplicates are dropped, and a token that
 * expired leads to a new subscribe from the last offset seen.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PushClient, type PushGap } from '../../client/push-client.js'

class FakeSocket {
  static last: FakeSocket | null = null
  readyState = 0
  sent: Record<string, unknown>[] = []
  onopen: (() => void) | null = null
  onmessage: ((e: { data: string }) => void) | null = null
  onclose: ((e: { code: number; reason: string }) => void) | null = null
  onerror: (() => void) | null = null
  constructor(readonly url: string) {
    FakeSocket.last = this
    queueMicrotask(() => {
      this.readyState = 1
      this.onopen?.()
    })
  }
  send(text: string): void {
    this.sent.push(JSON.parse(text) as Record<string, unknown>)
  }
  close(): void {
    this.readyState = 3
  }
  receive(msg: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(msg) })
  }
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5))

test('an unannounced offset jump is reported with the missed offsets; a repeated offset is dropped', async () => {
  const client = new PushClient('ws://x/ws', { WebSocket: FakeSocket as unknown as typeof globalThis.WebSocket })
  const gaps: PushGap[] = []
  const got: number[] = []
  client.ongap = (g) => gaps.push(g)
  client.subscribe('news', (_d, m) => got.push(m.offset))
  await tick()
  const ws = FakeSocket.last!
  ws.receive({ type: 'subscribed', channel: 'news', epoch: 'e1', offset: 0 })
  for (const offset of [1, 2, 2, 5]) ws.receive({ type: 'message', channel: 'news', epoch: 'e1', offset, ts: 0, data: {} })
  assert.deepEqual(got, [1, 2, 5])
  assert.deepEqual(gaps.map((g) => [g.reason, g.missed]), [['offset-jump', [3, 4]]])
  client.close()
})

test('token-expired: a fresh token is asked for and the subscribe resumes from the last offset seen', async () => {
  let tokens = 0
  const client = new PushClient('ws://x/ws', { WebSocket: FakeSocket as unknown as typeof globalThis.WebSocket, getToken: () => `t${++tokens}` })
  client.subscribe('private:a', () => {})
  await tick()
  const ws = FakeSocket.last!
  ws.receive({ type: 'subscribed', channel: 'private:a', epoch: 'e1', offset: 0 })
  ws.receive({ type: 'message', channel: 'private:a', epoch: 'e1', offset: 1, ts: 0, data: {} })
  ws.receive({ type: 'unsubscribed', channel: 'private:a', reason: 'token-expired', offset: 1 })
  await tick()
  const subscribes = ws.sent.filter((m) => m.type === 'subscribe')
  assert.equal(subscribes.length, 2)
  assert.deepEqual(subscribes[1], { type: 'subscribe', channel: 'private:a', offset: 1, epoch: 'e1', token: 't2' })
  client.close()
})

test('reset "lagging" then 4429: no gap is reported, and the reconnect resumes from the named offset', async () => {
  const client = new PushClient('ws://x/ws', { WebSocket: FakeSocket as unknown as typeof globalThis.WebSocket, minDelayMs: 1, maxDelayMs: 1 })
  const gaps: PushGap[] = []
  client.ongap = (g) => gaps.push(g)
  client.subscribe('news', () => {})
  await tick()
  const first = FakeSocket.last!
  first.receive({ type: 'subscribed', channel: 'news', epoch: 'e1', offset: 0 })
  first.receive({ type: 'message', channel: 'news', epoch: 'e1', offset: 1, ts: 0, data: {} })
  first.receive({ type: 'reset', channel: 'news', epoch: 'e1', offset: 1, reason: 'lagging' })
  first.readyState = 3
  first.onclose?.({ code: 4429, reason: 'lagging' })
  await tick()
  await tick()
  const second = FakeSocket.last!
  assert.notEqual(second, first)
  assert.deepEqual(second.sent.find((m) => m.type === 'subscribe'), { type: 'subscribe', channel: 'news', offset: 1, epoch: 'e1' })
  assert.deepEqual(gaps, [])
  client.close()
})
