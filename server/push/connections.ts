/**
 * The push process's open WebSocket connections and who is subscribed to what: live fan-out of
 * the bridge's messages to a channel's subscribers, sends that watch each client's backlog (slow
 * consumers and lagging clients are cut), private subscriptions ending at their token's expiry,
 * and the ping that drops dead peers. Subscribing itself, with its resume, is in resume.ts.
 */
import type { Logger } from 'pino'
import type { WebSocket } from 'ws'
import type { PushConfig } from '../config/messaging.js'
import type { Envelope } from '../bridge/wire.js'
import { dispatchedBytes, textFrame, type FrameWriter, type OutFrame } from './fanout.js'
import { closeCodes, messageFrame } from './protocol.js'

export interface Subscription {
  /** Live messages wait here while the history of a resume is being sent. */
  buffer: { offset: number; frame: OutFrame }[] | null
  lastSent: number
  /** A private channel's token expiry (ms since epoch): nothing is delivered past it. */
  expiresAt: number | null
}

export interface Conn {
  id: string
  ws: WebSocket
  subs: Map<string, Subscription>
  alive: boolean
  closed: boolean
  /** When a send-buffer backlog was seen (0 = none), and the byte count that has to leave for it to be gone. */
  markAt: number
  markBytes: number
}

/** The push process's counters (GET /readyz, GET /metrics, the "push stopped" line). */
export function pushCounters() {
  return { connections: 0, rejectedRate: 0, rejectedOrigin: 0, delivered: 0, slowConsumers: 0, lagging: 0, badMessages: 0, unauthorized: 0, expired: 0, resumes: 0, recovered: 0, notRecovered: 0, deadPeers: 0 }
}
export type PushCounters = ReturnType<typeof pushCounters>

/** Unsent bytes per connection above which how long they wait is watched (FORKYARD_PUSH_MAX_LAG). */
const LAG_WATCH_BYTES = 32 * 1024
/** Framed messages kept for resumes, all channels together (the bridge keeps 1,000 per channel by default). */
const RECENT_FRAMES = 4096

export function jsonFrame(value: unknown): OutFrame {
  return textFrame(Buffer.from(JSON.stringify(value)))
}

export interface ConnectionsOptions {
  /** The configuration in force (it is replaced whole on a live change). */
  config: () => Readonly<PushConfig>
  /** The bridge epoch the feed is in, for the resets a lagging client is sent. */
  epoch: () => string | null
  writer: FrameWriter
  counters: PushCounters
  log: Logger
}

export class Connections {
  readonly open = new Set<Conn>()
  readonly channels = new Map<string, Set<Conn>>()
  /** Recently framed messages (envelope text -> frame), so a resume storm frames each history message once, not once per client. */
  private readonly recent = new Map<string, OutFrame>()
  private nextId = 0
  private readonly counters: PushCounters
  private readonly log: Logger

  constructor(private readonly options: ConnectionsOptions) {
    this.counters = options.counters
    this.log = options.log
  }

  private get config(): Readonly<PushConfig> {
    return this.options.config()
  }

  /** A new connection, counted. */
  add(ws: WebSocket): Conn {
    const conn: Conn = { id: (++this.nextId).toString(36), ws, subs: new Map(), alive: true, closed: false, markAt: 0, markBytes: 0 }
    this.open.add(conn)
    this.counters.connections++
    return conn
  }

  /** Subscribes `conn` to `channel` afresh; live messages wait in the new subscription's buffer. */
  register(conn: Conn, channel: string, expiresAt: number | null): Subscription {
    this.unsubscribe(conn, channel)
    const sub: Subscription = { buffer: [], lastSent: 0, expiresAt }
    conn.subs.set(channel, sub)
    let set = this.channels.get(channel)
    if (set === undefined) {
      set = new Set()
      this.channels.set(channel, set)
    }
    set.add(conn)
    return sub
  }

  /** Fans one message out; returns the number of sends (the feed bounds its work per turn by it). */
  deliver(channel: string, offset: number, text: string, env: Envelope): number {
    const set = this.channels.get(channel)
    if (set === undefined) return 0
    const frame = this.framed(text)
    let delivered = 0
    const now = Date.now()
    // The push process itself is behind (its queue from the bridge): subscribers would get old news.
    const stale = this.config.maxLagMs > 0 && now - env.ts > this.config.maxLagMs
    for (const conn of set) {
      const sub = conn.subs.get(channel)
      if (sub === undefined) continue
      if (sub.expiresAt !== null && now >= sub.expiresAt) {
        this.expire(conn, channel)
        continue
      }
      if (sub.buffer !== null) {
        sub.buffer.push({ offset, frame })
        continue
      }
      if (offset <= sub.lastSent) continue
      if (stale) {
        this.cutLagging(conn, now - env.ts, 'push')
        continue
      }
      if (!this.send(conn, frame, now)) continue
      sub.lastSent = offset
      delivered++
    }
    if (env.reqId !== undefined) this.log.info({ reqId: env.reqId, channel, offset, clients: delivered }, 'delivered')
    return delivered
  }

  /** The bridge lost `channel`'s history: its subscribers are told where the new epoch starts. */
  reset(channel: string, epoch: string, offset: number, reason: string): void {
    const set = this.channels.get(channel)
    if (set === undefined) return
    const frame = jsonFrame({ type: 'reset', channel, epoch, offset, reason })
    for (const conn of set) {
      const sub = conn.subs.get(channel)
      if (sub !== undefined) sub.lastSent = offset
      this.send(conn, frame)
    }
  }

  /** The framed message for an envelope, made once and kept for the next RECENT_FRAMES messages (any channel). */
  framed(text: string): OutFrame {
    const key = text
    let frame = this.recent.get(key)
    if (frame === undefined) {
      frame = textFrame(messageFrame(text))
      // Cleared whole when full: deleting the oldest key one at a time leaves a run of deleted
      // slots that every keys().next() walks over (measured: a third of a second in a resume storm).
      if (this.recent.size >= RECENT_FRAMES) this.recent.clear()
      this.recent.set(key, frame)
    }
    return frame
  }

  /** Sends one frame; false when the connection is closed or was just cut (slow or lagging). */
  send(conn: Conn, frame: OutFrame, now = Date.now()): boolean {
    if (conn.closed) return false
    const buffered = conn.ws.bufferedAmount
    if (buffered > this.config.maxBufferBytes) {
      this.counters.slowConsumers++
      this.log.warn({ conn: conn.id, bufferedBytes: buffered, limitBytes: this.config.maxBufferBytes }, 'slow consumer disconnected')
      this.cut(conn, closeCodes.SLOW_CONSUMER, 'slow consumer: too much data waiting to be sent')
      return false
    }
    if (buffered <= LAG_WATCH_BYTES) conn.markAt = 0
    else if (this.config.maxLagMs > 0) {
      const lag = this.backlogAge(conn, buffered, now)
      if (lag > this.config.maxLagMs) {
        this.cutLagging(conn, lag, 'socket')
        return false
      }
    }
    this.counters.delivered++
    this.options.writer.write(conn.ws, frame)
    return true
  }

  /**
   * How long the oldest of this connection's unsent bytes has waited, to the precision of the
   * marks: a mark notes the time and how many bytes must leave for everything queued by then to
   * be gone; once they have, the next send sets a new mark.
   */
  private backlogAge(conn: Conn, buffered: number, now: number): number {
    const sent = dispatchedBytes(conn.ws)
    if (sent === null) return 0
    if (conn.markAt !== 0 && sent >= conn.markBytes) conn.markAt = 0
    if (conn.markAt === 0) {
      conn.markAt = now
      conn.markBytes = sent + buffered
      return 0
    }
    return now - conn.markAt
  }

  /**
   * A client more than FORKYARD_PUSH_MAX_LAG behind: each of its channels gets a "reset" naming the
   * last offset sent to it, and the connection closes with 4429; the client resumes from there
   * (or reloads) instead of being fed ever older messages.
   */
  private cutLagging(conn: Conn, lagMs: number, where: 'push' | 'socket'): void {
    if (conn.closed) return
    this.counters.lagging++
    const epoch = this.options.epoch() ?? ''
    for (const [channel, sub] of conn.subs) {
      this.options.writer.write(conn.ws, jsonFrame({ type: 'reset', channel, epoch, offset: sub.lastSent, reason: 'lagging' }))
    }
    this.log.warn({ conn: conn.id, lagMs, where, limitMs: this.config.maxLagMs }, 'lagging client cut: it resumes from its last offset')
    this.cut(conn, closeCodes.LAGGING, `lagging: messages waited more than ${this.config.maxLagMs} ms`)
  }

  /** Closes with a code and reason; terminates if the peer does not complete the close. */
  cut(conn: Conn, code: number, reason: string): void {
    if (conn.closed) return
    this.drop(conn)
    conn.ws.close(code, reason.slice(0, 120))
    setTimeout(() => conn.ws.terminate(), 2000).unref()
  }

  drop(conn: Conn): void {
    if (conn.closed) return
    conn.closed = true
    this.open.delete(conn)
    for (const channel of [...conn.subs.keys()]) this.unsubscribe(conn, channel)
  }

  /**
   * A private subscription whose token expired ends, and the client is told which offset it had
   * reached: with a fresh token it subscribes again from there and misses nothing.
   */
  private expire(conn: Conn, channel: string): void {
    const sub = conn.subs.get(channel)
    if (sub === undefined) return
    this.unsubscribe(conn, channel)
    this.counters.expired++
    this.send(conn, jsonFrame({ type: 'unsubscribed', channel, reason: 'token-expired', offset: sub.lastSent }))
  }

  /** Every second: private subscriptions whose token expired end even on a quiet channel. */
  expireTokens(): void {
    const now = Date.now()
    for (const conn of this.open) {
      for (const [channel, sub] of conn.subs) if (sub.expiresAt !== null && now >= sub.expiresAt) this.expire(conn, channel)
    }
  }

  unsubscribe(conn: Conn, channel: string): void {
    conn.subs.delete(channel)
    const set = this.channels.get(channel)
    if (set === undefined) return
    set.delete(conn)
    if (set.size === 0) this.channels.delete(channel)
  }

  /** Keepalive: a peer that did not answer the previous ping is dead and dropped. */
  ping(): void {
    for (const conn of this.open) {
      if (!conn.alive) {
        this.counters.deadPeers++
        this.log.info({ conn: conn.id }, 'websocket peer did not answer ping: dropped')
        this.drop(conn)
        conn.ws.terminate()
        continue
      }
      conn.alive = false
      conn.ws.ping()
    }
  }
}
