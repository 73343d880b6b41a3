/**
 * Failure 4 (background.md): a config change that reached only one process. Here an .env edit is
 * validated once, then reaches every worker within a second; a bad edit changes nothing and says
 * why; a setting that needs new processes triggers a rolling reload by itself.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { get, startLoad } from '../helpers/load.js'
import { root, sleep, startServer, tempDir, until } from '../helpers/server.js'

const app = join(root, 'test/fixtures/config-app.mjs')

test('an .env edit reaches every worker within 1 s; a bad edit is refused and logged; a worker-count edit reloads by itself', async (t) => {
  const dir = tempDir()
  writeFileSync(join(dir, 'schema.json'), JSON.stringify({ GREETING: { type: 'string' }, MAX_ITEMS: { type: 'int', min: 1, max: 1000 } }))
  const envFile = join(dir, '.env')
  const write = (greeting: string, maxItems: string, workers = '4'): void =>
    writeFileSync(envFile, `FORKYARD_APP_SCHEMA=${join(dir, 'schema.json')}\nFORKYARD_WORKERS=${workers}\nGREETING=${greeting}\nMAX_ITEMS=${maxItems}\n`)
  write('hello', '10')
  // FORKYARD_WORKERS comes from the file here, so the test env must not pin it.
  const s = await startServer(t, { app, cwd: dir, env: { FORKYARD_WORKERS: '', FORKYARD_ACCESS_LOG: 'false' } })
  const st = await s.status()
  assert.equal(st.workers.length, 4)
  const first = JSON.parse((await get(s.port, '/')).text) as { greeting: string; maxItems: number; version: string }
  assert.deepEqual([first.greeting, first.maxItems], ['hello', 10])

  // A valid edit: every worker applies it within a second.
  const editedAt = Date.now()
  write('bonjour', '20')
  const changed = await s.waitLog((l) => l.msg === 'config changed', 'config changed')
  const version = changed.version as string
  // Every worker and the jobs process (where the app's tasks and singletons run).
  const applied = (): typeof s.logs => s.logs.filter((l) => l.msg === 'config applied' && l.version === version)
  await until('all 4 workers and the jobs process applied', () => applied().filter((l) => l.role === 'worker').length === 4 && applied().some((l) => l.role === 'jobs'), 3000, 10)
  const appliedAt = applied().map((l) => Date.parse(String(l.time)))
  for (const at of appliedAt) assert.ok(at - editedAt <= 1000, `applied ${at - editedAt} ms after the edit`)
  // And every worker now answers with it (fresh connections reach all of them).
  const seen = new Map<number, { greeting: string; maxItems: number; version: string }>()
  for (let i = 0; i < 200 && seen.size < 4; i++) {
    const r = JSON.parse((await get(s.port, '/')).text) as { pid: number; greeting: string; maxItems: number; version: string }
    seen.set(r.pid, r)
  }
  assert.equal(seen.size, 4, 'reached every worker')
  for (const r of seen.values()) assert.deepEqual([r.greeting, r.maxItems, r.version], ['bonjour', 20, version])
  // Status shows the version each worker runs (reported with its next heartbeat).
  await until('status shows the version of every worker', async () => (await s.status()).workers.every((w) => w.configVersion === version), 5000)
  assert.equal((await s.status()).configVersion, version)

  // A bad edit: refused with key, value and expectation; nothing changes anywhere.
  write('hola', 'lots')
  const refused = await s.waitLog((l) => l.msg?.startsWith('config change refused') === true, 'refusal')
  assert.match(String(refused.msg), /Expected MAX_ITEMS to be a whole number/)
  assert.match(String(refused.msg), /"lots"/)
  await sleep(600)
  for (let i = 0; i < 20; i++) {
    const r = JSON.parse((await get(s.port, '/')).text) as { greeting: string; version: string }
    assert.deepEqual([r.greeting, r.version], ['bonjour', version])
  }

  // A setting that needs new processes: a rolling reload by itself, under load, no failed request.
  const load = startLoad(s.port, { path: '/', concurrency: 6, check: (code) => (code === 200 ? null : `status ${code}`) })
  await until('load', () => load.result.ok > 100)
  write('bonjour', '20', '2')
  await s.waitLog((l) => l.msg === 'config change needs new worker processes: rolling reload', 'reload triggered')
  await s.waitLog((l) => l.msg === 'reload complete', 'reload complete', 30_000)
  const result = await load.stop()
  assert.deepEqual(result.failures.slice(0, 5), [], `${result.failures.length} failed requests`)
  await until('2 workers', async () => (await s.status()).workers.length === 2, 15_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${s.raw()}`)
  })
})
