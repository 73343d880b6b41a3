/** `tasks` for app code: define in the app module, enqueue from a request handler, read states. */
import { loadConfig } from '../config/load.js'
import { config } from '../config/runtime.js'
import { TaskQueue, type PageOptions, type TaskPage, type TaskRecord, type TaskState } from './queue.js'
import { defineTask, taskDefinitions, type TaskDefinition, type TaskOptions } from './registry.js'

let queue: TaskQueue | null = null

function shared(): TaskQueue {
  queue ??= new TaskQueue(loadConfig(config.settings()).tasksDir)
  return queue
}

export const tasks = {
  /** Declares a task (at import time, in the app module). */
  define(name: string, handler: TaskDefinition['handler'], options: TaskOptions = {}): void {
    defineTask(name, handler, options)
  },
  /**
   * Queues a task durably (fsync'ed before this resolves) for the jobs process; answer the request
   * with 202 and the id. The same idempotencyKey twice gives the same id once (duplicate: true),
   * also from several processes at the same moment, for as long as the task is kept (see
   * FORKYARD_TASKS_KEEP_AGE). The same key with another payload rejects with a ForkyardError of
   * code FORKYARD_ERR_TASK_KEY_CONFLICT (answer 409 or 422): it is not a retry of that task.
   */
  async enqueue(name: string, payload: unknown, options: { idempotencyKey?: string; reqId?: string | undefined } = {}): Promise<{ id: string; duplicate: boolean }> {
    if (!taskDefinitions.has(name)) throw new TypeError(`Expected a task defined with tasks.define(), got ${JSON.stringify(name)}`)
    const o: { idempotencyKey?: string; reqId?: string | null } = { reqId: options.reqId ?? null }
    if (options.idempotencyKey !== undefined) o.idempotencyKey = options.idempotencyKey
    return shared().enqueueAsync(name, payload, o)
  },
  /**
   * The most recent tasks, newest first (every process sees the same: the queue is on disk);
   * options.state and options.before (a page's `next`, or a task id) narrow it. Cheap enough for a
   * request handler: reads at most `limit` task files, and never more than LIST_MAX (1000).
   */
  list(limit = 50, name?: string, options: { state?: TaskState | TaskState[]; before?: string } = {}): TaskRecord[] {
    return shared().list(limit, name, options)
  },
  /** One page of tasks, newest first, and the cursor of the next one (null at the end): `page({ before: next })`. */
  page(options: PageOptions = {}): TaskPage {
    return shared().page(options)
  },
  /** The task's record (state: queued, running, done, failed; attempts, progress, result, error), or null. */
  get(id: string): TaskRecord | null {
    return shared().get(id)
  },
}

export type { PageOptions, TaskPage, TaskRecord, TaskState, TaskOptions }
