/**
 * The arbiter (primary): starts N workers, watches their heartbeats, respawns crashed ones with
 * backoff, recycles them one at a time, rolling-reloads them on SIGHUP (a new worker must be
 * ready before an old one drains) and stops them gracefully. It never imports the app.
 */
import { fork, type ChildProcess } from 'node:child_process'
import cluster, { type Worker as ClusterWorker } from 'node:cluster'
import { mkdirSync } from 'node:fs'
import type { Server } from 'node:net'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'
import { ForkyardError, codes, type SerializedError } from '../errors.js'
import type { LineOutput } from '../log/rotating-file.js'
import { relayLines } from '../log/relay.js'
import { plainLine } from '../log/schema.js'
import { LOG_FD, STALL_FD, isWorkerMessage, workerEnv, type ArbiterMessage, type JobsMessage, type JobsReport, type RequestSummary, type StallReport, type WorkerMessage } from './ipc.js'
import { Health } from './health.js'
import { loadPushConfig } from '../config/messaging.js'
import { definedEnv } from '../config/env-file.js'
import { prepareBinds } from './binds.js'
import { publishSockets } from './handover.js'
import { listenControl, type ControlCommand } from './control.js'
import { backoffMs, classifyExit } from './exits.js'
import { cpuCount } from '../config/cpus.js'
import { loadConfig, type ConfigOverrides } from '../config/load.js'
import { loadStackConfig } from '../config/stack.js'
import { loadLogConfig } from '../config/logging.js'
import type { ConfigChange, EnvWatcher } from '../config/watch.js'
import { removePidfile, writePidfile } from '../process/pidfile.js'

type State = 'booting' | 'ready' | 'draining'

interface Tracked {
  id: number
  cw: ClusterWorker
  pid: number
  generation: number
  state: State
  startedAt: number
  readyAt: number
  lastHb: number
  served: number
  inflight: number
  rss: number
  configVersion: string
  requests: RequestSummary[]
  stall: (StallReport & { at: number }) | null
  expectedExit: boolean
  killed: string | null
  drainStartedAt: number
  bootError: SerializedError | null
  exitCode: number | null
  booted: Promise<BootResult>
  settleBoot: (r: BootResult) => void
}

type BootResult = { ok: true } | { ok: false; error: SerializedError }

export interface WorkerStatus {
  worker: number
  pid: number
  generation: number
  state: State
  served: number
  inflight: number
  rssBytes: number
  lastHeartbeatMsAgo: number
  uptimeMs: number
  configVersion: string
}

export interface ArbiterStatus {
  pid: number
  generation: number
  expectedWorkers: number
  readyWorkers: number
  reloading: boolean
  bind: string[]
  configVersion: string
  /** The jobs process (tasks and singletons), null when not running. */
  jobsPid: number | null
  workers: WorkerStatus[]
}

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
}

const workerMain = fileURLToPath(new URL('../worker/main.js', import.meta.url))
const jobsMain = fileURLToPath(new URL('../jobs/main.js', import.meta.url))

export class Arbiter {
  private config: Readonly<ServerConfig>
  private readonly watcher: EnvWatcher | null
  private readonly overrides: ConfigOverrides
  private readonly log: Logger
  private readonly output: LineOutput
  private app: string
  private readonly env: NodeJS.ProcessEnv
  private readonly appFromSettings: boolean
  private readonly workers = new Map<number, Tracked>()
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
  private readonly signalQueue: NodeJS.Signals[] = []
  private readonly exitWaiters = new Set<() => void>()
  private cleanExits = true
  /** The one jobs process (tasks and singletons), when FORKYARD_JOBS is on. */
  private jobs: { child: ChildProcess; startedAt: number; restart: boolean; stop: boolean; report: JobsReport | null; reportedAt: number } | null = null
  private jobsStreak = 0
  private configVersion: string
  /** When the version in force changed (readiness gives the processes a moment to follow). */
  private configSince = Date.now()
  private readonly health: Health

  constructor(options: ArbiterOptions) {
    this.config = options.config
    this.watcher = options.watcher ?? null
    this.overrides = options.overrides ?? {}
    this.log = options.log
    this.output = options.output
    this.app = options.app
    this.env = options.env ?? process.env
    this.appFromSettings = options.appFromSettings ?? false
    this.target = options.workers
    this.configVersion = options.configVersion ?? ''
    this.health = new Health({
      config: () => this.config,
      pushBind: () => loadPushConfig(this.settingsEnv()).bind,
      supervisorSocket: join(this.config.runDir, 'supervisor.sock'),
      workers: () => {
        const st = this.status()
        return { expected: st.expectedWorkers, ready: st.readyWorkers, generation: st.generation, reloading: st.reloading, versions: st.workers.filter((w) => w.state !== 'draining').map((w) => w.configVersion) }
      },
      jobs: () => (this.jobs === null ? null : { pid: this.jobs.child.pid ?? 0, report: this.jobs.report, reportedAt: this.jobs.reportedAt }),
      version: () => ({ version: this.configVersion, since: this.configSince }),
    })
    // Global to the cluster module, so set before the first fork.
    cluster.schedulingPolicy = this.config.scheduling === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR
    cluster.setupPrimary({
      exec: workerMain,
      // stdout and stderr are piped and relayed line by line (one writer for the log output);
      // fd 4 carries the watchdog's stall reports, fd 5 the worker's own JSON log lines.
      stdio: ['ignore', 'pipe', 'pipe', 'ipc', 'pipe', 'pipe'],
      serialization: 'json',
    })
  }

  /** Boots the first generation; rejects (after stopping everything) if any worker fails to boot. */
  async start(): Promise<void> {
    mkdirSync(this.config.runDir, { recursive: true, mode: 0o700 })
    writePidfile(this.config.pidfile)
    for (const path of await prepareBinds(this.config.bind)) {
      this.log.warn({ path }, 'the socket still answers (workers of an arbiter that died): they keep serving until this arbiter takes it over')
    }
    this.control = await listenControl(join(this.config.runDir, 'arbiter.sock'), (cmd) => this.onControl(cmd))
    this.ticker = setInterval(() => this.tick(), 100)
    if (this.watcher !== null) {
      this.watcher.on('change', (c) => this.onConfigChange(c))
      this.watcher.start()
    }
    this.starting = true
    const booting = Array.from({ length: this.target }, () => this.spawn(this.generation, 'start'))
    // The first failure decides: no respawn loop over an app that cannot boot.
    const failed = await new Promise<{ ok: false; error: SerializedError } | undefined>((resolve) => {
      let left = booting.length
      for (const t of booting) {
        void t.booted.then((r) => {
          if (!r.ok) resolve(r)
          else if (--left === 0) resolve(undefined)
        })
      }
    })
    this.starting = false
    if (failed !== undefined) {
      this.log.fatal({ err: failed.error }, 'a worker failed to boot: stopping')
      await this.close()
      throw new ForkyardError(codes.BOOT_FAILED, `A worker failed to boot: ${failed.error.message}`, { cause: failed.error })
    }
    this.spawnJobs()
    this.log.info({ workers: this.target, generation: this.generation, bind: this.config.bind.map((b) => b.text) }, 'all workers ready')
  }

  /** Signal handlers only queue; this loop acts, one method per signal. */
  handleSignals(onStopped: (code: number) => void): void {
    const signals: NodeJS.Signals[] = ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGTTIN', 'SIGTTOU']
    for (const sig of signals) {
      process.on(sig, () => {
        this.signalQueue.push(sig)
        setImmediate(() => this.processSignals(onStopped))
      })
    }
  }

  private processSignals(onStopped: (code: number) => void): void {
    for (let sig = this.signalQueue.shift(); sig !== undefined; sig = this.signalQueue.shift()) {
      this.log.info({ signal: sig }, 'signal received')
      switch (sig) {
        // SIGHUP: re-read .env, then a rolling reload, loading the app's code afresh.
        case 'SIGHUP':
          this.watcher?.check('SIGHUP')
          void this.reload()
          break
        // SIGTERM / SIGINT: graceful stop, then exit.
        case 'SIGTERM':
        case 'SIGINT':
          void this.close().then(onStopped)
          break
        // SIGTTIN: one more worker.
        case 'SIGTTIN':
          this.increment()
          break
        // SIGTTOU: one worker fewer (never below one).
        case 'SIGTTOU':
          this.decrement()
          break
      }
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
    this.config = loadConfig(next.env, this.overrides)
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
    for (const t of this.workers.values()) {
      try {
        t.cw.send(msg)
      } catch {
        // exiting worker
      }
    }
    // The jobs process runs the app's tasks and singletons: config.get() there follows too.
    if (this.jobs?.child.connected === true) this.jobs.child.send(msg, (err) => void (err !== null && this.log.warn({ err }, 'config change not delivered to the jobs process')))
    if (restart.length > 0 && !this.stopping) {
      if (changed.includes('FORKYARD_WORKERS')) this.target = this.config.workers === 0 ? cpuCount().count : this.config.workers
      this.log.info({ restart, version: next.version }, 'config change needs new worker processes: rolling reload')
      void this.reload()
    }
  }

  /** The settings environment in force: the watched snapshot, or the environment serve() was given. */
  private settingsEnv(): Record<string, string> {
    return this.watcher?.current.env ?? definedEnv(this.env)
  }

  status(): ArbiterStatus {
    const now = Date.now()
    const workers = [...this.workers.values()].map((t) => ({
      worker: t.id,
      pid: t.pid,
      generation: t.generation,
      state: t.state,
      served: t.served,
      inflight: t.inflight,
      rssBytes: t.rss,
      lastHeartbeatMsAgo: now - t.lastHb,
      uptimeMs: now - t.startedAt,
      configVersion: t.configVersion,
    }))
    return {
      pid: process.pid,
      generation: this.generation,
      expectedWorkers: this.target,
      readyWorkers: workers.filter((w) => w.state === 'ready').length,
      reloading: this.reloading !== null,
      bind: this.config.bind.map((b) => b.text),
      configVersion: this.configVersion,
      jobsPid: this.jobs?.child.pid ?? null,
      workers,
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
        this.drain(old, 'fewer workers', false)
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
    this.restartJobs()
    // More workers wanted than there were: start them now, in the new generation.
    this.manage()
    return true
  }

  /** Boots a replacement for `old`; drains `old` only once the replacement is ready. */
  private async replace(old: Tracked, generation: number, reason: string): Promise<BootResult> {
    this.surge++
    try {
      const fresh = this.spawn(generation, reason)
      const result = await fresh.booted
      if (result.ok && this.workers.has(old.id)) this.drain(old, reason, false)
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

  private spawn(generation: number, reason: string): Tracked {
    const cw = cluster.fork({
      [workerEnv.config]: JSON.stringify(this.config),
      [workerEnv.app]: this.app,
      [workerEnv.generation]: String(generation),
      [workerEnv.id]: String(nextWorkerId()),
      [workerEnv.configVersion]: this.configVersion,
      [workerEnv.appConfig]: JSON.stringify(this.watcher?.current.app ?? {}),
      [workerEnv.settings]: JSON.stringify(this.settingsEnv()),
    })
    let settleBoot: (r: BootResult) => void = () => {}
    const booted = new Promise<BootResult>((resolve) => (settleBoot = resolve))
    const now = Date.now()
    const t: Tracked = {
      id: lastWorkerId,
      cw,
      pid: cw.process.pid ?? 0,
      generation,
      state: 'booting',
      startedAt: now,
      readyAt: 0,
      lastHb: now,
      served: 0,
      inflight: 0,
      rss: 0,
      configVersion: this.configVersion,
      requests: [],
      stall: null,
      expectedExit: false,
      killed: null,
      drainStartedAt: 0,
      bootError: null,
      exitCode: null,
      booted,
      settleBoot,
    }
    this.workers.set(t.id, t)
    this.relayChild(cw.process, { pid: t.pid, role: 'worker', worker: t.id })
    const stalls = cw.process.stdio[STALL_FD] as Readable | null | undefined
    if (stalls) this.readStalls(t, stalls)
    cw.on('message', (m: unknown) => {
      if (isWorkerMessage(m)) this.onMessage(t, m)
    })
    cw.on('exit', (code: number | null, signal: string | null) => this.onExit(t, code, signal))
    cw.on('error', (err) => this.log.warn({ err, worker: t.id }, 'worker IPC error'))
    this.log.info({ worker: t.id, workerPid: t.pid, generation, reason }, 'worker spawned')
    return t
  }

  /**
   * Relays a child's stdout, stderr (wrapped into the schema when not JSON) and logger pipe
   * (LOG_FD, trusted JSON) into this process's one output, whole lines only.
   */
  private relayChild(child: ChildProcess, who: { pid: number; role: string; worker?: number }): void {
    const { pid, ...rest } = who
    const wrap = (stream: string) => (line: string): string =>
      JSON.stringify(plainLine('server', pid, stream === 'stderr' ? 'error' : 'info', line, { ...rest, stream }))
    if (child.stdout) relayLines(child.stdout, this.output, { wrap: wrap('stdout') })
    if (child.stderr) relayLines(child.stderr, this.output, { wrap: wrap('stderr') })
    const logs = (child.stdio as unknown[])[LOG_FD] as Readable | null | undefined
    if (logs) relayLines(logs, this.output, { wrap: wrap('log'), trusted: true })
  }

  private readStalls(t: Tracked, stream: Readable): void {
    let pending = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      pending += chunk
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        try {
          this.onStall(t, JSON.parse(line) as StallReport)
        } catch {
          // not a report: ignore
        }
      }
    })
  }

  private onStall(t: Tracked, report: StallReport): void {
    if (report.t !== 'stall') return
    if (t.stall === null) {
      this.log.warn({ worker: t.id, workerPid: t.pid, blockedMs: report.blockedMs, requests: report.requests, more: report.more }, 'worker event loop blocked')
    }
    t.stall = { ...report, at: Date.now() }
  }

  private onMessage(t: Tracked, m: WorkerMessage): void {
    switch (m.t) {
      case 'ready':
        // The first ready worker of a new socket makes it public (a takeover when workers of a
        // killed arbiter still serve on the old one).
        for (const path of publishSockets(this.config.bind)) this.log.info({ path, workerPid: t.pid }, 'listening socket published')
        if (t.state === 'booting') t.state = 'ready'
        t.readyAt = Date.now()
        t.lastHb = t.readyAt
        this.log.info({ worker: t.id, workerPid: t.pid, generation: t.generation, bootMs: t.readyAt - t.startedAt }, 'worker ready')
        t.settleBoot({ ok: true })
        break
      case 'boot-error':
        t.bootError = m.error
        break
      case 'hb':
        t.lastHb = Date.now()
        t.served = m.served
        t.inflight = m.inflight
        t.rss = m.rss
        t.configVersion = m.configVersion
        t.requests = m.requests
        if (t.stall !== null) {
          this.log.info({ worker: t.id, workerPid: t.pid, blockedMs: t.stall.blockedMs }, 'worker event loop unblocked')
          t.stall = null
        }
        break
      case 'status-req':
        void this.health.report().then((readiness) => {
          const reply: ArbiterMessage = { t: 'readiness', id: m.id, readiness }
          try {
            t.cw.send(reply)
          } catch {
            // the worker is going away
          }
        })
        break
      case 'recycle':
        this.log.info({ worker: t.id, workerPid: t.pid, reason: m.reason, value: m.value, limit: m.limit }, 'worker asks to be recycled')
        this.queueRecycle(t.id)
        break
    }
  }

  private onExit(t: Tracked, code: number | null, signal: string | null): void {
    this.workers.delete(t.id)
    t.exitCode = code
    const now = Date.now()
    const expected = t.expectedExit || t.killed !== null || this.stopping
    if (this.stopping && code !== 0) this.cleanExits = false
    const { level, msg } = classifyExit(code, signal, expected)
    this.log[level]({ worker: t.id, workerPid: t.pid, generation: t.generation, code, signal, served: t.served, uptimeMs: now - t.startedAt, reason: t.killed ?? undefined }, msg)
    if (t.state === 'booting') {
      const error = t.bootError ?? { name: 'ForkyardError', code: t.killed === 'boot-timeout' ? codes.BOOT_TIMEOUT : codes.BOOT_FAILED, message: t.killed === 'boot-timeout' ? `The worker did not become ready within FORKYARD_BOOT_TIMEOUT (${this.config.bootTimeoutMs} ms)` : `The worker exited (code ${code}, signal ${signal}) before it was ready` }
      t.settleBoot({ ok: false, error })
    }
    if (this.workers.size === 0 && this.jobs === null) for (const w of this.exitWaiters) w()
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

  /**
   * The jobs process: exactly one, never one per worker. Restarted with backoff when it dies
   * (tasks it was running are queued again), replaced after a reload, stopped with the rest.
   */
  private spawnJobs(): void {
    if (!this.config.jobs || this.stopping || this.jobs !== null) return
    const child = fork(jobsMain, [], {
      env: {
        ...this.env,
        [workerEnv.config]: JSON.stringify(this.config),
        [workerEnv.app]: this.app,
        [workerEnv.configVersion]: this.configVersion,
        [workerEnv.appConfig]: JSON.stringify(this.watcher?.current.app ?? {}),
        [workerEnv.settings]: JSON.stringify(this.settingsEnv()),
      },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc', 'pipe', 'pipe'],
      serialization: 'json',
    })
    const pid = child.pid ?? 0
    this.relayChild(child, { pid, role: 'jobs' })
    const entry: NonNullable<Arbiter['jobs']> = { child, startedAt: Date.now(), restart: false, stop: false, report: null, reportedAt: 0 }
    this.jobs = entry
    child.on('message', (m: unknown) => {
      const msg = m as JobsMessage
      if (msg?.t !== 'jobs') return
      entry.report = msg.report
      entry.reportedAt = Date.now()
    })
    this.log.info({ jobsPid: pid }, 'jobs process spawned')
    child.on('exit', (code, signal) => {
      if (this.jobs === entry) this.jobs = null
      const expected = entry.stop || entry.restart || this.stopping
      const { level, msg } = classifyExit(code, signal, expected)
      this.log[level]({ jobsPid: pid, code, signal }, msg.replace('worker', 'jobs process'))
      for (const w of this.exitWaiters) if (this.workers.size === 0 && this.jobs === null) w()
      if (this.stopping || entry.stop) return
      if (entry.restart) return this.spawnJobs()
      const young = Date.now() - entry.startedAt < 10_000
      this.jobsStreak = young ? this.jobsStreak + 1 : 1
      const delay = backoffMs(this.jobsStreak)
      this.log.warn({ delayMs: delay }, 'jobs process died: restarting it')
      setTimeout(() => this.spawnJobs(), delay).unref()
    })
  }

  private restartJobs(): void {
    if (this.jobs === null) return this.spawnJobs()
    this.jobs.restart = true
    this.jobs.child.kill('SIGTERM')
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
      for (const t of order.slice(0, extra)) this.drain(t, 'fewer workers', false)
    }
  }

  private drain(t: Tracked, reason: string, closeIdle: boolean): void {
    if (t.state === 'draining' && !closeIdle) return
    if (t.state !== 'draining') {
      t.state = 'draining'
      t.drainStartedAt = Date.now()
    }
    t.expectedExit = true
    const msg: ArbiterMessage = { t: 'drain', reason, closeIdle }
    try {
      t.cw.send(msg)
    } catch {
      t.cw.process.kill('SIGTERM')
    }
  }

  private kill(t: Tracked, reason: string): void {
    if (t.killed !== null) return
    t.killed = reason
    t.cw.process.kill('SIGKILL')
  }

  /** Every 100 ms: boot deadlines, heartbeat deadlines, drain deadlines. */
  private tick(): void {
    const now = Date.now()
    for (const t of this.workers.values()) {
      if (t.killed !== null) continue
      if (t.state === 'booting') {
        if (now - t.startedAt > this.config.bootTimeoutMs) {
          this.log.error({ worker: t.id, workerPid: t.pid, limitMs: this.config.bootTimeoutMs }, 'worker did not become ready in time: killing it')
          this.kill(t, 'boot-timeout')
        }
        continue
      }
      const silentMs = now - t.lastHb
      if (silentMs > this.config.timeoutMs) {
        const fromStall = t.stall !== null && t.stall.at >= t.lastHb
        const requests = fromStall ? t.stall!.requests : t.requests.map((r) => ({ ...r, ageMs: r.ageMs + silentMs }))
        this.log.error(
          { worker: t.id, workerPid: t.pid, generation: t.generation, silentMs, blockedMs: fromStall ? t.stall!.blockedMs : undefined, limitMs: this.config.timeoutMs, requests, more: fromStall ? t.stall!.more : undefined },
          `worker timed out (no heartbeat for ${silentMs} ms, event loop blocked): killing it`,
        )
        this.kill(t, 'timeout')
        continue
      }
      if (t.state === 'draining' && now - t.drainStartedAt > this.config.gracefulTimeoutMs + 2000) {
        this.log.warn({ worker: t.id, workerPid: t.pid, requests: t.requests }, 'worker overran its drain deadline: killing it')
        this.kill(t, 'drain-timeout')
      }
    }
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
      for (const t of this.workers.values()) this.drain(t, 'stop', true)
      if (this.jobs !== null) {
        this.jobs.stop = true
        this.jobs.child.kill('SIGTERM')
      }
      if (this.workers.size > 0 || this.jobs !== null) {
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
        this.kill(t, 'stop-timeout')
      }
      if (this.jobs !== null) {
        this.log.error({ jobsPid: this.jobs.child.pid }, 'jobs process still running after the graceful timeout: killing it')
        this.jobs.child.kill('SIGKILL')
      }
      if (this.workers.size > 0 || this.jobs !== null) await new Promise<void>((resolve) => this.exitWaiters.add(resolve))
      if (this.ticker !== null) clearInterval(this.ticker)
      this.watcher?.close()
      await new Promise<void>((resolve) => (this.control === null ? resolve() : this.control.close(() => resolve())))
      removePidfile(this.config.pidfile)
      const code = this.cleanExits ? 0 : 1
      this.log.info({ code }, 'stopped')
      return code
    })()
    return this.closing
  }
}

let lastWorkerId = 0
function nextWorkerId(): number {
  return ++lastWorkerId
}
