/** `forkyard serve --reload`: edit a source file, the next request sees the change. */
import assert from 'node:assert/strict'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { get } from '../helpers/load.js'
import { root, startServer, tempDir, until } from '../helpers/server.js'

test('development mode: editing the app reloads the workers and the next request sees the change', async (t) => {
  const dir = tempDir()
  const app = join(dir, 'app.mjs')
  copyFileSync(join(root, 'test/fixtures/app.mjs'), app)
  const s = await startServer(t, { app, cwd: dir, args: ['--reload'], env: { FORKYARD_JOBS: 'false' } })
  assert.match((await get(s.port, '/')).text, /^hello v1 /)
  writeFileSync(app, readFileSync(app, 'utf8').replace("export const VERSION = 'v1'", "export const VERSION = 'v2'"))
  const changed = await s.waitLog((l) => l.msg === 'source changed: reloading workers', 'change noticed', 5000)
  assert.deepEqual(changed.files, ['app.mjs'])
  await s.waitLog((l) => l.msg === 'reload complete', 'reload complete', 15_000)
  await until('next requests see v2', async () => /^hello v2 /.test((await get(s.port, '/')).text), 2000)
  for (let i = 0; i < 10; i++) assert.match((await get(s.port, '/')).text, /^hello v2 /)
})
