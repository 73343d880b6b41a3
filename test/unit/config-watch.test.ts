import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import pino from 'pino'
import { readEnvFile, snapshot } from '../../server/config/env-file.js'
import { EnvWatcher, type ConfigChange } from '../../server/config/watch.js'

interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

interface Harness {
  dir: string
  path: string
  watcher: EnvWatcher
  lines: LogLine[]
  changes: ConfigChange[]
}

/** A watcher over a temp .env with `content`, logging into `lines`; `base` is the process environment. */
function harness(t: TestContext, content: string, base: Record<string, string> = {}, files: Record<string, string> = {}): Harness {
  const dir = mkdtempSync(join(tmpdir(), 'fy-watch-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  const path = join(dir, '.env')
  writeFileSync(path, content)
  const lines: LogLine[] = []
  const log = pino({}, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) })
  const file = readEnvFile(path)
  const watcher = new EnvWatcher(path, base, snapshot({ ...file, ...base }, Object.keys(file)), log)
  t.after(() => watcher.close())
  const changes: ConfigChange[] = []
  watcher.on('change', (c) => changes.push(c))
  return { dir, path, watcher, lines, changes }
}

test('a valid edit emits a change with the changed keys and updates current', (t) => {
  const h = harness(t, 'GREETING=hi\nFORKYARD_TIMEOUT=30s\n')
  const before = h.watcher.current
  writeFileSync(h.path, 'GREETING=hello\nFORKYARD_TIMEOUT=10s\nFORKYARD_WORKERS=3\n')
  assert.equal(h.watcher.check('test'), true)
  assert.equal(h.changes.length, 1)
  const c = h.changes[0]!
  assert.deepEqual(c.changed, ['FORKYARD_TIMEOUT', 'FORKYARD_WORKERS', 'GREETING'])
  assert.deepEqual(c.restart, ['FORKYARD_WORKERS'])
  assert.equal(h.watcher.current, c.next)
  assert.equal(h.watcher.current.server.timeoutMs, 10_000)
  assert.notEqual(h.watcher.current.version, before.version)
  const info = h.lines.find((l) => l.msg === 'config changed')
  assert.ok(info !== undefined, JSON.stringify(h.lines))
  assert.equal(info.level, 30)
  assert.deepEqual(info.changed, { FORKYARD_TIMEOUT: '10s', FORKYARD_WORKERS: '3', GREETING: 'hello' })
  assert.equal(info.from, before.version)
  assert.equal(info.version, c.next.version)
})

test('the same content again is no change: nothing emitted, nothing logged', (t) => {
  const h = harness(t, 'GREETING=hi\n')
  assert.equal(h.watcher.check('test'), false)
  writeFileSync(h.path, '# only a comment added\nGREETING=hi\n')
  assert.equal(h.watcher.check('test'), false)
  assert.equal(h.changes.length, 0)
  assert.deepEqual(h.lines, [])
})

test('a bad edit emits nothing, keeps current and logs an error naming the key', (t) => {
  const h = harness(t, 'FORKYARD_WORKERS=2\nGREETING=hi\n')
  const before = h.watcher.current
  writeFileSync(h.path, 'FORKYARD_WORKERS=two\nGREETING=hello\n')
  assert.equal(h.watcher.check('test'), false)
  assert.equal(h.changes.length, 0)
  assert.equal(h.watcher.current, before)
  assert.equal(h.lines.length, 1, JSON.stringify(h.lines))
  const line = h.lines[0]!
  assert.equal(line.level, 50)
  assert.ok(line.msg.startsWith('config change refused'), line.msg)
  assert.match(line.msg, /FORKYARD_WORKERS/)
  assert.match(line.msg, /"two"/)
  assert.equal(line.version, before.version)
  // A later good edit is applied against the last good configuration.
  writeFileSync(h.path, 'FORKYARD_WORKERS=2\nGREETING=hello\n')
  assert.equal(h.watcher.check('test'), true)
  assert.deepEqual(h.changes.map((c) => c.changed), [['GREETING']])
})

test('a missing file logs a warning and keeps the configuration', (t) => {
  const h = harness(t, 'GREETING=hi\n')
  const before = h.watcher.current
  rmSync(h.path)
  assert.equal(h.watcher.check('test'), false)
  assert.equal(h.watcher.current, before)
  assert.equal(h.changes.length, 0)
  assert.equal(h.lines.length, 1)
  const line = h.lines[0]!
  assert.equal(line.level, 40)
  assert.match(line.msg, /config file missing/)
  assert.equal(line.file, h.path)
  assert.equal(line.why, 'test')
})

test('a key pinned by the process environment is warned about and not applied', (t) => {
  const h = harness(t, 'GREETING=hi\n', { FORKYARD_TIMEOUT: '20s' })
  writeFileSync(h.path, 'GREETING=hi\nFORKYARD_TIMEOUT=5s\n')
  assert.equal(h.watcher.check('test'), false)
  assert.equal(h.changes.length, 0)
  assert.equal(h.watcher.current.server.timeoutMs, 20_000)
  const warn = h.lines.find((l) => l.level === 40)
  assert.ok(warn !== undefined, JSON.stringify(h.lines))
  assert.deepEqual(warn.keys, ['FORKYARD_TIMEOUT'])
})

test('secrets are logged as (secret), never their value', (t) => {
  const schema = JSON.stringify({ DATABASE_URL: { type: 'string', secret: true, restart: true } })
  const dir = mkdtempSync(join(tmpdir(), 'fy-watch-schema-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const schemaPath = join(dir, 'schema.json')
  writeFileSync(schemaPath, schema)
  const h = harness(t, `FORKYARD_APP_SCHEMA=${schemaPath}\nDATABASE_URL=postgres://old-hunter2\nAPI_KEY=old-key-value\nGREETING=hi\n`)
  writeFileSync(h.path, `FORKYARD_APP_SCHEMA=${schemaPath}\nDATABASE_URL=postgres://new-hunter2\nAPI_KEY=new-key-value\nDB_PASSWORD=pw-value\nGREETING=hello\n`)
  assert.equal(h.watcher.check('test'), true)
  const info = h.lines.find((l) => l.msg === 'config changed')
  assert.ok(info !== undefined)
  assert.deepEqual(info.changed, { API_KEY: '(secret)', DATABASE_URL: '(secret)', DB_PASSWORD: '(secret)', GREETING: 'hello' })
  assert.deepEqual(info.restart, ['DATABASE_URL'])
  const all = JSON.stringify(h.lines)
  for (const value of ['hunter2', 'key-value', 'pw-value']) assert.ok(!all.includes(value), `${value} logged: ${all}`)
})

test('a refused secret value is not logged either', (t) => {
  const h = harness(t, 'API_TOKEN=1234\n', {}, { 'schema.json': JSON.stringify({ API_TOKEN: { type: 'int', secret: true } }) })
  writeFileSync(h.path, `FORKYARD_APP_SCHEMA=${join(h.dir, 'schema.json')}\nAPI_TOKEN=tok-s3cr3t-value\n`)
  assert.equal(h.watcher.check('test'), false)
  const refused = h.lines.find((l) => l.msg.startsWith('config change refused'))
  assert.ok(refused !== undefined, JSON.stringify(h.lines))
  assert.match(refused.msg, /API_TOKEN/)
  assert.ok(!JSON.stringify(h.lines).includes('s3cr3t'), JSON.stringify(h.lines))
})
