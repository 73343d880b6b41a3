/**
 * Per-process control of the running stack, as a PM2 user expects it: `forkyard restart push`
 * (make restart P=push) restarts push and nothing else; `forkyard scale N` (make scale N=) changes
 * the worker count; supervisorctl works from a plain shell with the file `forkyard up` writes.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { isAlive } from '../../server/process/pidfile.js'
import { startStackRun } from '../helpers/stack.js'
import { until } from '../helpers/server.js'

interface Status {
  pid: number
  expectedWorkers: number
  readyWorkers: number
  jobsPid: number | null
  workers: { pid: number }[]
}

test('forkyard restart push restarts only push; scale 3 then 1; supervisorctl -c run/supervisorctl.conf from a bare shell', async (t) => {
  const s = await startStackRun(t)
  const status = (): Status => JSON.parse(s.cli('status', '--json').stdout) as Status
  const programs = ['bridge', 'push', 'server', 'nginx']
  const before = Object.fromEntries(programs.map((p) => [p, s.programPid(p)]))
  const st0 = status()
  for (const [name, pid] of Object.entries(before)) assert.ok(pid !== null && pid > 0, `${name} running`)

  const r = s.cli('restart', 'push')
  assert.equal(r.status, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /push: stopped[\s\S]*push: started/)
  const newPush = await until('push running again', () => s.programPid('push'), 15_000)
  assert.notEqual(newPush, before.push, 'push has a new pid')
  assert.equal(isAlive(before.push!), false, 'the old push process is gone')
  for (const p of ['bridge', 'server', 'nginx']) assert.equal(s.programPid(p), before[p], `${p} untouched`)
  const st1 = status()
  assert.equal(st1.pid, st0.pid, 'the arbiter untouched')
  assert.deepEqual(st1.workers.map((w) => w.pid).sort(), st0.workers.map((w) => w.pid).sort(), 'the workers untouched')
  await until('push ready through nginx', async () => (await fetch(s.url('/readyz'))).status === 200, 15_000)

  const bad = s.cli('restart', 'pushh')
  assert.notEqual(bad.status, 0)
  assert.match(bad.stderr + bad.stdout, /Expected forkyard restart PROGRAM\.\.\. with programs among bridge, push, server, nginx or all, got "pushh"/)

  const up3 = s.cli('scale', '3')
  assert.equal(up3.status, 0, up3.stdout + up3.stderr)
  assert.match(up3.stdout, /3\/3 workers ready/)
  assert.equal(status().readyWorkers, 3)
  const down1 = s.cli('scale', '1')
  assert.equal(down1.status, 0, down1.stdout + down1.stderr)
  await until('one worker left', () => status().workers.length === 1, 30_000)
  assert.match(s.cli('scale', '0').stderr, /Expected forkyard scale N with N a whole number from 1 to 999, got "0"/)

  // forkyard startup --print: the unit for this project, as systemd-analyze accepts it.
  const unit = s.cli('startup', '--print')
  assert.equal(unit.status, 0, unit.stderr)
  assert.match(unit.stdout, new RegExp(`^WorkingDirectory=${s.projectDir}$`, 'm'))
  if (spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0) {
    const file = join(s.dir, 'forkyard-control.service')
    writeFileSync(file, unit.stdout)
    const verify = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(verify.status, 0, verify.stdout + verify.stderr)
  }

  // A shell with nothing of forkyard in its environment.
  const ctl = spawnSync('supervisorctl', ['-c', join(s.runDir, 'supervisorctl.conf'), 'status'], { env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8' })
  assert.equal(ctl.status, 0, ctl.stdout + ctl.stderr)
  for (const p of programs) assert.match(ctl.stdout, new RegExp(`^${p}\\s+RUNNING`, 'm'))
})
