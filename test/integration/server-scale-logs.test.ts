/**
 * SIGTTIN/SIGTTOU scaling, and 10 KiB log lines written by every worker at once: one writer per
 * output, so every line arrives whole and parses.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { get } from '../helpers/load.js'
import { root, startServer, until } from '../helpers/server.js'

const app = join(root, 'test/fixtures/app.mjs')

test('SIGTTIN adds a worker, SIGTTOU removes one, never below one', async (t) => {
  const s = await startServer(t, { app, env: { FORKYARD_WORKERS: '2' } })
  s.child.kill('SIGTTIN')
  await until('3 ready', async () => (await s.status()).readyWorkers === 3)
  assert.equal((await s.status()).expectedWorkers, 3)
  // Two identical signals sent back to back may be delivered once (signal(7)): wait in between.
  s.child.kill('SIGTTOU')
  await until('2 workers left', async () => (await s.status()).workers.length === 2)
  s.child.kill('SIGTTOU')
  await until('1 worker left', async () => {
    const st = await s.status()
    return st.expectedWorkers === 1 && st.workers.length === 1
  })
  s.child.kill('SIGTTOU')
  await s.waitLog((l) => l.msg === 'not removing the last worker', 'refusal to remove the last worker')
  const st = await s.status()
  assert.equal(st.workers.length, 1)
  assert.equal((await get(s.port, '/')).status, 200)
})

test('10 KiB log lines from every worker at once: every line arrives whole and parses', async (t) => {
  const s = await startServer(t, { app, env: { FORKYARD_WORKERS: '2' } })
  const rounds = 10
  const perRound = 24
  // A slow reader: the pipe fills, writers get partial writes; that is when shared pipes split lines.
  s.pauseOutput(true)
  for (let r = 0; r < rounds; r++) {
    const batch = Array.from({ length: perRound }, () => get(s.port, '/log?kb=10'))
    for (const res of await Promise.all(batch)) assert.equal(res.status, 200)
  }
  s.pauseOutput(false)
  s.child.kill('SIGTERM')
  const { code } = await s.exited
  assert.equal(code, 0)
  const unparsed = s.logs.filter((l) => 'unparsed' in l)
  assert.deepEqual(unparsed.slice(0, 2), [], `${unparsed.length} lines did not parse`)
  const big = s.logs.filter((l) => l.msg === 'big')
  assert.equal(big.length, rounds * perRound)
  for (const l of big) assert.equal((l.pad as string).length, 10 * 1024)
  assert.equal(new Set(big.map((l) => l.pid)).size, 2, 'both workers wrote')
})
