/** The HTTP bench's results: their shape, the ratios to the anchor, and the text report. */
import type { WrkResult } from './wrk.js'

/** One measured wrk run. */
export interface Row extends WrkResult {
  key: string
  label: string
  round: number
  /** CPU time of every process of the configuration (nginx included) per request, in µs. */
  cpuUsPerRequest: number
  /** Percent of one core each kind of process used during the run (by command line). */
  cpuByProcess: Record<string, number>
  /** Share of the machine's CPU time that processes outside the configuration, wrk and the bench used. */
  otherLoad: number
}

export interface Summary extends Row {
  rounds: number
  rpsMin: number
  rpsMax: number
}

export interface Ratio {
  name: string
  value: number | null
  /** The goal, when there is one: value >= min. */
  min?: number
}

/** A run during which other processes used more than this share of the CPUs is disturbed. */
export const QUIET = 0.05
export const ANCHOR = 'cluster'
export const GOAL = 0.95

/** Per configuration, in first-seen order: the run with the median req/s, and the spread. */
export function summarize(runs: readonly Row[]): Summary[] {
  const groups = new Map<string, Row[]>()
  for (const r of runs) groups.set(r.key, [...(groups.get(r.key) ?? []), r])
  return [...groups.values()].map((group) => {
    const sorted = [...group].sort((a, b) => a.rps - b.rps)
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!
    return { ...median, rounds: sorted.length, rpsMin: sorted[0]!.rps, rpsMax: sorted[sorted.length - 1]!.rps }
  })
}

/** Each configuration's median req/s over the anchor's, plus the same per round (paired runs). */
export function ratiosOf(rows: readonly Summary[], runs: readonly Row[]): Ratio[] {
  const anchor = rows.find((r) => r.key === ANCHOR)
  const out: Ratio[] = []
  for (const r of rows) {
    if (r.key === ANCHOR || anchor === undefined) continue
    out.push({ name: `${r.label} / ${anchor.label}: req/s`, value: r.rps / anchor.rps, min: GOAL })
    // Round by round: each configuration against the anchor measured right next to it.
    const paired = runs
      .filter((x) => x.key === r.key)
      .map((x) => {
        const a = runs.find((y) => y.key === ANCHOR && y.round === x.round)
        return a === undefined ? null : x.rps / a.rps
      })
      .filter((v): v is number => v !== null)
      .sort((a, b) => a - b)
    if (paired.length > 0) out.push({ name: `${r.label} / ${anchor.label}: req/s, median of the per-round ratios`, value: paired[Math.floor((paired.length - 1) / 2)]! })
    out.push({ name: `${r.label} / ${anchor.label}: p99`, value: r.p99Ms / anchor.p99Ms })
    out.push({ name: `${r.label} / ${anchor.label}: CPU per request`, value: r.cpuUsPerRequest / anchor.cpuUsPerRequest })
  }
  return out
}

function table(header: string[], body: string[][], rightFrom: number): string {
  const rows = [header, ...body]
  const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]): string => r.map((c, i) => (i >= rightFrom ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()
  return rows.map(line).join('\n') + '\n'
}

const ms = (v: number): string => `${v < 10 ? v.toFixed(2) : v.toFixed(1)}ms`
const pct = (v: number): string => `${Math.round(v * 100)}%`

export function formatReport(rows: readonly Summary[], ratios: readonly Ratio[]): string {
  const rounds = Math.max(...rows.map((r) => r.rounds))
  let out = `\nThrough nginx (the kit's configuration, access log to a file), keep-alive (${rounds > 1 ? `median of ${rounds} rounds; range = slowest..fastest` : 'one round'})\n`
  out += table(
    ['configuration', 'req/s', 'range', 'p50', 'p99', 'max', 'CPU/req', 'errors', 'others'],
    rows.map((r) => [r.label, Math.round(r.rps).toString(), `${Math.round(r.rpsMin)}..${Math.round(r.rpsMax)}`, ms(r.p50Ms), ms(r.p99Ms), ms(r.maxMs), `${r.cpuUsPerRequest.toFixed(1)}us`, String(r.socketErrors + r.non2xx), pct(r.otherLoad)]),
    1,
  )
  out += 'CPU/req: CPU time of every process of the configuration (nginx included) per request.\n'
  out += 'others: share of the CPUs used during the run by processes outside the configuration, wrk and the bench.\n'
  out += '\nWhere the CPU went (percent of one core, median round)\n'
  for (const r of rows) {
    const parts = Object.entries(r.cpuByProcess).sort((a, b) => b[1] - a[1]).filter(([, v]) => v >= (process.env.BENCH_PIDS === '1' ? 0.1 : 1)).map(([k, v]) => `${k} ${Math.round(v)}%`)
    out += `  ${r.label}: ${parts.join(', ')}\n`
  }
  out += '\nRatios to the anchor (req/s: higher is faster; p99 and CPU: lower is better)\n'
  out += table(['ratio', 'value', 'goal'], ratios.map((r) => [r.name, r.value === null ? '-' : r.value.toFixed(3), r.min === undefined ? '' : `>= ${r.min} ${r.value !== null && r.value >= r.min ? 'met' : 'MISSED'}`]), 1)
  const busy = rows.filter((r) => r.otherLoad > QUIET)
  if (busy.length > 0) out += `\nWarning: other processes used up to ${pct(Math.max(...busy.map((r) => r.otherLoad)))} of the CPUs during ${busy.length} of these runs.\n`
  return out
}
