/**
 * The arbiter (primary): starts N workers, watches their heartbeats, respawns crashed ones with
 * backoff, recycles them one at a time, rolling-reloads them on SIGHUP (a new worker must be
 * ready before an old one drains) and stops them gracefully. It never imports the app.
 *
 * This file holds the worker pool (spawn, messages, exits, respawn with backoff, the count) and
 * the start, settings changes and stop; the reload and recycle are in rollout.ts, the status
 * document and probes in status.ts, what signals and control commands do in commands.ts, and the
 * jobs process in jobs-child.ts.
 */
import { mkdirSync } from 'node:fs'
import type { Server } from 'node:net'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'
import { ForkyardError, codes, exitCodes } from '../errors.js'
import type { LineOutput } from '../log/rotating-file.js'
import { isWorkerMessage, type WorkerMessage } from './ipc.js'
import { JobsChild } from './jobs-child.js'
import { WorkerHandle, type WorkerStatus } from './worker-handle.js'
import type { Health } from './health.js'
import { HEALTH_SOCKET, listenHealth } from './health-http.js'
import type { Server as HttpServer } from 'node:http'
import { prepareBinds } from './binds.js'
import { publishSockets } from './handover.js'
import { listenControl, type ArbiterStatus } from './control.js'
import { arbiterSignals, controlCommand } from './commands.js'
import { backoffMs } from './exits.js'
import { RestartLedger } from './restarts.js'
import { Rollout } from './rollout.js'
import { ArbiterSettings, type SettingsOptions } from './settings.js'
import type { Scrape } from './scrape.js'
import { arbiterProbes, arbiterStatus, liveness } from './status.js'
import { cpuCount } from '../config/cpus.js'
import type { ConfigChange, EnvWatcher } from '../config/watch.js'
import { removePidfile, writePidfile } from '../process/pidfile.js'
import type { SignalHandlers } from '../process/shell.js'

export type { ArbiterStatus, WorkerStatus }

/** The settings in force at start (settings.ts), the worker count and where logs go. */
export interface ArbiterOptions extends SettingsOptions {
  workers: number
  log: Logger
  output: LineOutput
}

export class Arbiter {
  /** The configuration, app and settings version in force (settings.ts). */
  private readonly settings: ArbiterSettings
  private readonly watcher: EnvWatcher | null
  private readonly log: Logger
  private readonly output: LineOutput
  private readonly workers = new Map<number, WorkerHandle>()
  private target: number
  /** The generation, the reloads and recycles (rollout.ts). */
  private readonly rollout: Rollout
  private crashStreak = 0
  private respawnTimer: NodeJS.Timeout | null = null
  private respawnAt = 0
  private stopping = false
  /** True while the first generation boots: a failure then stops the server, no respawn. */
  private starting = false
  private closing: Promise<number> | null = null
  private ticker: NodeJS.Timeout | null = null
  private control: Server | null = null
  private healthHttp: HttpServer | null = null
  private readonly exitWaiters = new Set<() => void>()
  private cleanExits = true
  /** The one jobs process (tasks and singletons), when FORKYARD_JOBS is on. */
  private readonly jobs: JobsChild
  private readonly health: Health
  /** Worker restarts by cause and slot (restarts.ts). */
  private readonly restarts = new RestartLedger()
  /** GET /metrics on the health socket (scrape.ts). */
  private readonly scrape: Scrape

  constructor(options: ArbiterOptions) {
    this.watcher = options.watcher ?? null
    this.settings = new ArbiterSettings(options)
    this.log = options.log
    this.output = options.output
    this.target = options.workers
    this.jobs = new JobsChild({
      log: this.log,
      output: this.output,
      env: options.env ?? process.env,
      launch: () => this.settings.launch(),
      onExit: () => this.onChildGone(),
    })
    this.rollout = new Rollout({
      log: this.log,
      workers: this.workers,
      stopping: () => this.stopping,
      target: () => this.target,
      spawn: (generation, reason, slot) => this.spawn(generation, reason, slot),
      reloaded: () => {
        // The jobs process loads the app too: it gets the new code once running tasks are done.
        this.jobs.restart()
        // More workers wanted than there were: start them now, in the new generation.
        this.manage()
      },
    })
    const probes = arbiterProbes({
      config: () => this.config,
      settingsEnv: () => this.settings.settingsEnv(),
      status: () => this.status(),
      handles: () => this.workers.values(),
      jobs: this.jobs,
      version: () => ({ version: this.settings.version, since: this.settings.since }),
      proxied: options.proxied ?? false,
    })
    this.health = probes.health
    this.scrape = probes.scrape
    WorkerHandle.setupPrimary(this.config.scheduling)
  }

  /** The server configuration in force (a change replaces it whole). */
  private get config(): Readonly<ServerConfig> {
    return this.settings.config
  }

  /** Boots the first generation; rejects (after stopping everything) if any worker fails to boot. */
  async start(): Promise<void> {
    mkdirSync(this.config.runDir, { recursive: true, mode: 0o700 })
    writePidfile(this.config.pidfile)
    for (const path of await prepareBinds(this.config.bind)) {
      this.log.warn({ path }, 'the socket still answers (workers of an arbiter that died): they keep serving until this arbiter takes it over')
    }
    this.control = await listenControl(join(this.config.runDir, 'arbiter.sock'), (cmd) => controlCommand(this, cmd))
    this.healthHttp = await listenHealth(join(this.config.runDir, HEALTH_SOCKET), { live: () => liveness(this.status(), this.config.timeoutMs), readiness: () => this.health.report(), metrics: this.scrape })
    this.ticker = setInterval(() => this.tick(), 100)
    if (this.watcher !== null) {
      this.watcher.on('change', (c) => this.onConfigChange(c))
      this.watcher.start()
    }
    this.starting = true
    const booting = Array.from({ length: this.target }, () => this.spawn(this.rollout.generation, 'start'))
    // The first failure decides: no respawn loop over an app that cannot boot.
    const failed = await WorkerHandle.firstFailure(booting)
    this.starting = false
    if (failed !== undefined) {
      this.log.fatal({ err: failed.error }, 'a worker failed to boot: stopping')
      await this.close()
      throw new ForkyardError(codes.BOOT_FAILED, `A worker failed to boot: ${failed.error.message}`, { cause: failed.error })
    }
    this.jobs.start()
    this.log.info({ workers: this.target, generation: this.rollout.generation, bind: this.config.bind.map((b) => b.text) }, 'all workers ready')
  }

  /**
   * What each signal does to the arbiter (commands.ts; the process shell queues them and runs
   * these from one loop). `stopped` gets the exit code once a stop is complete.
   */
  signalHandlers(stopped: (code: number) => void): SignalHandlers {
    return arbiterSignals(this, this.watcher, stopped)
  }

  /**
   * A validated .env change. Live settings reach every worker at once over IPC; settings only a
   * new process can take (bind, worker count, keys the app marks "restart") trigger the
   * readiness-gated rolling reload by themselves.
   */
  private onConfigChange(change: ConfigChange): void {
    const { next, changed, restart } = change
    const msg = this.settings.apply(change, this.log, this.output)
    // An exiting worker can no longer be told: its replacement starts with the new settings.
    for (const t of this.workers.values()) t.send(msg)
    // The jobs process runs the app's tasks and singletons: config.get() there follows too.
    this.jobs.send(msg)
    if (restart.length > 0 && !this.stopping) {
      if (changed.includes('FORKYARD_WORKERS')) this.target = this.config.workers === 0 ? cpuCount().count : this.config.workers
      this.log.info({ restart, version: next.version }, 'config change needs new worker processes: rolling reload')
      void this.reload()
    }
  }

  status(): ArbiterStatus {
    return arbiterStatus({
      generation: this.rollout.generation,
      expectedWorkers: this.target,
      reloading: this.rollout.reloading !== null,
      config: this.config,
      configVersion: this.settings.version,
      workers: this.workers.values(),
      restarts: this.restarts,
      jobs: this.jobs,
    })
  }

  increment(): number {
    if (this.stopping) return this.target
    this.target++
    this.log.info({ expectedWorkers: this.target }, 'adding a worker')
    this.manage()
    return this.target
  }

  decrement(): number {
    if (this.stopping) return this.target
    if (this.target <= 1) {
      this.log.warn({ expectedWorkers: this.target }, 'not removing the last worker')
      return this.target
    }
    this.target--
    this.log.info({ expectedWorkers: this.target }, 'removing a worker')
    this.manage()
    return this.target
  }

  /** Rolling reload (rollout.ts): resolves true when every worker was replaced. */
  reload(): Promise<boolean> {
    return this.rollout.reload()
  }

  private spawn(generation: number, reason: string, slot?: number): WorkerHandle {
    const held = [...this.workers.values()].filter((w) => w.state !== 'draining').map((w) => w.slot)
    const t = WorkerHandle.fork({ ...this.settings.launch(), generation }, this.output, this.log)
    t.slot = slot ?? RestartLedger.freeSlot(held)
    this.workers.set(t.id, t)
    t.cw.on('message', (m: unknown) => {
      if (isWorkerMessage(m)) this.onMessage(t, m)
    })
    t.cw.on('exit', (code: number | null, signal: string | null) => this.onExit(t, code, signal))
    t.cw.on('error', (err) => this.log.warn({ err, worker: t.id }, 'worker IPC error'))
    this.log.info({ worker: t.id, workerPid: t.pid, generation, reason }, 'worker spawned')
    return t
  }

  private onMessage(t: WorkerHandle, m: WorkerMessage): void {
    switch (m.t) {
      case 'ready':
        // The first ready worker of a new socket makes it public (a takeover when workers of a
        // killed arbiter still serve on the old one).
        for (const path of publishSockets(this.config.bind)) this.log.info({ path, workerPid: t.pid }, 'listening socket published')
        t.ready()
        break
      case 'boot-error':
        t.bootError = m.error
        break
      case 'hb':
        t.heartbeat(m)
        break
      case 'status-req':
        void this.health.report().then((readiness) => {
          // false when the worker is going away
          t.send({ t: 'readiness', id: m.id, readiness })
        })
        break
      case 'recycle':
        this.log.info({ worker: t.id, workerPid: t.pid, reason: m.reason, value: m.value, limit: m.limit }, 'worker asks to be recycled')
        t.recycleReason = m.reason
        this.rollout.queueRecycle(t.id)
        break
    }
  }

  private onExit(t: WorkerHandle, code: number | null, signal: string | null): void {
    this.workers.delete(t.id)
    const now = Date.now()
    if (this.stopping && code !== 0) this.cleanExits = false
    t.exited(code, signal, t.expectedExit || t.killed !== null || this.stopping, this.config.bootTimeoutMs)
    this.restarts.exited(t, code, signal, this.stopping || this.starting, now)
    this.scrape.retire(t)
    this.onChildGone()
    if (this.stopping || this.starting) return
    if (!t.expectedExit) {
      // An unexpected exit: respawn, backing off while workers keep dying young.
      const young = t.readyAt === 0 || now - t.readyAt < 10_000
      this.crashStreak = young ? this.crashStreak + 1 : 1
      const delay = backoffMs(this.crashStreak)
      this.respawnAt = Math.max(this.respawnAt, now + delay)
      if (delay > 0) this.log.warn({ delayMs: delay, crashStreak: this.crashStreak }, 'respawn backing off')
    }
    this.manage()
  }

  /** A worker or the jobs process exited: a stop waiting for the last one goes on. */
  private onChildGone(): void {
    if (this.workers.size === 0 && !this.jobs.running) for (const w of this.exitWaiters) w()
  }

  /** Keeps the number of serving workers at the target (plus the surge of a replacement). */
  private manage(): void {
    if (this.stopping) return
    const active = [...this.workers.values()].filter((t) => t.state !== 'draining')
    if (active.length < this.target) {
      const wait = this.respawnAt - Date.now()
      if (wait > 0) {
        if (this.respawnTimer === null) {
          this.respawnTimer = setTimeout(() => {
            this.respawnTimer = null
            this.manage()
          }, wait)
        }
        return
      }
      for (let i = active.length; i < this.target; i++) this.spawn(this.rollout.generation, 'respawn')
      return
    }
    // A running reload replaces and trims the old generation itself.
    const extra = this.rollout.reloading !== null ? 0 : active.length - (this.target + this.rollout.surge)
    if (extra > 0) {
      // Remove booting workers first, then the oldest.
      const order = active.sort((a, b) => (a.state === 'booting' ? -1 : 0) - (b.state === 'booting' ? -1 : 0) || a.id - b.id)
      for (const t of order.slice(0, extra)) t.drain('fewer workers', false)
    }
  }

  /** Every 100 ms: boot deadlines, heartbeat deadlines, drain deadlines. */
  private tick(): void {
    const now = Date.now()
    for (const t of this.workers.values()) t.checkDeadlines(now, this.config)
  }

  /**
   * Graceful stop: every worker stops accepting, finishes in-flight requests and closes idle
   * keep-alive connections; what remains after FORKYARD_GRACEFUL_TIMEOUT is killed. Resolves with
   * the exit code: 0 when every worker exited cleanly. Idempotent.
   */
  close(): Promise<number> {
    if (this.closing !== null) return this.closing
    this.stopping = true
    this.closing = (async () => {
      if (this.respawnTimer !== null) clearTimeout(this.respawnTimer)
      this.log.info({ workers: this.workers.size, limitMs: this.config.gracefulTimeoutMs }, 'stopping: draining every worker')
      for (const t of this.workers.values()) t.drain('stop', true)
      this.jobs.stop()
      if (this.workers.size > 0 || this.jobs.running) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.config.gracefulTimeoutMs + 1000)
          this.exitWaiters.add(() => {
            clearTimeout(timer)
            resolve()
          })
        })
      }
      for (const t of this.workers.values()) {
        this.log.error({ worker: t.id, workerPid: t.pid, requests: t.requests }, 'worker still running after the graceful timeout: killing it')
        this.cleanExits = false
        t.kill('stop-timeout')
      }
      this.jobs.kill()
      if (this.workers.size > 0 || this.jobs.running) await new Promise<void>((resolve) => this.exitWaiters.add(resolve))
      if (this.ticker !== null) clearInterval(this.ticker)
      this.watcher?.close()
      await new Promise<void>((resolve) => (this.control === null ? resolve() : this.control.close(() => resolve())))
      this.healthHttp?.close()
      removePidfile(this.config.pidfile)
      const code = this.cleanExits ? exitCodes.ok : exitCodes.failure
      this.log.info({ code }, 'stopped')
      return code
    })()
    return this.closing
  }
}
