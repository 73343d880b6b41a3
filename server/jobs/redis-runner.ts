/**
 * Runs tasks from the Redis engine's BullMQ queue in this host's jobs process (one per host; every
 * host takes tasks from the same queue). See redis-tasks.ts for what is guaranteed and how.
 */
import { DelayedError, Worker, type Job, type Queue } from 'bullmq'
import type { Logger } from 'pino'
import type { EngineConfig } from '../config/engine.js'
import { connectRedis } from '../engine/redis.js'
import { publish } from '../publish.js'
import type { TaskEngine } from './backend.js'
import type { JobsMetrics } from '../arbiter/ipc.js'
import { TaskMetrics } from './task-metrics.js'
import { taskDefinitions, type TaskDefinition } from './registry.js'
import { QUEUE_NAME, RedisTaskStore, bullPrefix } from './redis-tasks.js'

interface JobData {
  payload: unknown
  reqId: string | null
}

/** A task of an unknown name (another app version on another host) waits this long before it is offered again. */
const UNKNOWN_RETRY_MS = 5000

export interface RedisRunnerOptions {
  concurrency: number
  /** FORKYARD_TASKS_LEASE: the lock of a running task, and how often stalled tasks are looked for. */
  leaseMs: number
  retention: { maxAgeMs: number; maxCount: number }
}

export class RedisTaskRunner implements TaskEngine {
  retention: { maxAgeMs: number; maxCount: number }
  private worker: Worker | null = null
  private readonly store: RedisTaskStore
  private readonly running = new Map<string, { name: string; abort: AbortController }>()
  private readonly perName = new Map<string, { n: number; waiters: (() => void)[] }>()
  private readonly unknown = new Set<string>()
  private readonly taskMetrics = new TaskMetrics()
  private cached: Record<string, number> = { queued: 0, running: 0, done: 0, failed: 0 }
  private countsTimer: NodeJS.Timeout | null = null
  private lastError = ''
  /** Whether the engine answered the last count (for readiness). */
  engineUp = false
  engineError: string
  private counting = false

  constructor(
    private readonly engine: Readonly<EngineConfig>,
    private readonly log: Logger,
    private readonly options: RedisRunnerOptions,
  ) {
    this.retention = options.retention
    this.engineError = `Redis engine ${engine.shown} not reachable yet: connecting`
    this.store = new RedisTaskStore(engine, log, () => this.retention)
  }

  get queue(): Queue {
    return this.store.queue()
  }

  start(): void {
    let maxAttempts = 1
    for (const d of taskDefinitions.values()) maxAttempts = Math.max(maxAttempts, d.options.retries + 1)
    const connection = connectRedis(this.engine, { role: 'tasks-worker', log: this.log, maxRetriesPerRequest: null })
    const worker = new Worker(QUEUE_NAME, (job: Job<JobData>, token?: string) => this.process(job, token), {
      connection,
      prefix: bullPrefix(this.engine),
      concurrency: this.options.concurrency,
      lockDuration: this.options.leaseMs,
      stalledInterval: this.options.leaseMs,
      // A stall (host died, lock ran out) queues the task again: a retry, never a failure by itself.
      maxStalledCount: maxAttempts,
    })
    worker.on('error', (err: Error) => {
      if (err.message === this.lastError) return
      this.lastError = err.message
      this.log.warn({ err: { message: err.message } }, 'task worker: Redis engine error (retrying)')
    })
    worker.on('stalled', (jobId: string) => {
      this.log.warn({ taskId: jobId, state: 'queued' }, 'task interrupted by a stop or crash: queued again')
    })
    this.worker = worker
    this.countsTimer = setInterval(() => void this.refreshCounts(), 1000)
    void this.refreshCounts()
  }

  private async refreshCounts(): Promise<void> {
    if (this.counting) return
    this.counting = true
    try {
      const c = await this.queue.getJobCounts('waiting', 'delayed', 'prioritized', 'paused', 'active', 'completed', 'failed')
      this.cached = { queued: (c.waiting ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) + (c.paused ?? 0), running: c.active ?? 0, done: c.completed ?? 0, failed: c.failed ?? 0 }
      this.engineUp = true
      this.engineError = ''
    } catch (err) {
      this.engineUp = false
      this.engineError = `Redis engine ${this.engine.shown} not reachable: ${(err as Error).message}`
    } finally {
      this.counting = false
    }
  }

  /** Task counters since this process started (the jobs report carries them to the arbiter). */
  metrics(): JobsMetrics {
    return this.taskMetrics.snapshot()
  }

  counts(): Record<string, number> {
    return { ...this.cached, runningHere: this.running.size }
  }

  /** Per-name concurrency (define()'s option), on this host. */
  private async slot(def: TaskDefinition): Promise<() => void> {
    let s = this.perName.get(def.name)
    if (s === undefined) this.perName.set(def.name, (s = { n: 0, waiters: [] }))
    const entry = s
    while (entry.n >= def.options.concurrency) await new Promise<void>((resolve) => entry.waiters.push(resolve))
    entry.n++
    return () => {
      entry.n--
      entry.waiters.shift()?.()
    }
  }

  private async process(job: Job<JobData>, token?: string): Promise<unknown> {
    const def = taskDefinitions.get(job.name)
    const id = job.id ?? ''
    if (def === undefined) {
      if (!this.unknown.has(job.name)) this.log.error({ task: job.name, taskId: id }, 'no handler defined for this task name in the app: it waits in the queue')
      this.unknown.add(job.name)
      await job.moveToDelayed(Date.now() + UNKNOWN_RETRY_MS, token)
      throw new DelayedError()
    }
    const release = await this.slot(def)
    const reqId = job.data.reqId ?? null
    const attempt = job.attemptsStarted
    const log = this.log.child({ taskId: id, task: job.name, reqId: reqId ?? undefined })
    const abort = new AbortController()
    this.running.set(id, { name: job.name, abort })
    const channel = def.options.channel(id, job.data.payload)
    const meta = reqId !== null ? { reqId } : {}
    log.info({ attempt, state: 'running' }, 'task started')
    const started = Date.now()
    let timer: NodeJS.Timeout | undefined
    try {
      const ctx = {
        id,
        attempt,
        reqId,
        signal: abort.signal,
        log,
        progress: async (data: unknown): Promise<void> => {
          await job.updateProgress(data as object)
          await publish(channel, { taskId: id, task: job.name, state: 'running', progress: data }, meta)
        },
      }
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          abort.abort()
          reject(new Error(`timed out after ${def.options.timeoutMs} ms`))
        }, def.options.timeoutMs)
      })
      const result = (await Promise.race([Promise.resolve().then(() => def.handler(job.data.payload, ctx)), timeout])) ?? null
      log.info({ attempt, state: 'done', ms: Date.now() - started }, 'task done')
      this.taskMetrics.count(job.name, 'done', started)
      publish(channel, { taskId: id, task: job.name, state: 'done', result }, meta).catch(() => undefined)
      return result
    } catch (err) {
      const message = (err as Error)?.message ?? String(err)
      const attempts = job.opts.attempts ?? 1
      // attemptsMade counts failed attempts before this one (a stall is not one).
      if (job.attemptsMade + 1 < attempts) {
        log.warn({ attempt, state: 'queued', retryInMs: def.options.backoffMs * 2 ** job.attemptsMade, error: message }, 'task failed: retrying')
        this.taskMetrics.count(job.name, 'retried', started)
      } else {
        this.taskMetrics.count(job.name, 'failed', started)
        log.error({ attempt, state: 'failed', error: message }, 'task failed: no retries left')
        publish(channel, { taskId: id, task: job.name, state: 'failed', error: message }, meta).catch(() => undefined)
      }
      throw err instanceof Error ? err : new Error(message)
    } finally {
      clearTimeout(timer)
      this.running.delete(id)
      release()
    }
  }

  /**
   * Stops taking tasks and waits for running ones until the deadline (worker.close()). What still
   * runs then is left active: its lock runs out and a jobs process (another host, or this one
   * restarted) runs it again.
   */
  async stop(deadlineMs: number): Promise<void> {
    if (this.countsTimer !== null) clearInterval(this.countsTimer)
    const w = this.worker
    if (w !== null) {
      let timer: NodeJS.Timeout | undefined
      const closed = await Promise.race([
        w.close().then(() => true, () => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), deadlineMs))),
      ])
      clearTimeout(timer)
      if (!closed) {
        this.log.warn({ tasks: [...this.running.keys()] }, 'tasks still running at the deadline: they run again when their lock runs out')
        for (const r of this.running.values()) r.abort.abort()
        void w.close(true).catch(() => undefined)
      }
    }
    await Promise.race([this.store.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1000).unref())])
  }
}
