import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isAbsolute, join, resolve } from 'node:path'
import { ForkyardError } from '../../server/errors.js'
import { loadConfig } from '../../server/config/load.js'
import { schema, type ServerConfig } from '../../server/config/schema.js'

function assertConfigError(fn: () => unknown, name: string, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ForkyardError, `expected a ForkyardError, got ${String(err)}`)
    assert.equal(err.code, 'FORKYARD_ERR_CONFIG')
    assert.ok(err.message.startsWith(`Expected ${name} to be `), err.message)
    if (pattern !== undefined) assert.match(err.message, pattern)
    return true
  })
}

test('loadConfig with an empty environment returns every default', () => {
  const config = loadConfig({})
  const expected: Partial<ServerConfig> = {
    bind: [{ kind: 'tcp', host: '127.0.0.1', port: 8000, text: '127.0.0.1:8000' }],
    workers: 0,
    timeoutMs: 30_000,
    gracefulTimeoutMs: 30_000,
    requestTimeoutMs: 0,
    bootTimeoutMs: 30_000,
    maxRequests: 0,
    maxRequestsJitter: 0,
    maxRssBytes: 0,
    keepAliveTimeoutMs: 75_000,
    headersTimeoutMs: 20_000,
    requestReceiveTimeoutMs: 120_000,
    maxHeaderSize: 16 * 1024,
    scheduling: 'none',
    runDir: resolve('./run'),
    pidfile: resolve('./run', 'server.pid'),
    logLevel: 'info',
    accessLog: 'auto',
  }
  for (const [key, value] of Object.entries(expected)) {
    assert.deepEqual(config[key as keyof ServerConfig], value, key)
  }
})

test('loadConfig sets exactly the schema fields, each to its parsed default', () => {
  const config = loadConfig({})
  assert.deepEqual(Object.keys(config).sort(), Object.keys(schema).sort())
  for (const [key, field] of Object.entries(schema) as [keyof ServerConfig, { env: string; parse: (n: string, raw: string) => unknown; default: string }][]) {
    if (key === 'runDir' || key === 'pidfile' || key === 'tasksDir') continue // resolved to absolute paths
    assert.deepEqual(config[key], field.parse(field.env, field.default), key)
  }
})

test('loadConfig reads FORKYARD_* values from the environment', () => {
  const config = loadConfig({
    FORKYARD_BIND: ':9000,unix:/tmp/forkyard-test.sock',
    FORKYARD_WORKERS: '3',
    FORKYARD_TIMEOUT: '5s',
    FORKYARD_GRACEFUL_TIMEOUT: '1m',
    FORKYARD_REQUEST_TIMEOUT: '250ms',
    FORKYARD_MAX_REQUESTS: '1000',
    FORKYARD_MAX_RSS: '512MB',
    FORKYARD_MAX_HEADER_SIZE: '8KiB',
    FORKYARD_SCHEDULING: 'rr',
    FORKYARD_LOG_LEVEL: 'debug',
    FORKYARD_ACCESS_LOG: 'off',
  })
  assert.deepEqual(config.bind, [
    { kind: 'tcp', host: '0.0.0.0', port: 9000, text: ':9000' },
    { kind: 'unix', path: '/tmp/forkyard-test.sock', text: 'unix:/tmp/forkyard-test.sock' },
  ])
  assert.equal(config.workers, 3)
  assert.equal(config.timeoutMs, 5000)
  assert.equal(config.gracefulTimeoutMs, 60_000)
  assert.equal(config.requestTimeoutMs, 250)
  assert.equal(config.maxRequests, 1000)
  assert.equal(config.maxRssBytes, 512 * 1024 * 1024)
  assert.equal(config.maxHeaderSize, 8192)
  assert.equal(config.scheduling, 'rr')
  assert.equal(config.logLevel, 'debug')
  assert.equal(config.accessLog, false)
})

test('loadConfig treats an empty variable as unset when the field has a default', () => {
  const config = loadConfig({ FORKYARD_TIMEOUT: '', FORKYARD_WORKERS: '', FORKYARD_RUN_DIR: '' })
  assert.equal(config.timeoutMs, 30_000)
  assert.equal(config.workers, 0)
  assert.equal(config.runDir, resolve('./run'))
})

test('loadConfig ignores variables that are not FORKYARD_* settings', () => {
  const config = loadConfig({ WORKERS: 'two', PORT: '1' })
  assert.equal(config.workers, 0)
})

test('loadConfig: number overrides are in the field unit (ms for durations, bytes for sizes)', () => {
  const config = loadConfig({}, { timeoutMs: 1500, gracefulTimeoutMs: 0, workers: 2, maxRssBytes: 1024, maxHeaderSize: 4096 })
  assert.equal(config.timeoutMs, 1500)
  assert.equal(config.gracefulTimeoutMs, 0)
  assert.equal(config.workers, 2)
  assert.equal(config.maxRssBytes, 1024)
  assert.equal(config.maxHeaderSize, 4096)
})

test('loadConfig: string overrides are parsed like environment values', () => {
  const config = loadConfig({}, { timeoutMs: '2s', workers: '5', maxRssBytes: '1MiB', accessLog: 'no', bind: '[::1]:8080' })
  assert.equal(config.timeoutMs, 2000)
  assert.equal(config.workers, 5)
  assert.equal(config.maxRssBytes, 1024 * 1024)
  assert.equal(config.accessLog, false)
  assert.deepEqual(config.bind, [{ kind: 'tcp', host: '::1', port: 8080, text: '[::1]:8080' }])
})

test('loadConfig: boolean overrides set boolean fields', () => {
  assert.equal(loadConfig({}, { accessLog: false }).accessLog, false)
  assert.equal(loadConfig({ FORKYARD_ACCESS_LOG: 'false' }, { accessLog: true }).accessLog, true)
})

test('loadConfig: overrides win over the environment', () => {
  const config = loadConfig({ FORKYARD_WORKERS: '8', FORKYARD_TIMEOUT: '10s' }, { workers: 1, timeoutMs: '3s' })
  assert.equal(config.workers, 1)
  assert.equal(config.timeoutMs, 3000)
})

test('loadConfig: number overrides go through the same checks as the environment', () => {
  assertConfigError(() => loadConfig({}, { workers: 2.5 }), 'FORKYARD_WORKERS', /whole number/)
  assertConfigError(() => loadConfig({}, { workers: 5000 }), 'FORKYARD_WORKERS', /from 0 to 1024/)
  assertConfigError(() => loadConfig({}, { timeoutMs: -1 }), 'FORKYARD_TIMEOUT', /duration/)
})

test('loadConfig returns a frozen object', () => {
  const config = loadConfig({})
  assert.ok(Object.isFrozen(config))
  assert.throws(() => {
    ;(config as { workers: number }).workers = 9
  }, TypeError)
  assert.equal(config.workers, 0)
})

test('loadConfig resolves runDir to an absolute path and puts the pidfile in it by default', () => {
  const config = loadConfig({ FORKYARD_RUN_DIR: 'some/relative/dir' })
  assert.ok(isAbsolute(config.runDir))
  assert.equal(config.runDir, join(process.cwd(), 'some/relative/dir'))
  assert.equal(config.pidfile, join(process.cwd(), 'some/relative/dir', 'server.pid'))
})

test('loadConfig resolves an explicit pidfile independently of runDir', () => {
  const config = loadConfig({ FORKYARD_RUN_DIR: '/var/run/app', FORKYARD_PIDFILE: 'app.pid' })
  assert.equal(config.runDir, '/var/run/app')
  assert.equal(config.pidfile, join(process.cwd(), 'app.pid'))
  assert.equal(loadConfig({}, { pidfile: '/tmp/x.pid' }).pidfile, '/tmp/x.pid')
})

test('loadConfig: a bad environment value throws naming the variable and the value', () => {
  assertConfigError(() => loadConfig({ FORKYARD_WORKERS: 'two' }), 'FORKYARD_WORKERS', /whole number.*got "two"$/)
  assertConfigError(() => loadConfig({ FORKYARD_TIMEOUT: 'forever' }), 'FORKYARD_TIMEOUT', /got "forever"$/)
  assertConfigError(() => loadConfig({ FORKYARD_MAX_RSS: 'lots' }), 'FORKYARD_MAX_RSS', /got "lots"$/)
  assertConfigError(() => loadConfig({ FORKYARD_SCHEDULING: 'random' }), 'FORKYARD_SCHEDULING', /one of rr, none, got "random"$/)
  assertConfigError(() => loadConfig({ FORKYARD_LOG_LEVEL: 'loud' }), 'FORKYARD_LOG_LEVEL', /got "loud"$/)
  assertConfigError(() => loadConfig({ FORKYARD_ACCESS_LOG: 'maybe' }), 'FORKYARD_ACCESS_LOG', /got "maybe"$/)
  assertConfigError(() => loadConfig({ FORKYARD_BIND: 'localhost' }), 'FORKYARD_BIND', /got "localhost"$/)
})

test('loadConfig rejects FORKYARD_TIMEOUT below 100ms and FORKYARD_BOOT_TIMEOUT of 0', () => {
  assertConfigError(() => loadConfig({ FORKYARD_TIMEOUT: '50ms' }), 'FORKYARD_TIMEOUT', /at least 100ms, got 50$/)
  assertConfigError(() => loadConfig({}, { timeoutMs: 99 }), 'FORKYARD_TIMEOUT', /at least 100ms/)
  assert.equal(loadConfig({ FORKYARD_TIMEOUT: '100ms' }).timeoutMs, 100)
  assertConfigError(() => loadConfig({ FORKYARD_BOOT_TIMEOUT: '0' }), 'FORKYARD_BOOT_TIMEOUT', /longer than 0, got 0$/)
})
