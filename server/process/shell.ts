/**
 * The process shell every forkyard process runs in (arbiter, worker, jobs, push, bridge, the nginx
 * wrapper): the root output and logger, signals, fatal errors, dying with the parent, and the exit.
 *
 * - Signal handlers only queue the signal; one loop runs the process's handler for it (gunicorn's
 *   arbiter does the same: nothing runs inside the handler itself).
 * - An uncaught exception or unhandled rejection is logged as fatal, then the process ends through
 *   the bounded exit (or the process's own bounded stop).
 * - exit() is the only way out: flushAndExit waits for the log lines written so far, at most 5 s,
 *   so a reader that went away can never hang the exit. The first exit decides the code.
 */
import type { Logger } from 'pino'
import type { LogConfig } from '../config/logging.js'
import { exitCodes } from '../errors.js'
import { createLogger, createOutput, flushAndExit, type LineOutput } from '../log/logger.js'
import { onParentGone } from './parent.js'

/**
 * What each signal does in this process: a handler (run from the loop, never inside the signal
 * handler), or null for a signal the process ignores (no default action, nothing logged).
 */
export type SignalHandlers = Partial<Record<NodeJS.Signals, (() => void) | null>>

export interface ShellOptions {
  /** The log file's name and the lines' `svc`. */
  svc: string
  /** Where to write: `<dir>/<svc>.log` when the config has a log directory, else `fd` (default stdout). */
  logs?: Readonly<LogConfig> | null
  fd?: number
  /** An output made by the caller instead (pretty output in development). */
  output?: LineOutput
  level?: string
  base?: Record<string, unknown>
  /** Log and exit on uncaught exceptions and unhandled rejections (default true). */
  fatal?: boolean
}

export class ProcessShell {
  readonly output: LineOutput
  readonly log: Logger
  private readonly handlers = new Map<NodeJS.Signals, () => void>()
  private readonly queue: NodeJS.Signals[] = []
  private scheduled = false
  private exiting = false
  private fatalMsg = 'uncaught exception: exiting'
  private onFatal: (() => void) | null = null

  constructor(options: ShellOptions) {
    this.output = options.output ?? createOutput(options.svc, options.logs ?? null, options.fd)
    const logger: { svc: string; level?: string; base?: Record<string, unknown> } = { svc: options.svc }
    if (options.level !== undefined) logger.level = options.level
    if (options.base !== undefined) logger.base = options.base
    this.log = createLogger(this.output, logger)
    if (options.fatal !== false) {
      process.on('uncaughtException', (err) => this.fatal(err, 'uncaughtException'))
      process.on('unhandledRejection', (err) => this.fatal(err, 'unhandledRejection'))
    }
  }

  /** Installs the process's signal handlers (see SignalHandlers); a second call adds to them. */
  handleSignals(handlers: SignalHandlers): void {
    for (const [name, handler] of Object.entries(handlers)) {
      const sig = name as NodeJS.Signals
      if (handler === null) {
        process.on(sig, () => {})
        continue
      }
      if (!this.handlers.has(sig)) process.on(sig, () => this.raise(sig))
      this.handlers.set(sig, handler)
    }
  }

  /** Queues `sig` as if it had been received (a parent that went away, a stop asked over IPC). */
  raise(sig: NodeJS.Signals): void {
    this.queue.push(sig)
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => this.runQueue())
  }

  /** How a fatal error is logged, and what the process does then instead of exiting at once (a bounded stop). */
  onFatalError(msg: string, act?: () => void): void {
    this.fatalMsg = msg
    this.onFatal = act ?? null
  }

  /** Polls the parent pid (process/parent.ts): once the parent is gone, logs `msg` and runs `act`. */
  dieWithParent(msg: string, act: () => void): void {
    onParentGone((ppid) => {
      this.log.warn({ ppid }, msg)
      act()
    })
  }

  /** The only exit: the log lines written so far go out first (bounded, log/logger.ts). */
  exit(code: number): void {
    if (this.exiting) return
    this.exiting = true
    flushAndExit(this.output, code)
  }

  /**
   * Resolves once the lines written so far are out (at most 5 s, like exit): for a caller that
   * ends the process itself after an error this shell's process cannot handle (serve() rejecting).
   */
  flushed(): Promise<void> {
    return new Promise((resolve) => {
      const whenWritten = this.output.whenWritten
      if (whenWritten === undefined) return resolve()
      const timer = setTimeout(resolve, 5000)
      whenWritten.call(this.output, () => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  private runQueue(): void {
    this.scheduled = false
    for (let sig = this.queue.shift(); sig !== undefined; sig = this.queue.shift()) {
      const handler = this.handlers.get(sig)
      if (handler === undefined) continue
      this.log.info({ signal: sig }, 'signal received')
      handler()
    }
  }

  private fatal(err: unknown, origin: string): void {
    this.log.fatal({ err, origin }, this.fatalMsg)
    if (this.onFatal !== null) this.onFatal()
    else this.exit(exitCodes.failure)
  }
}
