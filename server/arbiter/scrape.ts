/**
 * GET /metrics in the arbiter: gathers the snapshot of one scrape (metrics/families.ts
 * ScrapeInput) from the arbiter's own state, its workers' last heartbeats, the jobs process's last
 * report, and at scrape time the push process, the bridge and nginx (bounded timeouts, forkyard_up says who
 * answered), then writes it as Prometheus text (metrics/registry.ts).
 */
import type { ArbiterStatus } from './control.js'
import type { JobsReport } from './ipc.js'
import type { WorkerHandle } from './worker-handle.js'
import type { Process, ScrapeInput } from '../metrics/families.js'
import { ScrapeRegistry, WorkerTotals } from '../metrics/registry.js'
import { fetchBridge, fetchNginx, fetchPush, splitHostPort, type PushMetrics, type StubStatus } from '../metrics/sources.js'

/** How long a scrape waits for the push process and for nginx. */
const SOURCE_TIMEOUT_MS = 1000

export interface ScrapeDeps {
  status: () => ArbiterStatus
  /** Ready workers with a fresh heartbeat (what /healthz counts). */
  readyWorkers: () => number
  handles: () => Iterable<WorkerHandle>
  jobsReport: () => JobsReport | null
  /** host:port of the push process; null when this deployment has none (a bare `forkyard serve`). */
  pushBind: () => string | null
  /** The bridge's socket directory; null when this deployment has no bridge. */
  bridgeDir: () => string | null
  /** host:port nginx listens on; null when the server is not behind the kit's nginx. */
  nginxListen: () => string | null
}

export class Scrape {
  private readonly totals = new WorkerTotals()
  private readonly registry = new ScrapeRegistry()

  constructor(private readonly deps: ScrapeDeps) {}

  get contentType(): string {
    return this.registry.contentType
  }

  /** A worker exited: its counters stay in the sums. */
  retire(t: WorkerHandle): void {
    this.totals.retire(t.metrics)
  }

  async text(): Promise<string> {
    const st = this.deps.status()
    const handles = [...this.deps.handles()]
    const { requests, duration } = this.totals.sum(handles.map((t) => t.metrics))
    // One row per slot for the per-worker gauges: a replacement (same slot) wins over the one it replaces.
    const bySlot = new Map<number, WorkerHandle>()
    for (const t of handles) if (t.state !== 'draining' && (bySlot.get(t.slot)?.id ?? -1) < t.id) bySlot.set(t.slot, t)
    const pushBind = this.deps.pushBind()
    const nginxListen = this.deps.nginxListen()
    const bridgeDir = this.deps.bridgeDir()
    const [push, bridge, nginx] = await Promise.all([
      pushBind === null ? null : fetchPush(pushBind, SOURCE_TIMEOUT_MS).catch(() => undefined),
      bridgeDir === null ? null : fetchBridge(bridgeDir, SOURCE_TIMEOUT_MS).catch(() => undefined),
      nginxListen === null ? null : fetchNginx(splitHostPort(nginxListen), SOURCE_TIMEOUT_MS).catch(() => undefined),
    ])
    const up: Partial<Record<Process, boolean>> = { arbiter: true }
    if (st.jobs !== null) up.jobs = st.jobsPid !== null && this.deps.jobsReport() !== null
    if (push !== null) up.push = push !== undefined
    if (bridge !== null) up.bridge = bridge !== undefined
    if (nginx !== null) up.nginx = nginx !== undefined
    const input: ScrapeInput = {
      workers: handles.map((t) => ({ slot: t.slot, inflight: t.inflight, metrics: bySlot.get(t.slot) === t ? t.metrics : null })),
      requests,
      duration,
      ready: this.deps.readyWorkers(),
      expected: st.expectedWorkers,
      generation: st.generation,
      reloading: st.reloading,
      restarts: st.restarts,
      jobs: { status: st.jobs, report: this.deps.jobsReport() },
      push: (push ?? null) as PushMetrics | null,
      bridge: bridge ?? null,
      nginx: (nginx ?? null) as StubStatus | null,
      up,
    }
    return this.registry.text(input)
  }
}
