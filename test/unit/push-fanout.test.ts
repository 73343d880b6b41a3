import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import * as wsModule from 'ws'
import WebSocket, { WebSocketServer } from 'ws'
import { FrameWriter, dispatchedBytes, textFrame } from '../../server/push/fanout.js'
import { envelopeOffset } from '../../server/push/protocol.js'
import { envelopeOf } from '../../server/bridge/wire.js'

const Sender = (wsModule as unknown as { Sender: unknown }).Sender as { frame: (data: Buffer, o: Record<string, unknown>) => Buffer[] }

test('textFrame makes the same bytes as ws for small, 16-bit and 64-bit lengths', () => {
  for (const n of [0, 1, 125, 126, 65535, 65536, 70_000]) {
    const payload = Buffer.alloc(n, 'a')
    const ours = textFrame(payload)
    const theirs = Buffer.concat(Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: true, rsv1: false }))
    assert.ok(ours.wire.equals(theirs), `length ${n}`)
    assert.equal(ours.payload, payload)
  }
})

test('envelopeOffset reads the offset of the bridge envelope, and of any JSON envelope', () => {
  assert.equal(envelopeOffset(envelopeOf('news', 41, 'abc', 1, '{"offset":7}')), 41)
  assert.equal(envelopeOffset(envelopeOf('a:b/c', 123456789, 'abc', 1, '1', 'req-1')), 123456789)
  assert.equal(envelopeOffset('{"offset":5,"channel":"x"}'), 5)
})

test('FrameWriter writes one framed buffer to many clients, batched per turn, and falls back to ws.send when closing', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
  t.after(() => wss.close())
  await new Promise<void>((resolve) => wss.once('listening', resolve))
  const port = (wss.address() as AddressInfo).port
  const server: WebSocket[] = []
  wss.on('connection', (ws) => server.push(ws))
  const clients = [0, 1, 2].map(() => new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false }))
  const got: string[][] = clients.map(() => [])
  clients.forEach((c, i) => c.on('message', (d) => got[i]!.push(d.toString())))
  await Promise.all(clients.map((c) => new Promise((resolve) => c.once('open', resolve))))
  const deadline = Date.now() + 5000
  while (server.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  // The internals the fast path relies on (ws 8): a change of ws shows here first.
  const inner = server[0] as unknown as { _socket: unknown; _sender: { _state: number; _queue: unknown[] } }
  assert.ok(inner._socket !== null && inner._sender._state === 0 && Array.isArray(inner._sender._queue))
  // And of Node's net.Socket, for FORKYARD_PUSH_MAX_LAG's backlog age.
  assert.equal(typeof dispatchedBytes(server[0]!), 'number')
  const writer = new FrameWriter()
  const frames = ['{"n":1}', '{"n":2}', '{"n":3}'].map((s) => textFrame(Buffer.from(s)))
  for (const f of frames) for (const ws of server) writer.write(ws, f)
  assert.equal(writer.counters.direct, 9)
  while (got.some((g) => g.length < 3) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  for (const g of got) assert.deepEqual(g, ['{"n":1}', '{"n":2}', '{"n":3}'])
  // Once ws has sent its close frame, nothing is written behind it.
  server[0]!.close(1000)
  writer.write(server[0]!, frames[0]!)
  assert.equal(writer.counters.viaWs, 1)
  for (const c of clients) c.terminate()
})
