import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { evaluate, isSecret, readEnvFile, restartKeys, snapshot, versionOf, type EnvSnapshot, type Evaluation } from '../../server/config/env-file.js'
import { ForkyardError } from '../../server/errors.js'

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'fy-envfile-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The snapshot a process starts with: `base` (its environment) wins over the file. */
function start(base: Record<string, string>, file: Record<string, string>): EnvSnapshot {
  return snapshot({ ...file, ...base }, Object.keys(file))
}

function ok(e: Evaluation): Extract<Evaluation, { ok: true }> {
  if (!e.ok) assert.fail(`expected a valid evaluation, got ${e.error.message}`)
  return e
}

function assertConfigError(fn: () => unknown, name: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ForkyardError, `expected a ForkyardError, got ${String(err)}`)
    assert.equal(err.code, 'FORKYARD_ERR_CONFIG')
    assert.ok(err.message.includes(name), err.message)
    return true
  })
}

test('snapshot of a valid environment has the parsed server config and the file keys', () => {
  const s = snapshot({ FORKYARD_WORKERS: '3', GREETING: 'hi' }, ['FORKYARD_WORKERS', 'GREETING'])
  assert.equal(s.server.workers, 3)
  assert.deepEqual(s.fileKeys, ['FORKYARD_WORKERS', 'GREETING'])
  assert.deepEqual(s.appSchema, {})
  assert.deepEqual(s.app, {})
  assert.match(s.version, /^[0-9a-f]{12}$/)
})

test('snapshot validates the server, messaging and log schemas, naming the variable', () => {
  const bad: Record<string, string> = {
    FORKYARD_WORKERS: 'two',
    FORKYARD_TIMEOUT: 'forever',
    FORKYARD_PUSH_BIND: 'nowhere',
    FORKYARD_PUSH_SECRET: 'short',
    FORKYARD_PUBLISH_QUEUE: '0',
    FORKYARD_BRIDGE_HISTORY_COUNT: '-1',
    FORKYARD_LOG_KEEP: 'all',
    FORKYARD_LOG_MAX_SIZE: 'big',
  }
  for (const [key, value] of Object.entries(bad)) assertConfigError(() => snapshot({ [key]: value }, [key]), key)
})

test('snapshot validates the stack schema too', () => {
  for (const [key, value] of [['FORKYARD_PORT', 'eighty'], ['FORKYARD_BODY_LIMIT', 'huge'], ['FORKYARD_NGINX_WORKERS', '0']] as const) {
    assertConfigError(() => snapshot({ [key]: value }, [key]), key)
  }
})

test('snapshot validates the app schema named by FORKYARD_APP_SCHEMA', (t) => {
  const path = join(tempDir(t), 'schema.json')
  writeFileSync(path, JSON.stringify({ MAX_ITEMS: { type: 'int', min: 1, max: 10 } }))
  assert.deepEqual(snapshot({ FORKYARD_APP_SCHEMA: path, MAX_ITEMS: '4' }, ['MAX_ITEMS']).app, { MAX_ITEMS: 4 })
  assertConfigError(() => snapshot({ FORKYARD_APP_SCHEMA: path, MAX_ITEMS: '40' }, ['MAX_ITEMS']), 'MAX_ITEMS')
})

test('versionOf does not depend on key order and changes with any value', () => {
  const a = versionOf({ A: '1', B: '2', C: '3' }, ['A', 'B', 'C'])
  assert.equal(versionOf({ C: '3', B: '2', A: '1' }, ['C', 'A', 'B']), a)
  assert.equal(versionOf({ A: '1', B: '2', C: '3' }, ['B', 'A', 'C', 'A']), a, 'repeated keys count once')
  assert.notEqual(versionOf({ A: '1', B: '2', C: '4' }, ['A', 'B', 'C']), a)
  assert.notEqual(versionOf({ A: '1', B: '2' }, ['A', 'B', 'C']), a, 'a removed key changes the version')
  assert.notEqual(versionOf({ A: '1', B: '2', C: '3' }, ['A', 'B']), a)
  // Only the listed keys count.
  assert.equal(versionOf({ A: '1', B: '2', C: '3', Z: 'other' }, ['A', 'B', 'C']), a)
})

test('snapshot versions: same values in another order are the same version; a changed value is not', () => {
  const one = snapshot({ FORKYARD_WORKERS: '2', GREETING: 'hi' }, ['FORKYARD_WORKERS', 'GREETING'])
  const two = snapshot({ GREETING: 'hi', FORKYARD_WORKERS: '2' }, ['GREETING', 'FORKYARD_WORKERS'])
  assert.equal(two.version, one.version)
  assert.notEqual(snapshot({ FORKYARD_WORKERS: '2', GREETING: 'hello' }, ['FORKYARD_WORKERS', 'GREETING']).version, one.version)
  assert.notEqual(snapshot({ FORKYARD_WORKERS: '3', GREETING: 'hi' }, ['FORKYARD_WORKERS', 'GREETING']).version, one.version)
})

test('evaluate: a valid change lists exactly the changed keys and gives the next snapshot', () => {
  const current = start({}, { GREETING: 'hi', FORKYARD_TIMEOUT: '30s', OLD: 'x' })
  const r = ok(evaluate(current, {}, { GREETING: 'hello', FORKYARD_TIMEOUT: '10s', NEW: 'y' }))
  assert.deepEqual(r.changed, ['FORKYARD_TIMEOUT', 'GREETING', 'NEW', 'OLD'])
  assert.deepEqual(r.restart, [])
  assert.deepEqual(r.pinned, [])
  assert.equal(r.next.server.timeoutMs, 10_000)
  assert.equal(r.next.env.GREETING, 'hello')
  assert.equal(r.next.env.OLD, undefined)
  assert.notEqual(r.next.version, current.version)
})

test('evaluate: the same content again changes nothing and keeps the version', () => {
  const file = { GREETING: 'hi', FORKYARD_WORKERS: '2' }
  const current = start({ PATH: '/bin' }, file)
  const r = ok(evaluate(current, { PATH: '/bin' }, { FORKYARD_WORKERS: '2', GREETING: 'hi' }))
  assert.deepEqual(r.changed, [])
  assert.deepEqual(r.restart, [])
  assert.equal(r.next.version, current.version)
})

test('evaluate: keys set in the process environment are pinned and not changed', () => {
  const base = { FORKYARD_TIMEOUT: '20s', GREETING: 'from-env' }
  const current = start(base, { GREETING: 'from-file', OTHER: '1' })
  assert.equal(current.env.GREETING, 'from-env')
  const r = ok(evaluate(current, base, { GREETING: 'changed-in-file', FORKYARD_TIMEOUT: '5s', OTHER: '2' }))
  assert.deepEqual(r.pinned.sort(), ['FORKYARD_TIMEOUT', 'GREETING'])
  assert.deepEqual(r.changed, ['OTHER'])
  assert.equal(r.next.env.GREETING, 'from-env')
  assert.equal(r.next.server.timeoutMs, 20_000)
  // The same value in the file as in the environment is not reported as pinned.
  assert.deepEqual(ok(evaluate(current, base, { GREETING: 'from-env', OTHER: '1' })).pinned, [])
})

test('evaluate: a pinned key with a bad value in the file is ignored, not refused', () => {
  const base = { FORKYARD_WORKERS: '2' }
  const current = start(base, {})
  const r = ok(evaluate(current, base, { FORKYARD_WORKERS: 'many' }))
  assert.deepEqual(r.pinned, ['FORKYARD_WORKERS'])
  assert.deepEqual(r.changed, [])
  assert.equal(r.next.server.workers, 2)
})

test('evaluate: FORKYARD_WORKERS and FORKYARD_BIND changes need a restart; FORKYARD_TIMEOUT does not', () => {
  assert.ok(restartKeys.includes('FORKYARD_WORKERS') && restartKeys.includes('FORKYARD_BIND'))
  const current = start({}, { FORKYARD_WORKERS: '2', FORKYARD_BIND: '127.0.0.1:8000', FORKYARD_TIMEOUT: '30s' })
  const r = ok(evaluate(current, {}, { FORKYARD_WORKERS: '4', FORKYARD_BIND: 'unix:/tmp/fy-test.sock', FORKYARD_TIMEOUT: '10s' }))
  assert.deepEqual(r.changed, ['FORKYARD_BIND', 'FORKYARD_TIMEOUT', 'FORKYARD_WORKERS'])
  assert.deepEqual(r.restart, ['FORKYARD_BIND', 'FORKYARD_WORKERS'])
  assert.equal(r.next.server.workers, 4)
  assert.deepEqual(ok(evaluate(current, {}, { FORKYARD_WORKERS: '2', FORKYARD_BIND: '127.0.0.1:8000', FORKYARD_TIMEOUT: '5s' })).restart, [])
})

test('evaluate: an app-schema key marked "restart" needs a restart, others do not', (t) => {
  const path = join(tempDir(t), 'schema.json')
  writeFileSync(path, JSON.stringify({ DATABASE_URL: { type: 'string', restart: true, secret: true }, GREETING: { type: 'string' } }))
  const base = { FORKYARD_APP_SCHEMA: path }
  const current = start(base, { DATABASE_URL: 'postgres://a', GREETING: 'hi' })
  const r = ok(evaluate(current, base, { DATABASE_URL: 'postgres://b', GREETING: 'hello' }))
  assert.deepEqual(r.changed, ['DATABASE_URL', 'GREETING'])
  assert.deepEqual(r.restart, ['DATABASE_URL'])
  // Set for the first time, or removed: still a restart.
  assert.deepEqual(ok(evaluate(current, base, { GREETING: 'hi' })).restart, ['DATABASE_URL'])
})

test('evaluate: an app-schema key marked "restart" set from the file that names the schema', (t) => {
  const path = join(tempDir(t), 'schema.json')
  writeFileSync(path, JSON.stringify({ POOL: { type: 'int', restart: true } }))
  const current = start({}, {})
  const r = ok(evaluate(current, {}, { FORKYARD_APP_SCHEMA: path, POOL: '5' }))
  assert.deepEqual(r.restart, ['FORKYARD_APP_SCHEMA', 'POOL'])
  assert.deepEqual(r.next.app, { POOL: 5 })
})

test('evaluate: a bad value is refused with an error naming the key and the value', (t) => {
  const current = start({}, { FORKYARD_WORKERS: '2' })
  const r = evaluate(current, {}, { FORKYARD_WORKERS: 'two' })
  assert.equal(r.ok, false)
  if (r.ok) return
  assert.ok(r.error instanceof ForkyardError)
  assert.match(r.error.message, /FORKYARD_WORKERS/)
  assert.match(r.error.message, /"two"/)

  const path = join(tempDir(t), 'schema.json')
  writeFileSync(path, JSON.stringify({ MAX_ITEMS: { type: 'int', min: 1, max: 100 } }))
  const base = { FORKYARD_APP_SCHEMA: path }
  const app = evaluate(start(base, { MAX_ITEMS: '5' }), base, { MAX_ITEMS: 'lots' })
  assert.equal(app.ok, false)
  if (app.ok) return
  assert.match(app.error.message, /^Expected MAX_ITEMS to be .*, got "lots"$/)
})

test('isSecret: keys marked secret in the app schema and secret-looking names', () => {
  const schema = { DATABASE_URL: { type: 'string' as const, secret: true }, GREETING: { type: 'string' as const } }
  assert.equal(isSecret('DATABASE_URL', schema), true)
  for (const k of ['X_SECRET', 'FORKYARD_PUSH_SECRET', 'DB_PASSWORD', 'X_PASSWORD', 'X_TOKEN', 'GITHUB_TOKEN', 'API_KEY', 'STRIPE_SECRET_KEY']) assert.equal(isSecret(k, {}), true, k)
  for (const k of ['GREETING', 'FORKYARD_WORKERS', 'DATABASE_URL', 'KEYBOARD_LAYOUT']) assert.equal(isSecret(k, {}), false, k)
  assert.equal(isSecret('GREETING', schema), false)
})

test('readEnvFile parses a .env file with dotenv', (t) => {
  const path = join(tempDir(t), '.env')
  writeFileSync(path, '# comment\nA=1\nB="two words"\nexport C=3\n')
  const parsed = readEnvFile(path)
  assert.equal(parsed.A, '1')
  assert.equal(parsed.B, 'two words')
})
