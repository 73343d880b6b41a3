/**
 * GET /readyz, answered by a worker without calling the app: 200 only when every component of
 * the deployment really works. Workers (up/expected, from the arbiter); in the full stack also
 * the push process and, through its heartbeat, the bridge (delivery lag through bridge to push);
 * supervisord (a program in FATAL or BACKOFF is not ready); and the config version in force.
 * Answers are cached for 250 ms so a burst of probes does not multiply the checks.
 */
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { config as runtimeConfig } from '../config/runtime.js'
import type { ServerConfig } from '../config/schema.js'
import type { WorkersSummary } from '../arbiter/ipc.js'

export interface ReadinessDeps {
  config: Readonly<ServerConfig>
  workers: () => Promise<WorkersSummary>
  pushBind: string
  supervisorSocket: string
}

export interface Readiness {
  ready: boolean
  components: Record<string, Record<string, unknown> & { ok: boolean }>
}

function httpJson(options: { host?: string; port?: number; socketPath?: string; path: string; method?: string; body?: string; headers?: Record<string, string> }, timeoutMs: number): Promise<{ status: number; text: string }> {
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

async function checkPush(bind: string): Promise<[Readiness['components'][string], Readiness['components'][string]]> {
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

async function checkSupervisor(socketPath: string): Promise<Readiness['components'][string]> {
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

/** The jobs process reports itself every second in <run dir>/jobs.json; every singleton must run exactly once. */
function checkJobs(runDir: string): Readiness['components'][string] {
  try {
    const st = JSON.parse(readFileSync(join(runDir, 'jobs.json'), 'utf8')) as { pid: number; updatedAt: number; singletons: Record<string, { state: string; pid: number; error?: string }>; tasks: Record<string, number> }
    const fresh = Date.now() - st.updatedAt < 3000
    const singletons = Object.entries(st.singletons).map(([name, s]) => ({ name, state: s.state, pid: s.pid, error: s.error }))
    return { ok: fresh && singletons.every((s) => s.state === 'running'), pid: st.pid, reportedMsAgo: Date.now() - st.updatedAt, singletons, tasks: st.tasks }
  } catch (err) {
    return { ok: false, error: `no report from the jobs process: ${(err as Error).message}` }
  }
}

export class ReadinessCheck {
  private cached: { at: number; value: Promise<Readiness> } | null = null

  constructor(private readonly deps: ReadinessDeps) {}

  check(): Promise<Readiness> {
    const now = Date.now()
    if (this.cached !== null && now - this.cached.at < 250) return this.cached.value
    const value = this.run()
    this.cached = { at: now, value }
    return value
  }

  private async run(): Promise<Readiness> {
    const checks = this.deps.config.readyChecks
    const components: Readiness['components'] = {}
    const jobs: Promise<void>[] = []
    jobs.push(
      this.deps.workers().then(
        (w) => void (components.workers = { ok: w.ready >= w.expected && w.expected > 0, up: w.ready, expected: w.expected, generation: w.generation, reloading: w.reloading }),
        (err: Error) => void (components.workers = { ok: false, error: err.message }),
      ),
    )
    if (checks.includes('push')) {
      jobs.push(
        checkPush(this.deps.pushBind).then(([push, bridge]) => {
          components.push = push
          components.bridge = bridge
        }),
      )
    }
    if (this.deps.config.jobs) jobs.push(Promise.resolve().then(() => void (components.jobs = checkJobs(this.deps.config.runDir))))
    if (checks.includes('supervisor')) jobs.push(checkSupervisor(this.deps.supervisorSocket).then((s) => void (components.supervisor = s)))
    await Promise.all(jobs)
    // The arbiter hands every worker the version it validated (and every change after).
    components.config = { ok: true, version: runtimeConfig.version }
    return { ready: Object.values(components).every((c) => c.ok), components }
  }
}
