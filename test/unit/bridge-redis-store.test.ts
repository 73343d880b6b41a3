import assert from 'node:assert/strict'
import { test } from 'node:test'
import { History } from '../../server/bridge/history.js'
import { dedupeIdentity } from '../../server/bridge/message-store.js'
import { entriesOf, rangeOf, redisKeys, type HistEntry } from '../../server/bridge/redis-scripts.js'
import { decodePayload, encodePayload, envelopeOf } from '../../server/bridge/wire.js'

test('a Redis payload decodes to the fields it was made of, data last even with newlines', () => {
  const p = { offset: 12, epoch: 'ab12', ts: 1700000000000, reqId: 'r-1', channel: 'room:1/a', data: '{"a":\n"b\\nc"}' }
  assert.deepEqual(decodePayload(encodePayload(p)), p)
  assert.deepEqual(decodePayload(encodePayload({ ...p, reqId: '' })), { ...p, reqId: '' })
})

test('a payload that is not one says what was expected and what came', () => {
  const short = decodePayload('1\nab\n5')
  assert.ok(short instanceof Error && /Expected 6 newline-separated fields/.test(short.message), String(short))
  const bad = decodePayload('x\nab\n5\n\nch\n{}')
  assert.ok(bad instanceof Error && /Expected an offset >= 1/.test(bad.message) && bad.message.includes('"x"'))
})

test('the Lua payload and encodePayload agree on the order of the fields', async () => {
  const { PUBLISH_LUA } = await import('../../server/bridge/redis-scripts.js')
  // offset, epoch (ARGV[2]), ts (ARGV[4]), reqId (ARGV[5]), channel (ARGV[3]), data (ARGV[6])
  assert.match(PUBLISH_LUA, /offset \.\. '\\n' \.\. ARGV\[2\] \.\. '\\n' \.\. ARGV\[4\] \.\. '\\n' \.\. ARGV\[5\] \.\. '\\n' \.\. ARGV\[3\] \.\. '\\n' \.\. ARGV\[6\]/)
})

test('keys: epoch in the name, an idempotency key never collides with (publisher, seq)', () => {
  const k = redisKeys('fy:')
  assert.equal(k.hist('e1', 'a'), 'fy:hist:e1:a')
  assert.equal(k.offsets('e1'), 'fy:offsets:e1')
  assert.equal(k.idem('e1', { pub: 'h:1:ab', seq: 3, idemKey: '' }), 'fy:idem:e1:p:h:1:ab:3')
  assert.equal(k.idem('e1', { pub: 'h:1:ab', seq: 3, idemKey: 'order-7' }), 'fy:idem:e1:k:order-7')
  assert.deepEqual(dedupeIdentity({ pub: 'h:1:ab', seq: 3, idemKey: 'order-7' }), { pub: 'key=order-7', seq: 0 })
})

test('XRANGE replies become entries; unreadable ones are skipped', () => {
  const raw = [['3-0', ['ts', '10', 'req', 'r', 'data', '{"x":1}']], ['4-0', ['ts', '11', 'req', '', 'data', '2']], ['bad'], ['5-0', ['ts', '12']]]
  assert.deepEqual(entriesOf(raw), [
    { offset: 3, ts: 10, reqId: 'r', data: '{"x":1}' },
    { offset: 4, ts: 11, reqId: '', data: '2' },
  ])
})

/** rangeOf must answer exactly what History.range answers for the same history. */
test('rangeOf answers like History.range: trims, epochs, unknown channels, age', () => {
  const limits = { count: 3, ageMs: 1000 }
  const h = new History('e1', limits)
  const all: HistEntry[] = []
  for (let i = 1; i <= 6; i++) {
    const ts = i * 100
    h.accept('p', i, 'a', String(i), ts, i === 2 ? 'req' : '')
    all.push({ offset: i, ts, reqId: i === 2 ? 'req' : '', data: String(i) })
  }
  const kept = all.slice(-limits.count) // MAXLEN
  const env = (e: HistEntry): string => envelopeOf('a', e.offset, 'e1', e.ts, e.data, e.reqId)
  const cases: [number, string | null, number][] = [
    [0, 'e1', 700], [2, 'e1', 700], [3, 'e1', 700], [5, 'e1', 700], [6, 'e1', 700], [7, 'e1', 700],
    [3, null, 700], [3, 'e0', 700], [0, 'e0', 700], [3, 'e1', 1550], [5, 'e1', 1650], [5, 'e1', 5000],
  ]
  for (const [after, asked, now] of cases) {
    const fromRedis = rangeOf('e1', 6, kept.filter((e) => e.offset > after), after, asked, now, limits.ageMs, env)
    assert.deepEqual(fromRedis, h.range('a', after, asked, now), `after ${after}, epoch ${asked}, now ${now}`)
  }
  for (const [after, asked] of [[0, null], [0, 'e1'], [0, 'e0'], [4, 'e1'], [4, 'e0'], [4, null]] as [number, string | null][]) {
    assert.deepEqual(rangeOf('e1', -1, [], after, asked, 0, 1000, env), h.range('unknown', after, asked, 0), `unknown channel, after ${after}, epoch ${asked}`)
  }
})

test('History dedupes an idempotency key across publishers (key=<k>, seq 0)', () => {
  const h = new History('e1', { count: 10, ageMs: 60_000 })
  const a = dedupeIdentity({ pub: 'host-a:1:aa', seq: 5, idemKey: 'order-7' })
  const b = dedupeIdentity({ pub: 'host-b:2:bb', seq: 1, idemKey: 'order-7' })
  const first = h.accept(a.pub, a.seq, 'c', '1', 0)
  const again = h.accept(b.pub, b.seq, 'c', '1', 0)
  assert.deepEqual([first.offset, first.duplicate, again.offset, again.duplicate], [1, false, 1, true])
  const other = dedupeIdentity({ pub: 'host-b:2:bb', seq: 1, idemKey: '' })
  assert.equal(h.accept(other.pub, other.seq, 'c', '1', 0).offset, 2, 'without a key, (publisher, seq) as before')
})
