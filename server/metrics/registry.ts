/**
 * The arbiter's one Prometheus scrape, served as GET /metrics on its health socket
 * (arbiter/health-http.ts) and by nginx at /metrics to FORKYARD_METRICS_ALLOW. prom-client writes
 * the text format and the arbiter's own process metrics (forkyard_arbiter_*: CPU, memory, event
 * loop, GC); the families (metrics/families.ts) read a snapshot gathered at scrape time from the
 * workers' heartbeats, the jobs process's report, the push process (with the bridge's stats) and
 * nginx's stub_status.
 */
import { Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import type { WorkerMetrics } from '../arbiter/ipc.js'
import { FAMILIES, type Family, type ScrapeInput } from './families.js'
import { addHistogram, emptyHistogram, type HistogramCounts } from './histogram.js'
import { ROUTE_CLASSES, STATUS_CLASSES } from './request-metrics.js'

/**
 * The workers' request counters summed: the living ones' last heartbeats plus every gone worker's
 * last heartbeat, so that the totals never go down when a worker is replaced.
 */
export class WorkerTotals {
  private readonly gone = { requests: new Array<number>(ROUTE_CLASSES.length * STATUS_CLASSES.length).fill(0), duration: emptyHistogram() }

  /** A worker exited: its last counters stay in the totals. */
  retire(m: WorkerMetrics | null): void {
    if (m === null) return
    for (let i = 0; i < this.gone.requests.length; i++) this.gone.requests[i]! += m.requests[i] ?? 0
    addHistogram(this.gone.duration, m.duration)
  }

  sum(living: readonly (WorkerMetrics | null)[]): { requests: number[]; duration: HistogramCounts } {
    const requests = [...this.gone.requests]
    const duration = emptyHistogram()
    addHistogram(duration, this.gone.duration)
    for (const m of living) {
      if (m === null) continue
      for (let i = 0; i < requests.length; i++) requests[i]! += m.requests[i] ?? 0
      addHistogram(duration, m.duration)
    }
    return { requests, duration }
  }
}

export class ScrapeRegistry {
  private readonly registry = new Registry()
  private current: ScrapeInput | null = null

  constructor(withProcessMetrics = true) {
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'forkyard_arbiter_' })
    for (const f of FAMILIES) this.registry.registerMetric(this.metric(f))
  }

  get contentType(): string {
    return this.registry.contentType
  }

  /** The Prometheus text for one snapshot. */
  async text(input: ScrapeInput): Promise<string> {
    this.current = input
    try {
      return await this.registry.metrics()
    } finally {
      this.current = null
    }
  }

  /** A family as prom-client's registry reads a metric: name, help, type and get(). */
  private metric(f: Family): Metric {
    const get = async (): Promise<unknown> => ({ name: f.name, help: f.help, type: f.type, aggregator: 'sum', values: this.current === null ? [] : f.values(this.current) })
    return { name: f.name, help: f.help, type: f.type, get, reset: () => undefined } as unknown as Metric
  }
}
