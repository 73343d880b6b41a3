/**
 * Runs each declared singleton once per deployment, in the jobs process: a pidfile
 * (<run dir>/singleton-<name>.pid, process/pidfile.ts) refuses a second copy anywhere on the host;
 * a singleton whose start() rejects (crashes) is restarted with backoff (0.5 s doubling to 30 s);
 * stop() is awaited on shutdown.
 */
import { join } from 'node:path'
import type { Logger } from 'pino'
import { claimPidfile, removePidfile } from '../process/pidfile.js'
import { publish } from '../publish.js'
import { singletonDefinitions } from './registry.js'

export interface SingletonState {
  state: 'starting' | 'running' | 'backoff' | 'refused' | 'stopped'
  pid: number
  restarts: number
  since: string
  error?: string
}

interface Running {
  abort: AbortController
  stop: (() => unknown) | null
  timer: NodeJS.Timeout | null
}

export class Singletons {
  readonly states = new Map<string, SingletonState>()
  private readonly running = new Map<string, Running>()
  private stopping = false

  constructor(
    private readonly runDir: string,
    private readonly log: Logger,
  ) {}

  start(): void {
    for (const name of singletonDefinitions.keys()) this.launch(name, 0)
  }

  private lockPath(name: string): string {
    return join(this.runDir, `singleton-${name}.pid`)
  }

  private set(name: string, s: Omit<SingletonState, 'pid' | 'since'>): void {
    this.states.set(name, { ...s, pid: process.pid, since: new Date().toISOString() })
  }

  private launch(name: string, restarts: number): void {
    if (this.stopping) return
    const start = singletonDefinitions.get(name)!
    const log = this.log.child({ singleton: name })
    const other = claimPidfile(this.lockPath(name))
    if (other !== null) {
      this.set(name, { state: 'refused', restarts, error: `already running in pid ${other}` })
      log.error({ otherPid: other }, 'singleton already runs in another process: not started here (two would be an error)')
      return
    }
    const abort = new AbortController()
    const entry: Running = { abort, stop: null, timer: null }
    this.running.set(name, entry)
    this.set(name, { state: 'starting', restarts })
    const crashed = (err: unknown): void => {
      if (this.stopping || abort.signal.aborted) return
      abort.abort()
      const delay = Math.min(30_000, 500 * 2 ** restarts)
      this.set(name, { state: 'backoff', restarts: restarts + 1, error: (err as Error)?.message ?? String(err) })
      log.error({ err, restartInMs: delay, restarts: restarts + 1 }, 'singleton crashed: restarting')
      entry.timer = setTimeout(() => this.launch(name, restarts + 1), delay)
    }
    try {
      const result = start({ signal: abort.signal, log, publish: (channel, data, options) => publish(channel, data, options) })
      Promise.resolve(result).then(
        (stop) => {
          if (typeof stop === 'function') entry.stop = stop as () => unknown
        },
        crashed,
      )
      this.set(name, { state: 'running', restarts })
      log.info({ restarts }, 'singleton started')
    } catch (err) {
      crashed(err)
    }
  }

  async stop(): Promise<void> {
    this.stopping = true
    for (const [name, r] of this.running) {
      if (r.timer !== null) clearTimeout(r.timer)
      r.abort.abort()
      try {
        await r.stop?.()
      } catch (err) {
        this.log.error({ err, singleton: name }, 'singleton stop() failed')
      }
      this.set(name, { state: 'stopped', restarts: this.states.get(name)?.restarts ?? 0 })
      removePidfile(this.lockPath(name))
      this.log.info({ singleton: name }, 'singleton stopped')
    }
  }
}
