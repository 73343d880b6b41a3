/**
 * Runs queued tasks in the jobs process: claims them (rename), runs the handler off any request
 * path with a timeout, retries with exponential backoff, and records and logs every state change
 * (queued, running, done, failed, retried) with the id of the request that enqueued the task.
 */
import type { JobsMetrics } from '../arbiter/ipc.js'
import { TaskMetrics } from './task-metrics.js'
import type { Logger } from 'pino'
import { publish } from '../publish.js'
import type { TaskQueue, TaskRecord } from './queue.js'
import { taskDefinitions } from './registry.js'

export class TaskRunner {
  private readonly running = new Map<string, { name: string; done: Promise<void>; abort: AbortController }>()
  private timer: NodeJS.Timeout | null = null
  private stopping = false
  private readonly unknown = new Set<string>()
  private pruneTimer: NodeJS.Timeout | null = null
  private readonly taskMetrics = new TaskMetrics()

  constructor(
    private readonly queue: TaskQueue,
    private readonly log: Logger,
    private readonly concurrency: number,
    /** Retention of finished tasks (FORKYARD_TASKS_KEEP_AGE, FORKYARD_TASKS_KEEP_COUNT); live: the next pass uses new values. */
    public retention: { maxAgeMs: number; maxCount: number } = { maxAgeMs: 0, maxCount: 0 },
    private readonly pruneEveryMs = 60_000,
  ) {}

  start(): void {
    for (const r of this.queue.recoverInterrupted()) {
      this.log.warn({ taskId: r.id, task: r.name, reqId: r.reqId, attempt: r.attempts, state: 'queued' }, 'task interrupted by a stop or crash: queued again')
    }
    this.timer = setInterval(() => this.poll(), 100)
    this.poll()
    this.pruneTimer = setInterval(() => this.prune(), this.pruneEveryMs)
    this.pruneTimer.unref()
    this.prune()
  }

  /** Removes finished tasks past their retention, here in the jobs process (never in a request handler). */
  prune(): number {
    if (this.retention.maxAgeMs === 0 && this.retention.maxCount === 0) return 0
    try {
      const started = Date.now()
      const removed = this.queue.prune(this.retention)
      if (removed > 0) this.log.info({ removed, ms: Date.now() - started, keepAgeMs: this.retention.maxAgeMs, keepCount: this.retention.maxCount }, 'finished tasks pruned')
      return removed
    } catch (err) {
      this.log.error({ err }, 'pruning finished tasks failed: trying again at the next pass')
      return 0
    }
  }

  counts(): Record<string, number> {
    return { ...this.queue.counts(), runningHere: this.running.size }
  }

  private poll(): void {
    if (this.stopping) return
    const free = this.concurrency - this.running.size
    if (free <= 0) return
    for (const r of this.queue.ready(Date.now(), free * 4)) {
      if (this.running.size >= this.concurrency) break
      const def = taskDefinitions.get(r.name)
      if (def === undefined) {
        if (!this.unknown.has(r.name)) this.log.error({ task: r.name, taskId: r.id }, 'no handler defined for this task name in the app: it waits in the queue')
        this.unknown.add(r.name)
        continue
      }
      let sameName = 0
      for (const x of this.running.values()) if (x.name === r.name) sameName++
      if (sameName >= def.options.concurrency) continue
      const claimed = this.queue.claim(r)
      if (claimed !== null) this.run(claimed)
    }
  }

  private run(r: TaskRecord): void {
    const def = taskDefinitions.get(r.name)!
    const abort = new AbortController()
    const log = this.log.child({ taskId: r.id, task: r.name, reqId: r.reqId ?? undefined })
    log.info({ attempt: r.attempts, state: 'running' }, 'task started')
    const started = Date.now()
    let current = r
    const channel = def.options.channel(r.id, r.payload)
    const ctx = {
      id: r.id,
      attempt: r.attempts,
      reqId: r.reqId,
      signal: abort.signal,
      log,
      progress: async (data: unknown): Promise<void> => {
        current = this.queue.move(current, 'running', { progress: data })
        await publish(channel, { taskId: r.id, task: r.name, state: 'running', progress: data }, r.reqId !== null ? { reqId: r.reqId } : {})
      },
    }
    const done = (async () => {
      let timer: NodeJS.Timeout | undefined
      try {
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            abort.abort()
            reject(new Error(`timed out after ${def.options.timeoutMs} ms`))
          }, def.options.timeoutMs)
        })
        const result = await Promise.race([Promise.resolve().then(() => def.handler(r.payload, ctx)), timeout])
        this.queue.move(current, 'done', { result: result ?? null })
        this.taskMetrics.count(r.name, 'done', started)
        log.info({ attempt: r.attempts, state: 'done', ms: Date.now() - started }, 'task done')
        // Not awaited: a bridge that is down must not hold the task slot (publish queues, bounded).
        publish(channel, { taskId: r.id, task: r.name, state: 'done', result: result ?? null }, r.reqId !== null ? { reqId: r.reqId } : {}).catch(() => undefined)
      } catch (err) {
        const message = (err as Error)?.message ?? String(err)
        if (this.stopping && abort.signal.aborted) return
        if (r.attempts <= def.options.retries) {
          const delay = def.options.backoffMs * 2 ** (r.attempts - 1)
          this.queue.move(current, 'queued', { error: message, notBefore: Date.now() + delay })
          this.taskMetrics.count(r.name, 'retried', started)
          log.warn({ attempt: r.attempts, state: 'queued', retryInMs: delay, error: message }, 'task failed: retrying')
        } else {
          this.queue.move(current, 'failed', { error: message })
          this.taskMetrics.count(r.name, 'failed', started)
          log.error({ attempt: r.attempts, state: 'failed', error: message }, 'task failed: no retries left')
          publish(channel, { taskId: r.id, task: r.name, state: 'failed', error: message }, r.reqId !== null ? { reqId: r.reqId } : {}).catch(() => undefined)
        }
      } finally {
        clearTimeout(timer)
        this.running.delete(r.id)
      }
    })()
    this.running.set(r.id, { name: r.name, done, abort })
  }

  /** Task counters since this process started (the jobs report carries them to the arbiter). */
  metrics(): JobsMetrics {
    return this.taskMetrics.snapshot()
  }

  /** Stops claiming; waits for running tasks until the deadline; what is still running then stays in running/ and runs again on the next start. */
  async stop(deadlineMs: number): Promise<void> {
    this.stopping = true
    if (this.timer !== null) clearInterval(this.timer)
    if (this.pruneTimer !== null) clearInterval(this.pruneTimer)
    const all = Promise.all([...this.running.values()].map((x) => x.done))
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref())
    await Promise.race([all, timeout])
    if (this.running.size > 0) this.log.warn({ tasks: [...this.running.keys()] }, 'tasks still running at the deadline: they run again on the next start')
  }
}
