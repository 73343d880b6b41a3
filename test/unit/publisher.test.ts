import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { Publisher } from '../../server/bridge/publisher.js'

test('with no bridge, publishes wait in the bounded queue; past it they reject with a clear error and are counted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-pub-'))
  const p = new Publisher({ dir, queue: 3, resendMs: 60_000 })
  const waiting = [p.publish('a', 1), p.publish('a', 2), p.publish('a', 3)]
  for (const w of waiting) w.catch(() => undefined)
  let counted = 0
  p.onQueueFull = (n) => (counted = n)
  await assert.rejects(p.publish('a', 4), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FORKYARD_ERR_PUBLISH_QUEUE_FULL')
    assert.match(err.message, /FORKYARD_PUBLISH_QUEUE/)
    return true
  })
  assert.equal(p.stats.rejectedQueueFull, 1)
  assert.equal(counted, 1)
  assert.equal(p.waiting, 3)
  await p.close()
  for (const w of waiting) await assert.rejects(w, /closed before the bridge acknowledged/)
})

test('bad channel names and data that is not JSON are refused before queueing', async () => {
  const p = new Publisher({ dir: mkdtempSync(join(tmpdir(), 'fy-pub-')), queue: 10, resendMs: 60_000 })
  await assert.rejects(p.publish('has space', 1), { code: 'FORKYARD_ERR_PUBLISH_INVALID' })
  await assert.rejects(p.publish('$sys:x'.replace('sys:', 'other'), 1), { code: 'FORKYARD_ERR_PUBLISH_INVALID' })
  await assert.rejects(p.publish('ok', undefined), { code: 'FORKYARD_ERR_PUBLISH_INVALID' })
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  await assert.rejects(p.publish('ok', cyclic), { code: 'FORKYARD_ERR_PUBLISH_INVALID' })
  assert.equal(p.waiting, 0)
  await p.close()
})

test('an idempotency key outside the rule is refused before queueing, saying what was expected', async () => {
  const p = new Publisher({ dir: mkdtempSync(join(tmpdir(), 'fy-pub-')), queue: 10, resendMs: 60_000 })
  for (const bad of ['', 'has space', 'x'.repeat(129), 'new\nline']) {
    await assert.rejects(p.publish('ok', 1, { idempotencyKey: bad }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FORKYARD_ERR_PUBLISH_INVALID')
      assert.match(err.message, /Expected an idempotency key of 1-128 characters/)
      return true
    })
  }
  assert.equal(p.waiting, 0)
  const ok = p.publish('ok', 1, { idempotencyKey: 'order-7:a.b_c' })
  ok.catch(() => undefined)
  assert.equal(p.waiting, 1, 'a valid key is queued')
  await p.close()
})
