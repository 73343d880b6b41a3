/**
 * The WebSocket clients of bench/push.ts: C connections in this process, subscribed to one
 * channel, recording per delivery the latency from the sender's clock (t) and from the schedule (s).
 */
import WebSocket from 'ws'
import { sleep, waitUntil } from './proc.js'

// Connections opened at once; the next batch starts when the whole batch is open.
export const CONNECT_BATCH = 100
// After the last delivery, how long nothing new must arrive before the run is declared over.
export const QUIET_MS = 3000

export function wallMs(): number {
  return performance.timeOrigin + performance.now()
}

export interface Latency {
  p50: number
  p99: number
  max: number
  min: number
  mean: number
}

export interface FleetSummary {
  expected: number
  delivered: number
  missing: number
  duplicates: number
  outOfOrder: number
  /** Frames other than the subscription's messages (a "reset" would be one): expected 0. */
  otherFrames: number
  /** Clients whose connection closed during the run: expected 0. */
  closedEarly: number
  latencyMs: Latency | null
  /** Receive - when the message was due (s): includes the time the generator fell behind its
   * schedule, which latencyMs cannot see (coordinated omission). Null at unlimited rate. */
  scheduleLatencyMs: Latency | null
  deliveredPerSec: number | null
  /** First to last receive. */
  receiveSpanMs: number | null
}

/** The C clients of one run and what they received. */
export class Fleet {
  private readonly sockets: WebSocket[] = []
  private subscribed = 0
  private closedEarly = 0
  private measuring = false
  // Per client: which message numbers arrived, and the last one (for order).
  private seen: Uint8Array[] = []
  private lastIndex = new Int32Array(0)
  private latencies = new Float64Array(0)
  private fromSchedule = new Float64Array(0)
  private scheduled = 0
  private delivered = 0
  private duplicates = 0
  private outOfOrder = 0
  private otherFrames = 0
  private firstReceive = Infinity
  private lastReceive = -Infinity

  constructor(
    private readonly url: string,
    private readonly count: number,
    private readonly channel: string,
  ) {}

  /** Opens the connections in batches, then subscribes every client and waits for each answer. */
  async connect(): Promise<void> {
    for (let start = 0; start < this.count; start += CONNECT_BATCH) {
      const opened: Promise<void>[] = []
      for (let k = start; k < Math.min(start + CONNECT_BATCH, this.count); k++) opened.push(this.open(k))
      await withTimeout(Promise.all(opened), 30_000, `${opened.length} connections to ${this.url}`)
    }
    for (const ws of this.sockets) ws.send(JSON.stringify({ type: 'subscribe', channel: this.channel }))
    await waitUntil(`${this.count} clients subscribed`, 600, 50, () => this.subscribed === this.count)
  }

  private open(k: number): Promise<void> {
    const ws = new WebSocket(this.url, { perMessageDeflate: false })
    this.sockets.push(ws)
    ws.on('message', (raw) => this.onFrame(k, raw))
    ws.on('close', () => {
      if (this.measuring) this.closedEarly++
    })
    return new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      // Kept after open too: an 'error' without a listener would crash the bench.
      ws.on('error', reject)
    })
  }

  /** Prepares the counters for `messages` messages; frames before this call are not counted. */
  expect(messages: number): void {
    this.seen = Array.from({ length: this.count }, () => new Uint8Array(messages))
    this.lastIndex = new Int32Array(this.count).fill(-1)
    this.latencies = new Float64Array(this.count * messages)
    this.fromSchedule = new Float64Array(this.count * messages)
    this.measuring = true
  }

  private onFrame(k: number, raw: WebSocket.RawData): void {
    // The clock is read first: parsing is the client's cost, not the server's.
    const now = wallMs()
    const m = JSON.parse(raw.toString()) as { type?: string; channel?: string; data?: { t?: number; s?: number; i?: number } }
    if (m.type === 'subscribed') {
      this.subscribed++
      return
    }
    if (!this.measuring) return
    const seen = this.seen[k]
    const i = m.data?.i
    const t = m.data?.t
    if (m.type !== 'message' || m.channel !== this.channel || seen === undefined || typeof i !== 'number' || typeof t !== 'number' || i < 0 || i >= seen.length) {
      this.otherFrames++
      return
    }
    if (seen[i] === 1) {
      this.duplicates++
      return
    }
    seen[i] = 1
    if (i < (this.lastIndex[k] ?? -1)) this.outOfOrder++
    this.lastIndex[k] = i
    this.latencies[this.delivered++] = now - t
    if (typeof m.data?.s === 'number') this.fromSchedule[this.scheduled++] = now - m.data.s
    if (now < this.firstReceive) this.firstReceive = now
    this.lastReceive = now
  }

  get lastReceiveAt(): number | null {
    return this.delivered === 0 ? null : this.lastReceive
  }

  /** Resolves once every message reached every client, or nothing new arrived for QUIET_MS. */
  async settle(maxMs: number): Promise<void> {
    const expected = this.latencies.length
    let lastCount = -1
    let lastChange = Date.now()
    const deadline = Date.now() + maxMs
    while (this.delivered < expected && Date.now() < deadline) {
      if (this.delivered !== lastCount) {
        lastCount = this.delivered
        lastChange = Date.now()
      } else if (Date.now() - lastChange > QUIET_MS) {
        return
      }
      await sleep(50)
    }
  }

  summary(): FleetSummary {
    const n = this.delivered
    const span = n > 1 ? this.lastReceive - this.firstReceive : null
    return {
      expected: this.latencies.length,
      delivered: n,
      missing: this.latencies.length - n,
      duplicates: this.duplicates,
      outOfOrder: this.outOfOrder,
      otherFrames: this.otherFrames,
      closedEarly: this.closedEarly,
      latencyMs: distribution(this.latencies.subarray(0, n)),
      scheduleLatencyMs: distribution(this.fromSchedule.subarray(0, this.scheduled)),
      deliveredPerSec: span === null || span <= 0 ? null : n / (span / 1000),
      receiveSpanMs: span,
    }
  }

  close(): void {
    this.measuring = false
    for (const ws of this.sockets) ws.terminate()
  }
}

/** Percentiles (nearest rank) of the values, sorted in place; null when there are none. */
function distribution(values: Float64Array): Latency | null {
  const n = values.length
  if (n === 0) return null
  const sorted = values.sort()
  const at = (p: number): number => sorted[Math.max(0, Math.ceil(p * n) - 1)] ?? NaN
  let sum = 0
  for (const v of sorted) sum += v
  return { p50: at(0.5), p99: at(0.99), max: at(1), min: at(0), mean: sum / n }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  const timeout = new AbortController()
  try {
    return await Promise.race([
      p,
      sleep(ms, undefined, { signal: timeout.signal }).then(() => {
        throw new Error(`Timed out after ${ms} ms: ${what}`)
      }),
    ])
  } finally {
    timeout.abort()
  }
}
