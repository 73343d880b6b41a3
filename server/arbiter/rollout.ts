/**
 * Replacing workers without dropping requests: the rolling reload (SIGHUP, `forkyard reload`, a
 * restart-only setting changed) that moves every worker to a new generation, and the recycle of
 * one worker that asked for it (memory or request limit). Either way a replacement boots first and
 * the old worker drains only once the new one is ready; a replacement that fails to boot stops
 * the reload and the old workers keep serving. It holds the generation counter and the surge (the
 * extra workers allowed while replacements boot); the arbiter spawns and reaps the processes.
 */
import type { Logger } from 'pino'
import type { BootResult, WorkerHandle } from './worker-handle.js'

export interface RolloutHost {
  log: Logger
  /** The arbiter's workers by id (read only here). */
  workers: ReadonlyMap<number, WorkerHandle>
  stopping: () => boolean
  /** How many workers are wanted. */
  target: () => number
  spawn: (generation: number, reason: string, slot: number) => WorkerHandle
  /** A reload replaced every worker: the jobs process gets the new code, missing workers start. */
  reloaded: () => void
}

export class Rollout {
  /** The generation new workers belong to; a complete reload moves it on by one. */
  generation = 1
  /** Extra workers allowed while a replacement boots (reload, recycle). */
  surge = 0
  private running: Promise<boolean> | null = null
  private reloadQueued = false
  private recycleQueue: number[] = []
  private recycling = false

  constructor(private readonly host: RolloutHost) {}

  /** The reload under way, if any. */
  get reloading(): Promise<boolean> | null {
    return this.running
  }

  /**
   * Rolling reload: for each current worker, boot a new one (a fresh process imports the app
   * anew) and only once it is ready drain the old one. A new worker that fails to boot stops the
   * reload; the workers not yet replaced keep serving. Resolves true when every worker was replaced.
   */
  reload(): Promise<boolean> {
    if (this.host.stopping()) return Promise.resolve(false)
    if (this.running !== null) {
      this.reloadQueued = true
      return this.running
    }
    this.running = (async () => {
      let ok = true
      do {
        this.reloadQueued = false
        ok = await this.reloadOnce()
      } while (ok && this.reloadQueued && !this.host.stopping())
      this.running = null
      return ok
    })()
    return this.running
  }

  private async reloadOnce(): Promise<boolean> {
    const { log, workers } = this.host
    const next = this.generation + 1
    const olds = [...workers.values()].filter((t) => t.state !== 'draining' && t.generation < next)
    log.info({ generation: next, workers: olds.length }, 'reload: starting a new generation')
    let replaced = 0
    for (const old of olds) {
      if (this.host.stopping()) return false
      if (!workers.has(old.id) || old.state === 'draining') continue
      // Fewer workers wanted (FORKYARD_WORKERS lowered): the surplus old ones just drain.
      if (replaced >= this.host.target()) {
        old.drain('fewer workers', false)
        continue
      }
      const result = await this.replace(old, next, 'reload')
      if (!result.ok) {
        log.error(
          { err: result.error, generation: next, replaced, keptOld: olds.length - replaced },
          'reload aborted: a new worker failed to boot; the previous generation keeps serving',
        )
        return false
      }
      replaced++
    }
    this.generation = next
    log.info({ generation: next, replaced }, 'reload complete')
    this.host.reloaded()
    return true
  }

  /** Boots a replacement for `old`; drains `old` only once the replacement is ready. */
  private async replace(old: WorkerHandle, generation: number, reason: string): Promise<BootResult> {
    this.surge++
    try {
      const fresh = this.host.spawn(generation, reason, old.slot)
      const result = await fresh.booted
      if (result.ok && this.host.workers.has(old.id)) old.drain(reason, false)
      return result
    } finally {
      this.surge--
    }
  }

  /** A worker asked to be recycled: it is replaced once no reload is under way. */
  queueRecycle(id: number): void {
    if (this.recycleQueue.includes(id)) return
    this.recycleQueue.push(id)
    void this.processRecycles()
  }

  private async processRecycles(): Promise<void> {
    if (this.recycling) return
    this.recycling = true
    try {
      for (let id = this.recycleQueue.shift(); id !== undefined; id = this.recycleQueue.shift()) {
        // A reload replaces every worker anyway: wait for it rather than double the surge.
        if (this.running !== null) await this.running
        const old = this.host.workers.get(id)
        if (this.host.stopping() || old === undefined || old.state !== 'ready') continue
        const result = await this.replace(old, this.generation, 'recycle')
        if (!result.ok) {
          this.host.log.error({ err: result.error, worker: id }, 'recycle: the replacement failed to boot; the old worker keeps serving')
          setTimeout(() => this.queueRecycle(id), 5000).unref()
        }
      }
    } finally {
      this.recycling = false
    }
  }
}
