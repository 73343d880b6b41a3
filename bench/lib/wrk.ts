/**
 * Runs wrk and parses its text report (wrk 4.x): Requests/sec, the 50% and 99% lines of the
 * --latency distribution, the request count and the error counters.
 */
import { run } from './proc.js'

export interface WrkResult {
  rps: number
  p50Ms: number
  p99Ms: number
  requests: number
  /** connect + read + write + timeout socket errors. */
  socketErrors: number
  /** Responses with a status outside 2xx/3xx. */
  non2xx: number
  /** The slowest request of the run. */
  maxMs: number
}

export interface WrkOptions {
  seconds: number
  connections: number
  /** Send `Connection: close`: a new TCP connection per request. */
  close?: boolean
  /** wrk threads (default 2, as a user on this 2-core machine would run it). */
  threads?: number
  /** A wrk Lua script (e.g. a POST with a body). */
  script?: string
}

const unitMs: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

function toMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text)
  const factor = m?.[2] === undefined ? undefined : unitMs[m[2]]
  if (m?.[1] === undefined || factor === undefined) throw new Error(`wrk: cannot read the duration ${JSON.stringify(text)}`)
  return Number(m[1]) * factor
}

function match(out: string, re: RegExp, what: string): string {
  const value = re.exec(out)?.[1]
  if (value === undefined) throw new Error(`wrk: no ${what} in its output:\n${out}`)
  return value
}

export function parseWrk(out: string): WrkResult {
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return {
    rps: Number(match(out, /^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec')),
    p50Ms: toMs(match(out, /^\s+50%\s+(\S+)/m, '50% latency')),
    p99Ms: toMs(match(out, /^\s+99%\s+(\S+)/m, '99% latency')),
    requests: Number(match(out, /^\s+(\d+) requests in /m, 'request count')),
    socketErrors: errors === null ? 0 : errors.slice(1).reduce((sum, n) => sum + Number(n), 0),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    // "    Latency     1.23ms    0.50ms  12.34ms   90.00%": mean, stdev, max, +/- stdev.
    maxMs: toMs(match(out, /^\s+Latency\s+\S+\s+\S+\s+(\S+)/m, 'max latency')),
  }
}

export async function wrk(url: string, o: WrkOptions): Promise<WrkResult> {
  const args = [`-t${o.threads ?? 2}`, `-c${o.connections}`, `-d${o.seconds}s`, '--latency', ...(o.close === true ? ['-H', 'Connection: close'] : []), ...(o.script === undefined ? [] : ['-s', o.script]), url]
  const r = await run('wrk', args, (o.seconds + 30) * 1000)
  if (r.code !== 0) throw new Error(`wrk exited with ${r.code}: ${r.stderr || r.stdout}`)
  return parseWrk(r.stdout)
}
