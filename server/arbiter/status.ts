/**
 * What the arbiter says about itself: the status document (`forkyard status`, `forkyard ps`, the
 * control socket), the liveness /healthz counts, and the readiness checks (health.ts) and metrics
 * scrape (scrape.ts) wired to the arbiter's state.
 */
import { join } from 'node:path'
import type { ServerConfig } from '../config/schema.js'
import { loadPublisherConfig, loadPushConfig } from '../config/messaging.js'
import { nginxListen } from '../config/stack.js'
import type { ArbiterStatus } from './control.js'
import { Health } from './health.js'
import type { JobsChild } from './jobs-child.js'
import type { RestartLedger } from './restarts.js'
import { Scrape } from './scrape.js'
import type { WorkerHandle } from './worker-handle.js'

export interface StatusParts {
  generation: number
  expectedWorkers: number
  reloading: boolean
  config: Readonly<ServerConfig>
  configVersion: string
  workers: Iterable<WorkerHandle>
  restarts: RestartLedger
  jobs: JobsChild
}

export function arbiterStatus(p: StatusParts): ArbiterStatus {
  const now = Date.now()
  const workers = [...p.workers].map((t) => t.status(now, p.restarts.slot(t.slot)))
  return {
    pid: process.pid,
    generation: p.generation,
    expectedWorkers: p.expectedWorkers,
    readyWorkers: workers.filter((w) => w.state === 'ready').length,
    reloading: p.reloading,
    bind: p.config.bind.map((b) => b.text),
    configVersion: p.configVersion,
    jobsPid: p.jobs.pid,
    workers,
    restarts: p.restarts.totals(),
    jobs: p.jobs.summary(),
  }
}

export interface Liveness {
  ok: boolean
  readyWorkers: number
  expectedWorkers: number
}

/** For /healthz: a worker ready with a heartbeat younger than FORKYARD_TIMEOUT (3 s at most). */
export function liveness(st: ArbiterStatus, timeoutMs: number): Liveness {
  const freshMs = Math.min(timeoutMs, 3000)
  const ready = st.workers.filter((w) => w.state === 'ready' && w.lastHeartbeatMsAgo < freshMs).length
  return { ok: ready > 0, readyWorkers: ready, expectedWorkers: st.expectedWorkers }
}

export interface ProbeSources {
  config: () => Readonly<ServerConfig>
  /** The settings environment in force (where the push and nginx addresses come from). */
  settingsEnv: () => Record<string, string>
  status: () => ArbiterStatus
  handles: () => Iterable<WorkerHandle>
  jobs: JobsChild
  version: () => { version: string; since: number }
  /** Behind the kit's nginx (under supervisord): the push process and nginx are part of the deployment. */
  proxied: boolean
}

/** The readiness checks (GET /readyz) and the metrics scrape (GET /metrics) of the health socket. */
export function arbiterProbes(s: ProbeSources): { health: Health; scrape: Scrape } {
  const health = new Health({
    config: s.config,
    pushBind: () => loadPushConfig(s.settingsEnv()).bind,
    supervisorSocket: join(s.config().runDir, 'supervisor.sock'),
    workers: () => {
      const st = s.status()
      // Ready and heartbeating: a worker whose event loop is stuck is not counted.
      return { expected: st.expectedWorkers, ready: liveness(st, s.config().timeoutMs).readyWorkers, generation: st.generation, reloading: st.reloading, versions: st.workers.filter((w) => w.state !== 'draining').map((w) => w.configVersion) }
    },
    jobs: () => s.jobs.health(),
    version: s.version,
  })
  // Push and the bridge belong to this deployment (behind the kit's nginx, or checked for readiness).
  const messaging = (): boolean => s.proxied || s.config().readyChecks.includes('push')
  const scrape = new Scrape({
    status: s.status,
    readyWorkers: () => liveness(s.status(), s.config().timeoutMs).readyWorkers,
    handles: s.handles,
    jobsReport: () => s.jobs.health()?.report ?? null,
    pushBind: () => (messaging() ? loadPushConfig(s.settingsEnv()).bind : null),
    bridgeDir: () => (messaging() ? loadPublisherConfig(s.settingsEnv()).dir : null),
    nginxListen: () => (s.proxied ? nginxListen(s.settingsEnv()) : null),
  })
  return { health, scrape }
}
