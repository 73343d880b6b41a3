/**
 * The arbiter's picture of the deployment, for GET /readyz: 200 only when every component really
 * works. A worker answers /readyz with one IPC question to the arbiter; the arbiter alone talks to
 * the other components: the workers (up/expected, its own state), the jobs process (alive, and
 * every singleton running exactly once, from its reports), the push process and through its
 * heartbeat the bridge (delivery lag), supervisord (a program in FATAL or BACKOFF is not ready),
 * and the settings version every process runs. Reports are cached for 250 ms so a burst of probes
 * does not multiply the checks.
 */
import { request } from 'node:http'
import { isAlive } from '../process/pidfile.js'
import { readState } from '../process/state.js'
import type { ServerConfig } from '../config/schema.js'
import type { JobsReport, WorkersSummary } from './ipc.js'

export type Component = Record<string, unknown> & { ok: boolean }

export interface Readiness {
  ready: boolean
  components: Record<string, Component>
}

export interface HealthDeps {
  config: () => Readonly<ServerConfig>
  pushBind: () => string
  supervisorSocket: string
  workers: () => WorkersSummary & { versions: string[] }
  /** The jobs process: null while none runs; its last report (null before the first). */
  jobs: () => { pid: number; report: JobsReport | null; reportedAt: number } | null
  version: () => { version: string; since: number }
}

export function httpJson(options: { host?: string; port?: number; socketPath?: string; path: string; method?: string; body?: string; headers?: Record<string, string> }, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...options, method: options.method ?? 'GET', agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end(options.body)
  })
}

async function checkPush(bind: string): Promise<[Component, Component]> {
  const [host, port] = bind.split(':')
  try {
    const { status, text } = await httpJson({ host: host ?? '127.0.0.1', port: Number(port), path: '/readyz' }, 1000)
    const body = JSON.parse(text) as { ready?: boolean; heartbeatLagMs?: number | null; lastHeartbeatMsAgo?: number | null; connections?: number; bridge?: Record<string, unknown> }
    const bridgeOk = body.bridge !== undefined && !('error' in body.bridge)
    return [
      { ok: status === 200, connections: body.connections, heartbeatLagMs: body.heartbeatLagMs, lastHeartbeatMsAgo: body.lastHeartbeatMsAgo },
      bridgeOk ? { ok: body.ready === true, epoch: body.bridge!.epoch, accepted: body.bridge!.accepted, deduplicated: body.bridge!.deduplicated, dropped: body.bridge!.dropped } : { ok: false, error: String(body.bridge?.error ?? 'no bridge stats') },
    ]
  } catch (err) {
    const error = `push process unreachable at ${bind}: ${(err as Error).message}`
    return [{ ok: false, error }, { ok: false, error: 'unknown: the push process did not answer' }]
  }
}

async function checkSupervisor(socketPath: string): Promise<Component> {
  const body = '<?xml version="1.0"?><methodCall><methodName>supervisor.getAllProcessInfo</methodName><params></params></methodCall>'
  try {
    const { text } = await httpJson({ socketPath, path: '/RPC2', method: 'POST', body, headers: { 'Content-Type': 'text/xml' } }, 1000)
    const programs: Record<string, string> = {}
    for (const struct of text.split('<struct>').slice(1)) {
      const field = (name: string): string | undefined => new RegExp(`<name>${name}</name>\\s*<value><string>([^<]*)</string></value>`).exec(struct)?.[1]
      const name = field('name')
      const state = field('statename')
      if (name !== undefined && state !== undefined) programs[name] = state
    }
    const bad = Object.entries(programs).filter(([, s]) => s !== 'RUNNING')
    return { ok: Object.keys(programs).length > 0 && bad.length === 0, programs }
  } catch (err) {
    return { ok: false, error: `supervisord unreachable at ${socketPath}: ${(err as Error).message}` }
  }
}

/** A change must reach every process within a second; one still on another version after this is not ready. */
const VERSION_GRACE_MS = 3000

export class Health {
  private cached: { at: number; value: Promise<Readiness> } | null = null

  constructor(private readonly deps: HealthDeps) {}

  report(): Promise<Readiness> {
    const now = Date.now()
    if (this.cached !== null && now - this.cached.at < 250) return this.cached.value
    const value = this.run()
    this.cached = { at: now, value }
    return value
  }

  private jobs(): Component {
    const j = this.deps.jobs()
    if (j === null) return { ok: false, error: 'the jobs process is not running (it is being restarted)' }
    if (j.report === null) return { ok: false, pid: j.pid, error: 'the jobs process is starting' }
    const ago = Date.now() - j.reportedAt
    const singletons = Object.entries(j.report.singletons).map(([name, s]) => ({ name, state: s.state, pid: s.pid, error: s.error }))
    const stale = ago >= 3000
    return { ok: !stale && singletons.every((s) => s.state === 'running'), pid: j.pid, reportedMsAgo: ago, singletons, tasks: j.report.tasks, ...(stale ? { error: `no report from the jobs process for ${ago} ms` } : {}) }
  }

  /** The settings version of every process; the programs supervisord runs report theirs in the run directory. */
  private versions(checks: readonly string[]): Component {
    const { version, since } = this.deps.version()
    const processes: Record<string, string> = { arbiter: version }
    const workerVersions = [...new Set(this.deps.workers().versions)]
    processes.workers = workerVersions.join(',')
    const jobs = this.deps.jobs()
    if (jobs?.report !== null && jobs?.report !== undefined) processes.jobs = jobs.report.version
    if (checks.includes('supervisor')) {
      for (const svc of ['push', 'bridge', 'nginx']) {
        const st = readState(this.deps.config().runDir, svc)
        processes[svc] = st !== null && isAlive(st.pid) ? st.version : 'unknown'
      }
    }
    const behind = Object.entries(processes).filter(([, v]) => v !== version).map(([k]) => k)
    const late = behind.length > 0 && Date.now() - since > VERSION_GRACE_MS
    return { ok: !late, version, processes, ...(late ? { error: `not on version ${version}: ${behind.join(', ')} (a refused change or a process that did not follow; see its log)` } : {}) }
  }

  private async run(): Promise<Readiness> {
    const config = this.deps.config()
    const checks = config.readyChecks
    const components: Record<string, Component> = {}
    const w = this.deps.workers()
    components.workers = { ok: w.ready >= w.expected && w.expected > 0, up: w.ready, expected: w.expected, generation: w.generation, reloading: w.reloading }
    const pending: Promise<void>[] = []
    if (checks.includes('push')) {
      pending.push(
        checkPush(this.deps.pushBind()).then(([push, bridge]) => {
          components.push = push
          components.bridge = bridge
        }),
      )
    }
    if (config.jobs) components.jobs = this.jobs()
    if (checks.includes('supervisor')) pending.push(checkSupervisor(this.deps.supervisorSocket).then((s) => void (components.supervisor = s)))
    await Promise.all(pending)
    components.config = this.versions(checks)
    return { ready: Object.values(components).every((c) => c.ok), components }
  }
}
