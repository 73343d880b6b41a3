/**
 * The bridge's sequencing and history, without sockets (pure, unit-tested).
 * - Every accepted message gets the next offset of its channel (1, 2, 3, ...) and the bridge's
 *   epoch. The epoch changes only when history was lost (a restart without a data directory),
 *   so a client holding (epoch, offset) can always tell "resumable" from "gap".
 * - Publishes are idempotent: (publisher id, sequence) seen before returns the first offset.
 * - Each channel keeps at most `count` messages, none older than `ageMs`.
 */
import { envelopeOf } from './wire.js'

export interface Stored {
  offset: number
  ts: number
  /** The envelope as sent to subscribers (wire.ts envelopeOf). */
  envelope: string
  pub: string
  seq: number
  data: string
  /** The request that caused the message ('' when none). */
  reqId: string
}

export interface Accepted {
  offset: number
  duplicate: boolean
  stored: Stored | null
}

export interface Range {
  epoch: string
  /** Latest offset of the channel (0 = nothing published yet). */
  last: number
  /** Envelopes after the asked offset, in order. */
  messages: string[]
  /** True when `messages` covers every offset after the asked one (same epoch, not trimmed). */
  complete: boolean
}

interface Channel {
  last: number
  items: Stored[]
  /** Index of the first live item in `items` (trimmed from the front lazily). */
  head: number
}

/** Remembered (publisher, seq) pairs per publisher, to drop duplicates after resends. */
const DEDUPE_WINDOW = 8192

export class History {
  private readonly channels = new Map<string, Channel>()
  private readonly seen = new Map<string, { at: number; seqs: Map<number, number> }>()

  constructor(
    readonly epoch: string,
    private limits: { count: number; ageMs: number },
  ) {}

  accept(pub: string, seq: number, channel: string, data: string, now: number, reqId = ''): Accepted {
    let p = this.seen.get(pub)
    if (p === undefined) {
      p = { at: now, seqs: new Map() }
      this.seen.set(pub, p)
    }
    p.at = now
    const first = p.seqs.get(seq)
    if (first !== undefined) return { offset: first, duplicate: true, stored: null }
    const ch = this.channel(channel)
    const offset = ch.last + 1
    const stored: Stored = { offset, ts: now, envelope: envelopeOf(channel, offset, this.epoch, now, data, reqId), pub, seq, data, reqId }
    this.restore(channel, stored)
    return { offset, duplicate: false, stored }
  }

  /** Puts back a message read from the history file (and records its publisher sequence). */
  restore(channel: string, stored: Stored): void {
    const ch = this.channel(channel)
    ch.last = Math.max(ch.last, stored.offset)
    if (this.limits.count > 0) ch.items.push(stored)
    this.remember(stored.pub, stored.seq, stored.offset, stored.ts)
    this.trimChannel(ch, stored.ts, channel)
  }

  /** Records that a channel reached `offset` even though none of its messages are kept. */
  restoreLast(channel: string, offset: number): void {
    const ch = this.channel(channel)
    ch.last = Math.max(ch.last, offset)
  }

  range(channel: string, after: number, epoch: string | null, now: number): Range {
    const ch = this.channels.get(channel)
    if (ch === undefined) return { epoch: this.epoch, last: 0, messages: [], complete: epoch === null || epoch === this.epoch || after === 0 }
    this.trimChannel(ch, now, channel)
    const last = ch.last
    if (epoch !== null && epoch !== this.epoch) return { epoch: this.epoch, last, messages: [], complete: false }
    if (after >= last) return { epoch: this.epoch, last, messages: [], complete: after === last }
    const live = ch.items.length - ch.head
    const firstKept = live > 0 ? ch.items[ch.head]!.offset : last + 1
    const messages: string[] = []
    for (let i = ch.head; i < ch.items.length; i++) {
      const item = ch.items[i]!
      if (item.offset > after) messages.push(item.envelope)
    }
    return { epoch: this.epoch, last, messages, complete: firstKept <= after + 1 }
  }

  setLimits(limits: { count: number; ageMs: number }): void {
    this.limits = limits
  }

  lastOffsets(): Map<string, number> {
    return new Map([...this.channels].map(([name, ch]) => [name, ch.last]))
  }

  /** Every kept message, per channel, for compaction of the history file. */
  *kept(): Generator<[string, Stored]> {
    for (const [name, ch] of this.channels) for (let i = ch.head; i < ch.items.length; i++) yield [name, ch.items[i]!]
  }

  keptCount(): number {
    let n = 0
    for (const ch of this.channels.values()) n += ch.items.length - ch.head
    return n
  }

  /** Drops what is too old everywhere, and forgets publishers silent for longer than the age limit. */
  trim(now: number): void {
    for (const [name, ch] of this.channels) this.trimChannel(ch, now, name)
    for (const [pub, p] of this.seen) if (now - p.at > Math.max(this.limits.ageMs, 60_000)) this.seen.delete(pub)
  }

  private channel(name: string): Channel {
    let ch = this.channels.get(name)
    if (ch === undefined) {
      ch = { last: 0, items: [], head: 0 }
      this.channels.set(name, ch)
    }
    return ch
  }

  private remember(pub: string, seq: number, offset: number, now: number): void {
    let p = this.seen.get(pub)
    if (p === undefined) {
      p = { at: now, seqs: new Map() }
      this.seen.set(pub, p)
    }
    p.seqs.set(seq, offset)
    if (p.seqs.size > DEDUPE_WINDOW) {
      const oldest = p.seqs.keys().next()
      if (oldest.done !== true) p.seqs.delete(oldest.value)
    }
  }

  private trimChannel(ch: Channel, now: number, name = ''): void {
    const { ageMs } = this.limits
    // System channels ($sys:heartbeat) only need their latest message.
    const count = name.startsWith('$') ? 1 : this.limits.count
    while (ch.items.length - ch.head > count) ch.head++
    while (ch.head < ch.items.length && ageMs > 0 && now - ch.items[ch.head]!.ts > ageMs) ch.head++
    // Compact the array once the dead prefix dominates, so trimming stays O(1) amortised.
    if (ch.head > 1024 && ch.head * 2 > ch.items.length) {
      ch.items = ch.items.slice(ch.head)
      ch.head = 0
    }
  }
}
