/**
 * Where tasks live, per FORKYARD_ENGINE: the same calls and guarantees for app code either way.
 *   embedded  TaskQueue (files in FORKYARD_TASKS_DIR) run by TaskRunner in the one jobs process.
 *   redis     BullMQ on the engine's Redis (redis-tasks.ts), run by the jobs process of every host.
 * A TaskStore enqueues and reads (any process: workers answer requests with it); a TaskEngine runs
 * tasks (the jobs process only).
 */
import type { JobsMetrics } from '../arbiter/ipc.js'
import type { PageOptions, TaskPage, TaskRecord, TaskQueue } from './queue.js'
import type { TaskRunner } from './runner.js'

export interface EnqueueOptions {
  idempotencyKey?: string
  reqId?: string | null
}

export interface TaskStore {
  enqueue(name: string, payload: unknown, options: EnqueueOptions): Promise<{ id: string; duplicate: boolean }>
  get(id: string): Promise<TaskRecord | null>
  page(options: PageOptions): Promise<TaskPage>
  close(): Promise<void>
}

export interface TaskEngine {
  start(): void
  /** Stops taking tasks; waits for running ones until the deadline (what still runs then runs again later). */
  stop(deadlineMs: number): Promise<void>
  /** Tasks per state and runningHere, as last known (the jobs report is sent every second, synchronously). */
  counts(): Record<string, number>
  /** Retention of finished tasks; live. */
  retention: { maxAgeMs: number; maxCount: number }
  /** Task durations and outcomes since this process started, for GET /metrics. */
  metrics(): JobsMetrics
}

/** The embedded engine's store: the file queue, read and written from any process of the host. */
export class FileTaskStore implements TaskStore {
  constructor(readonly queue: TaskQueue) {}

  enqueue(name: string, payload: unknown, options: EnqueueOptions): Promise<{ id: string; duplicate: boolean }> {
    return this.queue.enqueueAsync(name, payload, options)
  }

  get(id: string): Promise<TaskRecord | null> {
    return Promise.resolve(this.queue.get(id))
  }

  page(options: PageOptions): Promise<TaskPage> {
    return Promise.resolve(this.queue.page(options))
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}

/** TaskRunner already has start/stop/counts/retention. */
export function fileTaskEngine(runner: TaskRunner): TaskEngine {
  return runner
}
