/**
 * Debian's /usr/bin/prometheus, started by `make dashboard-screenshot` itself (never the Debian
 * service): its own temporary data directory and config, a free loopback port, scraping the
 * stack's nginx every `scrapeSeconds`. Stopped by PID (SIGTERM, then SIGKILL) and its directory
 * removed, whatever happens.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../../bench/lib/proc.js'

export const PROMETHEUS = '/usr/bin/prometheus'
export const CHROMIUM = '/usr/bin/chromium'

/** Installs what is missing of prometheus and chromium with apt-get as root; otherwise says what to install. */
export function ensureTools(say: (s: string) => void): void {
  const missing = [[PROMETHEUS, 'prometheus'], [CHROMIUM, 'chromium']].filter(([path]) => !existsSync(path!)).map(([, pkg]) => pkg!)
  if (missing.length === 0) return
  const apt = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0
  if (process.getuid?.() !== 0 || !apt) {
    throw new Error(`Expected ${missing.map((p) => (p === 'prometheus' ? PROMETHEUS : CHROMIUM)).join(' and ')}: install ${missing.join(' ')} as root (Debian/Ubuntu: sudo apt-get install -y ${missing.join(' ')} ca-certificates), then run this again`)
  }
  say(`installing ${missing.join(' ')} with apt-get`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  // --no-install-recommends: no desktop for chromium; the package's service is not used (we start our own prometheus).
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', ...missing, 'ca-certificates']]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env })
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed with exit code ${r.status}`)
  }
}

export interface Prometheus {
  url: string
  pid: number
  dir: string
  version: string
  /** SIGTERM, SIGKILL after 5 s; removes the data directory. Safe to call twice. */
  stop: () => Promise<void>
  /** Synchronous last resort (process exit): SIGKILL. */
  kill: () => void
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export function prometheusConfig(target: string, scrapeSeconds: number, instance: string): string {
  return [
    'global:',
    `  scrape_interval: ${scrapeSeconds}s`,
    `  scrape_timeout: ${scrapeSeconds}s`,
    `  evaluation_interval: ${scrapeSeconds}s`,
    'scrape_configs:',
    '  - job_name: forkyard',
    '    metrics_path: /metrics',
    '    static_configs:',
    `      - targets: ['${target}']`,
    '        labels:',
    `          instance: '${instance}'`,
    '',
  ].join('\n')
}

export async function startPrometheus(target: string, scrapeSeconds: number, instance: string): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'forkyard-prometheus-'))
  const port = await freePort()
  const config = join(dir, 'prometheus.yml')
  writeFileSync(config, prometheusConfig(target, scrapeSeconds, instance))
  const log = join(dir, 'prometheus.log')
  const out = openSync(log, 'a')
  const child: ChildProcess = spawn(PROMETHEUS, [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--storage.tsdb.retention.time=1d',
    '--log.level=warn',
  ], { stdio: ['ignore', out, out] })
  const pid = child.pid
  if (pid === undefined) throw new Error(`Could not start ${PROMETHEUS}`)
  let exited = false
  child.on('exit', () => (exited = true))
  let stopped = false
  const kill = (): void => {
    if (exited) return
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    if (!exited) {
      try {
        process.kill(pid, 'SIGTERM')
      } catch {
        // already gone
      }
      for (let i = 0; i < 50 && !exited; i++) await sleep(100)
      kill()
      for (let i = 0; i < 20 && !exited; i++) await sleep(100)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  const url = `http://127.0.0.1:${port}`
  try {
    for (let i = 0; ; i++) {
      if (exited) throw new Error(`${PROMETHEUS} exited at start:\n${readFileSync(log, 'utf8').slice(-2000)}`)
      if (i >= 150) throw new Error(`${PROMETHEUS} not ready on ${url} within 15 s:\n${readFileSync(log, 'utf8').slice(-2000)}`)
      if ((await fetch(`${url}/-/ready`).catch(() => null))?.status === 200) break
      await sleep(100)
    }
    const build = (await (await fetch(`${url}/api/v1/status/buildinfo`)).json()) as { data?: { version?: string } }
    return { url, pid, dir, version: build.data?.version ?? 'unknown', stop, kill }
  } catch (err) {
    await stop()
    throw err
  }
}

export interface Series {
  labels: Record<string, string>
  points: [number, number][]
}

export type RangeAnswer = { ok: true; series: Series[] } | { ok: false; error: string }

/** POST /api/v1/query_range: the series, or Prometheus' own error text (bad_data, execution...). */
export async function queryRange(url: string, expr: string, start: number, end: number, step: number): Promise<RangeAnswer> {
  const body = new URLSearchParams({ query: expr, start: String(start), end: String(end), step: String(step) })
  const res = await fetch(`${url}/api/v1/query_range`, { method: 'POST', body })
  const answer = (await res.json()) as { status: string; error?: string; errorType?: string; data?: { resultType: string; result: { metric: Record<string, string>; values: [number, string][] }[] } }
  if (answer.status !== 'success' || answer.data === undefined) return { ok: false, error: `${answer.errorType ?? res.status}: ${answer.error ?? 'no data in the answer'}` }
  if (answer.data.resultType !== 'matrix') return { ok: false, error: `expected a matrix, got ${answer.data.resultType}` }
  return { ok: true, series: answer.data.result.map((r) => ({ labels: r.metric, points: r.values.map(([t, v]) => [t, Number(v)] as [number, number]) })) }
}

/** An instant query's first value, or null: to wait for the first scrapes. */
export async function queryValue(url: string, expr: string): Promise<number | null> {
  const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`)
  const answer = (await res.json()) as { data?: { result?: { value: [number, string] }[] } }
  const v = answer.data?.result?.[0]?.value[1]
  return v === undefined ? null : Number(v)
}
