import assert from 'node:assert/strict'
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { dedupeIdentity } from '../../server/bridge/message-store.js'
import { HistoryStore } from '../../server/bridge/store.js'

const limits = { count: 100, ageMs: 3_600_000 }

test('history written to the file comes back with the same epoch, offsets and dedupe state', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-store-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const a = new HistoryStore(dir)
  const first = a.open(limits, 1000)
  assert.equal(first.newEpoch, true)
  for (let i = 1; i <= 3; i++) {
    const r = first.history.accept('pub', i, 'news', JSON.stringify({ i }), 1000 + i)
    a.append('news', r.stored!)
  }
  a.close()
  const b = new HistoryStore(dir)
  const second = b.open(limits, 2000)
  assert.equal(second.newEpoch, false)
  assert.equal(second.history.epoch, first.history.epoch)
  assert.equal(second.restored, 3)
  const range = second.history.range('news', 1, first.history.epoch, 2000)
  assert.deepEqual(range.messages.map((m) => (JSON.parse(m) as { data: unknown }).data), [{ i: 2 }, { i: 3 }])
  assert.equal(second.history.accept('pub', 3, 'news', '{}', 2000).duplicate, true, 'dedupe survives')
  assert.equal(second.history.accept('pub', 4, 'news', '{}', 2000).offset, 4)
  b.close()
})

test('a line cut short by a crash is skipped and counted; the rest is restored', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-store-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const a = new HistoryStore(dir)
  const { history } = a.open(limits, 0)
  a.append('c', history.accept('p', 1, 'c', '"ok"', 0).stored!)
  a.close()
  appendFileSync(join(dir, 'bridge-history.jsonl'), '{"c":"c","o":2,"t":0,"p":"p","s":2,"d":"tr')
  const b = new HistoryStore(dir)
  const r = b.open(limits, 0)
  assert.equal(r.restored, 1)
  assert.equal(r.corrupt, 1)
  assert.equal(r.history.accept('p', 9, 'c', '1', 0).offset, 2, 'the unacknowledged line does not count')
  b.close()
  // Reopening compacted the file: no broken line left.
  for (const line of readFileSync(join(dir, 'bridge-history.jsonl'), 'utf8').split('\n').filter((l) => l !== '')) JSON.parse(line)
})

test('without the state file a new epoch starts', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-store-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const a = new HistoryStore(dir)
  const e1 = a.open(limits, 0).history.epoch
  a.close()
  rmSync(join(dir, 'bridge-state.json'))
  const b = new HistoryStore(dir)
  const r = b.open(limits, 0)
  assert.notEqual(r.history.epoch, e1)
  assert.equal(r.newEpoch, true)
  b.close()
})

test('a damaged line in the middle of the file starts a new epoch: a resume across the hole is never "recovered"', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-store-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const a = new HistoryStore(dir)
  const first = a.open(limits, 0)
  for (let i = 1; i <= 5; i++) a.append('c', first.history.accept('p', i, 'c', String(i), 0).stored!)
  a.close()
  // Offset 3's line damaged on disk (not the last line: not a write cut short by a crash).
  const file = join(dir, 'bridge-history.jsonl')
  const lines = readFileSync(file, 'utf8').split('\n')
  lines[2] = lines[2]!.slice(0, 10) + '\u0000garbage'
  writeFileSync(file, lines.join('\n'))
  const b = new HistoryStore(dir)
  const r = b.open(limits, 0)
  assert.equal(r.damaged, true)
  assert.equal(r.newEpoch, true)
  assert.notEqual(r.history.epoch, first.history.epoch)
  const resume = r.history.range('c', 1, first.history.epoch, 0)
  assert.equal(resume.complete, false, 'the old epoch cannot be resumed: the subscriber is told (recovered: false)')
  b.close()
})

test('an idempotency key is persisted like any dedupe entry: a resend from another publisher after a restart is a duplicate', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-store-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const a = new HistoryStore(dir)
  const first = a.open(limits, 1000)
  const id = dedupeIdentity({ pub: 'host-a:1:aa', seq: 1, idemKey: 'order-7' })
  const r = first.history.accept(id.pub, id.seq, 'news', '1', 1000)
  a.append('news', r.stored!)
  a.close()
  const b = new HistoryStore(dir)
  const second = b.open(limits, 2000)
  const again = dedupeIdentity({ pub: 'host-b:9:bb', seq: 42, idemKey: 'order-7' })
  assert.deepEqual(second.history.accept(again.pub, again.seq, 'news', '1', 2000).duplicate, true)
  b.close()
})
