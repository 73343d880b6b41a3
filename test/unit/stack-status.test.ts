import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CLOCK_TICKS, cpuPercent, parseBootTime, parseSchedstat, parseStat, parseVmRss, readProc, threadsCpuMs } from '../../server/process/proc-stats.js'
import { arbiterRows, cpuTime, formatWorkers, formatTable, parseProcessInfo, shortDuration, type StackStatus } from '../../server/stack/status.js'
import { exitReason, parseSupervisordLine, parseSupervisorLog } from '../../server/stack/supervisor-log.js'
import type { ArbiterStatus } from '../../server/arbiter/control.js'

test('parseStat: state, parent, utime+stime and start time, a name with spaces and parentheses', () => {
  const text = '4242 (node (a) b) S 4200 4242 4200 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 11 0 987654 1000000 2000 18446744073709551615\n'
  assert.deepEqual(parseStat(text), { state: 'S', ppid: 4200, cpuTicks: 175, startTicks: 987654 })
  assert.equal(parseStat('garbage'), null)
  assert.equal(parseStat('1 (x) S'), null, 'too few fields')
})

test('parseVmRss, parseBootTime: bytes and epoch seconds; null when absent', () => {
  assert.equal(parseVmRss('Name:\tnode\nVmRSS:\t   51234 kB\nThreads:\t11\n'), 51234 * 1024)
  assert.equal(parseVmRss('Name:\tkthreadd\n'), null)
  assert.equal(parseBootTime('cpu  1 2 3\nbtime 1764633600\nprocesses 5\n'), 1764633600)
  assert.equal(parseBootTime('cpu 1\n'), null)
})

test('parseSchedstat: nanoseconds on a CPU; readProc counts below one clock tick', () => {
  assert.equal(parseSchedstat('160942 243025 2\n'), 160942)
  assert.equal(parseSchedstat(''), null)
  assert.equal(parseSchedstat('x 1 2'), null)
  const threads = threadsCpuMs(process.pid)
  assert.ok(threads !== null && threads > 0, `expected this process's threads to have used CPU time, got ${threads}`)
  const me = readProc(process.pid)
  assert.ok(me !== null && me.cpuMs >= threads, `expected readProc's CPU time to be at least the threads', got ${me?.cpuMs} < ${threads}`)
})

test('readProc: this process, its CPU time and RSS; cpuPercent over an interval', () => {
  const me = readProc(process.pid)
  assert.ok(me !== null, 'expected /proc to describe this process')
  assert.equal(me.ppid, process.ppid)
  assert.ok(me.rssBytes !== null && me.rssBytes > 1_000_000, `expected an RSS over 1 MB, got ${me.rssBytes}`)
  assert.ok(me.startedAt !== null && Math.abs(me.startedAt - (Date.now() - process.uptime() * 1000)) < 5000, `expected the start time within 5 s of process.uptime(), got ${me.startedAt}`)
  const base = { ...me, cpuMs: 1000 }
  assert.equal(cpuPercent(base, { ...me, cpuMs: 1000 + (25 * 1000) / CLOCK_TICKS }, 250), 100)
  assert.equal(cpuPercent(base, { ...me, cpuMs: 1050 }, 250), 20)
  assert.equal(cpuPercent(base, { ...me, cpuMs: 900 }, 250), 0, 'never negative')
})

const log = `2026-12-02 01:00:00,000 INFO supervisord started with pid 10
2026-12-02 01:00:01,000 INFO spawned: 'push' with pid 11
2026-12-02 01:00:02,000 WARN exited: push (terminated by SIGKILL; not expected)
2026-12-02 01:04:12,719 INFO supervisord started with pid 18261
2026-12-02 01:04:13,723 INFO spawned: 'bridge' with pid 18262
2026-12-02 01:04:13,746 INFO spawned: 'push' with pid 18265
2026-12-02 01:04:14,748 INFO success: push entered RUNNING state, process has stayed up for > than 1 seconds (startsecs)
2026-12-02 01:05:02,996 WARN exited: push (terminated by SIGKILL; not expected)
2026-12-02 01:05:03,999 INFO spawned: 'push' with pid 18300
2026-12-02 01:06:00,000 WARN exited: bridge (exit status 1; not expected)
2026-12-02 01:06:01,000 INFO spawned: 'bridge' with pid 18400
2026-12-02 01:07:00,000 INFO stopped: bridge (terminated by SIGTERM)
2026-12-02 01:07:01,000 INFO spawned: 'bridge' with pid 18500
`

test('parseSupervisorLog: restarts (spawns after the first) and the last exit, since supervisord last started', () => {
  const h = parseSupervisorLog(log)
  assert.deepEqual(h.push, { restarts: 1, lastExit: { reason: 'crash: SIGKILL', at: new Date(2026, 11, 2, 1, 5, 2, 996).toISOString() } })
  assert.equal(h.bridge?.restarts, 2)
  assert.equal(h.bridge?.lastExit?.reason, 'stopped: SIGTERM')
  assert.equal(parseSupervisorLog('').push, undefined)
})

test('parseSupervisordLine: local time to ISO, levels as the schema\'s, giving up is an error', () => {
  assert.deepEqual(parseSupervisordLine('2026-12-02 01:05:02,996 WARN exited: push (terminated by SIGKILL; not expected)'), { time: new Date(2026, 11, 2, 1, 5, 2, 996).toISOString(), level: 'warn', msg: 'exited: push (terminated by SIGKILL; not expected)' })
  assert.equal(parseSupervisordLine('2026-12-02 01:04:12,700 CRIT Supervisor is running as root.')?.level, 'warn')
  assert.equal(parseSupervisordLine('2026-12-02 01:04:12,700 ERRO spawnerr: can\'t find command')?.level, 'error')
  assert.equal(parseSupervisordLine('2026-12-02 01:06:00,000 INFO gave up: push entered FATAL state, too many start retries too quickly')?.level, 'error')
  assert.equal(parseSupervisordLine('2026-12-02 01:06:00,000 INFO spawned: \'push\' with pid 3')?.level, 'info')
  assert.equal(parseSupervisordLine('    a continuation'), null)
})

test('exitReason: crash, exited or stopped, then the signal or the code', () => {
  assert.equal(exitReason('exited', 'terminated by SIGKILL; not expected'), 'crash: SIGKILL')
  assert.equal(exitReason('exited', 'exit status 1; not expected'), 'crash: code 1')
  assert.equal(exitReason('exited', 'exit status 0; expected'), 'exited: code 0')
  assert.equal(exitReason('stopped', 'exit status 0'), 'stopped: code 0')
})

test('parseProcessInfo: name, statename and pid of each struct of getAllProcessInfo', () => {
  const member = (name: string, v: string): string => `<member><name>${name}</name><value>${v}</value></member>`
  const struct = (name: string, state: string, pid: number): string => `<value><struct>${member('name', `<string>${name}</string>`)}${member('statename', `<string>${state}</string>`)}${member('pid', `<int>${pid}</int>`)}</struct></value>`
  const xml = `<?xml version='1.0'?><methodResponse><params><param><value><array><data>${struct('bridge', 'RUNNING', 12)}${struct('push', 'BACKOFF', 0)}</data></array></value></param></params></methodResponse>`
  assert.deepEqual(parseProcessInfo(xml), [
    { name: 'bridge', state: 'RUNNING', pid: 12 },
    { name: 'push', state: 'BACKOFF', pid: 0 },
  ])
})

test('arbiterRows and formatTable: workers by slot, the jobs process, dashes for what is unknown', () => {
  const zero = { crash: 0, timeout: 0, memory: 0, 'max-requests': 0, reload: 0 }
  const w = (worker: number, slot: number, pid: number) => ({ worker, slot, pid, generation: 1, state: 'ready' as const, served: 0, inflight: 0, rssBytes: 0, lastHeartbeatMsAgo: 0, uptimeMs: 0, configVersion: 'v', restarts: slot === 1 ? 1 : 0, lastExit: slot === 1 ? { cause: 'crash' as const, code: null, signal: 'SIGKILL', at: 1000 } : null })
  const s: ArbiterStatus = { pid: 1, generation: 1, expectedWorkers: 2, readyWorkers: 2, reloading: false, bind: [], configVersion: 'v', jobsPid: 9, workers: [w(4, 2, 40), w(3, 1, 30)], restarts: { ...zero, crash: 1 }, jobs: { pid: 9, restarts: 0, restartsByCause: zero, lastExit: null } }
  const rows = arbiterRows(s)
  assert.deepEqual(rows.map((r) => [r.name, r.pid, r.restarts]), [['server/w1', 30, 1], ['server/w2', 40, 0], ['server/jobs', 9, 0]])
  assert.deepEqual(rows[0]!.lastExit, { reason: 'crash: SIGKILL', at: new Date(1000).toISOString() })
  const status: StackStatus = { processes: [{ ...rows[0]!, uptimeMs: 65_000, cpuPercent: 2.5, cpuMs: 1234, rssBytes: 50 * 1048576 }, { ...rows[2]!, pid: null, uptimeMs: null, cpuPercent: null, cpuMs: null, rssBytes: null }] }
  const lines = formatTable(status, 61_000).split('\n')
  assert.match(lines[0]!, /^NAME\s+PID\s+STATE\s+UPTIME\s+CPU\s+CPU TIME\s+MEM\s+↺\s+LAST EXIT$/)
  assert.match(lines[1]!, /^server\/w1\s+30\s+ready\s+1m\s+2\.5%\s+1\.23s\s+50\.0M\s+1\s+crash: SIGKILL, 1m ago$/)
  assert.match(lines[2]!, /^server\/jobs\s+-\s+running\s+-\s+-\s+-\s+-\s+0\s+-$/)
  const workers = formatWorkers(s, 61_000)
  assert.match(workers, /^arbiter pid 1, generation 1, 2\/2 workers ready, .*jobs pid 9, 0 restarts, last exit -\nworker restarts: crash 1, timeout 0, memory 0, max-requests 0, reload 0\n/)
  assert.match(workers, /^WORKER\s+PID\s+GEN\s+STATE\s+SERVED\s+INFLIGHT\s+RSS\s+HEARTBEAT\s+UPTIME\s+SLOT\s+↺\s+LAST EXIT$/m)
  assert.match(workers, /^3\s+30\s+1\s+ready\s.*\s1\s+1\s+crash: SIGKILL, 1m ago$/m)
  assert.deepEqual([shortDuration(59_999), shortDuration(3_600_000), shortDuration(2 * 86_400_000)], ['59s', '1h', '2d'])
  assert.deepEqual([cpuTime(30), cpuTime(12_345), cpuTime(184_000), cpuTime(7_500_000)], ['0.03s', '12.3s', '3m04s', '2h05m'])
})
