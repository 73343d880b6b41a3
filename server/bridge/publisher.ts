/**
 * publish(channel, data) for app code: never blocks a request. A publish is queued (bounded),
 * sent to the bridge, and its promise resolves when the bridge acknowledges it with the channel
 * offset (accepted = sequenced, and written to the history file or Redis). Unacknowledged
 * publishes are resent; the bridge drops duplicates by (publisher id, sequence), or by the app's
 * idempotency key when one is given. A full queue
 * rejects at once with FORKYARD_ERR_PUBLISH_QUEUE_FULL and counts it: never a silent drop.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { Dealer } from 'zeromq'
import type { PublisherConfig } from '../config/messaging.js'
import { ForkyardError, codes } from '../errors.js'
import { processGlobal } from '../process-global.js'
import { CHANNEL, CHANNEL_RULE, IDEMPOTENCY_KEY, REQUEST_ID, SYSTEM_PREFIX, SendQueue, bridgeEndpoints, isReserved, yieldToLoop } from './wire.js'

export interface Published {
  channel: string
  offset: number
  epoch: string
}

export interface PublishOptions {
  /** The request that caused this message: logged by the bridge and the push process, and carried in the envelope. */
  reqId?: string
  /**
   * The app's own identity of this message (1-128 characters from A-Z a-z 0-9 . _ : -, the
   * IDEMPOTENCY_KEY rule): a second publish with the same key - from any process or host sharing
   * the engine, within max(60 s, FORKYARD_BRIDGE_HISTORY_AGE) - is not stored again and resolves
   * with the first offset.
   */
  idempotencyKey?: string
}

interface Pending {
  seq: number
  channel: string
  data: string
  reqId: string
  idemKey: string
  sentAt: number
  resolve: (p: Published) => void
  reject: (err: Error) => void
}

export interface PublisherStats {
  queued: number
  acknowledged: number
  rejectedQueueFull: number
  nacked: number
  resent: number
}

export class Publisher {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
  readonly stats: PublisherStats = { queued: 0, acknowledged: 0, rejectedQueueFull: 0, nacked: 0, resent: 0 }
  private readonly socket = new Dealer({ sendHighWaterMark: 100_000, linger: 0 })
  private readonly out = new SendQueue(this.socket)
  private readonly pending = new Map<number, Pending>()
  private seq = 0
  private readonly timer: NodeJS.Timeout
  private readonly loop: Promise<void>
  private closed = false
  /** Called (rate-limited by the caller) when a publish is refused because the queue is full. */
  onQueueFull: ((count: number) => void) | null = null

  constructor(private readonly config: Readonly<PublisherConfig>) {
    this.socket.connect(bridgeEndpoints(config.dir).in)
    this.loop = this.receive()
    this.timer = setInterval(() => this.resend(), Math.max(50, Math.floor(config.resendMs / 2)))
    this.timer.unref()
  }

  publish(channel: string, data: unknown, options: PublishOptions = {}): Promise<Published> {
    if (this.closed) return Promise.reject(new ForkyardError(codes.PUBLISH_CLOSED, 'publish() after the publisher was closed'))
    if (!CHANNEL.test(channel) || (isReserved(channel) && !channel.startsWith(SYSTEM_PREFIX))) {
      return Promise.reject(new ForkyardError(codes.PUBLISH_INVALID, `Expected a channel name of ${CHANNEL_RULE}, got ${JSON.stringify(channel.slice(0, 80))}`))
    }
    let json: string | undefined
    try {
      json = JSON.stringify(data)
    } catch (err) {
      return Promise.reject(new ForkyardError(codes.PUBLISH_INVALID, `Expected data that JSON.stringify accepts: ${(err as Error).message}`, { cause: err }))
    }
    if (json === undefined) return Promise.reject(new ForkyardError(codes.PUBLISH_INVALID, 'Expected data that JSON.stringify accepts, got undefined'))
    const idemKey = options.idempotencyKey ?? ''
    if (options.idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idemKey)) {
      return Promise.reject(new ForkyardError(codes.PUBLISH_INVALID, `Expected an idempotency key of 1-128 characters from A-Z a-z 0-9 . _ : -, got ${JSON.stringify(String(idemKey).slice(0, 80))}`))
    }
    if (this.pending.size >= this.config.queue) {
      this.stats.rejectedQueueFull++
      this.onQueueFull?.(this.stats.rejectedQueueFull)
      return Promise.reject(
        new ForkyardError(codes.PUBLISH_QUEUE_FULL, `The publish queue is full (${this.config.queue} messages waiting for the bridge, FORKYARD_PUBLISH_QUEUE): is the bridge running?`),
      )
    }
    const seq = ++this.seq
    return new Promise<Published>((resolve, reject) => {
      const p: Pending = { seq, channel, data: json, reqId: options.reqId !== undefined && REQUEST_ID.test(options.reqId) ? options.reqId : '', idemKey, sentAt: Date.now(), resolve, reject }
      this.pending.set(seq, p)
      this.stats.queued++
      this.send(p)
    })
  }

  /** Publishes waiting for an acknowledgement. */
  get waiting(): number {
    return this.pending.size
  }

  private send(p: Pending): void {
    p.sentAt = Date.now()
    this.out.send(['pub', this.id, String(p.seq), p.channel, p.data, p.reqId, p.idemKey]).catch(() => {
      // The socket is closing; the close rejects what is still pending.
    })
  }

  private resend(): void {
    const now = Date.now()
    for (const p of this.pending.values()) {
      if (now - p.sentAt < this.config.resendMs) continue
      this.stats.resent++
      this.send(p)
    }
  }

  private async receive(): Promise<void> {
    let n = 0
    try {
      for await (const frames of this.socket) {
        const [kind, seqBuf, a, b] = frames.map((f) => f.toString())
        const p = this.pending.get(Number(seqBuf))
        if (p !== undefined) {
          this.pending.delete(p.seq)
          if (kind === 'ack') {
            this.stats.acknowledged++
            p.resolve({ channel: p.channel, offset: Number(a), epoch: b ?? '' })
          } else {
            this.stats.nacked++
            p.reject(new ForkyardError(codes.PUBLISH_REFUSED, `The bridge refused the publish to ${JSON.stringify(p.channel)}: ${a ?? 'no reason given'}`))
          }
        }
        if (++n % 64 === 0) await yieldToLoop()
      }
    } catch {
      // closed
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    this.socket.close()
    await this.loop
    for (const p of this.pending.values()) p.reject(new ForkyardError(codes.PUBLISH_CLOSED, 'The publisher closed before the bridge acknowledged this publish'))
    this.pending.clear()
  }
}

const shared = processGlobal('publisher', () => ({ publisher: null as Publisher | null }))

/**
 * The process-wide publisher used by `publish()` from 'forkyard', configured from FORKYARD_*: one
 * bridge connection per process, whichever copy of the package the caller imported.
 */
export function sharedPublisher(create: () => Publisher): Publisher {
  shared.publisher ??= create()
  return shared.publisher
}
