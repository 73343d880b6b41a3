/** The jobs process prunes finished tasks itself, at start and then periodically, with live retention values. */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import pino from 'pino'
import { TaskQueue } from '../../server/jobs/queue.js'
import { TaskRunner } from '../../server/jobs/runner.js'

test('the runner prunes at start and on every pass, with the retention it has now', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-prune-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const q = new TaskQueue(dir)
  const finish = (): string => q.move(q.claim(q.get(q.enqueue('x', null).id)!)!, 'done', {}).id
  const ids = [finish(), finish(), finish(), finish()]
  const lines: { msg: string; removed?: number }[] = []
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as { msg: string }) })
  const runner = new TaskRunner(q, log, 1, { maxAgeMs: 0, maxCount: 3 }, 50)
  runner.start()
  t.after(() => runner.stop(100))
  assert.equal(q.counts().done, 3, 'pruned at start')
  assert.equal(q.get(ids[0]!), null, 'the oldest went')
  assert.deepEqual(lines.find((l) => l.msg === 'finished tasks pruned')?.removed, 1)
  runner.retention = { maxAgeMs: 0, maxCount: 1 }
  const deadline = Date.now() + 5000
  while (q.counts().done !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.deepEqual(q.list(10).map((r) => r.id), [ids[3]])
  runner.retention = { maxAgeMs: 0, maxCount: 0 }
  assert.equal(runner.prune(), 0, '0 and 0: nothing pruned')
})
