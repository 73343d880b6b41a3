/**
 * The WebSocket push process: browsers connect (through nginx) at /ws, subscribe to channels, and
 * receive what app code publishes through the bridge, in order, with resume after reconnects.
 * It also publishes a heartbeat through the bridge every second and is ready (/readyz) only while
 * that heartbeat comes back. Its loopback port also answers GET /metrics (its counters and the
 * bridge's, JSON) for the arbiter's Prometheus scrape (arbiter/scrape.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import type { Logger } from 'pino'
import { WebSocketServer, type WebSocket } from 'ws'
import type { PushConfig } from '../config/messaging.js'
import { Publisher } from '../bridge/publisher.js'
import { isReserved, type Envelope } from '../bridge/wire.js'
import { BridgeFeed } from './bridge-feed.js'
import { FrameWriter, dispatchedBytes, textFrame, type OutFrame } from './fanout.js'
import { closeCodes, envelopeOffset, isPrivate, messageFrame, parseClientMessage, type ClientMessage } from './protocol.js'
import { ConnectionRateLimit } from './rate-limit.js'
import { verifyPushToken } from './tokens.js'

interface Subscription {
  /** Live messages wait here while the history of a resume is being sent. */
  buffer: { offset: number; frame: OutFrame }[] | null
  lastSent: number
  /** A private channel's token expiry (ms since epoch): nothing is delivered past it. */
  expiresAt: number | null
}

interface Conn {
  id: string
  ws: WebSocket
  subs: Map<string, Subscription>
  alive: boolean
  closed: boolean
  /** When a send-buffer backlog was seen (0 = none), and the byte count that has to leave for it to be gone. */
  markAt: number
  markBytes: number
}

const HEARTBEAT = '$sys:heartbeat'
/** Unsent bytes per connection above which how long they wait is watched (FORKYARD_PUSH_MAX_LAG). */
const LAG_WATCH_BYTES = 32 * 1024
const LISTEN_BACKLOG = 4096
/** WebSocket handshakes done per event-loop turn, at most this long. */
const UPGRADE_SLICE_MS = 5
/** Framed messages kept for resumes, all channels together (the bridge keeps 1,000 per channel by default). */
const RECENT_FRAMES = 4096

export class PushServer {
  private readonly http: Server
  private readonly wss: WebSocketServer
  private readonly feed: BridgeFeed
  private readonly publisher: Publisher
  private readonly conns = new Set<Conn>()
  private readonly writer = new FrameWriter()
  /** Recently framed messages (envelope text -> frame), so a resume storm frames each history message once, not once per client. */
  private readonly recent = new Map<string, OutFrame>()
  private readonly channels = new Map<string, Set<Conn>>()
  private limiter: ConnectionRateLimit
  private nextId = 0
  private heartbeatTimer: NodeJS.Timeout | null = null
  private pingTimer: NodeJS.Timeout | null = null
  private lastHeartbeat = 0
  private heartbeatLagMs: number | null = null
  private closing: Promise<void> | null = null
  /** How late the event loop ran (the stall /healthz would see), since start and since the last /readyz. */
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 })
  private loopDelayMaxMs = 0
  private bridgeStats: Record<string, unknown> = {}
  private bridgeStatsAt = 0
  private bridgeEpochChanges = 0
  readonly counters = { connections: 0, rejectedRate: 0, rejectedOrigin: 0, delivered: 0, slowConsumers: 0, lagging: 0, badMessages: 0, unauthorized: 0, expired: 0, resumes: 0, recovered: 0, notRecovered: 0, deadPeers: 0 }

  constructor(
    private config: Readonly<PushConfig>,
    private readonly log: Logger,
  ) {
    this.limiter = new ConnectionRateLimit(config.connRate)
    this.http = createServer((req, res) => void this.onHttp(req, res))
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head))
    this.wss = new WebSocketServer({ noServer: true, maxPayload: config.maxMessageBytes, perMessageDeflate: false })
    this.feed = new BridgeFeed(
      config.bridgeDir,
      { message: (c, o, t, e) => this.onMessage(c, o, t, e), reset: (c, e, o, r) => this.onReset(c, e, o, r), subscribed: () => this.channels.keys() },
      log,
    )
    this.publisher = new Publisher({ dir: config.bridgeDir, queue: 100, resendMs: 2000 })
  }

  async listen(): Promise<number> {
    this.loopDelay.enable()
    this.feed.start()
    const [host, port] = this.config.bind.split(':')
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject)
      // A backlog for a reconnect storm: with Node's default (511) 1,000 clients reconnecting at
      // once overflow it, and every connection past it - a health check's too - waits for a SYN
      // retransmit (1 s, then 3 s). The kernel caps it at net.core.somaxconn.
      this.http.listen({ host, port: Number(port), backlog: LISTEN_BACKLOG }, () => resolve())
    })
    this.heartbeatTimer = setInterval(() => {
      this.beat()
      this.refreshBridgeStats()
      this.expireTokens()
    }, 1000)
    this.refreshBridgeStats()
    this.pingTimer = setInterval(() => this.ping(), this.config.pingIntervalMs)
    this.beat()
    const addr = this.http.address()
    const bound = typeof addr === 'object' && addr !== null ? addr.port : Number(port)
    this.log.info({ bind: `${host}:${bound}`, bridge: this.config.bridgeDir }, 'push listening')
    return bound
  }

  /**
   * A validated configuration change: limits, origins, secret and timers apply at once; a new bind
   * address or bridge directory needs a new process ('restart': the supervisor starts it again and
   * clients resume from their offsets).
   */
  applyConfig(next: Readonly<PushConfig>): 'live' | 'restart' {
    if (next.bind !== this.config.bind || next.bridgeDir !== this.config.bridgeDir) return 'restart'
    if (next.connRate !== this.config.connRate) this.limiter = new ConnectionRateLimit(next.connRate)
    if (next.pingIntervalMs !== this.config.pingIntervalMs && this.pingTimer !== null) {
      clearInterval(this.pingTimer)
      this.pingTimer = setInterval(() => this.ping(), next.pingIntervalMs)
    }
    this.config = next
    return 'live'
  }

  /** Alive and bridge heartbeat fresh. */
  ready(): { ready: boolean; lastHeartbeatMsAgo: number | null; heartbeatLagMs: number | null } {
    const ago = this.lastHeartbeat === 0 ? null : Date.now() - this.lastHeartbeat
    return { ready: ago !== null && ago < this.config.heartbeatStaleMs, lastHeartbeatMsAgo: ago, heartbeatLagMs: this.heartbeatLagMs }
  }

  private refreshBridgeStats(): void {
    this.feed.stats(900).then(
      (stats) => {
        // A new bridge epoch (its history was lost): counted for GET /metrics.
        const [was, now] = [this.bridgeStats.epoch, stats.epoch]
        if (typeof was === 'string' && typeof now === 'string' && was !== now) this.bridgeEpochChanges++
        this.bridgeStats = stats
        this.bridgeStatsAt = Date.now()
      },
      (err: unknown) => void (this.bridgeStats = { error: (err as Error).message }),
    )
  }

  private beat(): void {
    this.publisher.publish(HEARTBEAT, { ts: Date.now(), from: this.publisher.id }).catch(() => {
      // The bridge is down or the queue is full: readiness goes red by itself.
    })
  }

  private async onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/healthz') return json(res, 200, { status: 'ok', pid: process.pid })
    if (path === '/readyz') {
      const r = this.ready()
      // The bridge's counters as of the last second (refreshed with the heartbeat): /readyz answers
      // from this process alone, without a round trip that queues behind a busy bridge.
      const bridge = { ...this.bridgeStats, statsMsAgo: this.bridgeStatsAt === 0 ? null : Date.now() - this.bridgeStatsAt }
      const sinceLast = this.loopDelay.max / 1e6
      this.loopDelayMaxMs = Math.max(this.loopDelayMaxMs, sinceLast)
      const eventLoop = { delayMaxMs: Math.round(this.loopDelayMaxMs), delayMaxSinceLastMs: Math.round(sinceLast), delayP99SinceLastMs: Math.round(this.loopDelay.percentile(99) / 1e6) }
      this.loopDelay.reset()
      return json(res, r.ready ? 200 : 503, { ...r, connections: this.conns.size, channels: this.channels.size, counters: this.counters, feed: this.feed.counters, publisher: this.publisher.stats, writer: this.writer.counters, eventLoop, bridge })
    }
    // Counters for the arbiter's GET /metrics (metrics/sources.ts reads this JSON at scrape time).
    if (path === '/metrics') {
      const bridge = { ...this.bridgeStats, epochChanges: this.bridgeEpochChanges, statsMsAgo: this.bridgeStatsAt === 0 ? null : Date.now() - this.bridgeStatsAt }
      return json(res, 200, { connections: this.conns.size, channels: this.channels.size, heartbeatLagMs: this.heartbeatLagMs, counters: this.counters, feed: this.feed.counters, bridge })
    }
    return json(res, 404, { error: 'not found: WebSocket connections go to /ws' })
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number, text: string): void => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\n${status === 429 ? 'Retry-After: 1\r\n' : ''}\r\n${text}\n`)
    }
    socket.on('error', () => socket.destroy())
    if (this.closing !== null) return refuse(503, 'Service Unavailable')
    if ((req.url ?? '').split('?')[0] !== '/ws') return refuse(404, 'Not Found')
    if (!this.originAllowed(req)) {
      this.counters.rejectedOrigin++
      this.log.warn({ origin: req.headers.origin }, 'websocket refused: origin not allowed')
      return refuse(403, 'Forbidden')
    }
    const peer = clientAddress(req)
    if (!this.limiter.allow(peer)) {
      this.counters.rejectedRate++
      return refuse(429, 'Too Many Requests')
    }
    // Handshakes are done in slices too: 1,000 clients reconnecting at once are 1,000 upgrades
    // in one poll phase, a stall of its own (measured: ~190 ms) if all were done there.
    this.upgrades.push({ req, socket, head })
    if (this.upgrades.length === 1) setImmediate(this.drainUpgrades)
  }

  private readonly upgrades: { req: IncomingMessage; socket: Duplex; head: Buffer }[] = []
  private readonly drainUpgrades = (): void => {
    const started = performance.now()
    let done = 0
    while (done < this.upgrades.length && performance.now() - started < UPGRADE_SLICE_MS) {
      const { req, socket, head } = this.upgrades[done++]!
      if (socket.destroyed) continue
      if (this.closing !== null) socket.destroy()
      else this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req))
    }
    this.upgrades.splice(0, done)
    if (this.upgrades.length > 0) setImmediate(this.drainUpgrades)
  }

  private originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin
    const allowed = this.config.origins
    if (allowed.includes('*')) return true
    if (origin === undefined) return true
    if (allowed.includes(origin)) return true
    if (allowed.length > 0) return false
    try {
      return new URL(origin).host === req.headers.host
    } catch {
      return false
    }
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const conn: Conn = { id: (++this.nextId).toString(36), ws, subs: new Map(), alive: true, closed: false, markAt: 0, markBytes: 0 }
    this.conns.add(conn)
    this.counters.connections++
    const reqId = req.headers['x-request-id']
    this.log.debug({ conn: conn.id, reqId }, 'websocket connected')
    ws.on('pong', () => (conn.alive = true))
    ws.on('message', (data, isBinary) => {
      if (isBinary) return this.cut(conn, closeCodes.UNSUPPORTED_DATA, 'binary frames are not supported: send JSON text')
      const parsed = parseClientMessage(data.toString())
      if (!parsed.ok) {
        this.counters.badMessages++
        return this.cut(conn, closeCodes.BAD_MESSAGE, parsed.reason)
      }
      void this.onClientMessage(conn, parsed.message)
    })
    ws.on('error', (err) => {
      // ws closes with 1009 on oversized frames, 1002 on protocol errors: log and carry on.
      this.log.info({ conn: conn.id, err: { message: err.message, code: (err as { code?: string }).code } }, 'websocket error')
    })
    ws.on('close', () => this.drop(conn))
  }

  private async onClientMessage(conn: Conn, m: ClientMessage): Promise<void> {
    if (m.type === 'unsubscribe') {
      this.unsubscribe(conn, m.channel)
      this.send(conn, jsonFrame({ type: 'unsubscribed', channel: m.channel }))
      return
    }
    if (isReserved(m.channel)) return this.cut(conn, closeCodes.FORBIDDEN, `channel ${m.channel} is reserved`)
    // Tokens come in the subscribe message only, never in the URL, which proxies log.
    let expiresAt: number | null = null
    if (isPrivate(m.channel)) {
      const v = verifyPushToken(this.config.secret, m.token)
      if (!v.ok || !v.claims.channels.includes(m.channel)) {
        this.counters.unauthorized++
        const reason = v.ok ? `token does not grant ${m.channel}` : v.reason
        this.log.info({ conn: conn.id, channel: m.channel, reason }, 'websocket unauthorized')
        return this.cut(conn, closeCodes.UNAUTHORIZED, reason)
      }
      expiresAt = v.claims.exp * 1000
    }
    if (!conn.subs.has(m.channel) && conn.subs.size >= this.config.maxSubscriptions) {
      return this.cut(conn, closeCodes.TOO_MANY_SUBSCRIPTIONS, `at most ${this.config.maxSubscriptions} subscriptions per connection`)
    }
    this.unsubscribe(conn, m.channel)
    const sub: Subscription = { buffer: [], lastSent: 0, expiresAt }
    conn.subs.set(m.channel, sub)
    let set = this.channels.get(m.channel)
    if (set === undefined) {
      set = new Set()
      this.channels.set(m.channel, set)
    }
    set.add(conn)
    // Registered first, history asked second: a message is either in the history answer or
    // arrives live afterwards (the bridge stores before it forwards), never neither.
    const resuming = m.offset !== null
    try {
      const range = await this.feed.history(m.channel, resuming ? m.offset! : Number.MAX_SAFE_INTEGER, resuming ? m.epoch : null)
      if (conn.closed || conn.subs.get(m.channel) !== sub) return
      const reply: Record<string, unknown> = { type: 'subscribed', channel: m.channel, epoch: range.epoch, offset: range.last }
      let history: string[] = []
      if (resuming) {
        this.counters.resumes++
        const epochChanged = m.epoch !== null && m.epoch !== range.epoch
        reply.recovered = range.complete && !epochChanged
        if (reply.recovered === true) {
          this.counters.recovered++
          reply.offset = m.offset
          history = range.messages
        } else {
          this.counters.notRecovered++
          reply.reason = epochChanged ? 'epoch-changed' : 'history-trimmed'
        }
      }
      if (!this.send(conn, jsonFrame(reply))) return
      sub.lastSent = reply.offset as number
      for (const text of history) {
        const offset = envelopeOffset(text)
        if (offset <= sub.lastSent) continue
        if (!this.send(conn, this.framed(text))) return
        sub.lastSent = offset
      }
      const waiting = sub.buffer ?? []
      sub.buffer = null
      // A resume's replay counts towards the feed's slice: a storm of them yields to /healthz too.
      this.feed.addWork(1 + history.length + waiting.length)
      for (const w of waiting) {
        if (w.offset <= sub.lastSent) continue
        if (!this.send(conn, w.frame)) return
        sub.lastSent = w.offset
      }
    } catch (err) {
      this.log.warn({ err, conn: conn.id, channel: m.channel }, 'subscribe failed: bridge unavailable')
      this.unsubscribe(conn, m.channel)
      this.cut(conn, closeCodes.GOING_AWAY, 'the message bridge is unavailable: reconnect later')
    }
  }

  /** Fans one message out; returns the number of sends (the feed bounds its work per turn by it). */
  private onMessage(channel: string, offset: number, text: string, env: Envelope): number {
    if (channel === HEARTBEAT) {
      const d = env.data as { ts?: number; from?: string }
      if (d.from === this.publisher.id && typeof d.ts === 'number') {
        this.lastHeartbeat = Date.now()
        this.heartbeatLagMs = this.lastHeartbeat - d.ts
      }
      return 0
    }
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

  private onReset(channel: string, epoch: string, offset: number, reason: string): void {
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
  private framed(text: string): OutFrame {
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
  private send(conn: Conn, frame: OutFrame, now = Date.now()): boolean {
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
    this.writer.write(conn.ws, frame)
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
    const epoch = this.feed.epoch ?? ''
    for (const [channel, sub] of conn.subs) {
      this.writer.write(conn.ws, jsonFrame({ type: 'reset', channel, epoch, offset: sub.lastSent, reason: 'lagging' }))
    }
    this.log.warn({ conn: conn.id, lagMs, where, limitMs: this.config.maxLagMs }, 'lagging client cut: it resumes from its last offset')
    this.cut(conn, closeCodes.LAGGING, `lagging: messages waited more than ${this.config.maxLagMs} ms`)
  }

  /** Closes with a code and reason; terminates if the peer does not complete the close. */
  private cut(conn: Conn, code: number, reason: string): void {
    if (conn.closed) return
    this.drop(conn)
    conn.ws.close(code, reason.slice(0, 120))
    setTimeout(() => conn.ws.terminate(), 2000).unref()
  }

  private drop(conn: Conn): void {
    if (conn.closed) return
    conn.closed = true
    this.conns.delete(conn)
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
  private expireTokens(): void {
    const now = Date.now()
    for (const conn of this.conns) {
      for (const [channel, sub] of conn.subs) if (sub.expiresAt !== null && now >= sub.expiresAt) this.expire(conn, channel)
    }
  }

  private unsubscribe(conn: Conn, channel: string): void {
    conn.subs.delete(channel)
    const set = this.channels.get(channel)
    if (set === undefined) return
    set.delete(conn)
    if (set.size === 0) this.channels.delete(channel)
  }

  /** Keepalive: a peer that did not answer the previous ping is dead and dropped. */
  private ping(): void {
    for (const conn of this.conns) {
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

  close(): Promise<void> {
    if (this.closing !== null) return this.closing
    this.closing = (async () => {
      if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer)
      if (this.pingTimer !== null) clearInterval(this.pingTimer)
      this.loopDelay.disable()
      for (const conn of [...this.conns]) this.cut(conn, closeCodes.GOING_AWAY, 'push process stopping: reconnect')
      await new Promise<void>((resolve) => this.http.close(() => resolve()))
      this.wss.close()
      await this.publisher.close()
      await this.feed.close()
      this.log.info({ counters: this.counters }, 'push stopped')
    })()
    return this.closing
  }
}

function jsonFrame(value: unknown): OutFrame {
  return textFrame(Buffer.from(JSON.stringify(value)))
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

/** The client's address: X-Real-IP when the connection comes from the local proxy, else the peer. */
function clientAddress(req: IncomingMessage): string {
  const peer = req.socket.remoteAddress ?? ''
  const real = req.headers['x-real-ip']
  if ((peer === '127.0.0.1' || peer === '::1' || peer === '::ffff:127.0.0.1') && typeof real === 'string') return real
  return peer
}
