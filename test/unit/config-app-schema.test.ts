import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { loadAppSchema, validateApp, type AppSchema } from '../../server/config/app-schema.js'
import { ForkyardError } from '../../server/errors.js'

function schemaFile(t: TestContext, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'fy-appschema-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'app-schema.json')
  writeFileSync(path, content)
  return path
}

/** A RegExp matching `s` literally. */
function lit(s: string): RegExp {
  return new RegExp(s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
}

function assertConfigError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ForkyardError, `expected a ForkyardError, got ${String(err)}`)
    assert.equal(err.code, 'FORKYARD_ERR_CONFIG')
    for (const p of patterns) assert.match(err.message, p)
    return true
  })
}

test('loadAppSchema with no path is an empty schema', () => {
  assert.deepEqual(loadAppSchema(''), {})
})

test('loadAppSchema reads a valid file as is', (t) => {
  const spec = {
    GREETING: { type: 'string' },
    MAX_ITEMS: { type: 'int', min: 1, max: 1000, default: '50' },
    MODE: { type: 'enum', values: ['fast', 'safe'] },
    DATABASE_URL: { type: 'string', restart: true, secret: true },
  }
  assert.deepEqual(loadAppSchema(schemaFile(t, JSON.stringify(spec))), spec)
})

test('a missing file or bad JSON names FORKYARD_APP_SCHEMA and the path', (t) => {
  const bad = schemaFile(t, '{"A": {"type": "int",}')
  assertConfigError(() => loadAppSchema(bad), /^Expected FORKYARD_APP_SCHEMA to name a readable JSON file/, lit(JSON.stringify(bad)))
  assertConfigError(() => loadAppSchema(join(tmpdir(), 'fy-no-such-dir', 'schema.json')), /FORKYARD_APP_SCHEMA/, /ENOENT/)
})

test('a schema that is not a JSON object of keys is refused', (t) => {
  for (const content of ['[]', 'null', '42', '"x"']) {
    const path = schemaFile(t, content)
    assertConfigError(() => loadAppSchema(path), /to be a JSON object of keys/, lit(path))
  }
})

test('an unknown type names the key and the type', (t) => {
  const path = schemaFile(t, JSON.stringify({ RATE: { type: 'float' } }))
  assertConfigError(() => loadAppSchema(path), /"type" of RATE/, /one of string, int, bool, enum, duration, size/, /got "float"/)
  const missing = schemaFile(t, JSON.stringify({ RATE: {} }))
  assertConfigError(() => loadAppSchema(missing), /"type" of RATE/)
  const notObject = schemaFile(t, JSON.stringify({ RATE: null }))
  assertConfigError(() => loadAppSchema(notObject), /"type" of RATE/)
})

test('an enum without values is refused', (t) => {
  for (const spec of [{ type: 'enum' }, { type: 'enum', values: [] }, { type: 'enum', values: 'fast' }]) {
    const path = schemaFile(t, JSON.stringify({ MODE: spec }))
    assertConfigError(() => loadAppSchema(path), /"values" \(a non-empty array\) for the enum MODE/)
  }
})

const schema: AppSchema = {
  MAX_ITEMS: { type: 'int', min: 1, max: 1000, default: '50' },
  DEBUG: { type: 'bool' },
  MODE: { type: 'enum', values: ['fast', 'safe'] },
  WAIT: { type: 'duration' },
  CACHE: { type: 'size' },
  GREETING: { type: 'string' },
}

test('validateApp parses every type', () => {
  const out = validateApp(schema, { MAX_ITEMS: '7', DEBUG: 'yes', MODE: 'safe', WAIT: '2s', CACHE: '16KiB', GREETING: 'hello there' })
  assert.deepEqual(out, { MAX_ITEMS: 7, DEBUG: true, MODE: 'safe', WAIT: 2000, CACHE: 16 * 1024, GREETING: 'hello there' })
  assert.deepEqual(validateApp(schema, { DEBUG: 'off', WAIT: '500ms', CACHE: '1m' }), { MAX_ITEMS: 50, DEBUG: false, WAIT: 500, CACHE: 1024 ** 2 })
})

test('validateApp uses defaults, leaves out unset keys without one, ignores undeclared keys', () => {
  assert.deepEqual(validateApp(schema, { OTHER: 'x' }), { MAX_ITEMS: 50 })
  assert.deepEqual(validateApp({}, { OTHER: 'x' }), {})
})

test('int min and max are enforced', () => {
  assert.equal(validateApp(schema, { MAX_ITEMS: '1' }).MAX_ITEMS, 1)
  assert.equal(validateApp(schema, { MAX_ITEMS: '1000' }).MAX_ITEMS, 1000)
  assertConfigError(() => validateApp(schema, { MAX_ITEMS: '0' }), /^Expected MAX_ITEMS to be a whole number from 1 to 1000, got "0"$/)
  assertConfigError(() => validateApp(schema, { MAX_ITEMS: '1001' }), /^Expected MAX_ITEMS to be a whole number from 1 to 1000, got "1001"$/)
})

test('a bad value throws naming the key and the value', () => {
  assertConfigError(() => validateApp(schema, { MAX_ITEMS: 'lots' }), /^Expected MAX_ITEMS to be .+, got "lots"$/)
  assertConfigError(() => validateApp(schema, { DEBUG: 'maybe' }), /^Expected DEBUG to be a boolean/, /got "maybe"$/)
  assertConfigError(() => validateApp(schema, { MODE: 'slow' }), /^Expected MODE to be one of fast, safe, got "slow"$/)
  assertConfigError(() => validateApp(schema, { WAIT: 'soon' }), /^Expected WAIT to be a duration/, /got "soon"$/)
  assertConfigError(() => validateApp(schema, { CACHE: '3 parsecs' }), /^Expected CACHE to be a size/, /got "3 parsecs"$/)
})

test('a bad default is refused when it is used', () => {
  const s: AppSchema = { N: { type: 'int', default: 'many' } }
  assertConfigError(() => validateApp(s, {}), /^Expected N to be .+, got "many"$/)
  assert.deepEqual(validateApp(s, { N: '3' }), { N: 3 })
})
