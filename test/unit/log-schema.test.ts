import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseLine, plainLine } from '../../server/log/schema.js'

test('plainLine: the schema fields in the order pino writes them, msg last', () => {
  const line = plainLine('server', 42, 'error', 'TypeError: boom', { role: 'worker', worker: 3, stream: 'stderr' }, '2026-01-02T03:04:05.678Z')
  assert.equal(
    JSON.stringify(line),
    '{"time":"2026-01-02T03:04:05.678Z","level":"error","svc":"server","pid":42,"role":"worker","worker":3,"stream":"stderr","msg":"TypeError: boom"}',
  )
})

test('plainLine: no pid field when the pid is unknown, the time is now when not given', () => {
  const line = plainLine('jobs', undefined, 'info', 'x')
  assert.ok(!('pid' in line), JSON.stringify(line))
  assert.deepEqual(Object.keys(line), ['time', 'level', 'svc', 'msg'])
  assert.ok(typeof line.time === 'string' && Math.abs(Date.parse(line.time) - Date.now()) < 60_000)
})

test('parseLine: a JSON line is parsed as is', () => {
  const text = '{"time":"2026-01-02T03:04:05.678Z","level":"warn","svc":"server","pid":7,"msg":"hi","reqId":"r1"}'
  assert.deepEqual(parseLine(text, 'ignored', false), JSON.parse(text))
  // A JSON line in a .stdio file is taken as a log line too.
  assert.deepEqual(parseLine('{"msg":"x","svc":"push"}', 'jobs', true, 'T'), { msg: 'x', svc: 'push' })
})

test('parseLine: a line that is not JSON is wrapped as an error of the program, at the given time', () => {
  const time = '2026-01-02T03:04:05.678Z'
  const wrapped = { time, level: 'error', svc: 'jobs', msg: 'Segmentation fault (core dumped)', stdio: true }
  assert.deepEqual(parseLine('Segmentation fault (core dumped)', 'jobs', true, time), wrapped)
  assert.deepEqual(parseLine('{not json', 'push', true, time), { ...wrapped, svc: 'push', msg: '{not json' })
  assert.deepEqual(parseLine('plain text in a .log', 'server', false, time), { ...wrapped, svc: 'server', msg: 'plain text in a .log' })
  const now = parseLine('x', 's', true)
  assert.ok(now !== null && typeof now.time === 'string' && Math.abs(Date.parse(now.time) - Date.now()) < 60_000, 'without a time: now')
})

test('parseLine: an empty line is null', () => {
  assert.equal(parseLine('', 'server', false), null)
  assert.equal(parseLine('', 'server', true, 'T'), null)
})
