/**
 * Fixed-bucket counts shared by the processes that measure durations (a worker's requests, the
 * jobs process's tasks) and the arbiter that exports them (metrics/registry.ts). Plain numbers and
 * one typed array: recording a value allocates nothing, which matters on a worker's request path.
 */

/** Upper bounds in seconds (Prometheus "le"), prom-client's defaults; one more bucket is +Inf. */
export const DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** A histogram as sent over IPC: per-bucket counts (not cumulative; the last one is +Inf), sum and count. */
export interface HistogramCounts {
  buckets: number[]
  sum: number
  count: number
}

export function emptyHistogram(): HistogramCounts {
  return { buckets: new Array<number>(DURATION_BUCKETS.length + 1).fill(0), sum: 0, count: 0 }
}

/** The bucket of a value in seconds (the last one, +Inf, for anything above 10 s). */
export function bucketOf(seconds: number): number {
  let i = 0
  while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++
  return i
}

/** `into` += `from`, bucket by bucket (a snapshot with another bucket count is refused). */
export function addHistogram(into: HistogramCounts, from: HistogramCounts): void {
  if (from.buckets.length !== into.buckets.length) {
    throw new Error(`Expected a histogram of ${into.buckets.length} buckets, got ${from.buckets.length}`)
  }
  for (let i = 0; i < into.buckets.length; i++) into.buckets[i]! += from.buckets[i]!
  into.sum += from.sum
  into.count += from.count
}

/** A histogram being recorded into: observe() is a comparison loop and three additions. */
export class DurationHistogram {
  private readonly counts = new Float64Array(DURATION_BUCKETS.length + 1)
  private sum = 0
  private count = 0

  observe(seconds: number): void {
    this.counts[bucketOf(seconds)]!++
    this.sum += seconds
    this.count++
  }

  snapshot(): HistogramCounts {
    return { buckets: Array.from(this.counts), sum: this.sum, count: this.count }
  }
}
