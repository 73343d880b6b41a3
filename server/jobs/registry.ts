/**
 * What app code declares at import time: background tasks (`tasks.define`) and singletons
 * (`singleton`). Declaring is all that happens in a worker; only the one jobs process, which the
 * arbiter starts and supervises, runs them (never once per worker: failure 2 of background.md).
 */
import type { Logger } from 'pino'
import type { PublishOptions } from '../bridge/publisher.js'
import { processGlobal } from '../process-global.js'

export interface TaskContext {
  id: string
  attempt: number
  reqId: string | null
  /** Aborted when the attempt times out or the jobs process stops. */
  signal: AbortSignal
  log: Logger
  /** Publishes progress through the bridge on the task's channel (see TaskOptions.channel). */
  progress: (data: unknown) => Promise<void>
}

export interface TaskOptions {
  /** At most this many of this task at once (default 1). */
  concurrency?: number
  /** An attempt running longer fails (and is retried), in ms (default 60 000). */
  timeoutMs?: number
  /** Retries after the first attempt (default 3), with exponential backoff from backoffMs (default 1000). */
  retries?: number
  backoffMs?: number
  /** Channel for ctx.progress() (default `task:<id>`). */
  channel?: (id: string, payload: unknown) => string
}

export interface TaskDefinition {
  name: string
  handler: (payload: unknown, ctx: TaskContext) => unknown
  options: Required<Omit<TaskOptions, 'channel'>> & { channel: (id: string, payload: unknown) => string }
}

export interface SingletonContext {
  /** Aborted when this copy must stop: the process stops, or it lost its lease (Redis engine). */
  signal: AbortSignal
  /**
   * Grows every time the singleton changes hands (per name, across the deployment, both engines).
   * Pass it with every write to a shared store, which keeps the highest token it has seen and
   * refuses writes with a lower one: a former holder that was paused past its lease and has not
   * noticed yet cannot overwrite the new holder's work. E.g. in SQL:
   *   UPDATE cursor SET pos = $1, token = $2 WHERE name = 'feed' AND token <= $2
   */
  fencingToken: number
  log: Logger
  publish: (channel: string, data: unknown, options?: PublishOptions) => Promise<unknown>
}

/** start() may return a stop function (or a promise of one); a rejection means it crashed. */
export type SingletonStart = (ctx: SingletonContext) => unknown

/** One registry per process, shared by every copy of the package (server/process-global.ts). */
export const taskDefinitions = processGlobal('taskDefinitions', () => new Map<string, TaskDefinition>())
export const singletonDefinitions = processGlobal('singletonDefinitions', () => new Map<string, SingletonStart>())

const NAME = /^[A-Za-z0-9_.:-]{1,100}$/

export function defineTask(name: string, handler: TaskDefinition['handler'], options: TaskOptions = {}): void {
  if (!NAME.test(name)) throw new TypeError(`Expected a task name of 1-100 characters from A-Z a-z 0-9 _ . : -, got ${JSON.stringify(name)}`)
  if (typeof handler !== 'function') throw new TypeError(`Expected the handler of task ${name} to be a function`)
  taskDefinitions.set(name, {
    name,
    handler,
    options: {
      concurrency: options.concurrency ?? 1,
      timeoutMs: options.timeoutMs ?? 60_000,
      retries: options.retries ?? 3,
      backoffMs: options.backoffMs ?? 1000,
      channel: options.channel ?? ((id) => `task:${id}`),
    },
  })
}

export function singleton(name: string, start: SingletonStart): void {
  if (!NAME.test(name)) throw new TypeError(`Expected a singleton name of 1-100 characters from A-Z a-z 0-9 _ . : -, got ${JSON.stringify(name)}`)
  if (singletonDefinitions.has(name)) throw new TypeError(`singleton ${name} is declared twice`)
  singletonDefinitions.set(name, start)
}
