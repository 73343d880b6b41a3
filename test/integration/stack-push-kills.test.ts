/**
 * The silent gap, through the stack as users run it: 50 of the kit's browser clients
 * through nginx, a publisher at 50 msg/s, then kill -9 of push, kill -9 of the bridge and
 * `forkyard reload` while it runs; five rounds in a row. Every client must see every acknowledged
 * offset in order, or be told (ongap / reset) exactly where it could not: never a silent gap.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import WebSocket from 'ws'
import { PushClient, type PushGap, type PushMessage } from '../../client/push-client.js'
import { startProc } from '../helpers/proc.js'
import { startStackRun } from '../helpers/stack.js'
import { root, sleep, until } from '../helpers/server.js'

const publisher = join(root, 'test/fixtures/publisher.mjs')
const WS = WebSocket as unknown as typeof globalThis.WebSocket
const CLIENTS = 50
const ROUNDS = 5

test('50 clients through nginx, 50 msg/s, kill -9 of push and bridge and a reload, five rounds: no silent gap', { timeout: 10 * 60_000 }, async (t) => {
  const s = await startStackRun(t, { FORKYARD_PUSH_CONN_RATE: '100000', FORKYARD_PUSH_HEARTBEAT_STALE: '2s' })
  const summary: string[] = []
  for (let round = 1; round <= ROUNDS; round++) {
    const channel = `round${round}`
    const clients = Array.from({ length: CLIENTS }, () => {
      const got: { epoch: string; offset: number }[] = []
      const gaps: PushGap[] = []
      const c = new PushClient(`ws://127.0.0.1:${s.port}/ws`, { WebSocket: WS, minDelayMs: 50, maxDelayMs: 1000 })
      c.subscribe(channel, (_d, msg: PushMessage) => got.push({ epoch: msg.epoch, offset: msg.offset }))
      c.ongap = (g) => gaps.push(g)
      return { c, got, gaps }
    })
    t.after(() => clients.forEach(({ c }) => c.close()))
    await until(`round ${round}: all subscribed`, () => clients.every(({ c }) => c.position(channel)?.epoch !== null), 30_000, 100)
    const count = 600
    const pub = startProc(t, [], { FORKYARD_RUN_DIR: s.runDir, NAME: `r${round}`, CHANNEL: channel, COUNT: String(count), INTERVAL_MS: '20' }, { script: publisher })
    await sleep(2000)
    process.kill(s.programPid('push')!, 'SIGKILL')
    await sleep(3000)
    process.kill(s.programPid('bridge')!, 'SIGKILL')
    await sleep(3000)
    const reload = s.cli('reload')
    assert.equal(reload.status, 0, reload.stdout + reload.stderr)
    const done = await pub.waitLog((l) => l.done === true, `round ${round}: publisher done`, 120_000)
    assert.equal(done.acked, count, pub.raw())
    // Caught up: every client at the same last offset of the same epoch.
    const end = await until(`round ${round}: every client caught up`, () => {
      const ends = clients.map(({ got }) => got.at(-1))
      const first = ends[0]
      return first !== undefined && ends.every((e) => e?.epoch === first.epoch && e.offset === first.offset) ? first : null
    }, 60_000, 200)
    let silent = 0
    for (const [i, { got, gaps }] of clients.entries()) {
      // Within an epoch offsets go up by one; where they do not, or the epoch changes, the client was told.
      const holes: string[] = []
      for (let k = 1; k < got.length; k++) {
        const a = got[k - 1]!
        const b = got[k]!
        if (a.epoch === b.epoch ? b.offset !== a.offset + 1 : b.offset !== 1) holes.push(`${a.epoch}:${a.offset} -> ${b.epoch}:${b.offset}`)
      }
      const told = gaps.length
      if (holes.length > told) {
        silent++
        if (silent <= 3) process.stdout.write(`# round ${round} client ${i}: ${holes.length} holes (${holes.slice(0, 3).join('; ')}), told ${told} times\n`)
      }
    }
    summary.push(`round ${round}: ${count} acknowledged, last ${end.epoch}:${end.offset}, clients with a silent gap ${silent}, gaps announced ${clients.reduce((n, c) => n + c.gaps.length, 0)}`)
    clients.forEach(({ c }) => c.close())
    assert.equal(silent, 0, `round ${round}: no client with a silent gap`)
    await until(`round ${round}: ready again`, async () => (await fetch(s.url('/readyz'))).status === 200, 30_000, 200)
  }
  process.stdout.write(summary.map((l) => `# ${l}\n`).join(''))
})
