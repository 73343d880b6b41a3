/**
 * The arbiter (primary): starts N workers, watches their heartbeats, respawns crashed ones with
 * backoff, recycles them one at a time, rolling-reloads them on SIGHUP (a new worker must be
 * ready before an old one drains) and stops them gracefully. It never imports the app.
 */
import { mkdirSync } from 'node:fs'
import type { Server } from 'node:net'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'
import { ForkyardError, codes, exitCodes } from '../errors.js'
import type { LineOutput } from '../log/rotating-file.js'
import { isWorkerMessage, type ArbiterMessage, type ChildLaunch, type WorkerMessage } from './ipc.js'
import { JobsChild } from './jobs-child.js'
import { WorkerHandle, type BootResult, type WorkerStatus } from './worker-handle.js'
import { Health } from './health.js'
import { HEALTH_SOCKET, listenHealth } from './health-http.js'
import type { Server as HttpServer } from 'node:http'
import { loadPushConfig } from '../config/messaging.js'
import { definedEnv } from '../config/env-file.js'
import { prepareBinds } from './binds.js'
import { publishSockets } from './handover.js'
import { listenControl, type ArbiterStatus, type ControlCommand } from './control.js'
import { backoffMs } from './exits.js'
import { RestartLedger } from './restarts.js'
import { Scrape } from './scrape.js'
import { cpuCount } from '../config/cpus.js'
import { loadConfig, type ConfigOverrides } from '../config/load.js'
import { loadStackConfig, nginxListen } from '../config/stack.js'
import { loadLogConfig } from '../config/logging.js'
import type { ConfigChange, EnvWatcher } from '../config/watch.js'
import { removePidfile, writePidfile } from '../process/pidfile.js'
import type { SignalHandlers } from '../process/shell.js'

export type { ArbiterStatus, WorkerStatus }

export interface ArbiterOptions {
  config: Readonly<ServerConfig>
  /** Watches .env: valid changes are applied live or by a rolling reload. */
  watcher?: EnvWatcher | null
  /** Settings given in code or flags: they keep winning over .env after a change. */
  overrides?: ConfigOverrides
  configVersion?: string
  /** The environment serve() was given (settings when no .env is watched; the children's base). */
  env?: NodeJS.ProcessEnv
  app: string
  /** The app came from FORKYARD_APP (not a command-line argument): a change of it reloads onto the new module. */
  appFromSettings?: boolean
  workers: number
  log: Logger
  output: LineOutput
  /** Behind the kit's nginx (under its supervisord), which writes the access log: auto means off. */
  proxied?: boolean
}

/** FORKYARD_ACCESS_LOG=auto decided: the workers log requests unless the kit's nginx does. */
function resolveAccessLog(config: Readonly<ServerConfig>, proxied: boolean): Readonly<ServerConfig> {
  return config.accessLog !== 'auto' ? config : Object.freeze({ ...config, accessLog: !proxied })
}

export class Arbiter {
  private config: Readonly<ServerConfig>
  private readonly proxied: boolean
  private readonly watcher: EnvWatcher | null
  private readonly overrides: ConfigOverrides
  private readonly log: Logger
  private readonly output: LineOutput
  private app: string
  private readonly env: NodeJS.ProcessEnv
  private readonly appFromSettings: boolean
  private readonly workers = new Map<number, WorkerHandle>()
  private target: number
  private generation = 1
  /** Extra workers allowed while a replacement boots (reload, recycle). */
  private surge = 0
  private crashStreak = 0
  private respawnTimer: NodeJS.Timeout | null = null
  private respawnAt = 0
  private reloading: Promise<boolean> | null = null
  private reloadQueued = false
  private recycleQueue: number[] = []
  private recycling = false
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
  private configVersion: string
  /** When the version in force changed (readiness gives the processes a moment to follow). */
  private configSince = Date.now()
  private readonly health: Health
  /** Worker restarts by cause and slot (restarts.ts). */
  private readonly restarts = new RestartLedger()
  /** GET /metrics on the health socket (scrape.ts). */
  private readonly scrape: Scrape

  constructor(options: ArbiterOptions) {
    this.proxied = options.proxied ?? false
    this.config = resolveAccessLog(options.config, this.proxied)
    this.watcher = options.watcher ?? null
    this.overrides = options.overrides ?? {}
    this.log = options.log
    this.output = options.output
    this.app = options.app
    this.env = options.env ?? process.env
    this.appFromSettings = options.appFromSettings ?? false
    this.target = options.workers
    this.configVersion = options.configVersion ?? ''
    this.jobs = new JobsChild({
      log: this.log,
      output: this.output,
      env: this.env,
      launch: () => this.launch(),
      onExit: () => this.onChildGone(),
    })
    this.health = new Health({
      config: () => this.config,
      pushBind: () => loadPushConfig(this.settingsEnv()).bind,
      supervisorSocket: join(this.config.runDir, 'supervisor.sock'),
      workers: () => {
        const st = this.status()
        // Ready and heartbeating: a worker whose event loop is stuck is not counted.
        return { expected: st.expectedWorkers, ready: this.live(st).readyWorkers, generation: st.generation, reloading: st.reloading, versions: st.workers.filter((w) => w.state !== 'draining').map((w) => w.configVersion) }
      },
      jobs: () => this.jobs.health(),
      version: () => ({ version: this.configVersion, since: this.configSince }),
    })
    this.scrape = new Scrape({
      status: () => this.status(),
      readyWorkers: () => this.live().readyWorkers,
      handles: () => this.workers.values(),
      jobsReport: () => this.jobs.health()?.report ?? null,
      // Behind the kit's nginx (under supervisord) the push process and nginx are part of the deployment.
      pushBind: () => (this.proxied || this.config.readyChecks.includes('push') ? loadPushConfig(this.settingsEnv()).bind : null),
      nginxListen: () => (this.proxied ? nginxListen(this.settingsEnv()) : null),
    })
    WorkerHandle.setupPrimary(this.config.scheduling)
  }

  /** For /healthz: a worker ready with a heartbeat younger than FORKYARD_TIMEOUT (3 s at most). */
  private live(st: ArbiterStatus = this.status()): { ok: boolean; readyWorkers: number; expectedWorkers: number } {
    const freshMs = Math.min(this.config.timeoutMs, 3000)
    const ready = st.workers.filter((w) => w.state === 'ready' && w.lastHeartbeatMsAgo < freshMs).length
    return { ok: ready > 0, readyWorkers: ready, expectedWorkers: st.expectedWorkers }
  }

  /** Boots the first generation; rejects (after stopping everything) if any worker fails to boot. */
  async start(): Promise<void> {
    mkdirSync(this.config.runDir, { recursive: true, mode: 0o700 })
    writePidfile(this.config.pidfile)
    for (const path of await prepareBinds(this.config.bind)) {
      this.log.warn({ path }, 'the socket still answers (workers of an arbiter that died): they keep serving until this arbiter takes it over')
    }
    this.control = await listenControl(join(this.config.runDir, 'arbiter.sock'), (cmd) => this.onControl(cmd))
    this.healthHttp = await listenHealth(join(this.config.runDir, HEALTH_SOCKET), { live: () => this.live(), readiness: () => this.health.report(), metrics: this.scrape })
    this.ticker = setInterval(() => this.tick(), 100)
    if (this.watcher !== null) {
      this.watcher.on('change', (c) => this.onConfigChange(c))
      this.watcher.start()
    }
    this.starting = true
    const booting = Array.from({ length: this.target }, () => this.spawn(this.generation, 'start'))
    // The first failure decides: no respawn loop over an app that cannot boot.
    const failed = await WorkerHandle.firstFailure(booting)
    this.starting = false
    if (failed !== undefined) {
      this.log.fatal({ err: failed.error }, 'a worker failed to boot: stopping')
      await this.close()
      throw new ForkyardError(codes.BOOT_FAILED, `A worker failed to boot: ${failed.error.message}`, { cause: failed.error })
    }
    this.jobs.start()
    this.log.info({ workers: this.target, generation: this.generation, bind: this.config.bind.map((b) => b.text) }, 'all workers ready')
  }

  /**
   * What each signal does to the arbiter (the process shell queues them and runs these from one
   * loop). `stopped` gets the exit code once a stop is complete.
   */
  signalHandlers(stopped: (code: number) => void): SignalHandlers {
    return {
      // SIGHUP: re-read .env, then a rolling reload, loading the app's code afresh.
      SIGHUP: () => {
        this.watcher?.check('SIGHUP')
        void this.reload()
      },
      // SIGTERM: graceful stop (drain every worker, stop the jobs process), then exit.
      SIGTERM: () => void this.close().then(stopped),
      // SIGINT (Ctrl-C): the same graceful stop.
      SIGINT: () => void this.close().then(stopped),
      // SIGTTIN: one more worker.
      SIGTTIN: () => void this.increment(),
      // SIGTTOU: one worker fewer (never below one).
      SIGTTOU: () => void this.decrement(),
    }
  }

  private async onControl(cmd: ControlCommand): Promise<unknown> {
    switch (cmd) {
      case 'status':
        return this.status()
      case 'reload':
        return { reloaded: await this.reload() }
      case 'ttin':
        return { expectedWorkers: this.increment() }
      case 'ttou':
        return { expectedWorkers: this.decrement() }
      case 'stop':
        setImmediate(() => process.kill(process.pid, 'SIGTERM'))
        return { stopping: true }
    }
  }

  /**
   * A validated .env change. Live settings reach every worker at once over IPC; settings only a
   * new process can take (bind, worker count, keys the app marks "restart") trigger the
   * readiness-gated rolling reload by themselves.
   */
  private onConfigChange(change: ConfigChange): void {
    const { next, changed, restart } = change
    this.config = resolveAccessLog(loadConfig(next.env, this.overrides), this.proxied)
    this.configVersion = next.version
    this.configSince = Date.now()
    this.log.level = this.config.logLevel
    const logs = loadLogConfig(next.env)
    this.output.setLimits?.(logs.maxBytes, logs.keep)
    if (this.appFromSettings && changed.includes('FORKYARD_APP')) {
      this.app = loadStackConfig(next.env).app
      this.log.info({ app: this.app }, 'FORKYARD_APP changed: the next generation serves the new module')
    }
    const msg: ArbiterMessage = { t: 'config', version: next.version, env: next.env, server: this.config, app: next.app, changed }
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

  /** What a new child (worker, jobs process) starts with: the settings in force and the app. */
  private launch(): ChildLaunch {
    return { config: this.config, app: this.app, configVersion: this.configVersion, appConfig: this.watcher?.current.app ?? {}, settings: this.settingsEnv() }
  }

  /** The settings environment in force: the watched snapshot, or the environment serve() was given. */
  private settingsEnv(): Record<string, string> {
    return this.watcher?.current.env ?? definedEnv(this.env)
  }

  status(): ArbiterStatus {
    const now = Date.now()
    const workers = [...this.workers.values()].map((t) => t.status(now, this.restarts.slot(t.slot)))
    return {
      pid: process.pid,
      generation: this.generation,
      expectedWorkers: this.target,
      readyWorkers: workers.filter((w) => w.state === 'ready').length,
      reloading: this.reloading !== null,
      bind: this.config.bind.map((b) => b.text),
      configVersion: this.configVersion,
      jobsPid: this.jobs.pid,
      workers,
      restarts: this.restarts.totals(),
      jobs: this.jobs.summary(),
    }
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

  /**
   * Rolling reload: for each current worker, boot a new one (a fresh process imports the app
   * anew) and only once it is ready drain the old one. A new worker that fails to boot stops the
   * reload; the workers not yet replaced keep serving. Resolves true when every worker was replaced.
   */
  reload(): Promise<boolean> {
    if (this.stopping) return Promise.resolve(false)
    if (this.reloading !== null) {
      this.reloadQueued = true
      return this.reloading
    }
    this.reloading = (async () => {
      let ok = true
      do {
        this.reloadQueued = false
        ok = await this.reloadOnce()
      } while (ok && this.reloadQueued && !this.stopping)
      this.reloading = null
      return ok
    })()
    return this.reloading
  }

  private async reloadOnce(): Promise<boolean> {
    const next = this.generation + 1
    const olds = [...this.workers.values()].filter((t) => t.state !== 'draining' && t.generation < next)
    this.log.info({ generation: next, workers: olds.length }, 'reload: starting a new generation')
    let replaced = 0
    for (const old of olds) {
      if (this.stopping) return false
      if (!this.workers.has(old.id) || old.state === 'draining') continue
      // Fewer workers wanted (FORKYARD_WORKERS lowered): the surplus old ones just drain.
      if (replaced >= this.target) {
        old.drain('fewer workers', false)
        continue
      }
      const result = await this.replace(old, next, 'reload')
      if (!result.ok) {
        this.log.error(
          { err: result.error, generation: next, replaced, keptOld: olds.length - replaced },
          'reload aborted: a new worker failed to boot; the previous generation keeps serving',
        )
        return false
      }
      replaced++
    }
    this.generation = next
    this.log.info({ generation: next, replaced }, 'reload complete')
    // The jobs process loads the app too: it gets the new code once running tasks are done.
    this.jobs.restart()
    // More workers wanted than there were: start them now, in the new generation.
    this.manage()
    return true
  }

  /** Boots a replacement for `old`; drains `old` only once the replacement is ready. */
  private async replace(old: WorkerHandle, generation: number, reason: string): Promise<BootResult> {
    this.surge++
    try {
      const fresh = this.spawn(generation, reason, old.slot)
      const result = await fresh.booted
      if (result.ok && this.workers.has(old.id)) old.drain(reason, false)
      return result
    } finally {
      this.surge--
    }
  }

  private async processRecycles(): Promise<void> {
    if (this.recycling) return
    this.recycling = true
    try {
      for (let id = this.recycleQueue.shift(); id !== undefined; id = this.recycleQueue.shift()) {
        // A reload replaces every worker anyway: wait for it rather than double the surge.
        if (this.reloading !== null) await this.reloading
        const old = this.workers.get(id)
        if (this.stopping || old === undefined || old.state !== 'ready') continue
        const result = await this.replace(old, this.generation, 'recycle')
        if (!result.ok) {
          this.log.error({ err: result.error, worker: id }, 'recycle: the replacement failed to boot; the old worker keeps serving')
          setTimeout(() => this.queueRecycle(id), 5000).unref()
        }
      }
    } finally {
      this.recycling = false
    }
  }

  private queueRecycle(id: number): void {
    if (this.recycleQueue.includes(id)) return
    this.recycleQueue.push(id)
    void this.processRecycles()
  }

  private spawn(generation: number, reason: string, slot?: number): WorkerHandle {
    const held = [...this.workers.values()].filter((w) => w.state !== 'draining').map((w) => w.slot)
    const t = WorkerHandle.fork({ ...this.launch(), generation }, this.output, this.log)
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
        this.queueRecycle(t.id)
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
      for (let i = active.length; i < this.target; i++) this.spawn(this.generation, 'respawn')
      return
    }
    // A running reload replaces and trims the old generation itself.
    const extra = this.reloading !== null ? 0 : active.length - (this.target + this.surge)
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
