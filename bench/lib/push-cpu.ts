/**
 * CPU accounting of bench/push.ts: per process from /proc/<pid>/stat, the machine's from /proc/stat,
 * and a wait for an idle machine before each run (the cores are shared).
 */
import { readFileSync } from 'node:fs'
import { sleep } from './proc.js'

// /proc/<pid>/stat counts CPU time in clock ticks: USER_HZ, 100 on every Linux Node supports.
const TICK_MS = 10
// Before each run, wait up to IDLE_WAIT_MS for the machine to be idle.
const IDLE_BUSY_PERCENT = 20
const IDLE_WAIT_MS = 120_000

/** CPU time of processes started for a run and gone by its end (the publisher). */
export interface Gone {
  /** By name, while generating. */
  cpuMs: Record<string, number>
  /** Their whole CPU time, start-up included (for otherCpuPercent). */
  cpuTotalMs: number
}

export interface CpuUse {
  cpuPercent: Record<string, number | null>
  otherCpuPercent: number | null
  otherCpuMs: number | null
}

export function cpuMsOf(pid: number): number | null {
  try {
    // Fields after the ")" closing the command name: state is the first, utime the 12th, stime the 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS
  } catch {
    return null
  }
}

/**
 * CPU time the machine spent busy, from the first line of /proc/stat: user, nice, system, irq and
 * softirq. The interrupt columns count because without CONFIG_IRQ_TIME_ACCOUNTING (as on the
 * machine this was written on) the loopback traffic's softirq ticks are also charged to the
 * process that was running; with it, they are charged to no process and show up as "other".
 */
export function machineBusyMs(): number | null {
  try {
    const [, user, nice, system, , , irq, softirq] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/).map(Number)
    const busy = [user, nice, system, irq, softirq].reduce<number>((a, b) => a + (b ?? NaN), 0)
    return Number.isFinite(busy) ? busy * TICK_MS : null
  } catch {
    return null
  }
}

/**
 * Waits, up to IDLE_WAIT_MS, until the machine is idle (less than IDLE_BUSY_PERCENT of a core busy
 * over a second): on a shared machine another program's load would disturb the run.
 */
export async function waitForIdle(): Promise<void> {
  const deadline = Date.now() + IDLE_WAIT_MS
  let said = false
  while (Date.now() < deadline) {
    const before = machineBusyMs()
    await sleep(1000)
    const after = machineBusyMs()
    if (before === null || after === null || (after - before) / 10 < IDLE_BUSY_PERCENT) return
    if (!said) process.stderr.write(`  waiting for the machine to be idle (${Math.round((after - before) / 10)}% of a core busy)\n`)
    said = true
  }
  process.stderr.write('  the machine stayed busy: measuring anyway\n')
}

/** CPU times at one moment: this process (the clients), the target's processes, the machine. */
export interface CpuSnapshot {
  self: NodeJS.CpuUsage
  procs: Record<string, number | null>
  machineMs: number | null
}

export function cpuSnapshot(pids: Record<string, number>): CpuSnapshot {
  return {
    self: process.cpuUsage(),
    procs: Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuMsOf(pid)])),
    machineMs: machineBusyMs(),
  }
}

/**
 * CPU used since `before`, in percent of one core over runMs (first message sent to last one
 * received), per process; `gone` adds the processes that ran during the run only (the publisher).
 * "Other" is the machine's busy time minus all of ours, over the whole window up to now.
 */
export function cpuSince(before: CpuSnapshot, pids: Record<string, number>, gone: Gone, runMs: number, windowMs: number): CpuUse {
  const percent = (ms: number | null, overMs: number): number | null => (ms === null ? null : Math.round((1000 * ms) / Math.max(1, overMs)) / 10)
  const self = process.cpuUsage(before.self)
  const selfMs = (self.user + self.system) / 1000
  const cpuPercent: Record<string, number | null> = { clients: percent(selfMs, runMs) }
  let oursMs: number | null = selfMs + gone.cpuTotalMs
  for (const [name, pid] of Object.entries(pids)) {
    const start = before.procs[name] ?? null
    const end = cpuMsOf(pid)
    const used = start === null || end === null ? null : end - start
    cpuPercent[name] = percent(used, runMs)
    oursMs = oursMs === null || used === null ? null : oursMs + used
  }
  for (const [name, ms] of Object.entries(gone.cpuMs)) cpuPercent[name] = percent(ms, runMs)
  const machineMs = machineBusyMs()
  const otherCpuMs = before.machineMs === null || machineMs === null || oursMs === null ? null : Math.max(0, machineMs - before.machineMs - oursMs)
  return { cpuPercent, otherCpuMs, otherCpuPercent: percent(otherCpuMs, windowMs) }
}
