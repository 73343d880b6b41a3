import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ForkyardError, codes, serializeError } from '../../server/errors.js'

test('every error code is unique and starts with FORKYARD_ERR_', () => {
  const values = Object.values(codes)
  assert.ok(values.length >= 8, `expected the known codes, got ${values.length}`)
  assert.equal(new Set(values).size, values.length, `duplicate codes in ${values.join(', ')}`)
  for (const [key, value] of Object.entries(codes)) {
    assert.match(value, /^FORKYARD_ERR_[A-Z_]+$/, key)
  }
})

test('each code key matches its value suffix', () => {
  for (const [key, value] of Object.entries(codes)) assert.equal(value, `FORKYARD_ERR_${key}`)
})

test('ForkyardError keeps its code, message and cause', () => {
  const cause = new Error('root cause')
  const err = new ForkyardError(codes.BIND, 'cannot bind 127.0.0.1:80', { cause })
  assert.ok(err instanceof Error)
  assert.ok(err instanceof ForkyardError)
  assert.equal(err.name, 'ForkyardError')
  assert.equal(err.code, 'FORKYARD_ERR_BIND')
  assert.equal(err.message, 'cannot bind 127.0.0.1:80')
  assert.equal(err.cause, cause)
  assert.ok(err.stack?.includes('cannot bind'))
})

test('ForkyardError without options has no cause', () => {
  const err = new ForkyardError(codes.CONFIG, 'bad')
  assert.equal(err.cause, undefined)
  assert.ok(!('cause' in err))
})

test('serializeError of a plain Error keeps name, message and stack, and has no code', () => {
  const err = new TypeError('nope')
  const s = serializeError(err)
  assert.equal(s.name, 'TypeError')
  assert.equal(s.message, 'nope')
  assert.equal(s.stack, err.stack)
  assert.ok(!('code' in s))
  assert.deepEqual(JSON.parse(JSON.stringify(s)), { name: 'TypeError', message: 'nope', stack: err.stack })
})

test('serializeError keeps a string code (Node system errors and ForkyardError)', () => {
  const sys = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' })
  assert.equal(serializeError(sys).code, 'EADDRINUSE')
  const fy = serializeError(new ForkyardError(codes.APP_LOAD, 'no default export'))
  assert.equal(fy.name, 'ForkyardError')
  assert.equal(fy.code, 'FORKYARD_ERR_APP_LOAD')
  assert.equal(fy.message, 'no default export')
})

test('serializeError drops a non-string code', () => {
  const err = Object.assign(new Error('x'), { code: 42 })
  assert.ok(!('code' in serializeError(err)))
})

test('serializeError of a non-Error value', () => {
  assert.deepEqual(serializeError('just a string'), { name: 'NonError', message: 'just a string' })
  assert.deepEqual(serializeError(undefined), { name: 'NonError', message: 'undefined' })
  assert.deepEqual(serializeError(42), { name: 'NonError', message: '42' })
  assert.deepEqual(serializeError(null), { name: 'NonError', message: 'null' })
})
