/**
 * Idempotency keys under real concurrency: 8 child processes enqueue the same key into one queue
 * directory at the same instant (each spins until an agreed millisecond), 20 rounds. Exactly one
 * answer may be `duplicate: false`, every answer names the same id, and exactly one task file
 * exists. Measured before the fix with this test: 20 of 20 rounds broken, 2 to 8 `duplicate: false`
 * each, the losers rewriting the winner's task file (the issue saw 3 of 20 without the spin).
 * Also raced: two payloads for one key (one wins, the other is refused), and a key left by a
 * killed enqueue (exactly one racer writes its task).
 */
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { codes } from '../../server/errors.js'
import { newTaskId } from '../../server/jobs/queue.js'

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

const children: ChildProcess[] = []
const base = mkdtempSync(join(tmpdir(), 'fy-race-'))

before(async () => {
  for (let i = 0; i < RACERS; i++) {
    children.push(fork(join(root, 'test/fixtures/enqueue-racer.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  }
  await Promise.all(children.map((c) => next(c)))
})

after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  rmSync(base, { recursive: true, force: true })
})

/** Every racer enqueues `key` into `dir` at the same instant, racer i with payloadOf(i). */
async function race(dir: string, key: string, payloadOf: (i: number) => unknown): Promise<Answer[]> {
  const answers = Promise.all(children.map((c) => next(c)))
  const at = Date.now() + 60
  children.forEach((c, i) => c.send({ dir, key, payload: payloadOf(i), at }))
  return answers
}

function taskFiles(dir: string): string[] {
  return (['queued', 'running', 'done', 'failed'] as const).flatMap((s) => readdirSync(join(dir, s)).filter((f) => f.endsWith('.json')))
}

test(`the same idempotency key from ${RACERS} processes at once: one winner, ${RACERS - 1} duplicates with its id, one task file (${ROUNDS} rounds)`, async () => {
  const bad: string[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const dir = join(base, `same-${round}`)
    const results = (await race(dir, `order-${round}`, () => ({ cents: 100, round }))).map((a) => {
      if (!a.ok) throw new Error(`round ${round}: a racer threw ${a.code}: ${a.message}`)
      return a.result
    })
    const winners = results.filter((r) => !r.duplicate).length
    const ids = new Set(results.map((r) => r.id))
    const files = taskFiles(dir)
    if (winners !== 1 || ids.size !== 1 || files.length !== 1) bad.push(`round ${round}: ${winners} duplicate:false, ${ids.size} ids, ${files.length} task files`)
    if (ids.size === 1 && files.length === 1) assert.equal(files[0], `${[...ids][0]}.json`)
  }
  assert.deepEqual(bad, [], `${bad.length} of ${ROUNDS} rounds broke the key`)
})

test('two payloads racing for one key: one wins, its twins are duplicates, every other payload is refused', async () => {
  const bad: string[] = []
  for (let round = 0; round < ROUNDS / 2; round++) {
    const dir = join(base, `conflict-${round}`)
    const answers = await race(dir, 'k', (i) => ({ v: i % 2 }))
    const wins = answers.flatMap((a, i) => (a.ok && !a.result.duplicate ? [i] : []))
    if (wins.length !== 1) {
      bad.push(`round ${round}: ${wins.length} winners`)
      continue
    }
    const side = wins[0]! % 2
    answers.forEach((a, i) => {
      if (i % 2 === side && !(a.ok && a.result.duplicate === (i !== wins[0]))) bad.push(`round ${round}: racer ${i} (winning payload) got ${JSON.stringify(a)}`)
      if (i % 2 !== side && (a.ok || a.code !== codes.TASK_KEY_CONFLICT)) bad.push(`round ${round}: racer ${i} (other payload) got ${JSON.stringify(a)}`)
    })
    if (taskFiles(dir).length !== 1) bad.push(`round ${round}: ${taskFiles(dir).length} task files`)
  }
  assert.deepEqual(bad, [])
})

test('a key left by a killed enqueue, raced for by every process: one of them writes the task, with the id the key names', async () => {
  const bad: string[] = []
  for (let round = 0; round < ROUNDS / 2; round++) {
    const dir = join(base, `orphan-${round}`)
    mkdirSync(join(dir, 'keys'), { recursive: true })
    const orphan = newTaskId()
    const keyFile = createHash('sha256').update('charge\0k').digest('hex').slice(0, 32)
    // pid 2^22 + 1: above any pid_max default, so certainly gone.
    writeFileSync(join(dir, 'keys', keyFile), JSON.stringify({ id: orphan, pid: 4_194_305, host: hostname(), at: Date.now() }))
    const answers = await race(dir, 'k', () => ({ cents: 1 }))
    const results = answers.flatMap((a) => (a.ok ? [a.result] : []))
    const winners = results.filter((r) => !r.duplicate).length
    if (results.length !== RACERS || winners !== 1 || results.some((r) => r.id !== orphan) || taskFiles(dir).length !== 1) {
      bad.push(`round ${round}: ${JSON.stringify(answers)}, ${taskFiles(dir).length} task files`)
    }
    if (readdirSync(join(dir, 'keys')).length !== 1) bad.push(`round ${round}: keys/ holds ${readdirSync(join(dir, 'keys')).join(', ')}`)
  }
  assert.deepEqual(bad, [])
})
