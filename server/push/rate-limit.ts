/**
 * Token buckets per client address, against reconnect storms: `rate` new connections per second,
 * bursts up to twice that. Idle buckets are forgotten.
 */
export class ConnectionRateLimit {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(private readonly rate: number) {}

  allow(key: string, now = Date.now()): boolean {
    const burst = this.rate * 2
    const b = this.buckets.get(key) ?? { tokens: burst, at: now }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * this.rate)
    b.at = now
    this.buckets.set(key, b)
    if (this.buckets.size > 10_000) this.sweep(now)
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets) if (now - b.at > 60_000) this.buckets.delete(k)
  }
}
