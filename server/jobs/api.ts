/** `tasks` for app code: define in the app module, enqueue from a request handler, read states. */
import { pino } from 'pino'
import { loadEngineConfig } from '../config/engine.js'
import { loadConfig } from '../config/load.js'
import { config } from '../config/runtime.js'
import { processGlobal } from '../process-global.js'
import { FileTaskStore, type TaskStore } from './backend.js'
import { TaskQueue, type PageOptions, type TaskPage, type TaskRecord, type TaskState } from './queue.js'
import { RedisTaskStore } from './redis-tasks.js'
import { defineTask, taskDefinitions, type TaskDefinition, type TaskOptions } from './registry.js'

const store = processGlobal('taskStore', () => ({ current: null as TaskStore | null }))

/**
 * The process's one store, made on first use from the settings the process was given (frozen):
 * the file queue, or a BullMQ producer with one Redis connection per process.
 */
function shared(): TaskStore {
  if (store.current !== null) return store.current
  const settings = config.settings()
  const engine = loadEngineConfig(settings)
  if (engine.kind === 'redis') {
    // Retention is set on each task as it is enqueued: from the settings in force then (live).
    let seen: unknown = null
    let retention = { maxAgeMs: 0, maxCount: 0 }
    const keep = (): { maxAgeMs: number; maxCount: number } => {
      const now = config.settings()
      if (now !== seen) {
        const c = loadConfig(now)
        retention = { maxAgeMs: c.tasksKeepAgeMs, maxCount: c.tasksKeepCount }
        seen = now
      }
      return retention
    }
    const log = pino({ base: { role: 'tasks-producer', pid: process.pid }, level: 'warn' }, pino.destination(2))
    store.current = new RedisTaskStore(engine, log, keep)
  } else {
    store.current = new FileTaskStore(new TaskQueue(loadConfig(settings).tasksDir))
  }
  return store.current
}

export const tasks = {
  /** Declares a task (at import time, in the app module). */
  define(name: string, handler: TaskDefinition['handler'], options: TaskOptions = {}): void {
    defineTask(name, handler, options)
  },
  /**
   * Queues a task durably for the jobs process (embedded: fsync'ed before this resolves; Redis: as
   * durable as the Redis's persistence, appendonly yes recommended); answer the request with 202
   * and the id. The same idempotencyKey twice gives the same id once (duplicate: true),
   * also from several processes at the same moment, for as long as the task is kept (see
   * FORKYARD_TASKS_KEEP_AGE). The same key with another payload rejects with a ForkyardError of
   * code FORKYARD_ERR_TASK_KEY_CONFLICT (answer 409 or 422): it is not a retry of that task.
   */
  async enqueue(name: string, payload: unknown, options: { idempotencyKey?: string; reqId?: string | undefined } = {}): Promise<{ id: string; duplicate: boolean }> {
    if (!taskDefinitions.has(name)) throw new TypeError(`Expected a task defined with tasks.define(), got ${JSON.stringify(name)}`)
    const o: { idempotencyKey?: string; reqId?: string | null } = { reqId: options.reqId ?? null }
    if (options.idempotencyKey !== undefined) o.idempotencyKey = options.idempotencyKey
    return shared().enqueue(name, payload, o)
  },
  /**
   * The most recent tasks, newest first (every process sees the same: the queue is on disk, or in
   * Redis); options.state and options.before (a page's `next`, or a task id) narrow it. Cheap
   * enough for a request handler: reads at most `limit` tasks, and never more than LIST_MAX (1000).
   * Async for both engines (Redis reads are).
   */
  async list(limit = 50, name?: string, options: { state?: TaskState | TaskState[]; before?: string } = {}): Promise<TaskRecord[]> {
    return (await shared().page({ ...options, limit, ...(name !== undefined ? { name } : {}) })).tasks
  },
  /** One page of tasks, newest first, and the cursor of the next one (null at the end): `await page({ before: next })`. */
  page(options: PageOptions = {}): Promise<TaskPage> {
    return shared().page(options)
  },
  /** The task's record (state: queued, running, done, failed; attempts, progress, result, error), or null. */
  get(id: string): Promise<TaskRecord | null> {
    return shared().get(id)
  },
}

export type { PageOptions, TaskPage, TaskRecord, TaskState, TaskOptions }
