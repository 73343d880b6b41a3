/**
 * Every metric of the one scrape (GET /metrics on the arbiter's health socket), computed from a
 * snapshot the arbiter gathers at scrape time (ScrapeInput). Pure: the unit tests and the Grafana
 * dashboard's test read METRIC_NAMES. Counters end in _total; durations are in seconds.
 */
import type { JobsStatus } from '../arbiter/control.js'
import { RESTART_CAUSES, type RestartCause } from '../arbiter/exits.js'
import type { JobsReport, WorkerMetrics } from '../arbiter/ipc.js'
import { DURATION_BUCKETS, type HistogramCounts } from './histogram.js'
import { ROUTE_CLASSES, STATUS_CLASSES } from './request-metrics.js'
import type { PushMetrics, StubStatus } from './sources.js'

export type Labels = Record<string, string | number>
export interface Sample {
  labels?: Labels
  value: number
  /** For a histogram's _bucket, _sum and _count lines. */
  metricName?: string
}
export interface Family {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram'
  values: (s: ScrapeInput) => Sample[]
}

/** The processes forkyard_up reports on; the arbiter always answers (it serves the scrape). */
export type Process = 'arbiter' | 'jobs' | 'push' | 'bridge' | 'nginx'

export interface ScrapeInput {
  /** Living workers, with their last heartbeat's counters. */
  workers: { slot: number; inflight: number; metrics: WorkerMetrics | null }[]
  /** Every worker's requests and durations summed, the gone ones included (WorkerTotals). */
  requests: number[]
  duration: HistogramCounts
  ready: number
  expected: number
  generation: number
  reloading: boolean
  restarts: Record<RestartCause, number>
  jobs: { status: JobsStatus | null; report: JobsReport | null }
  /** null: not asked (no push process in this deployment) or did not answer (then up is 0). */
  push: PushMetrics | null
  /** The bridge's stats, asked directly; null: not asked or did not answer. */
  bridge: Record<string, unknown> | null
  nginx: StubStatus | null
  up: Partial<Record<Process, boolean>>
}

function histogram(h: HistogramCounts, labels: Labels, name: string): Sample[] {
  const out: Sample[] = []
  let cumulative = 0
  for (let i = 0; i < h.buckets.length; i++) {
    cumulative += h.buckets[i]!
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: i < DURATION_BUCKETS.length ? DURATION_BUCKETS[i]! : '+Inf' }, value: cumulative })
  }
  out.push({ metricName: `${name}_sum`, labels, value: h.sum }, { metricName: `${name}_count`, labels, value: h.count })
  return out
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)
const pushCounter = (key: string) => (s: ScrapeInput): Sample[] => (s.push === null ? [] : [{ value: num(s.push.counters[key]) }])
const bridgeValue = (key: string) => (s: ScrapeInput): Sample[] => (s.bridge === null ? [] : [{ value: num(s.bridge[key]) }])
const perWorker = (pick: (m: WorkerMetrics) => number) => (s: ScrapeInput): Sample[] =>
  s.workers.flatMap((w) => (w.metrics === null ? [] : [{ labels: { worker: w.slot }, value: pick(w.metrics) }]))

export const FAMILIES: readonly Family[] = [
  { name: 'forkyard_up', type: 'gauge', help: 'Whether each process answered this scrape (1) or not (0).', values: (s) => Object.entries(s.up).map(([process, up]) => ({ labels: { process }, value: up ? 1 : 0 })) },
  // Workers, summed.
  {
    name: 'forkyard_http_requests_total', type: 'counter', help: 'Requests served by the workers, by route class (app, health) and status class.',
    values: (s) => ROUTE_CLASSES.flatMap((route, r) => STATUS_CLASSES.map((status, c) => ({ labels: { route, status }, value: s.requests[r * STATUS_CLASSES.length + c] ?? 0 }))),
  },
  { name: 'forkyard_http_request_duration_seconds', type: 'histogram', help: "Duration of the app's requests in the workers.", values: (s) => histogram(s.duration, { route: 'app' }, 'forkyard_http_request_duration_seconds') },
  { name: 'forkyard_http_requests_in_flight', type: 'gauge', help: 'Requests being served by the workers now.', values: (s) => [{ value: s.workers.reduce((a, w) => a + w.inflight, 0) }] },
  { name: 'forkyard_worker_event_loop_delay_p99_seconds', type: 'gauge', help: "99th percentile of a worker's event loop delay since its previous heartbeat.", values: perWorker((m) => m.loopDelayP99) },
  { name: 'forkyard_worker_event_loop_delay_max_seconds', type: 'gauge', help: "Largest event loop delay of a worker since its previous heartbeat.", values: perWorker((m) => m.loopDelayMax) },
  { name: 'forkyard_worker_resident_memory_bytes', type: 'gauge', help: 'Resident set size of each worker (by slot).', values: perWorker((m) => m.rss) },
  { name: 'forkyard_worker_heap_used_bytes', type: 'gauge', help: 'V8 heap used by each worker (by slot).', values: perWorker((m) => m.heapUsed) },
  { name: 'forkyard_worker_heap_total_bytes', type: 'gauge', help: 'V8 heap size of each worker (by slot).', values: perWorker((m) => m.heapTotal) },
  // The arbiter.
  { name: 'forkyard_workers_ready', type: 'gauge', help: 'Workers ready (booted, not draining).', values: (s) => [{ value: s.ready }] },
  { name: 'forkyard_workers_expected', type: 'gauge', help: 'Workers the arbiter keeps running (FORKYARD_WORKERS, forkyard scale).', values: (s) => [{ value: s.expected }] },
  { name: 'forkyard_reload_generation', type: 'gauge', help: 'Generation of the workers: 1 at start, +1 for each completed rolling reload.', values: (s) => [{ value: s.generation }] },
  { name: 'forkyard_reload_in_progress', type: 'gauge', help: 'Reload phase: 1 while a rolling reload replaces the workers, else 0.', values: (s) => [{ value: s.reloading ? 1 : 0 }] },
  { name: 'forkyard_worker_restarts_total', type: 'counter', help: 'Workers replaced, by cause: crash, timeout, memory, max-requests, reload.', values: (s) => RESTART_CAUSES.map((cause) => ({ labels: { cause }, value: s.restarts[cause] })) },
  {
    name: 'forkyard_jobs_restarts_total', type: 'counter', help: 'Restarts of the jobs process, by cause.',
    values: (s) => (s.jobs.status === null ? [] : RESTART_CAUSES.map((cause) => ({ labels: { cause }, value: s.jobs.status!.restartsByCause[cause] }))),
  },
  // The jobs process.
  {
    name: 'forkyard_jobs_tasks', type: 'gauge', help: 'Tasks in the durable queue by state (queued, running, done, failed).',
    values: (s) => Object.entries(s.jobs.report?.tasks ?? {}).filter(([state]) => state !== 'runningHere').map(([state, n]) => ({ labels: { state }, value: n })),
  },
  {
    name: 'forkyard_jobs_task_duration_seconds', type: 'histogram', help: 'Duration of task attempts, by task name.',
    values: (s) => Object.entries(s.jobs.report?.metrics?.durations ?? {}).flatMap(([task, h]) => histogram(h, { task }, 'forkyard_jobs_task_duration_seconds')),
  },
  {
    name: 'forkyard_jobs_task_attempts_total', type: 'counter', help: 'Task attempts that ended, by task and outcome (done, failed, retried).',
    values: (s) => Object.entries(s.jobs.report?.metrics?.outcomes ?? {}).flatMap(([task, o]) => (['done', 'failed', 'retried'] as const).map((outcome) => ({ labels: { task, outcome }, value: o[outcome] }))),
  },
  {
    name: 'forkyard_jobs_task_retries_total', type: 'counter', help: 'Task attempts that failed and were queued again, by task.',
    values: (s) => Object.entries(s.jobs.report?.metrics?.outcomes ?? {}).map(([task, o]) => ({ labels: { task }, value: o.retried })),
  },
  {
    name: 'forkyard_jobs_singleton_running', type: 'gauge', help: 'Whether this deployment holds the singleton and runs it (1) or not (0).',
    values: (s) => Object.entries(s.jobs.report?.singletons ?? {}).map(([name, st]) => ({ labels: { name }, value: st.state === 'running' ? 1 : 0 })),
  },
  // The push process.
  { name: 'forkyard_push_connections', type: 'gauge', help: 'Open WebSocket connections.', values: (s) => (s.push === null ? [] : [{ value: s.push.connections }]) },
  { name: 'forkyard_push_connections_total', type: 'counter', help: 'WebSocket connections accepted.', values: pushCounter('connections') },
  { name: 'forkyard_push_deliveries_total', type: 'counter', help: 'Messages delivered to WebSocket clients.', values: pushCounter('delivered') },
  {
    name: 'forkyard_push_slow_consumer_cuts_total', type: 'counter', help: 'Clients cut for being slow: buffer (send buffer full), lag (too far behind).',
    values: (s) => (s.push === null ? [] : [{ labels: { reason: 'buffer' }, value: num(s.push.counters.slowConsumers) }, { labels: { reason: 'lag' }, value: num(s.push.counters.lagging) }]),
  },
  {
    name: 'forkyard_push_resumes_total', type: 'counter', help: 'Resumes from an offset, by result: recovered (every missed message sent) or not_recovered.',
    values: (s) => (s.push === null ? [] : [{ labels: { result: 'recovered' }, value: num(s.push.counters.recovered) }, { labels: { result: 'not_recovered' }, value: num(s.push.counters.notRecovered) }]),
  },
  { name: 'forkyard_push_resets_total', type: 'counter', help: 'Channel resets sent to clients (the bridge lost its history: new epoch or gap).', values: (s) => (s.push === null ? [] : [{ value: num(s.push.feed.resets) }]) },
  { name: 'forkyard_push_delivery_lag_seconds', type: 'gauge', help: "Lag of the push process's own heartbeat through the bridge (publish to delivery).", values: (s) => (s.push?.heartbeatLagMs == null ? [] : [{ value: s.push.heartbeatLagMs / 1000 }]) },
  // The bridge, asked directly; its epoch changes as the push process saw them.
  { name: 'forkyard_bridge_publishes_total', type: 'counter', help: 'Publishes the bridge accepted.', values: bridgeValue('accepted') },
  { name: 'forkyard_bridge_dedup_hits_total', type: 'counter', help: 'Publishes the bridge recognised as repeats (idempotent retries).', values: bridgeValue('deduplicated') },
  { name: 'forkyard_bridge_history_messages', type: 'gauge', help: 'Messages the bridge keeps for resumes.', values: bridgeValue('kept') },
  { name: 'forkyard_bridge_channels', type: 'gauge', help: 'Channels the bridge knows.', values: bridgeValue('channels') },
  { name: 'forkyard_bridge_epoch_changes_total', type: 'counter', help: 'Bridge epoch changes seen by the push process (the history was lost).', values: (s) => (s.push === null ? [] : [{ value: num(s.push.bridge.epochChanges) }]) },
  // nginx.
  {
    name: 'forkyard_nginx_connections', type: 'gauge', help: "nginx's connections by state (stub_status).",
    values: (s) => (s.nginx === null ? [] : (['active', 'reading', 'writing', 'waiting'] as const).map((state) => ({ labels: { state }, value: s.nginx![state] }))),
  },
  { name: 'forkyard_nginx_connections_accepted_total', type: 'counter', help: 'Client connections nginx accepted.', values: (s) => (s.nginx === null ? [] : [{ value: s.nginx.accepts }]) },
  { name: 'forkyard_nginx_connections_handled_total', type: 'counter', help: 'Client connections nginx handled.', values: (s) => (s.nginx === null ? [] : [{ value: s.nginx.handled }]) },
  { name: 'forkyard_nginx_requests_total', type: 'counter', help: 'Client requests nginx received.', values: (s) => (s.nginx === null ? [] : [{ value: s.nginx.requests }]) },
]

/** Every metric name the scrape can hold (histograms with their _bucket, _sum, _count). */
export const METRIC_NAMES: readonly string[] = FAMILIES.flatMap((f) => (f.type === 'histogram' ? [f.name, `${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`] : [f.name]))
