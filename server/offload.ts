/**
 * offload(): CPU-heavy work (a model inference, an image resize) on a pool of worker threads, so
 * the worker's event loop keeps answering requests and heartbeating while it runs (failure 3 of
 * background.md: a long CPU task stopping the heartbeat got the worker killed, losing the task).
 * The pool is piscina (maintained by Node.js core contributors): queueing, thread reuse, a
 * per-task abort signal, and a thread that crashes is replaced.
 *
 *   // heavy.mjs                                  // in a request handler
 *   export default function (input) { ... }       const out = await offload(new URL('./heavy.mjs', import.meta.url), input)
 */
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Piscina } from 'piscina'
import { loadConfig } from './config/load.js'
import { config } from './config/runtime.js'

const pools = new Map<string, Piscina>()

export interface OffloadOptions {
  /** A named export of the module instead of its default export. */
  name?: string
  signal?: AbortSignal
}

function poolFor(filename: string): Piscina {
  let pool = pools.get(filename)
  if (pool === undefined) {
    const threads = loadConfig(config.settings()).offloadThreads || availableParallelism()
    pool = new Piscina({ filename, minThreads: 0, maxThreads: threads, idleTimeout: 30_000 })
    pools.set(filename, pool)
  }
  return pool
}

/** Runs the module's default (or `name`d) export with `input` on a worker thread; resolves with its result. */
export function offload<T = unknown>(module: string | URL, input: unknown, options: OffloadOptions = {}): Promise<T> {
  const filename = module instanceof URL ? fileURLToPath(module) : module.startsWith('file:') ? fileURLToPath(module) : module
  const run: { name?: string; signal?: AbortSignal } = {}
  if (options.name !== undefined) run.name = options.name
  if (options.signal !== undefined) run.signal = options.signal
  return poolFor(filename).run(input, run) as Promise<T>
}

/** Closes every pool (waits for running tasks). */
export async function closeOffload(): Promise<void> {
  await Promise.all([...pools.values()].map((p) => p.close()))
  pools.clear()
}
