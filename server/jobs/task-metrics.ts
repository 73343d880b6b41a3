/**
 * Task counters of one jobs process since it started, whatever the engine: one duration histogram
 * and done/failed/retried counts per task name. Both runners (runner.ts for the files,
 * redis-runner.ts for BullMQ) count here; the jobs report carries the snapshot to the arbiter,
 * which serves it at GET /metrics.
 */
import type { JobsMetrics } from '../arbiter/ipc.js'
import { DurationHistogram } from '../metrics/histogram.js'

export type TaskOutcome = 'done' | 'failed' | 'retried'

export class TaskMetrics {
  private readonly durations = new Map<string, DurationHistogram>()
  private readonly outcomes: JobsMetrics['outcomes'] = {}

  /** One attempt of a task ended: its duration and outcome. */
  count(name: string, outcome: TaskOutcome, startedMs: number): void {
    let h = this.durations.get(name)
    if (h === undefined) this.durations.set(name, (h = new DurationHistogram()))
    h.observe((Date.now() - startedMs) / 1000)
    const o = (this.outcomes[name] ??= { done: 0, failed: 0, retried: 0 })
    o[outcome]++
  }

  snapshot(): JobsMetrics {
    const durations: JobsMetrics['durations'] = {}
    for (const [name, h] of this.durations) durations[name] = h.snapshot()
    return { durations, outcomes: structuredClone(this.outcomes) }
  }
}
