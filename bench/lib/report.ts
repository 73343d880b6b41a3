/** The bench's results: their shape, the ratios derived from them, and the text report. */
import type { WrkResult } from './wrk.js'

export type Mode = 'keepalive' | 'close'

export interface Balance {
  /** Requests each worker served during the measured run (forkyard's "served" deltas). */
  perWorker: number[]
  servedTotal: number
  minShare: number
  maxShare: number
}

/** One measured wrk run. */
export interface Row extends WrkResult {
  key: string
  label: string
  mode: Mode
  round: number
  /** CPU time of the server's processes during the run, per request wrk completed, in µs. */
  cpuUsPerRequest: number | null
  /** Share of the machine's CPU time that other processes (not server, wrk, bench) used in the run. */
  otherLoad: number
  balance: Balance | null
}

/** The median of a configuration's rounds (the whole run, so its numbers belong together). */
export interface Summary extends Row {
  rounds: number
  rpsMin: number
  rpsMax: number
}

export interface ServerRecord {
  key: string
  label: string
  /** RSS after the load of the process we started (arbiter, cluster primary, single process). */
  primaryKiB: number | null
  /** RSS after the load of its workers, summed (null when there are none or one was gone). */
  workersKiB: number | null
  /** Size of its stdout + stderr: the access log, when it is on. */
  logBytes: number
}

export interface Ratio {
  name: string
  value: number | null
}

/** A run during which other processes used more than this share of the CPUs is disturbed. */
export const QUIET = 0.05

/** The target: forkyard (its defaults, access log off) within 5% of bare node:cluster. */
export const TARGET = { ratio: 'forkyard / bare cluster (keep-alive)', min: 0.95 }

export function balanceOf(before: Map<number, number>, after: Map<number, number>): Balance {
  const perWorker = [...after].map(([id, n]) => n - (before.get(id) ?? 0))
  const servedTotal = perWorker.reduce((a, b) => a + b, 0)
  const shares = perWorker.map((n) => (servedTotal > 0 ? n / servedTotal : 0))
  return { perWorker, servedTotal, minShare: Math.min(...shares), maxShare: Math.max(...shares) }
}

/** Per configuration, in first-seen order: the run with the median req/s, and the spread. */
export function summarize(runs: readonly Row[]): Summary[] {
  const groups = new Map<string, Row[]>()
  for (const r of runs) groups.set(`${r.key}/${r.mode}`, [...(groups.get(`${r.key}/${r.mode}`) ?? []), r])
  return [...groups.values()].map((group) => {
    const sorted = [...group].sort((a, b) => a.rps - b.rps)
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!
    return { ...median, rounds: sorted.length, rpsMin: sorted[0]!.rps, rpsMax: sorted[sorted.length - 1]!.rps }
  })
}

export function ratiosOf(rows: readonly Summary[]): Ratio[] {
  const rps = (key: string, mode: Mode): number | undefined => rows.find((r) => r.key === key && r.mode === mode)?.rps
  const cpu = (key: string, mode: Mode): number | undefined => rows.find((r) => r.key === key && r.mode === mode)?.cpuUsPerRequest ?? undefined
  const ratio = (name: string, a: number | undefined, b: number | undefined): Ratio => ({
    name,
    value: a !== undefined && b !== undefined && b > 0 ? a / b : null,
  })
  return [
    ratio(TARGET.ratio, rps('forkyard', 'keepalive'), rps('cluster', 'keepalive')),
    ratio('forkyard / bare cluster (Connection: close)', rps('forkyard', 'close'), rps('cluster', 'close')),
    ratio('forkyard rr / bare cluster, both round-robin (keep-alive)', rps('forkyard-rr', 'keepalive'), rps('cluster', 'keepalive')),
    ratio('forkyard rr / bare cluster, both round-robin (Connection: close)', rps('forkyard-rr', 'close'), rps('cluster', 'close')),
    ratio('forkyard / single process (keep-alive)', rps('forkyard', 'keepalive'), rps('single', 'keepalive')),
    ratio('bare cluster / single process (keep-alive)', rps('cluster', 'keepalive'), rps('single', 'keepalive')),
    ratio('forkyard access log on / off (keep-alive)', rps('forkyard-log', 'keepalive'), rps('forkyard', 'keepalive')),
    ratio('forkyard rr / none (keep-alive)', rps('forkyard-rr', 'keepalive'), rps('forkyard', 'keepalive')),
    ratio('forkyard rr / none (Connection: close)', rps('forkyard-rr', 'close'), rps('forkyard', 'close')),
    ratio('CPU per request: forkyard / bare cluster (keep-alive)', cpu('forkyard', 'keepalive'), cpu('cluster', 'keepalive')),
    ratio('CPU per request: forkyard rr / bare cluster (keep-alive)', cpu('forkyard-rr', 'keepalive'), cpu('cluster', 'keepalive')),
    ratio('CPU per request: forkyard access log on / off (keep-alive)', cpu('forkyard-log', 'keepalive'), cpu('forkyard', 'keepalive')),
  ]
}

function table(header: string[], body: string[][], rightFrom: number): string {
  const rows = [header, ...body]
  const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]): string =>
    r.map((c, i) => (i >= rightFrom ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()
  return rows.map(line).join('\n') + '\n'
}

const ms = (v: number): string => `${v < 10 ? v.toFixed(2) : v.toFixed(1)}ms`
const pct = (v: number): string => `${Math.round(v * 100)}%`
const mib = (kib: number | null): string => (kib === null ? '-' : `${(kib / 1024).toFixed(1)} MiB`)

export function formatReport(rows: readonly Summary[], servers: readonly ServerRecord[], ratios: readonly Ratio[]): string {
  const rounds = Math.max(...rows.map((r) => r.rounds))
  let out = `\nThroughput and latency (${rounds > 1 ? `the median of ${rounds} rounds; range = slowest..fastest round` : 'one round'})\n`
  out += table(
    ['configuration', 'connections', 'req/s', 'range', 'p50', 'p99', 'CPU/req', 'balance min/max', 'errors', 'others'],
    rows.map((r) => [
      r.label,
      r.mode === 'close' ? 'Connection: close' : 'keep-alive',
      Math.round(r.rps).toString(),
      `${Math.round(r.rpsMin)}..${Math.round(r.rpsMax)}`,
      ms(r.p50Ms),
      ms(r.p99Ms),
      r.cpuUsPerRequest === null ? '-' : `${r.cpuUsPerRequest.toFixed(1)}us`,
      r.balance === null ? '-' : `${pct(r.balance.minShare)}/${pct(r.balance.maxShare)}`,
      String(r.socketErrors + r.non2xx),
      pct(r.otherLoad),
    ]),
    2,
  )
  out +=
    'CPU/req: CPU time (user + system) of the server processes during the run, per request.\n' +
    'balance: the smallest and largest share of the requests one worker served in the run (forkyard status "served").\n' +
    'With keep-alive, connections last the whole run, so it shows how they were spread and how much CPU each worker got.\n' +
    'others: share of the CPUs that processes other than the server, wrk and the bench used during the run.\n'
  out += '\nMemory after the load (last round)\n'
  out += table(
    ['server', 'arbiter/primary RSS', 'workers RSS (sum)', 'log written'],
    servers.map((s) => [s.label, mib(s.primaryKiB), mib(s.workersKiB), `${(s.logBytes / 1048576).toFixed(1)} MiB`]),
    1,
  )
  out += '\nRatios of req/s (higher is faster) and of CPU per request (lower is cheaper)\n'
  const measured = ratios.filter((r) => r.value !== null)
  out += table(['ratio', 'value'], measured.map((r) => [r.name, (r.value ?? 0).toFixed(3)]), 1)
  const busy = rows.filter((r) => r.otherLoad > QUIET)
  if (busy.length > 0) {
    const worst = Math.max(...busy.map((r) => r.otherLoad))
    out += `\nWarning: other processes used up to ${pct(worst)} of the CPUs during ${busy.length} of these runs: their req/s are low; CPU/req less affected.\n`
  }
  const target = ratios.find((r) => r.name === TARGET.ratio)?.value ?? null
  const verdict = target === null ? 'not measured' : target >= TARGET.min ? 'met' : 'MISSED'
  out += `\nTarget: forkyard within ${Math.round((1 - TARGET.min) * 100)}% of bare node:cluster (${TARGET.ratio} >= ${TARGET.min}): ${verdict}\n`
  return out
}
