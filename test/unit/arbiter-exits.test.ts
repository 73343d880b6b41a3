import { test } from 'node:test'
import assert from 'node:assert/strict'
import { backoffMs, classifyExit } from '../../server/arbiter/exits.js'

test('an expected SIGKILL (the arbiter killed it) is a warning that says so', () => {
  const r = classifyExit(null, 'SIGKILL', true)
  assert.equal(r.level, 'warn')
  assert.match(r.msg, /SIGKILL/)
  assert.match(r.msg, /arbiter/)
  assert.doesNotMatch(r.msg, /OOM/)
})

test('an unexpected SIGKILL is an error that mentions the OOM killer', () => {
  const r = classifyExit(null, 'SIGKILL', false)
  assert.equal(r.level, 'error')
  assert.match(r.msg, /SIGKILL/)
  assert.match(r.msg, /OOM/)
})

test('SIGTERM is info, expected or not', () => {
  assert.deepEqual(classifyExit(null, 'SIGTERM', true), { level: 'info', msg: 'worker stopped by SIGTERM' })
  assert.deepEqual(classifyExit(null, 'SIGTERM', false), { level: 'info', msg: 'worker stopped by SIGTERM' })
})

test('other signals are warnings naming the signal', () => {
  for (const signal of ['SIGSEGV', 'SIGABRT', 'SIGINT']) {
    assert.deepEqual(classifyExit(null, signal, false), { level: 'warn', msg: `worker killed by ${signal}` })
    assert.equal(classifyExit(null, signal, true).level, 'warn')
  }
})

test('code 0 is info when expected and a warning when not', () => {
  assert.deepEqual(classifyExit(0, null, true), { level: 'info', msg: 'worker exited' })
  const r = classifyExit(0, null, false)
  assert.equal(r.level, 'warn')
  assert.match(r.msg, /unexpectedly/)
  assert.match(r.msg, /code 0/)
})

test('a non-zero exit code is an error naming the code', () => {
  assert.deepEqual(classifyExit(1, null, false), { level: 'error', msg: 'worker exited with code 1' })
  assert.deepEqual(classifyExit(137, null, true), { level: 'error', msg: 'worker exited with code 137' })
})

test('a signal takes precedence over the exit code', () => {
  assert.equal(classifyExit(1, 'SIGKILL', false).level, 'error')
  assert.match(classifyExit(1, 'SIGKILL', false).msg, /OOM/)
  assert.equal(classifyExit(0, 'SIGTERM', false).msg, 'worker stopped by SIGTERM')
})

test('backoffMs is 0 for a streak of 0 or 1', () => {
  assert.equal(backoffMs(0), 0)
  assert.equal(backoffMs(1), 0)
})

test('backoffMs doubles from 250 ms and is capped at 30 s', () => {
  const seq = Array.from({ length: 12 }, (_, i) => backoffMs(i))
  assert.deepEqual(seq, [0, 0, 250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000])
  assert.equal(backoffMs(100), 30_000)
  assert.equal(backoffMs(10_000), 30_000)
})
