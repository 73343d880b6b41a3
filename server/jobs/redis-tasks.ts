/**
 * Tasks on BullMQ, for FORKYARD_ENGINE=redis: every host's jobs process runs tasks from one queue
 * on the engine's Redis (`<prefix>tasks:*` keys, e.g. forkyard:tasks:…), and every process
 * enqueues and reads there. The guarantees of the file queue, kept this way:
 *   at least once   a running task holds a lock of FORKYARD_TASKS_LEASE, renewed by BullMQ while it
 *                   runs; when its host dies the lock runs out and another host's stalled-job check
 *                   queues it again (a stall is a new attempt, not a failure: maxStalledCount is the
 *                   largest attempts of any task). A task enqueued is as durable as Redis makes it:
 *                   run Redis with appendonly yes (appendfsync always to lose nothing on a crash).
 *   idempotency     a key is a deterministic job id (k-<sha256(name, key)>); BullMQ's add() of an
 *                   existing id is atomic and keeps the first job: each call writes a nonce and
 *                   reads the job back, so exactly one caller sees its own nonce (duplicate: false).
 *                   Another payload for the same key is FORKYARD_ERR_TASK_KEY_CONFLICT. A key holds
 *                   while its task is kept (removeOnComplete/removeOnFail from FORKYARD_TASKS_KEEP_*).
 *   retries         attempts = retries + 1 with exponential backoff from backoffMs (define()).
 * Not the same: a task's `concurrency` option limits it per host (one queue, no global per-name
 * limit without BullMQ Pro); finished tasks are pruned as later tasks finish (BullMQ applies the
 * retention when a job completes or fails), not by a periodic pass.
 */
import { createHash, randomUUID } from 'node:crypto'
import { Job, Queue, type JobType, type KeepJobs } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { EngineConfig } from '../config/engine.js'
import { connectRedis } from '../engine/redis.js'
import { ForkyardError, codes } from '../errors.js'
import type { EnqueueOptions, TaskStore } from './backend.js'
import { LIST_MAX, canonical, newTaskId, type PageOptions, type TaskPage, type TaskRecord, type TaskState } from './queue.js'
import { taskDefinitions } from './registry.js'

export const QUEUE_NAME = 'tasks'

interface JobData {
  payload: unknown
  reqId: string | null
  nonce: string
}

/** BullMQ's key prefix from the engine prefix: forkyard: gives forkyard:tasks:… keys. */
export function bullPrefix(engine: Readonly<EngineConfig>): string {
  return engine.prefix.replace(/:+$/, '') || 'forkyard'
}

/** The job id of an idempotency key: the same name and key give the same id on every host. */
export function keyedJobId(name: string, key: string): string {
  return `k-${createHash('sha256').update(`${name}\0${key}`).digest('hex')}`
}

/** BullMQ's job states as ours. */
export function stateOfJob(state: string): TaskState | null {
  switch (state) {
    case 'waiting': case 'wait': case 'delayed': case 'prioritized': case 'paused': case 'waiting-children':
      return 'queued'
    case 'active':
      return 'running'
    case 'completed':
      return 'done'
    case 'failed':
      return 'failed'
    default:
      return null
  }
}

/** Ours as BullMQ's (for getJobs). */
export const jobTypes: Record<TaskState, JobType[]> = {
  queued: ['waiting', 'delayed', 'prioritized', 'paused'],
  running: ['active'],
  done: ['completed'],
  failed: ['failed'],
}

/** Retention as BullMQ's removeOn* option: false keeps everything. */
export function keepJobs(r: { maxAgeMs: number; maxCount: number }): KeepJobs | false {
  if (r.maxAgeMs === 0 && r.maxCount === 0) return false
  if (r.maxAgeMs === 0) return { count: r.maxCount }
  const age = Math.max(1, Math.ceil(r.maxAgeMs / 1000))
  return r.maxCount > 0 ? { age, count: r.maxCount } : { age }
}

export interface JobLike {
  id?: string | undefined
  name: string
  data: Partial<JobData>
  timestamp: number
  delay?: number
  processedOn?: number | undefined
  finishedOn?: number | undefined
  attemptsStarted?: number
  attemptsMade: number
  progress: unknown
  returnvalue: unknown
  failedReason?: string | undefined
}

export function recordOfJob(job: JobLike, state: TaskState): TaskRecord {
  const updated = job.finishedOn ?? job.processedOn ?? job.timestamp
  const r: TaskRecord = {
    id: job.id ?? '',
    name: job.name,
    payload: job.data.payload ?? null,
    state,
    attempts: job.attemptsStarted ?? job.attemptsMade,
    reqId: job.data.reqId ?? null,
    createdAt: new Date(job.timestamp).toISOString(),
    updatedAt: new Date(updated).toISOString(),
    notBefore: state === 'queued' && (job.delay ?? 0) > 0 ? job.timestamp + job.delay! : 0,
  }
  if (job.failedReason !== undefined && job.failedReason !== '' && state !== 'done') r.error = job.failedReason
  if (state === 'done') r.result = job.returnvalue ?? null
  // BullMQ's progress starts at 0: shown once the task reported some.
  if (job.progress !== 0 && job.progress !== undefined && job.progress !== null) r.progress = job.progress
  return r
}

/** A page cursor: creation time (12 hex digits) and id, ordered as text. */
export function cursorOf(r: { createdAt: string; id: string }): string {
  return `${Date.parse(r.createdAt).toString(16).padStart(12, '0')}.${r.id}`
}

function queueOf(engine: Readonly<EngineConfig>, connection: Redis): Queue {
  return new Queue(QUEUE_NAME, { connection, prefix: bullPrefix(engine) })
}

/** Enqueue and read, from any process (workers too): one connection per process, made on first use. */
export class RedisTaskStore implements TaskStore {
  private q: Queue | null = null

  constructor(
    private readonly engine: Readonly<EngineConfig>,
    private readonly log: Logger,
    private readonly keep: () => { maxAgeMs: number; maxCount: number },
  ) {}

  queue(): Queue {
    this.q ??= queueOf(this.engine, connectRedis(this.engine, { role: 'tasks', log: this.log }))
    return this.q
  }

  async enqueue(name: string, payload: unknown, options: EnqueueOptions): Promise<{ id: string; duplicate: boolean }> {
    const def = taskDefinitions.get(name)
    const retries = def?.options.retries ?? 3
    const keep = keepJobs(this.keep())
    const key = options.idempotencyKey
    const id = key === undefined ? newTaskId() : keyedJobId(name, key)
    const data: JobData = { payload: payload ?? null, reqId: options.reqId ?? null, nonce: randomUUID() }
    const opts = { jobId: id, attempts: retries + 1, backoff: { type: 'exponential', delay: def?.options.backoffMs ?? 1000 }, removeOnComplete: keep, removeOnFail: keep }
    const q = this.queue()
    // Bounded: a job removed between add() and the read (pruned that instant) is added again.
    for (let i = 0; i < 5; i++) {
      await q.add(name, data, opts)
      if (key === undefined) return { id, duplicate: false }
      const job = (await Job.fromId(q, id)) as Job<JobData> | undefined
      if (job === undefined) continue
      if (job.data.nonce === data.nonce) return { id, duplicate: false }
      const same = canonical(job.data.payload ?? null) === canonical(JSON.parse(canonical(payload ?? null)!) as unknown)
      if (!same || job.name !== name) {
        throw new ForkyardError(codes.TASK_KEY_CONFLICT, `Idempotency key ${JSON.stringify(key)} of task ${JSON.stringify(name)} was already used with a different payload (task ${id}): the payload differs, so this is not a retry of that task; use a new key for new work`)
      }
      return { id, duplicate: true }
    }
    throw new ForkyardError(codes.TASK_KEY_CONFLICT, `Expected task ${id} (key ${JSON.stringify(key)}) to stay in Redis after adding it, got it removed 5 times in a row`)
  }

  async get(id: string): Promise<TaskRecord | null> {
    if (!/^(k-[0-9a-f]{64}|[0-9a-f]{32})$/.test(id)) return null
    const job = (await Job.fromId(this.queue(), id)) as Job<JobData> | undefined
    if (job === undefined) return null
    const state = stateOfJob(await job.getState())
    return state === null ? null : recordOfJob(job, state)
  }

  /**
   * Newest first by creation. Reads the most recent tasks of each state asked (LIST_MAX per state
   * when filtered by name or continued from a cursor, else `limit`): a page never looks further back
   * than the LIST_MAX most recent tasks of a state.
   */
  async page(options: PageOptions = {}): Promise<TaskPage> {
    const limit = Math.max(1, Math.min(LIST_MAX, Math.floor(options.limit ?? 50)))
    const states: TaskState[] = options.state === undefined ? ['queued', 'running', 'done', 'failed'] : Array.isArray(options.state) ? options.state : [options.state]
    let before = options.before
    if (before !== undefined && !before.includes('.')) {
      const r = await this.get(before)
      before = r === null ? undefined : cursorOf(r)
    }
    const depth = options.before === undefined && options.name === undefined ? limit + 1 : LIST_MAX
    const q = this.queue()
    const found = new Map<string, { cursor: string; r: TaskRecord }>()
    for (const state of states) {
      for (const type of jobTypes[state]) {
        for (const job of (await q.getJobs([type], 0, depth - 1, false)) as Job<JobData>[]) {
          if (job === undefined || job === null || job.id === undefined || found.has(job.id)) continue
          const r = recordOfJob(job, state)
          if (options.name !== undefined && r.name !== options.name) continue
          const cursor = cursorOf(r)
          if (before !== undefined && cursor >= before) continue
          found.set(job.id, { cursor, r })
        }
      }
    }
    const sorted = [...found.values()].sort((a, b) => (a.cursor < b.cursor ? 1 : a.cursor > b.cursor ? -1 : 0))
    const tasks = sorted.slice(0, limit)
    return { tasks: tasks.map((x) => x.r), next: sorted.length > limit ? tasks.at(-1)!.cursor : null }
  }

  async close(): Promise<void> {
    await this.q?.close()
  }
}
