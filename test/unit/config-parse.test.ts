import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ForkyardError, codes } from '../../server/errors.js'
import { binds, bool, duration, int, oneOf, size } from '../../server/config/parse.js'

/** Asserts `fn` throws a FORKYARD_ERR_CONFIG ForkyardError naming `name` and the received `got` value. */
function assertConfigError(fn: () => unknown, name: string, got: string, expected?: RegExp): ForkyardError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof ForkyardError, `expected a ForkyardError, got ${String(caught)}`)
  assert.equal(caught.code, codes.CONFIG)
  assert.equal(caught.code, 'FORKYARD_ERR_CONFIG')
  assert.ok(caught.message.startsWith(`Expected ${name} to be `), caught.message)
  assert.ok(caught.message.endsWith(`, got ${JSON.stringify(got)}`), caught.message)
  if (expected !== undefined) assert.match(caught.message, expected)
  return caught
}

// --- int ---------------------------------------------------------------------------------------

test('int parses whole numbers, trimming whitespace', () => {
  const p = int(0, 1024)
  assert.equal(p('FORKYARD_WORKERS', '0'), 0)
  assert.equal(p('FORKYARD_WORKERS', '4'), 4)
  assert.equal(p('FORKYARD_WORKERS', ' 16 '), 16)
  assert.equal(p('FORKYARD_WORKERS', '1024'), 1024)
})

test('int: FORKYARD_WORKERS=two names the variable, the value and "whole number"', () => {
  const err = assertConfigError(() => int(0, 1024)('FORKYARD_WORKERS', 'two'), 'FORKYARD_WORKERS', 'two')
  assert.ok(err.message.includes('FORKYARD_WORKERS'))
  assert.ok(err.message.includes('"two"'))
  assert.ok(err.message.includes('whole number'))
  assert.equal(err.message, 'Expected FORKYARD_WORKERS to be a whole number >= 0, got "two"')
})

test('int rejects negatives, fractions, exponents and empty strings', () => {
  for (const raw of ['-1', '1.5', '1e3', '', ' ', '0x10']) {
    assertConfigError(() => int(0)('FORKYARD_MAX_REQUESTS', raw), 'FORKYARD_MAX_REQUESTS', raw, /whole number/)
  }
})

test('int enforces its range and says what the range is', () => {
  assertConfigError(() => int(0, 1024)('FORKYARD_WORKERS', '1025'), 'FORKYARD_WORKERS', '1025', /a whole number from 0 to 1024/)
  assertConfigError(() => int(2, 8)('FORKYARD_X', '1'), 'FORKYARD_X', '1', /a whole number from 2 to 8/)
})

// --- duration ----------------------------------------------------------------------------------

test('duration parses ms, s, m and h into milliseconds', () => {
  assert.equal(duration('FORKYARD_TIMEOUT', '500ms'), 500)
  assert.equal(duration('FORKYARD_TIMEOUT', '30s'), 30_000)
  assert.equal(duration('FORKYARD_TIMEOUT', '2m'), 120_000)
  assert.equal(duration('FORKYARD_TIMEOUT', '1h'), 3_600_000)
  assert.equal(duration('FORKYARD_TIMEOUT', '1.5s'), 1500)
  assert.equal(duration('FORKYARD_TIMEOUT', ' 10 s '), 10_000)
})

test('duration: a plain number is seconds', () => {
  assert.equal(duration('FORKYARD_TIMEOUT', '30'), 30_000)
  assert.equal(duration('FORKYARD_TIMEOUT', '0'), 0)
  assert.equal(duration('FORKYARD_TIMEOUT', '0.25'), 250)
})

test('duration rejects garbage, negative values and unknown units', () => {
  for (const raw of ['soon', '', '-5s', '10d', '5 sec', '1.s', 's']) {
    assertConfigError(() => duration('FORKYARD_TIMEOUT', raw), 'FORKYARD_TIMEOUT', raw, /a duration like "30s"/)
  }
})

// --- size --------------------------------------------------------------------------------------

test('size parses units as powers of 1024', () => {
  assert.equal(size('FORKYARD_MAX_HEADER_SIZE', '16KiB'), 16 * 1024)
  assert.equal(size('FORKYARD_MAX_RSS', '512MB'), 512 * 1024 * 1024)
  assert.equal(size('FORKYARD_MAX_RSS', '1g'), 1024 ** 3)
  assert.equal(size('FORKYARD_MAX_RSS', '2 GiB'), 2 * 1024 ** 3)
  assert.equal(size('FORKYARD_MAX_RSS', '1.5k'), 1536)
  assert.equal(size('FORKYARD_MAX_RSS', '10b'), 10)
})

test('size: a plain number is bytes', () => {
  assert.equal(size('FORKYARD_MAX_RSS', '0'), 0)
  assert.equal(size('FORKYARD_MAX_RSS', '4096'), 4096)
})

test('size rejects garbage and unknown units', () => {
  for (const raw of ['big', '', '-1', '10TB', '5 bytes', 'KiB']) {
    assertConfigError(() => size('FORKYARD_MAX_RSS', raw), 'FORKYARD_MAX_RSS', raw, /a size like "512MB"/)
  }
})

// --- bool --------------------------------------------------------------------------------------

test('bool accepts true/false, 1/0, yes/no, on/off in any case', () => {
  for (const raw of ['1', 'true', 'TRUE', 'yes', 'on', ' On ']) assert.equal(bool('FORKYARD_ACCESS_LOG', raw), true, raw)
  for (const raw of ['0', 'false', 'False', 'no', 'off', ' OFF ']) assert.equal(bool('FORKYARD_ACCESS_LOG', raw), false, raw)
})

test('bool rejects anything else', () => {
  for (const raw of ['maybe', '', '2', 'y']) {
    assertConfigError(() => bool('FORKYARD_ACCESS_LOG', raw), 'FORKYARD_ACCESS_LOG', raw, /a boolean/)
  }
})

// --- oneOf -------------------------------------------------------------------------------------

test('oneOf returns the trimmed value when it is allowed', () => {
  const p = oneOf('rr', 'none')
  assert.equal(p('FORKYARD_SCHEDULING', 'rr'), 'rr')
  assert.equal(p('FORKYARD_SCHEDULING', ' none '), 'none')
})

test('oneOf rejects other values (case-sensitive) and lists the allowed ones', () => {
  const p = oneOf('rr', 'none')
  assertConfigError(() => p('FORKYARD_SCHEDULING', 'random'), 'FORKYARD_SCHEDULING', 'random', /one of rr, none/)
  assertConfigError(() => p('FORKYARD_SCHEDULING', 'RR'), 'FORKYARD_SCHEDULING', 'RR', /one of rr, none/)
})

// --- binds -------------------------------------------------------------------------------------

test('binds parses host:port', () => {
  assert.deepEqual(binds('FORKYARD_BIND', '127.0.0.1:8000'), [{ kind: 'tcp', host: '127.0.0.1', port: 8000, text: '127.0.0.1:8000' }])
  assert.deepEqual(binds('FORKYARD_BIND', 'localhost:0'), [{ kind: 'tcp', host: 'localhost', port: 0, text: 'localhost:0' }])
})

test('binds: ":port" listens on all IPv4 addresses', () => {
  assert.deepEqual(binds('FORKYARD_BIND', ':8000'), [{ kind: 'tcp', host: '0.0.0.0', port: 8000, text: ':8000' }])
})

test('binds parses a bracketed IPv6 host', () => {
  assert.deepEqual(binds('FORKYARD_BIND', '[::1]:8000'), [{ kind: 'tcp', host: '::1', port: 8000, text: '[::1]:8000' }])
})

test('binds parses unix:/path sockets', () => {
  assert.deepEqual(binds('FORKYARD_BIND', 'unix:/tmp/x.sock'), [{ kind: 'unix', path: '/tmp/x.sock', text: 'unix:/tmp/x.sock' }])
  assert.deepEqual(binds('FORKYARD_BIND', 'unix:./run/x.sock'), [{ kind: 'unix', path: './run/x.sock', text: 'unix:./run/x.sock' }])
})

test('binds parses several comma-separated addresses, ignoring spaces and empty entries', () => {
  assert.deepEqual(binds('FORKYARD_BIND', '127.0.0.1:8000, [::1]:8001,unix:/tmp/x.sock,'), [
    { kind: 'tcp', host: '127.0.0.1', port: 8000, text: '127.0.0.1:8000' },
    { kind: 'tcp', host: '::1', port: 8001, text: '[::1]:8001' },
    { kind: 'unix', path: '/tmp/x.sock', text: 'unix:/tmp/x.sock' },
  ])
})

test('binds rejects a port above 65535', () => {
  assertConfigError(() => binds('FORKYARD_BIND', '127.0.0.1:70000'), 'FORKYARD_BIND', '127.0.0.1:70000', /port 0-65535/)
})

test('binds rejects a host without a port', () => {
  assertConfigError(() => binds('FORKYARD_BIND', 'localhost'), 'FORKYARD_BIND', 'localhost', /"host:port"/)
})

test('binds rejects an unbracketed IPv6 address', () => {
  assertConfigError(() => binds('FORKYARD_BIND', '::1:8000'), 'FORKYARD_BIND', '::1:8000', /\[ipv6\]:port/)
})

test('binds rejects "unix:" with an empty or bare relative path', () => {
  assertConfigError(() => binds('FORKYARD_BIND', 'unix:'), 'FORKYARD_BIND', 'unix:', /Unix socket/)
  assertConfigError(() => binds('FORKYARD_BIND', 'unix:x.sock'), 'FORKYARD_BIND', 'unix:x.sock', /Unix socket/)
})

test('binds rejects an empty list', () => {
  assertConfigError(() => binds('FORKYARD_BIND', ''), 'FORKYARD_BIND', '', /one or more/)
  assertConfigError(() => binds('FORKYARD_BIND', ' , '), 'FORKYARD_BIND', ' , ', /one or more/)
})

test('binds names the offending entry of a list', () => {
  assertConfigError(() => binds('FORKYARD_BIND', '127.0.0.1:8000,localhost'), 'FORKYARD_BIND', 'localhost')
})
