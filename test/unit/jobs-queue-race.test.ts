/**
 * Idempotency keys under real concurrency: 8 processes enqueue the same key into one queue
 * directory at the same instant, 20 rounds. Exactly one answer may be `duplicate: false`, every
 * answer names the same id, and exactly one task file exists (measured before the fix: two
 * `duplicate: false` in 3 of 20 rounds, the loser rewriting the winner's task file).
 */
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

type Answer = { ok: true; result: { id: string; duplicate: boolean } } | { ok: false; code?: string; message: string }

const root = join(dirname(fileURLToPath(import.meta.url)), '../..')
const RACERS = 8
const ROUNDS = 20

function next(child: ChildProcess): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`racer ${child.pid} exited with ${code}`))
    child.once('exit', onExit)
    child.once('message', (m) => {
      child.off('exit', onExit)
      resolve(m as Answer)
    })
  })
}

test(`the same idempotency key from ${RACERS} processes at once: one winner, ${RACERS - 1} duplicates with its id, one task file (${ROUNDS} rounds)`, async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'fy-race-'))
  const children: ChildProcess[] = []
  t.after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
    rmSync(base, { recursive: true, force: true })
  })
  for (let i = 0; i < RACERS; i++) {
    const c = fork(join(root, 'test/fixtures/enqueue-racer.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.push(c)
  }
  await Promise.all(children.map((c) => next(c)))
  const bad: string[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const dir = join(base, `round-${round}`)
    const answers = Promise.all(children.map((c) => next(c)))
    const at = Date.now() + 60
    for (const c of children) c.send({ dir, key: `order-${round}`, payload: { cents: 100, round }, at })
    const got = await answers
    const results = got.map((a) => {
      if (!a.ok) throw new Error(`round ${round}: a racer threw ${a.code}: ${a.message}`)
      return a.result
    })
    const winners = results.filter((r) => !r.duplicate).length
    const ids = new Set(results.map((r) => r.id))
    const files = (['queued', 'running', 'done', 'failed'] as const).flatMap((s) => readdirSync(join(dir, s)).filter((f) => f.endsWith('.json')))
    if (winners !== 1 || ids.size !== 1 || files.length !== 1) bad.push(`round ${round}: ${winners} duplicate:false, ${ids.size} ids, ${files.length} task files`)
    if (ids.size === 1 && files.length === 1) assert.equal(files[0], `${[...ids][0]}.json`)
  }
  assert.deepEqual(bad, [], `${bad.length} of ${ROUNDS} rounds broke the key`)
})
