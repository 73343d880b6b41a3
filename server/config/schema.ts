/**
 * Every FORKYARD_* setting of the prefork server, declared once with its default and unit.
 * `.env.example` documents the same keys (a unit test keeps the two in step).
 */
import { ForkyardError, codes } from '../errors.js'
import { binds, bool, duration, int, oneOf, size, text, type BindAddress, type Parser } from './parse.js'
import type { Schema } from './section.js'

const boolOrAuto: Parser<boolean | 'auto'> = (name, raw) => {
  if (raw.trim().toLowerCase() === 'auto') return 'auto'
  try {
    return bool(name, raw)
  } catch {
    throw new ForkyardError(codes.CONFIG, `Expected ${name} to be auto or a boolean (true/false, 1/0, yes/no, on/off), got ${JSON.stringify(raw)}`)
  }
}

const checks = ['workers', 'push', 'supervisor'] as const
const readyChecks: Parser<ServerConfig['readyChecks']> = (name, raw) => {
  const list = raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
  const bad = list.find((c) => !(checks as readonly string[]).includes(c))
  if (bad !== undefined) throw new ForkyardError(codes.CONFIG, `Expected ${name} to be a comma-separated list of ${checks.join(', ')}, got ${JSON.stringify(raw)}`)
  return list as ServerConfig['readyChecks']
}

export interface ServerConfig {
  /** Where workers accept connections. */
  bind: BindAddress[]
  /** Worker processes; 0 = one per CPU the cgroup allows. */
  workers: number
  /** Heartbeat deadline in ms: a worker whose event loop is blocked longer is killed. */
  timeoutMs: number
  /** Drain deadline in ms for stop, reload and recycle; what remains after it is killed. */
  gracefulTimeoutMs: number
  /** Per-request deadline in ms (0 = off): answers 504 and logs the request. */
  requestTimeoutMs: number
  /** A worker must be ready (app imported, start() resolved, listening) within this many ms. */
  bootTimeoutMs: number
  /** Recycle a worker after this many requests (0 = off)... */
  maxRequests: number
  /** ...plus a random 0..jitter, so workers do not all recycle at once. */
  maxRequestsJitter: number
  /** Recycle a worker whose RSS exceeds this many bytes (0 = off), checked at request boundaries. */
  maxRssBytes: number
  /** Idle keep-alive timeout in ms; must be longer than the upstream keepalive_timeout of nginx. */
  keepAliveTimeoutMs: number
  /** Time allowed to receive the request headers, in ms (slowloris protection). */
  headersTimeoutMs: number
  /** Time allowed to receive the whole request, in ms (0 = no limit). */
  requestReceiveTimeoutMs: number
  /** Largest accepted request header block in bytes; larger gets 431. */
  maxHeaderSize: number
  /**
   * How connections reach workers: none = every worker accepts on the shared socket (the kernel
   * picks; a blocked worker simply does not accept), rr = the primary accepts and hands each
   * connection to the next worker (Node cluster's default; see README for the measurements).
   */
  scheduling: 'rr' | 'none'
  /** Directory for the pidfile and control socket (created with mode 0700). */
  runDir: string
  /** Pidfile path; empty = <runDir>/server.pid. */
  pidfile: string
  /** pino level. */
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'
  /**
   * One JSON access line per request from the workers. auto: on for `forkyard serve`, off under
   * the kit's supervisord (`make up`, the container), where nginx writes the same line, with the
   * same request id, to access.log: each request is logged once.
   */
  accessLog: boolean | 'auto'
  /** Start the jobs process (background tasks and singletons), supervised by the arbiter. */
  jobs: boolean
  /** Directory of the durable task queue. */
  tasksDir: string
  /** Tasks running at once in the jobs process, all kinds together. */
  tasksConcurrency: number
  /** Finished (done, failed) tasks and their idempotency keys are removed this many ms after they finished (0 = kept). */
  tasksKeepAgeMs: number
  /** At most this many finished tasks are kept, the most recent (0 = no limit). */
  tasksKeepCount: number
  /**
   * Redis engine: a running task's lock lasts this long and is renewed while it runs; a task whose
   * host died runs again elsewhere after about this long. Longer than any event-loop block of a task.
   */
  tasksLeaseMs: number
  /** Redis engine: a singleton's lease; a dead holder is replaced after about this long. */
  singletonLeaseMs: number
  /** Worker threads for offload() in each process (0 = one per CPU). */
  offloadThreads: number
  /** What GET /readyz checks: workers always; push, bridge and supervisor in the full stack. */
  readyChecks: ('workers' | 'push' | 'supervisor')[]
  /** Optional JSON schema of the app's own .env keys (validated, typed for config.get()). */
  appSchema: string
}

/** A lease: at least 1 s (renewed every third of it), at most 10 min. */
const lease: Parser<number> = (name, raw) => {
  const ms = duration(name, raw)
  if (ms < 1000 || ms > 600_000) throw new ForkyardError(codes.CONFIG, `Expected ${name} to be a duration from 1s to 10m, got ${JSON.stringify(raw)}`)
  return ms
}

export const schema: Schema<ServerConfig> = {
  bind: { env: 'FORKYARD_BIND', parse: binds, default: '127.0.0.1:8000', apply: 'restart' },
  workers: { env: 'FORKYARD_WORKERS', parse: int(0, 1024), default: '0', apply: 'restart' },
  timeoutMs: { env: 'FORKYARD_TIMEOUT', parse: duration, default: '30s' },
  gracefulTimeoutMs: { env: 'FORKYARD_GRACEFUL_TIMEOUT', parse: duration, default: '30s' },
  requestTimeoutMs: { env: 'FORKYARD_REQUEST_TIMEOUT', parse: duration, default: '0' },
  bootTimeoutMs: { env: 'FORKYARD_BOOT_TIMEOUT', parse: duration, default: '30s' },
  maxRequests: { env: 'FORKYARD_MAX_REQUESTS', parse: int(0), default: '0' },
  maxRequestsJitter: { env: 'FORKYARD_MAX_REQUESTS_JITTER', parse: int(0), default: '0' },
  maxRssBytes: { env: 'FORKYARD_MAX_RSS', parse: size, default: '0' },
  keepAliveTimeoutMs: { env: 'FORKYARD_KEEPALIVE_TIMEOUT', parse: duration, default: '75s' },
  headersTimeoutMs: { env: 'FORKYARD_HEADERS_TIMEOUT', parse: duration, default: '20s' },
  requestReceiveTimeoutMs: { env: 'FORKYARD_REQUEST_RECEIVE_TIMEOUT', parse: duration, default: '120s' },
  maxHeaderSize: { env: 'FORKYARD_MAX_HEADER_SIZE', parse: size, default: '16KiB', apply: 'restart' },
  scheduling: { env: 'FORKYARD_SCHEDULING', parse: oneOf('rr', 'none'), default: 'none', apply: 'restart' },
  runDir: { env: 'FORKYARD_RUN_DIR', parse: text, default: './run', apply: 'restart' },
  pidfile: { env: 'FORKYARD_PIDFILE', parse: (_n, raw) => raw.trim(), default: '', apply: 'restart' },
  logLevel: { env: 'FORKYARD_LOG_LEVEL', parse: oneOf('trace', 'debug', 'info', 'warn', 'error', 'fatal'), default: 'info' },
  accessLog: { env: 'FORKYARD_ACCESS_LOG', parse: boolOrAuto, default: 'auto' },
  readyChecks: { env: 'FORKYARD_READY_CHECKS', parse: readyChecks, default: 'workers' },
  // The jobs process and offload()'s thread pool take these when they start: a rolling reload.
  jobs: { env: 'FORKYARD_JOBS', parse: bool, default: 'true', apply: 'restart' },
  tasksDir: { env: 'FORKYARD_TASKS_DIR', parse: text, default: './data/tasks', apply: 'restart' },
  tasksConcurrency: { env: 'FORKYARD_TASKS_CONCURRENCY', parse: int(1, 10_000), default: '4', apply: 'restart' },
  // Live: the jobs process prunes with the new values from its next pass (once a minute).
  tasksKeepAgeMs: { env: 'FORKYARD_TASKS_KEEP_AGE', parse: duration, default: '168h' },
  tasksKeepCount: { env: 'FORKYARD_TASKS_KEEP_COUNT', parse: int(0), default: '10000' },
  tasksLeaseMs: { env: 'FORKYARD_TASKS_LEASE', parse: lease, default: '10s', apply: 'restart' },
  singletonLeaseMs: { env: 'FORKYARD_SINGLETON_LEASE', parse: lease, default: '10s', apply: 'restart' },
  offloadThreads: { env: 'FORKYARD_OFFLOAD_THREADS', parse: int(0, 1024), default: '0', apply: 'restart' },
  appSchema: { env: 'FORKYARD_APP_SCHEMA', parse: (_n, raw) => raw.trim(), default: '', apply: 'restart' },
}
