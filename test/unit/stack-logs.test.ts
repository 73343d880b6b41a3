import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import type { LogLine } from '../../server/log/schema.js'
import { matches, parseLevel, showLogs, type LogFilter } from '../../server/stack/logs.js'

test('matches: svc and req filters, each optional, both must hold', () => {
  const line: LogLine = { svc: 'server', reqId: 'abc', msg: 'm' }
  const cases: [LogFilter, boolean][] = [
    [{}, true],
    [{ svc: 'server' }, true],
    [{ svc: 'push' }, false],
    [{ req: 'abc' }, true],
    [{ req: 'abd' }, false],
    [{ svc: 'server', req: 'abc' }, true],
    [{ svc: 'server', req: 'x' }, false],
    [{ svc: 'push', req: 'abc' }, false],
    [{ svc: undefined, req: undefined }, true],
  ]
  for (const [filter, expected] of cases) assert.equal(matches(line, filter), expected, JSON.stringify(filter))
  assert.equal(matches({ msg: 'no request' }, { req: 'abc' }), false)
})

interface Fixture {
  dir: string
  /** Runs showLogs without follow and returns the printed lines. */
  show: (filter: LogFilter, options?: { lines?: number; json?: boolean }) => Promise<string[]>
}

/** "2026-01-01 01:00:04,500": how supervisord writes a time (local). */
function supervisordTime(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())},${p(d.getMilliseconds(), 3)}`
}

function fixture(t: TestContext): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'fy-logs-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const rec = (time: string, svc: string, msg: string, reqId?: string): string => JSON.stringify({ time, level: 'info', svc, pid: 1, msg, ...(reqId === undefined ? {} : { reqId }) }) + '\n'
  writeFileSync(
    join(dir, 'server.log'),
    rec('2026-01-01T00:00:01.000Z', 'server', 's1', 'req-a') + rec('2026-01-01T00:00:03.000Z', 'server', 's3', 'req-b') + rec('2026-01-01T00:00:05.000Z', 'server', 's5', 'req-a'),
  )
  writeFileSync(join(dir, 'push.log'), rec('2026-01-01T00:00:02.000Z', 'push', 'p2', 'req-a') + rec('2026-01-01T00:00:04.000Z', 'push', 'p4') + '\n')
  // Printed outside the logger: wrapped, at the file's modification time.
  writeFileSync(join(dir, 'jobs.stdio'), 'Error: crashed\n    at main\n')
  const mtime = new Date('2026-01-01T00:00:06.000Z')
  utimesSync(join(dir, 'jobs.stdio'), mtime, mtime)
  // supervisord's own log, in local time: its lines at their time, labelled supervisord.
  writeFileSync(join(dir, 'supervisord.stdio'), `${supervisordTime(new Date('2026-01-01T00:00:00.100Z'))} INFO supervisord started with pid 77\n${supervisordTime(new Date('2026-01-01T00:00:04.500Z'))} WARN exited: push (terminated by SIGKILL; not expected)\nnot a line of its format\n`)
  // Not shown: a rotated file, something else.
  writeFileSync(join(dir, 'server.log.1'), rec('2026-01-01T00:00:00.500Z', 'server', 'rotated') + rec('2026-01-01T00:00:00.600Z', 'server', 'rotated-a', 'req-a'))
  writeFileSync(join(dir, 'notes.txt'), 'hello\n')
  const show = async (filter: LogFilter, options: { lines?: number; json?: boolean } = {}): Promise<string[]> => {
    let out = ''
    await showLogs(dir, filter, { follow: false, lines: options.lines ?? 200, json: options.json ?? true, color: false, write: (s) => (out += s) })
    assert.ok(out === '' || out.endsWith('\n'))
    return out.split('\n').slice(0, -1)
  }
  return { dir, show }
}

function msgs(lines: string[]): string[] {
  return lines.map((l) => (JSON.parse(l) as LogLine).msg ?? '')
}

const KILLED = 'exited: push (terminated by SIGKILL; not expected)'

test('showLogs merges every .log and .stdio file and supervisord\'s log in time order', async (t) => {
  const f = fixture(t)
  const out = await f.show({})
  assert.deepEqual(msgs(out), ['supervisord started with pid 77', 's1', 'p2', 's3', 'p4', KILLED, 's5', 'Error: crashed', '    at main'])
  const stdio = JSON.parse(out[7]!) as LogLine
  assert.deepEqual(stdio, { time: '2026-01-01T00:00:06.000Z', level: 'error', svc: 'jobs', msg: 'Error: crashed', stdio: true })
  assert.deepEqual(JSON.parse(out[5]!), { time: '2026-01-01T00:00:04.500Z', level: 'warn', svc: 'supervisord', pid: 77, msg: KILLED })
  assert.deepEqual(msgs(await f.show({ svc: 'supervisord' })), ['supervisord started with pid 77', KILLED])
  assert.deepEqual(msgs(await f.show({ level: 'warn' })), [KILLED, 'Error: crashed', '    at main'])
})

test('showLogs pretty-prints without ANSI codes when color is off', async (t) => {
  const f = fixture(t)
  const out = await f.show({}, { json: false })
  assert.equal(out.length, 9)
  assert.match(out[1]!, /^00:00:01\.000 INFO {2}server\[1\] +s1 {2}reqId=req-a$/)
  assert.match(out[5]!, /^00:00:04\.500 WARN {2}supervisord\[77\] +exited: push/)
  assert.match(out[7]!, /^00:00:06\.000 ERROR jobs\[\] +Error: crashed {2}stdio=true$/)
  assert.ok(!out.join('\n').includes('\x1b'))
})

test('showLogs --svc and --req filter', async (t) => {
  const f = fixture(t)
  assert.deepEqual(msgs(await f.show({ svc: 'server' })), ['s1', 's3', 's5'])
  assert.deepEqual(msgs(await f.show({ svc: 'jobs' })), ['Error: crashed', '    at main'])
  // A request id is also looked for in the rotated files.
  assert.deepEqual(msgs(await f.show({ req: 'req-a' })), ['rotated-a', 's1', 'p2', 's5'])
  assert.deepEqual(msgs(await f.show({ svc: 'push', req: 'req-a' })), ['p2'])
  assert.deepEqual(await f.show({ svc: 'nobody' }), [])
})

test('showLogs `lines` keeps the last N matching lines', async (t) => {
  const f = fixture(t)
  assert.deepEqual(msgs(await f.show({}, { lines: 3 })), ['s5', 'Error: crashed', '    at main'])
  assert.deepEqual(msgs(await f.show({ svc: 'server' }, { lines: 2 })), ['s3', 's5'])
  assert.deepEqual(msgs(await f.show({ req: 'req-a' }, { lines: 1 })), ['s5'])
  assert.equal((await f.show({}, { lines: 100 })).length, 9)
})

test('showLogs --level shows that level and worse; a bad level is refused with the choices', async (t) => {
  const f = fixture(t)
  const line = (time: string, level: string, msg: string): string => JSON.stringify({ time, level, svc: 'bridge', pid: 2, msg }) + '\n'
  writeFileSync(join(f.dir, 'bridge.log'), line('2026-01-01T00:00:07.000Z', 'warn', 'w') + line('2026-01-01T00:00:08.000Z', 'error', 'e') + line('2026-01-01T00:00:09.000Z', 'fatal', 'f') + line('2026-01-01T00:00:09.500Z', 'debug', 'd'))
  assert.deepEqual(msgs(await f.show({ level: 'error' })), ['Error: crashed', '    at main', 'e', 'f'])
  assert.deepEqual(msgs(await f.show({ level: 'warn', svc: 'bridge' })), ['w', 'e', 'f'])
  assert.equal((await f.show({ level: 'trace' })).length, 13)
  assert.equal(parseLevel(' ERROR '), 'error')
  assert.equal(parseLevel(undefined), undefined)
  assert.throws(() => parseLevel('errors'), /Expected --level \(make logs LEVEL=\) to be one of trace, debug, info, warn, error, fatal, got "errors"/)
})

test('showLogs `lines: 0` prints nothing', async (t) => {
  const f = fixture(t)
  assert.deepEqual(await f.show({}, { lines: 0 }), [])
})

test('showLogs over a missing directory prints nothing', async (t) => {
  const f = fixture(t)
  let out = ''
  await showLogs(join(f.dir, 'missing'), {}, { follow: false, lines: 10, json: true, color: false, write: (s) => (out += s) })
  assert.equal(out, '')
})
