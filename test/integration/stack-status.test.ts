/**
 * `forkyard ps` (make status): every process of the stack in one table or one JSON document, with
 * CPU and memory from /proc, and restart counts and last exits from supervisord (programs) and the
 * arbiter (workers, jobs): kill -9 of a worker, kill -9 of push and a reload are each counted.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { ArbiterStatus } from '../../server/arbiter/control.js'
import type { StackStatus } from '../../server/stack/status.js'
import { startStackRun } from '../helpers/stack.js'
import { until } from '../helpers/server.js'

test('forkyard ps: every process with CPU time and RSS; kill -9 of a worker and of push, and a reload, counted', async (t) => {
  const s = await startStackRun(t, { FORKYARD_JOBS: '1' })
  const ps = (): StackStatus => {
    const r = s.cli('ps', '--json')
    assert.equal(r.status, 0, `expected forkyard ps --json to exit 0, got ${r.status}: ${r.stdout}${r.stderr}`)
    return JSON.parse(r.stdout) as StackStatus
  }
  const status = (): ArbiterStatus => JSON.parse(s.cli('status', '--json').stdout) as ArbiterStatus
  const row = (doc: StackStatus, name: string) => {
    const found = doc.processes.find((p) => p.name === name)
    assert.ok(found !== undefined, `expected a process named ${name}, got ${doc.processes.map((p) => p.name).join(', ')}`)
    return found
  }

  // Every process, measured (CPU time from schedstat: no process is below its precision).
  const doc = ps()
  const names = ['supervisord', 'nginx', 'nginx/master', 'server', 'server/w1', 'server/w2', 'server/jobs', 'push', 'bridge']
  for (const name of names) {
    const p = row(doc, name)
    assert.ok(p.pid !== null && p.pid > 0, `expected ${name} to have a pid, got ${JSON.stringify(p)}`)
    assert.ok(p.rssBytes !== null && p.rssBytes > 0, `expected ${name} to have an RSS, got ${JSON.stringify(p)}`)
    assert.ok(p.uptimeMs !== null && p.uptimeMs >= 0 && p.cpuPercent !== null, `expected ${name} to have an uptime and a CPU%, got ${JSON.stringify(p)}`)
    assert.ok(p.cpuMs !== null && p.cpuMs > 0, `expected ${name} to have used CPU time, got ${JSON.stringify(p)}`)
  }
  assert.ok(doc.processes.some((p) => p.role === 'nginx-worker'), 'expected nginx workers listed')
  for (const p of doc.processes) assert.ok(p.cpuMs !== null && p.cpuMs > 0 && p.rssBytes !== null && p.rssBytes > 0, `expected every process to have CPU time and RSS, got ${JSON.stringify(p)}`)
  for (const name of ['nginx', 'server', 'push', 'bridge', 'server/w1', 'server/w2', 'server/jobs']) assert.equal(row(doc, name).restarts, 0, `${name}: no restart yet`)
  const table = s.cli('ps')
  assert.equal(table.status, 0, table.stdout + table.stderr)
  assert.match(table.stdout, /^NAME\s+PID\s+STATE\s+UPTIME\s+CPU\s+CPU TIME\s+MEM\s+↺\s+LAST EXIT$/m)
  for (const name of names) assert.match(table.stdout, new RegExp(`^${name}\\s+\\d+\\s`, 'm'), table.stdout)
  assert.match(table.stdout, /2\/2 workers ready/)

  // forkyard status under the stack: the arbiter's document plus every process, like pm2 status.
  const full = JSON.parse(s.cli('status', '--json').stdout) as ArbiterStatus & Partial<StackStatus>
  assert.equal(full.expectedWorkers, 2)
  for (const name of names) {
    const p = full.processes?.find((x) => x.name === name)
    assert.ok(p !== undefined && p.cpuMs !== null && p.cpuMs > 0 && p.rssBytes !== null && p.rssBytes > 0, `expected forkyard status --json to list ${name} with CPU time and RSS, got ${JSON.stringify(p)}`)
  }
  const statusTable = s.cli('status')
  assert.match(statusTable.stdout, /^NAME\s+PID\s+STATE[\s\S]*^WORKER\s+PID\s+GEN/m, statusTable.stdout)

  // forkyard top: the same table redrawn, with totals; piped, one frame after another.
  const frames = s.cli('top', '--count', '2', '--interval', '0.5')
  assert.equal(frames.status, 0, frames.stdout + frames.stderr)
  assert.equal(frames.stdout.match(/^forkyard top: .*, every 0\.5s$/gm)?.length, 2, frames.stdout)
  const total = [...frames.stdout.matchAll(/^total: (\d+) processes, CPU [\d.]+%, memory ([\d.]+)M$/gm)]
  assert.equal(total.length, 2, frames.stdout)
  assert.equal(Number(total[0]![1]), doc.processes.length, frames.stdout)
  assert.ok(Number(total[0]![2]) > 50, `expected the stack to use more than 50M, got ${total[0]![2]}`)
  for (const name of names) assert.equal(frames.stdout.match(new RegExp(`^${name}\\s+\\d+\\s`, 'gm'))?.length, 2, frames.stdout)
  const bad = s.cli('top', '--interval', '0')
  assert.equal(bad.status, 2, bad.stdout + bad.stderr)
  assert.match(bad.stderr, /Expected --interval .* got "0"/)

  // kill -9 of a worker: its slot counts a crash, SIGKILL.
  const w1 = row(doc, 'server/w1').pid!
  process.kill(w1, 'SIGKILL')
  const afterKill = await until('server/w1 replaced, its restart counted', () => {
    const d = ps()
    const p = d.processes.find((x) => x.name === 'server/w1')
    return p !== undefined && p.pid !== w1 && p.restarts === 1 ? d : null
  })
  assert.match(row(afterKill, 'server/w1').lastExit?.reason ?? '', /^crash: SIGKILL$/)
  assert.equal(row(afterKill, 'server/w2').restarts, 0, 'the other slot untouched')
  const st1 = status()
  assert.equal(st1.restarts.crash, 1, `expected one crash counted, got ${JSON.stringify(st1.restarts)}`)
  assert.equal(st1.workers.find((w) => w.slot === 1)?.lastExit?.signal, 'SIGKILL')

  // kill -9 of push: supervisord restarts it; its log says why.
  const push = s.programPid('push')!
  process.kill(push, 'SIGKILL')
  const afterPush = await until('push restarted and counted', () => {
    const p = ps().processes.find((x) => x.name === 'push')
    return p !== undefined && p.pid !== null && p.pid !== push && p.restarts === 1 ? p : null
  })
  assert.match(afterPush.lastExit?.reason ?? '', /SIGKILL/)
  // make logs shows supervisord's lines too: the kill and the restart, at their times.
  const sup = s.cli('logs', '--svc', 'supervisord', '--level', 'warn', '--lines', '20', '--json')
  assert.equal(sup.status, 0, sup.stdout + sup.stderr)
  const killed = sup.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { time: string; level: string; msg: string }).find((l) => l.msg === 'exited: push (terminated by SIGKILL; not expected)')
  assert.ok(killed !== undefined && killed.level === 'warn' && Math.abs(Date.parse(killed.time) - Date.now()) < 60_000, `expected supervisord's line on the kill of push in make logs, got ${sup.stdout}`)
  assert.ok(afterPush.lastExit !== null && Math.abs(Date.parse(afterPush.lastExit.at) - Date.now()) < 60_000, `expected the exit time within a minute, got ${afterPush.lastExit?.at}`)

  // forkyard reload: one reload restart per worker (and one for the jobs process).
  const before = status()
  const r = s.cli('reload')
  assert.equal(r.status, 0, r.stdout + r.stderr)
  const after = await until('every replaced worker counted as a reload', () => {
    const st = status()
    return st.restarts.reload - before.restarts.reload === before.expectedWorkers ? st : null
  })
  assert.equal(after.restarts.crash, 1, 'the reload is no crash')
  for (const w of after.workers.filter((x) => x.state !== 'draining')) assert.equal(w.lastExit?.cause, 'reload', `slot ${w.slot}: ${JSON.stringify(w.lastExit)}`)
  await until('the jobs process restarted for the new code', () => (status().jobs?.restarts === 1 ? true : null))
  assert.equal(status().jobs?.lastExit?.cause, 'reload')
})
