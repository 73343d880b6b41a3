import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pretty } from '../../server/log/pretty-output.js'
import type { LogLine } from '../../server/log/schema.js'

test('pretty: time HH:MM:SS.mmm, level, svc/w<worker>[pid], msg and the other fields', () => {
  const out = pretty({ time: '2026-01-02T03:04:05.678Z', level: 'warn', svc: 'server', pid: 4242, role: 'worker', worker: 3, msg: 'slow request', reqId: 'r-1', ms: 1234, extra: { a: 1 } }, false)
  assert.ok(out.startsWith('03:04:05.678 WARN  '), out)
  assert.match(out, / server\/w3\[4242\] +slow request {2}reqId=r-1 ms=1234 extra=\{"a":1\}$/)
  assert.ok(!out.includes('role'), 'role is left out')
  assert.ok(!out.includes('\x1b'), 'no ANSI codes without color')
  assert.ok(!out.includes('worker='), 'the worker is shown once, in the source')
})

test('pretty: defaults for a sparse line; no worker part without a worker', () => {
  const out = pretty({ msg: 'hello' }, false)
  assert.equal(out, `${' '.repeat(12)} INFO  ${'?[]'.padEnd(18)} hello`)
  assert.match(pretty({ time: '2026-01-02T03:04:05.678Z', svc: 'push', pid: 9, msg: 'up' }, false), /^03:04:05\.678 INFO {2}push\[9\] +up$/)
})

test('pretty: colors only with color', () => {
  const line: LogLine = { time: '2026-01-02T03:04:05.678Z', level: 'error', svc: 'jobs', pid: 1, msg: 'boom' }
  const colored = pretty(line, true)
  assert.ok(colored.includes('\x1b[31mERROR\x1b[0m'), JSON.stringify(colored))
  assert.equal(colored.replaceAll('\x1b[31m', '').replaceAll('\x1b[0m', ''), pretty(line, false))
})

test('pretty: every process labelled by role: server/jobs, nginx/wrapper; the arbiter is the bare svc', () => {
  const at = (role: string, svc = 'server'): string => pretty({ time: '2026-01-02T03:04:05.678Z', svc, pid: 7, role, msg: 'm' }, false)
  assert.match(at('jobs'), / server\/jobs\[7\] +m$/)
  assert.match(at('wrapper', 'nginx'), / nginx\/wrapper\[7\] +m$/)
  assert.match(at('arbiter'), / server\[7\] +m$/)
  assert.ok(!at('jobs').includes('role='), 'role is shown once, in the source')
})
