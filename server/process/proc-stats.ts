/**
 * What Linux's /proc says about a process, for `forkyard ps`: CPU time (utime + stime, or the
 * threads' schedstat where that is more precise), start
 * time, resident memory (VmRSS), parent; CPU% sampled over a short interval like `pm2 ls`.
 * Elsewhere (no /proc) every reading is null.
 */
import { readFileSync, readdirSync } from 'node:fs'

/** USER_HZ: the unit of /proc/<pid>/stat times, 100 on every Linux architecture Node runs on. */
export const CLOCK_TICKS = 100

export interface StatFields {
  state: string
  ppid: number
  /** utime + stime, in clock ticks. */
  cpuTicks: number
  /** Start time, in clock ticks after boot. */
  startTicks: number
}

/**
 * Fields of /proc/<pid>/stat: after "pid (comm) " (comm may hold spaces and parentheses: split
 * after the last ")"), field 3 is the state, 4 the parent, 14 utime, 15 stime, 22 starttime.
 */
export function parseStat(text: string): StatFields | null {
  const close = text.lastIndexOf(')')
  if (close === -1) return null
  const f = text.slice(close + 2).trim().split(/\s+/)
  const num = (field: number): number => Number(f[field - 3])
  const out = { state: f[0] ?? '', ppid: num(4), cpuTicks: num(14) + num(15), startTicks: num(22) }
  return [out.ppid, out.cpuTicks, out.startTicks].every(Number.isFinite) && out.state !== '' ? out : null
}

/** VmRSS of /proc/<pid>/status ("VmRSS:\t  51234 kB") in bytes; null without one (a kernel thread, a zombie). */
export function parseVmRss(text: string): number | null {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text)
  return m === null ? null : Number(m[1]) * 1024
}

/** The first field of /proc/<pid>/task/<tid>/schedstat: time on a CPU, in nanoseconds. */
export function parseSchedstat(text: string): number | null {
  const m = /^(\d+)\s/.exec(text)
  return m === null ? null : Number(m[1])
}

/** The boot time (epoch seconds) from /proc/stat's btime line. */
export function parseBootTime(text: string): number | null {
  const m = /^btime\s+(\d+)/m.exec(text)
  return m === null ? null : Number(m[1])
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return null
  }
}

/**
 * CPU time of every live thread, in ms, from schedstat (nanoseconds): a process that has run for
 * less than one clock tick (nginx's master, a freshly forked supervisord) still shows its time.
 * Null where the kernel has no schedstat.
 */
export function threadsCpuMs(pid: number): number | null {
  let tids: string[]
  try {
    tids = readdirSync(`/proc/${pid}/task`)
  } catch {
    return null
  }
  let ns = 0
  for (const tid of tids) {
    const text = read(`/proc/${pid}/task/${tid}/schedstat`)
    const v = text === null ? null : parseSchedstat(text)
    if (v === null) return null
    ns += v
  }
  return ns / 1e6
}

let bootMs: number | null | undefined

/** Epoch ms of the boot, read once per process. */
function bootTimeMs(): number | null {
  if (bootMs === undefined) {
    const text = read('/proc/stat')
    const s = text === null ? null : parseBootTime(text)
    bootMs = s === null ? null : s * 1000
  }
  return bootMs
}

export interface ProcSnapshot {
  pid: number
  state: string
  ppid: number
  cpuMs: number
  /** Epoch ms the process started. */
  startedAt: number | null
  rssBytes: number | null
}

/** One reading of a process; null when it is gone (or there is no /proc). */
export function readProc(pid: number): ProcSnapshot | null {
  const stat = read(`/proc/${pid}/stat`)
  const fields = stat === null ? null : parseStat(stat)
  if (fields === null) return null
  const status = read(`/proc/${pid}/status`)
  const boot = bootTimeMs()
  return {
    pid,
    state: fields.state,
    ppid: fields.ppid,
    // utime + stime also holds threads that have exited; schedstat has the precision.
    cpuMs: Math.max((fields.cpuTicks * 1000) / CLOCK_TICKS, threadsCpuMs(pid) ?? 0),
    startedAt: boot === null ? null : boot + (fields.startTicks * 1000) / CLOCK_TICKS,
    rssBytes: status === null ? null : parseVmRss(status),
  }
}

/** The pids whose parent is `ppid` (a scan of /proc), in ascending order. */
export function childrenOf(ppid: number): number[] {
  let names: string[]
  try {
    names = readdirSync('/proc')
  } catch {
    return []
  }
  const out: number[] = []
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue
    const stat = read(`/proc/${name}/stat`)
    if (stat !== null && parseStat(stat)?.ppid === ppid) out.push(Number(name))
  }
  return out.sort((a, b) => a - b)
}

/** CPU% over the interval between two readings of the same process (100 = one full core). */
export function cpuPercent(before: ProcSnapshot, after: ProcSnapshot, elapsedMs: number): number {
  if (elapsedMs <= 0 || after.cpuMs < before.cpuMs) return 0
  return Math.round(((after.cpuMs - before.cpuMs) / elapsedMs) * 1000) / 10
}

export interface ProcSample extends ProcSnapshot {
  cpuPercent: number
}

/** Reads every pid twice, `ms` apart (pm2 ls-like CPU%); a process gone meanwhile is left out. */
export async function sampleProcs(pids: number[], ms = 250): Promise<Map<number, ProcSample>> {
  const first = new Map<number, ProcSnapshot>()
  for (const pid of pids) {
    const s = readProc(pid)
    if (s !== null) first.set(pid, s)
  }
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, ms))
  const elapsed = performance.now() - t0
  const out = new Map<number, ProcSample>()
  for (const [pid, before] of first) {
    const after = readProc(pid)
    // The same process: a pid reused meanwhile would start later.
    if (after !== null && after.startedAt === before.startedAt) out.set(pid, { ...after, cpuPercent: cpuPercent(before, after, elapsed) })
  }
  return out
}
