import assert from 'node:assert/strict'
import { test } from 'node:test'
import { wrapPlainLine } from '../../server/log/run-logged.js'

test('wrapPlainLine: an nginx error line becomes a schema line with the level nginx gave it', () => {
  const cases: [string, string][] = [
    ['2026/01/02 03:04:05 [emerg] 7#7: bind() failed (98: Address already in use)', 'fatal'],
    ['2026/01/02 03:04:05 [crit] 7#7: something', 'fatal'],
    ['2026/01/02 03:04:05 [error] 7#7: upstream timed out', 'error'],
    ['2026/01/02 03:04:05 [warn] 7#7: conflicting server name', 'warn'],
    ['2026/01/02 03:04:05 [notice] 7#7: signal process started', 'info'],
    ['no level in this line', 'info'],
  ]
  for (const [text, level] of cases) {
    const line = JSON.parse(wrapPlainLine('nginx', 7, text)) as Record<string, unknown>
    assert.deepEqual(Object.keys(line), ['time', 'level', 'svc', 'pid', 'msg'], text)
    assert.deepEqual({ ...line, time: 'T' }, { time: 'T', level, svc: 'nginx', pid: 7, msg: text }, text)
  }
})

test('a token in a request line nginx quotes never reaches the log', () => {
  const text = '2026/12/02 00:00:00 [error] 9#9: *1 connect() failed (111: Connection refused) while connecting to upstream, request: "GET /ws?token=v1.eyJjaCI6WyJw.c2ln&x=1 HTTP/1.1", host: "127.0.0.1"'
  const line = JSON.parse(wrapPlainLine('nginx', 7, text)) as { msg: string }
  assert.ok(!line.msg.includes('eyJjaCI6WyJw'), line.msg)
  assert.match(line.msg, /GET \/ws\?token=\(redacted\)&x=1 HTTP/)
})
