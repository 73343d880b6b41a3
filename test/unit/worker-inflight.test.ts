import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InflightTable, inflightBufferSize } from '../../server/worker/inflight.js'

test('a new table is empty', () => {
  const table = new InflightTable()
  assert.deepEqual(table.snapshot(1000), { requests: [], more: 0 })
  assert.equal(table.ticks(), 0)
  assert.equal(table.sab.byteLength, inflightBufferSize)
})

test('add() describes a request: method, path, reqId and age computed from startMs', () => {
  const table = new InflightTable()
  const slot = table.add('POST', '/api/orders', 'req-abc', 10_000)
  assert.ok(slot >= 0)
  assert.deepEqual(table.snapshot(12_345), { requests: [{ method: 'POST', path: '/api/orders', reqId: 'req-abc', ageMs: 2345 }], more: 0 })
})

test('ageMs is rounded and never negative', () => {
  const table = new InflightTable()
  table.add('GET', '/a', 'r1', 1000.4)
  assert.equal(table.snapshot(1500).requests[0]?.ageMs, 500)
  assert.equal(table.snapshot(900).requests[0]?.ageMs, 0)
})

test('remove() takes a request out of the snapshot', () => {
  const table = new InflightTable()
  const a = table.add('GET', '/a', 'ra', 0)
  const b = table.add('GET', '/b', 'rb', 0)
  assert.notEqual(a, b)
  table.remove(a)
  assert.deepEqual(
    table.snapshot(10).requests.map((r) => r.reqId),
    ['rb'],
  )
  table.remove(b)
  assert.deepEqual(table.snapshot(10), { requests: [], more: 0 })
})

test('snapshot lists requests oldest first', () => {
  const table = new InflightTable()
  table.add('GET', '/middle', 'r2', 500)
  table.add('GET', '/newest', 'r3', 900)
  table.add('GET', '/oldest', 'r1', 100)
  const snap = table.snapshot(1000)
  assert.deepEqual(
    snap.requests.map((r) => [r.path, r.ageMs]),
    [
      ['/oldest', 900],
      ['/middle', 500],
      ['/newest', 100],
    ],
  )
})

test('a long path is truncated to 300 characters and the reqId survives', () => {
  const table = new InflightTable()
  const path = '/' + 'p'.repeat(2000)
  table.add('GET', path, 'req-long', 0)
  const [req] = table.snapshot(0).requests
  assert.ok(req !== undefined)
  assert.equal(req.path, path.slice(0, 300))
  assert.equal(req.method, 'GET')
  assert.equal(req.reqId, 'req-long')
})

test('the longest request id (128 chars) with a truncated path and a long method still fits', () => {
  const table = new InflightTable()
  const reqId = 'r'.repeat(128)
  table.add('PROPPATCH', '/' + 'x'.repeat(1000), reqId, 0)
  const [req] = table.snapshot(0).requests
  assert.equal(req?.method, 'PROPPATCH')
  assert.equal(req?.reqId, reqId)
  assert.equal(req?.path.length, 300)
})

test('non-ASCII text round-trips through the shared buffer', () => {
  const table = new InflightTable()
  table.add('GET', '/caf\u00e9/\u6587', 'id-\u00e9', 0)
  assert.deepEqual(table.snapshot(0).requests[0], { method: 'GET', path: '/caf\u00e9/\u6587', reqId: 'id-\u00e9', ageMs: 0 })
})

test(
  'a long path of multi-byte characters keeps the reqId',

  () => {
    const table = new InflightTable()
    table.add('GET', '/' + '\u00e9'.repeat(400), 'req-1', 0)
    const [req] = table.snapshot(0).requests
    assert.equal(req?.reqId, 'req-1')
  },
)

test('a full table (64 slots) counts the extra requests in `more`', () => {
  const table = new InflightTable()
  const slots: number[] = []
  for (let i = 0; i < 66; i++) slots.push(table.add('GET', `/r${i}`, `id${i}`, i))
  assert.equal(new Set(slots.slice(0, 64)).size, 64)
  assert.ok(slots.slice(0, 64).every((s) => s >= 0 && s < 64))
  assert.deepEqual(slots.slice(64), [-1, -1])
  const snap = table.snapshot(100)
  assert.equal(snap.requests.length, 64)
  assert.equal(snap.more, 2)
  // Oldest first: the first request added is the oldest.
  assert.equal(snap.requests[0]?.reqId, 'id0')
  assert.equal(snap.requests[63]?.reqId, 'id63')
})

test('removing an undescribed request (-1) decrements `more`', () => {
  const table = new InflightTable()
  for (let i = 0; i < 64; i++) table.add('GET', '/', `id${i}`, 0)
  const extra1 = table.add('GET', '/', 'x1', 0)
  const extra2 = table.add('GET', '/', 'x2', 0)
  assert.equal(table.snapshot(0).more, 2)
  table.remove(extra1)
  assert.equal(table.snapshot(0).more, 1)
  table.remove(extra2)
  assert.equal(table.snapshot(0).more, 0)
})

test('removing a request frees its slot for the next one', () => {
  const table = new InflightTable()
  const slots: number[] = []
  for (let i = 0; i < 64; i++) slots.push(table.add('GET', '/', `id${i}`, 0))
  assert.equal(table.add('GET', '/', 'overflow', 0), -1)
  table.remove(-1)
  const freed = slots[10]
  assert.ok(freed !== undefined)
  table.remove(freed)
  assert.equal(table.snapshot(0).requests.length, 63)
  assert.equal(table.add('PUT', '/again', 'new', 0), freed)
  const snap = table.snapshot(0)
  assert.equal(snap.requests.length, 64)
  assert.equal(snap.more, 0)
  assert.ok(snap.requests.some((r) => r.reqId === 'new' && r.method === 'PUT' && r.path === '/again'))
  assert.ok(!snap.requests.some((r) => r.reqId === 'id10'))
})

test('a second table over the same SharedArrayBuffer reads the same requests (the watchdog view)', () => {
  const writer = new InflightTable()
  const reader = new InflightTable(writer.sab)
  assert.equal(reader.sab, writer.sab)
  const a = writer.add('GET', '/slow', 'r-slow', 100)
  writer.add('POST', '/fast', 'r-fast', 900)
  assert.deepEqual(reader.snapshot(1000), {
    requests: [
      { method: 'GET', path: '/slow', reqId: 'r-slow', ageMs: 900 },
      { method: 'POST', path: '/fast', reqId: 'r-fast', ageMs: 100 },
    ],
    more: 0,
  })
  writer.remove(a)
  assert.deepEqual(
    reader.snapshot(1000).requests.map((r) => r.reqId),
    ['r-fast'],
  )
})

test('a second table over the same buffer sees the `more` counter', () => {
  const writer = new InflightTable()
  const reader = new InflightTable(writer.sab)
  for (let i = 0; i < 65; i++) writer.add('GET', '/', `id${i}`, 0)
  const snap = reader.snapshot(0)
  assert.equal(snap.requests.length, 64)
  assert.equal(snap.more, 1)
})

test('tick() increments ticks(), visible through another table on the same buffer', () => {
  const writer = new InflightTable()
  const reader = new InflightTable(writer.sab)
  assert.equal(reader.ticks(), 0)
  writer.tick()
  writer.tick()
  writer.tick()
  assert.equal(writer.ticks(), 3)
  assert.equal(reader.ticks(), 3)
})

test('ticks do not disturb the request table', () => {
  const table = new InflightTable()
  table.add('GET', '/x', 'rx', 0)
  for (let i = 0; i < 10; i++) table.tick()
  assert.deepEqual(table.snapshot(5), { requests: [{ method: 'GET', path: '/x', reqId: 'rx', ageMs: 5 }], more: 0 })
})
