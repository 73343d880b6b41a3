/**
 * One error class with stable codes, like fastify's FST_ERR_* and undici's UND_ERR_*.
 * Callers match on `err.code`, never on the message text.
 */
export const codes = {
  /** A FORKYARD_* setting (environment, .env or option) has a value outside its schema. */
  CONFIG: 'FORKYARD_ERR_CONFIG',
  /** The app module could not be imported or does not export a request listener. */
  APP_LOAD: 'FORKYARD_ERR_APP_LOAD',
  /** The app's optional start() hook rejected or threw. */
  APP_START: 'FORKYARD_ERR_APP_START',
  /** A worker did not become ready within FORKYARD_BOOT_TIMEOUT. */
  BOOT_TIMEOUT: 'FORKYARD_ERR_BOOT_TIMEOUT',
  /** A worker exited before it became ready. */
  BOOT_FAILED: 'FORKYARD_ERR_BOOT_FAILED',
  /** A listen address could not be bound. */
  BIND: 'FORKYARD_ERR_BIND',
  /** The control socket answered with an error or could not be reached. */
  CONTROL: 'FORKYARD_ERR_CONTROL',
  /** Another arbiter already runs with this pidfile. */
  ALREADY_RUNNING: 'FORKYARD_ERR_ALREADY_RUNNING',
  /** publish(): the bounded queue of publishes waiting for the bridge is full. */
  PUBLISH_QUEUE_FULL: 'FORKYARD_ERR_PUBLISH_QUEUE_FULL',
  /** publish(): bad channel name or data that is not JSON. */
  PUBLISH_INVALID: 'FORKYARD_ERR_PUBLISH_INVALID',
  /** publish(): the bridge refused the message (it says why). */
  PUBLISH_REFUSED: 'FORKYARD_ERR_PUBLISH_REFUSED',
  /** publish(): the publisher was closed before the bridge acknowledged. */
  PUBLISH_CLOSED: 'FORKYARD_ERR_PUBLISH_CLOSED',
  /** A request to the bridge (history, stats) got no answer in time. */
  BRIDGE_TIMEOUT: 'FORKYARD_ERR_BRIDGE_TIMEOUT',
  /** tasks.enqueue(): an idempotency key already used for a task with another payload (a key stands for one piece of work). */
  TASK_KEY_CONFLICT: 'FORKYARD_ERR_TASK_KEY_CONFLICT',
  /** A program the kit needs (supervisord, nginx, apt-get, mkfifo) could not be installed or started. */
  LAUNCH: 'FORKYARD_ERR_LAUNCH',
} as const

/**
 * Exit codes of the `forkyard` command and of every process of the stack, one meaning each, except
 * `notRunning`: only `forkyard ps` uses it, with the number an LSB `status` action gives.
 */
export const exitCodes = {
  ok: 0,
  /** A failure at run time, or a stop that had to cut requests. */
  failure: 1,
  /** Bad settings or usage: nothing was started. */
  config: 2,
  /** A worker (or the whole stack) failed to boot. */
  boot: 3,
  /** tasks.enqueue(): an idempotency key already used for a task with another payload (a key stands for one piece of work). */
  TASK_KEY_CONFLICT: 'FORKYARD_ERR_TASK_KEY_CONFLICT',
  /** A program the kit needs could not be installed or started. */
  launch: 4,
  /** `forkyard ps`: the stack is not running (LSB init scripts, "status" action). */
  notRunning: 3,
} as const

/** The exit code for an error that ends a process. */
export function exitCodeOf(err: unknown): number {
  const code = err instanceof ForkyardError ? err.code : undefined
  if (code === codes.CONFIG) return exitCodes.config
  if (code === codes.BOOT_FAILED || code === codes.BOOT_TIMEOUT) return exitCodes.boot
  if (code === codes.LAUNCH) return exitCodes.launch
  return exitCodes.failure
}

export type ErrorCode = (typeof codes)[keyof typeof codes]

export class ForkyardError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ForkyardError'
    this.code = code
  }
}

/** Plain-object form of any thrown value, for IPC messages and JSON logs. */
export interface SerializedError {
  name: string
  message: string
  stack?: string
  code?: string
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) {
    const out: SerializedError = { name: err.name, message: err.message }
    if (err.stack !== undefined) out.stack = err.stack
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string') out.code = code
    return out
  }
  return { name: 'NonError', message: String(err) }
}
