/**
 * Messages between the arbiter and its workers over the cluster IPC channel, and the stall
 * reports a worker's watchdog thread writes on its own pipe (fd 4) while the event loop is blocked.
 * The jobs process, also a child of the arbiter, uses the same channel, log fd and environment.
 * (The other two protocols: push/protocol.ts with browsers, bridge/wire.ts over ZeroMQ.)
 */
import type { ServerConfig } from '../config/schema.js'
import type { SerializedError } from '../errors.js'
import type { Readiness } from './health.js'
import type { HistogramCounts } from '../metrics/histogram.js'

/** One request a worker is serving, as reported in heartbeats and stall reports. */
export interface RequestSummary {
  method: string
  path: string
  reqId: string
  ageMs: number
}

export type WorkerMessage =
  | { t: 'ready' }
  | { t: 'boot-error'; error: SerializedError }
  | { t: 'hb'; served: number; inflight: number; rss: number; configVersion: string; requests: RequestSummary[]; metrics?: WorkerMetrics }
  | { t: 'recycle'; reason: 'max-requests' | 'max-rss'; value: number; limit: number }
  | { t: 'status-req'; id: number }

/**
 * A worker's counters in each heartbeat (metrics/request-metrics.ts), totals since it started;
 * the arbiter sums them over every worker, living and gone, for GET /metrics.
 */
export interface WorkerMetrics {
  /** Requests by route class x status class: index route * 5 + (0..4 for 1xx..5xx). */
  requests: number[]
  /** Durations of the app's requests. */
  duration: HistogramCounts
  /** Event loop delay (seconds) since the previous heartbeat: 99th percentile and maximum. */
  loopDelayP99: number
  loopDelayMax: number
  rss: number
  heapUsed: number
  heapTotal: number
}

/** The jobs process's task counters since it started, in its report (per task name). */
export interface JobsMetrics {
  durations: Record<string, HistogramCounts>
  outcomes: Record<string, { done: number; failed: number; retried: number }>
}

export interface WorkersSummary {
  expected: number
  ready: number
  generation: number
  reloading: boolean
}

/** What the jobs process reports to the arbiter every second (and the arbiter shows in /readyz). */
export interface JobsReport {
  /** The settings version it runs. */
  version: string
  singletons: Record<string, { state: string; pid: number; error?: string; holder?: string; fencingToken?: number }>
  tasks: Record<string, number>
  /** Where tasks and singletons live, and whether it answers (a Redis engine may be down). */
  engine?: { kind: string; ok: boolean; error?: string }
  metrics?: JobsMetrics
}

export type JobsMessage = { t: 'ready' } | { t: 'jobs'; report: JobsReport }

export type ArbiterMessage =
  | { t: 'drain'; reason: string; closeIdle: boolean }
  | { t: 'readiness'; id: number; readiness: Readiness }
  /** A validated change: the whole settings environment, which replaces the one in force. */
  | { t: 'config'; version: string; env: Record<string, string>; server: ServerConfig; app: Record<string, unknown>; changed: string[] }

/** Written by the watchdog thread as one JSON line on fd 4. */
export interface StallReport {
  t: 'stall'
  blockedMs: number
  requests: RequestSummary[]
  /** Requests beyond the table's capacity, counted but not described. */
  more: number
}

/** fd of the worker -> arbiter stall-report pipe (0-2 stdio, 3 IPC). */
export const STALL_FD = 4
/** fd of the worker's logger (pino): JSON lines only, relayed without parsing. */
export const LOG_FD = 5

/** Environment variables the arbiter sets for each worker. */
export const workerEnv = {
  config: 'FORKYARD_INTERNAL_CONFIG',
  app: 'FORKYARD_INTERNAL_APP',
  id: 'FORKYARD_WORKER_ID',
  generation: 'FORKYARD_GENERATION',
  configVersion: 'FORKYARD_INTERNAL_CONFIG_VERSION',
  appConfig: 'FORKYARD_INTERNAL_APP_CONFIG',
  /** The settings environment in force (JSON): the child installs it, and sets process.env from it once. */
  settings: 'FORKYARD_INTERNAL_SETTINGS',
} as const

/** What a child (a worker or the jobs process) starts with: the settings in force and the app. */
export interface ChildLaunch {
  config: Readonly<ServerConfig>
  app: string
  configVersion: string
  appConfig: Record<string, unknown>
  settings: Record<string, string>
}

/** The environment variables that carry a ChildLaunch (installSettings reads them back). */
export function launchEnv(launch: ChildLaunch): Record<string, string> {
  return {
    [workerEnv.config]: JSON.stringify(launch.config),
    [workerEnv.app]: launch.app,
    [workerEnv.configVersion]: launch.configVersion,
    [workerEnv.appConfig]: JSON.stringify(launch.appConfig),
    [workerEnv.settings]: JSON.stringify(launch.settings),
  }
}

/**
 * In a worker or the jobs process at start: the settings the arbiter passed down, installed as the
 * process's settings, and process.env made equal to them for the app's own reads (a key removed
 * from .env since the arbiter started is gone here too). The kit itself never reads process.env
 * back (config/runtime.ts).
 */
export function installSettings(env: NodeJS.ProcessEnv): { version: string; settings: Record<string, string>; app: Record<string, unknown> } {
  const settings = JSON.parse(env[workerEnv.settings] ?? '{}') as Record<string, string>
  const keep = (k: string): boolean => k.startsWith('FORKYARD_INTERNAL_') || k === 'NODE_UNIQUE_ID' || k === workerEnv.id || k === workerEnv.generation
  for (const k of Object.keys(env)) if (!(k in settings) && !keep(k)) delete env[k]
  for (const [k, v] of Object.entries(settings)) env[k] = v
  return { version: env[workerEnv.configVersion] ?? '', settings, app: JSON.parse(env[workerEnv.appConfig] ?? '{}') as Record<string, unknown> }
}

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string'
}
