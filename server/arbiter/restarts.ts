/**
 * The arbiter's restart counters: every replacement of a worker, by cause (exits.ts
 * RestartCause), in total and per worker slot, with each slot's last exit. A slot is a worker's
 * place (1..N, shown as its row in `forkyard status`): a respawned, recycled or reloaded worker
 * takes the place of the one it replaces, so its slot's count goes on.
 */
import { zeroCounts, type LastExit, type RestartCause } from './exits.js'

/** What the ledger needs of a worker that exited (a WorkerHandle). */
export interface ExitedWorker {
  slot: number
  /** Asked to go (drain): not a crash. */
  expectedExit: boolean
  /** Why the arbiter killed it (boot-timeout, timeout, drain-timeout, stop-timeout), else null. */
  killed: string | null
  /** Why it was drained (reload, recycle, fewer workers, stop), else null. */
  drainReason: string | null
  /** Why it asked to be recycled (max-requests, max-rss), else null. */
  recycleReason: string | null
}

/** Why an exit counts as a restart; null when it does not (a stop, fewer workers). */
export function restartCause(w: ExitedWorker, stopping: boolean): RestartCause | null {
  if (stopping) return null
  if (w.killed === 'timeout' || w.killed === 'boot-timeout') return 'timeout'
  if (w.drainReason === 'reload') return 'reload'
  if (w.drainReason === 'recycle') return w.recycleReason === 'max-rss' ? 'memory' : 'max-requests'
  if (!w.expectedExit) return 'crash'
  return null
}

export interface SlotRestarts {
  restarts: number
  lastExit: LastExit | null
}

export class RestartLedger {
  private readonly total = zeroCounts()
  private readonly slots = new Map<number, SlotRestarts>()

  /** The lowest slot no serving (non-draining) worker holds. */
  static freeSlot(held: Iterable<number>): number {
    const used = new Set(held)
    let slot = 1
    while (used.has(slot)) slot++
    return slot
  }

  /** Records the exit of a worker; returns its cause, or null when it was no restart. */
  exited(w: ExitedWorker, code: number | null, signal: string | null, stopping: boolean, at = Date.now()): RestartCause | null {
    const cause = restartCause(w, stopping)
    if (cause === null) return null
    this.total[cause]++
    const s = this.slot(w.slot)
    this.slots.set(w.slot, { restarts: s.restarts + 1, lastExit: { cause, code, signal, at } })
    return cause
  }

  totals(): Record<RestartCause, number> {
    return { ...this.total }
  }

  slot(slot: number): SlotRestarts {
    return this.slots.get(slot) ?? { restarts: 0, lastExit: null }
  }
}
