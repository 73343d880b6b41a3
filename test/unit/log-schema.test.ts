import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createLogger, type LineOutput } from '../../server/log/logger.js'
import { accessLine, isoTime, parseLine, plainLine, serialiseBindings } from '../../server/log/schema.js'

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

test('accessLine writes the line pino writes for log.info(fields, "request"), key for key', () => {
  let written = ''
  const sink = { write: (s: string) => (written += s) }
  const base = { role: 'worker', worker: 3, generation: 2 }
  const log = createLogger(sink as unknown as LineOutput, { svc: 'server', base })
  const fields = { reqId: 'abc123', method: 'POST', path: '/a "quoted"\\path/\u00e9', status: 201, ms: 1.5 }
  log.info(fields, 'request')
  const line = accessLine(serialiseBindings({ svc: 'server', pid: process.pid, ...base }), { ...fields, aborted: false })
  assert.ok(line.endsWith('\n'))
  const fromPino = JSON.parse(written) as Record<string, unknown>
  const ours = JSON.parse(line) as Record<string, unknown>
  // The time differs by the moment each was made; everything else is equal, in the same order.
  assert.deepEqual(Object.keys(ours), Object.keys(fromPino))
  assert.deepEqual({ ...ours, time: '' }, { ...fromPino, time: '' })
  assert.match(String(ours.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  assert.equal((JSON.parse(accessLine('"svc":"server"', { ...fields, aborted: true })) as { aborted?: boolean }).aborted, true)
})

test('isoTime is the ISO time of the millisecond it is given', () => {
  assert.equal(isoTime(0), '1970-01-01T00:00:00.000Z')
  assert.equal(isoTime(1_700_000_000_123), new Date(1_700_000_000_123).toISOString())
  assert.equal(isoTime(1_700_000_000_123), '2023-11-14T22:13:20.123Z')
})
