/**
 * The jobs process (tasks and singletons): exactly one per deployment, never one per worker.
 * Restarted with backoff when it dies (tasks it was running are queued again), replaced after a
 * reload so that it runs the new code, stopped with the rest. Its report (every second) feeds
 * /readyz through the arbiter's Health.
 */
import { lowerForBoot, restoreAfterBoot } from '../process/priority.js'
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import type { LineOutput } from '../log/rotating-file.js'
import { backoffMs, classifyExit, zeroCounts, type LastExit } from './exits.js'
import type { JobsStatus } from './control.js'
import { launchEnv, type ArbiterMessage, type ChildLaunch, type JobsMessage, type JobsReport } from './ipc.js'
import { relayChild } from './relay-child.js'

const jobsMain = fileURLToPath(new URL('../jobs/main.js', import.meta.url))

export interface JobsChildOptions {
  log: Logger
  output: LineOutput
  /** The environment the children inherit (the settings come on top, from `launch`). */
  env: NodeJS.ProcessEnv
  /** The settings and app in force, read at each start (FORKYARD_JOBS off: none is started). */
  launch: () => ChildLaunch
  /** The process exited (after this object forgot it). */
  onExit: () => void
}

interface Running {
  child: ChildProcess
  startedAt: number
  /** Asked to restart (a reload): start a new one at once when it exits. */
  restart: boolean
  /** Asked to stop: its exit is final. */
  stop: boolean
  report: JobsReport | null
  reportedAt: number
}

export class JobsChild {
  private current: Running | null = null
  /** Quick deaths in a row, for the backoff. */
  private streak = 0
  private stopping = false
  private started = false
  private readonly restarts = zeroCounts()
  private lastExit: LastExit | null = null

  constructor(private readonly options: JobsChildOptions) {}

  get running(): boolean {
    return this.current !== null
  }

  get pid(): number | null {
    return this.current?.child.pid ?? null
  }

  /** For Health: null while none runs; its last report (null before the first). */
  health(): { pid: number; report: JobsReport | null; reportedAt: number } | null {
    return this.current === null ? null : { pid: this.current.child.pid ?? 0, report: this.current.report, reportedAt: this.current.reportedAt }
  }

  /** For ArbiterStatus: its pid, restarts (reload, crash) and last exit; null when never started. */
  summary(): JobsStatus | null {
    if (!this.started) return null
    return { pid: this.pid, restarts: Object.values(this.restarts).reduce((a, b) => a + b, 0), restartsByCause: { ...this.restarts }, lastExit: this.lastExit }
  }

  start(): void {
    if (this.stopping || this.current !== null) return
    const launch = this.options.launch()
    if (!launch.config.jobs) return
    this.started = true
    const { log } = this.options
    const child = fork(jobsMain, [], {
      env: { ...this.options.env, ...launchEnv(launch) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc', 'pipe', 'pipe'],
      serialization: 'json',
    })
    const pid = child.pid ?? 0
    // Booting at a lower CPU priority, like a worker, until its first report (process/priority.ts).
    const lowered = lowerForBoot(pid)
    relayChild(child, this.options.output, { pid, role: 'jobs' })
    const entry: Running = { child, startedAt: Date.now(), restart: false, stop: false, report: null, reportedAt: 0 }
    this.current = entry
    child.on('message', (m: unknown) => {
      const msg = m as JobsMessage
      if (msg?.t !== 'jobs') return
      if (entry.report === null && lowered) restoreAfterBoot(pid)
      entry.report = msg.report
      entry.reportedAt = Date.now()
    })
    log.info({ jobsPid: pid }, 'jobs process spawned')
    child.on('exit', (code, signal) => {
      if (this.current === entry) this.current = null
      const expected = entry.stop || entry.restart || this.stopping
      const { level, msg } = classifyExit(code, signal, expected)
      log[level]({ jobsPid: pid, code, signal }, msg.replace('worker', 'jobs process'))
      this.options.onExit()
      if (this.stopping || entry.stop) return
      const cause = entry.restart ? 'reload' : 'crash'
      this.restarts[cause]++
      this.lastExit = { cause, code, signal, at: Date.now() }
      if (entry.restart) return this.start()
      const young = Date.now() - entry.startedAt < 10_000
      this.streak = young ? this.streak + 1 : 1
      const delay = backoffMs(this.streak)
      log.warn({ delayMs: delay }, 'jobs process died: restarting it')
      setTimeout(() => this.start(), delay).unref()
    })
  }

  /** A new process for new code: the running one finishes its tasks (SIGTERM), then a new one starts. */
  restart(): void {
    if (this.current === null) return this.start()
    this.current.restart = true
    this.current.child.kill('SIGTERM')
  }

  /** A validated settings change: config.get() in tasks and singletons follows. */
  send(msg: ArbiterMessage): void {
    if (this.current?.child.connected === true) this.current.child.send(msg, (err) => void (err !== null && this.options.log.warn({ err }, 'config change not delivered to the jobs process')))
  }

  /** Graceful stop (SIGTERM: running tasks finish); nothing is started any more. */
  stop(): void {
    this.stopping = true
    if (this.current === null) return
    this.current.stop = true
    this.current.child.kill('SIGTERM')
  }

  /** After the graceful timeout: SIGKILL what is still running. */
  kill(): void {
    if (this.current === null) return
    this.options.log.error({ jobsPid: this.current.child.pid }, 'jobs process still running after the graceful timeout: killing it')
    this.current.child.kill('SIGKILL')
  }
}
