import assert from 'node:assert/strict'
import { test } from 'node:test'
import { top, totals } from '../../server/stack/top.js'
import type { StackStatus } from '../../server/stack/status.js'

test('totals: processes, CPU% and memory summed; unknown values count as 0', () => {
  const row = { role: 'worker', state: 'ready', uptimeMs: 1, cpuMs: 1, restarts: 0, lastExit: null }
  const status: StackStatus = {
    processes: [
      { ...row, name: 'a', pid: 1, cpuPercent: 12.5, rssBytes: 10 * 1048576 },
      { ...row, name: 'b', pid: 2, cpuPercent: 0.5, rssBytes: 5.5 * 1048576 },
      { ...row, name: 'c', pid: null, cpuPercent: null, rssBytes: null },
    ],
  }
  assert.equal(totals(status), 'total: 3 processes, CPU 13.0%, memory 15.5M\n')
})

test('top: while the stack is down it says so each frame; a terminal gets each frame on a cleared screen', async () => {
  const out: string[] = []
  const t0 = performance.now()
  await top({ runDir: '/nonexistent', logDir: '/nonexistent' }, { intervalMs: 200, count: 3, tty: false, write: (s) => out.push(s), supervisord: () => null })
  const took = performance.now() - t0
  assert.equal(out.length, 3)
  assert.ok(took >= 350 && took < 2000, `expected two pauses of about 200 ms, took ${took} ms`)
  for (const f of out) assert.match(f, /^\n?forkyard top: .*, every 0\.2s\n\nthe stack is not running \(make up\); waiting for it\n$/)
  assert.ok(!out[0]!.startsWith('\n') && out[1]!.startsWith('\n'), 'piped: frames separated by a blank line')
  const tty: string[] = []
  await top({ runDir: '/nonexistent', logDir: '/nonexistent' }, { intervalMs: 200, count: 1, tty: true, write: (s) => tty.push(s), supervisord: () => null })
  assert.ok(tty[0]!.startsWith('\x1b[H\x1b[2Jforkyard top: '), JSON.stringify(tty[0]))
  assert.match(tty[0]!, /\(Ctrl-C quits\)\n/)
})
