/**
 * One HTTP worker as the arbiter sees it: the cluster worker, its state (booting, ready,
 * draining), what its heartbeats and stall reports say, its deadlines, and its status row.
 * The arbiter decides when workers start and stop; a handle carries out the decision for one.
 */
import { lowerForBoot, restoreAfterBoot } from '../process/priority.js'
import cluster, { type Worker as ClusterWorker } from 'node:cluster'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'
import { codes, type SerializedError } from '../errors.js'
import type { LineOutput } from '../log/rotating-file.js'
import { classifyExit, type LastExit } from './exits.js'
import type { SlotRestarts } from './restarts.js'
import { STALL_FD, launchEnv, workerEnv, type ArbiterMessage, type ChildLaunch, type RequestSummary, type StallReport, type WorkerMessage, type WorkerMetrics } from './ipc.js'
import { relayChild } from './relay-child.js'

export type WorkerState = 'booting' | 'ready' | 'draining'

export type BootResult = { ok: true } | { ok: false; error: SerializedError }

export interface WorkerStatus {
  worker: number
  pid: number
  generation: number
  state: WorkerState
  served: number
  inflight: number
  rssBytes: number
  lastHeartbeatMsAgo: number
  uptimeMs: number
  configVersion: string
  /** Its place (1..N): a replacement takes the slot of the worker it replaces. */
  slot: number
  /** How many times this slot's worker was replaced (any cause), and the last exit. */
  restarts: number
  lastExit: LastExit | null
}

/** What a new worker is started with: the settings in force, the app, its generation. */
export interface WorkerLaunch extends ChildLaunch {
  generation: number
}

const workerMain = fileURLToPath(new URL('../worker/main.js', import.meta.url))

let lastWorkerId = 0

export class WorkerHandle {
  readonly id: number
  readonly cw: ClusterWorker
  readonly pid: number
  readonly generation: number
  state: WorkerState = 'booting'
  readonly startedAt = Date.now()
  readyAt = 0
  lastHb = this.startedAt
  served = 0
  inflight = 0
  rss = 0
  configVersion: string
  requests: RequestSummary[] = []
  /** Its counters as of the last heartbeat (GET /metrics), null before the first. */
  metrics: WorkerMetrics | null = null
  stall: (StallReport & { at: number }) | null = null
  /** Asked to go (drain, fewer workers): its exit is no crash. */
  expectedExit = false
  /** Why the arbiter killed it (boot-timeout, timeout, drain-timeout, stop-timeout), else null. */
  killed: string | null = null
  drainStartedAt = 0
  /** Its place (1..N), set by the arbiter (restarts.ts). */
  slot = 0
  /** Why it was drained (reload, recycle, fewer workers, stop), else null. */
  drainReason: string | null = null
  /** Why it asked to be recycled (max-requests, max-rss), else null. */
  recycleReason: string | null = null
  /** Booting at a lower CPU priority (lowerForBoot), to be given back when ready. */
  lowered = false
  bootError: SerializedError | null = null
  exitCode: number | null = null
  /** Settles once: ready, or the boot failed (the error the worker reported, or why it died). */
  readonly booted: Promise<BootResult>
  private settleBoot: (r: BootResult) => void = () => {}
  private readonly log: Logger

  /** How every worker is forked. Global to the cluster module, so set before the first fork. */
  static setupPrimary(scheduling: ServerConfig['scheduling']): void {
    cluster.schedulingPolicy = scheduling === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR
    cluster.setupPrimary({
      exec: workerMain,
      // stdout and stderr are piped and relayed line by line (one writer for the log output);
      // fd 4 carries the watchdog's stall reports, fd 5 the worker's own JSON log lines.
      stdio: ['ignore', 'pipe', 'pipe', 'ipc', 'pipe', 'pipe'],
      serialization: 'json',
    })
  }

  /** Forks a worker (after setupPrimary) and relays its output. */
  static fork(launch: WorkerLaunch, output: LineOutput, log: Logger): WorkerHandle {
    const id = ++lastWorkerId
    const cw = cluster.fork({ ...launchEnv(launch), [workerEnv.generation]: String(launch.generation), [workerEnv.id]: String(id) })
    const t = new WorkerHandle(id, cw, launch.generation, launch.configVersion, log)
    // Booting at a lower CPU priority, given back once ready (process/priority.ts).
    t.lowered = lowerForBoot(t.pid)
    relayChild(cw.process, output, { pid: t.pid, role: 'worker', worker: id })
    const stalls = cw.process.stdio[STALL_FD] as Readable | null | undefined
    if (stalls) t.readStalls(stalls)
    return t
  }

  /** The first boot failure among `handles`, or undefined once every one of them is ready. */
  static firstFailure(handles: WorkerHandle[]): Promise<{ ok: false; error: SerializedError } | undefined> {
    return new Promise((resolve) => {
      let left = handles.length
      if (left === 0) resolve(undefined)
      for (const t of handles) {
        void t.booted.then((r) => {
          if (!r.ok) resolve(r)
          else if (--left === 0) resolve(undefined)
        })
      }
    })
  }

  private constructor(id: number, cw: ClusterWorker, generation: number, configVersion: string, log: Logger) {
    this.id = id
    this.cw = cw
    this.pid = cw.process.pid ?? 0
    this.generation = generation
    this.configVersion = configVersion
    this.log = log
    this.booted = new Promise<BootResult>((resolve) => (this.settleBoot = resolve))
  }

  status(now: number, restarts: SlotRestarts): WorkerStatus {
    return {
      worker: this.id,
      pid: this.pid,
      generation: this.generation,
      state: this.state,
      served: this.served,
      inflight: this.inflight,
      rssBytes: this.rss,
      lastHeartbeatMsAgo: now - this.lastHb,
      uptimeMs: now - this.startedAt,
      configVersion: this.configVersion,
      slot: this.slot,
      restarts: restarts.restarts,
      lastExit: restarts.lastExit,
    }
  }

  /** Sends over IPC; false when the channel is gone (the worker is exiting). */
  send(msg: ArbiterMessage): boolean {
    try {
      this.cw.send(msg)
      return true
    } catch {
      return false
    }
  }

  ready(): void {
    if (this.lowered && !restoreAfterBoot(this.pid)) this.log.warn({ worker: this.id, workerPid: this.pid }, 'could not give the worker its normal CPU priority back')
    if (this.state === 'booting') this.state = 'ready'
    this.readyAt = Date.now()
    this.lastHb = this.readyAt
    this.log.info({ worker: this.id, workerPid: this.pid, generation: this.generation, bootMs: this.readyAt - this.startedAt }, 'worker ready')
    this.settleBoot({ ok: true })
  }

  heartbeat(m: Extract<WorkerMessage, { t: 'hb' }>): void {
    this.lastHb = Date.now()
    this.served = m.served
    this.inflight = m.inflight
    this.rss = m.rss
    this.configVersion = m.configVersion
    this.requests = m.requests
    if (m.metrics !== undefined) this.metrics = m.metrics
    if (this.stall !== null) {
      this.log.info({ worker: this.id, workerPid: this.pid, blockedMs: this.stall.blockedMs }, 'worker event loop unblocked')
      this.stall = null
    }
  }

  /** Stop accepting and finish in-flight requests (closeIdle: also close idle keep-alive connections). */
  drain(reason: string, closeIdle: boolean): void {
    if (this.state === 'draining' && !closeIdle) return
    if (this.state !== 'draining') {
      this.state = 'draining'
      this.drainReason = reason
      this.drainStartedAt = Date.now()
    }
    this.expectedExit = true
    if (!this.send({ t: 'drain', reason, closeIdle })) this.cw.process.kill('SIGTERM')
  }

  kill(reason: string): void {
    if (this.killed !== null) return
    this.killed = reason
    this.cw.process.kill('SIGKILL')
  }

  /** Called every tick: kills the worker when it overran its boot, heartbeat or drain deadline. */
  checkDeadlines(now: number, config: Readonly<ServerConfig>): void {
    if (this.killed !== null) return
    if (this.state === 'booting') {
      if (now - this.startedAt > config.bootTimeoutMs) {
        this.log.error({ worker: this.id, workerPid: this.pid, limitMs: config.bootTimeoutMs }, 'worker did not become ready in time: killing it')
        this.kill('boot-timeout')
      }
      return
    }
    const silentMs = now - this.lastHb
    if (silentMs > config.timeoutMs) {
      const stall = this.stall !== null && this.stall.at >= this.lastHb ? this.stall : null
      const requests = stall !== null ? stall.requests : this.requests.map((r) => ({ ...r, ageMs: r.ageMs + silentMs }))
      this.log.error(
        { worker: this.id, workerPid: this.pid, generation: this.generation, silentMs, blockedMs: stall?.blockedMs, limitMs: config.timeoutMs, requests, more: stall?.more },
        `worker timed out (no heartbeat for ${silentMs} ms, event loop blocked): killing it`,
      )
      this.kill('timeout')
      return
    }
    if (this.state === 'draining' && now - this.drainStartedAt > config.gracefulTimeoutMs + 2000) {
      this.log.warn({ worker: this.id, workerPid: this.pid, requests: this.requests }, 'worker overran its drain deadline: killing it')
      this.kill('drain-timeout')
    }
  }

  /** The process exited: logs it, classified, and settles a boot still pending with why it failed. */
  exited(code: number | null, signal: string | null, expected: boolean, bootTimeoutMs: number): void {
    this.exitCode = code
    const { level, msg } = classifyExit(code, signal, expected)
    this.log[level]({ worker: this.id, workerPid: this.pid, generation: this.generation, code, signal, served: this.served, uptimeMs: Date.now() - this.startedAt, reason: this.killed ?? undefined }, msg)
    if (this.state !== 'booting') return
    const timedOut = this.killed === 'boot-timeout'
    const error = this.bootError ?? {
      name: 'ForkyardError',
      code: timedOut ? codes.BOOT_TIMEOUT : codes.BOOT_FAILED,
      message: timedOut ? `The worker did not become ready within FORKYARD_BOOT_TIMEOUT (${bootTimeoutMs} ms)` : `The worker exited (code ${code}, signal ${signal}) before it was ready`,
    }
    this.settleBoot({ ok: false, error })
  }

  /** The watchdog thread's stall reports (STALL_FD), one JSON object a line. */
  private readStalls(stream: Readable): void {
    let pending = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      pending += chunk
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        try {
          this.onStall(JSON.parse(line) as StallReport)
        } catch {
          // not a report: ignore
        }
      }
    })
  }

  private onStall(report: StallReport): void {
    if (report.t !== 'stall') return
    if (this.stall === null) {
      this.log.warn({ worker: this.id, workerPid: this.pid, blockedMs: report.blockedMs, requests: report.requests, more: report.more }, 'worker event loop blocked')
    }
    this.stall = { ...report, at: Date.now() }
  }
}
