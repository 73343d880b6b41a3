/**
 * The WebSocket push process: browsers connect (through nginx) at /ws, subscribe to channels, and
 * receive what app code publishes through the bridge, in order, with resume after reconnects.
 * It also publishes a heartbeat through the bridge every second and is ready (/readyz) only while
 * that heartbeat comes back. Its loopback port also answers GET /metrics (its counters and the
 * bridge's, JSON) for the arbiter's Prometheus scrape (arbiter/scrape.ts).
 *
 * This file wires the parts together and takes connections in; the parts are the HTTP endpoints
 * and upgrade checks (endpoints.ts), the heartbeat (heartbeat.ts), the connections and live
 * fan-out (connections.ts) and the subscribe with resume (resume.ts).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { WebSocketServer, type WebSocket } from 'ws'
import type { PushConfig } from '../config/messaging.js'
import { isReserved, type Envelope } from '../bridge/wire.js'
import { BridgeFeed } from './bridge-feed.js'
import { Connections, jsonFrame, pushCounters, type Conn } from './connections.js'
import { PushEndpoints, clientAddress, originAllowed, refuseUpgrade } from './endpoints.js'
import { FrameWriter } from './fanout.js'
import { HEARTBEAT, Heartbeat, type PushReadiness } from './heartbeat.js'
import { closeCodes, isPrivate, parseClientMessage, type ClientMessage } from './protocol.js'
import { ConnectionRateLimit } from './rate-limit.js'
import { subscribe } from './resume.js'
import { verifyPushToken } from './tokens.js'

const LISTEN_BACKLOG = 4096
/** WebSocket handshakes done per event-loop turn, at most this long. */
const UPGRADE_SLICE_MS = 5

export class PushServer {
  private readonly http: Server
  private readonly wss: WebSocketServer
  private readonly feed: BridgeFeed
  private readonly heartbeat: Heartbeat
  private readonly writer = new FrameWriter()
  private readonly conns: Connections
  private readonly endpoints: PushEndpoints
  private limiter: ConnectionRateLimit
  private heartbeatTimer: NodeJS.Timeout | null = null
  private pingTimer: NodeJS.Timeout | null = null
  private closing: Promise<void> | null = null
  readonly counters = pushCounters()

  constructor(
    private config: Readonly<PushConfig>,
    private readonly log: Logger,
  ) {
    this.limiter = new ConnectionRateLimit(config.connRate)
    this.http = createServer((req, res) => this.endpoints.handle(req, res))
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head))
    this.wss = new WebSocketServer({ noServer: true, maxPayload: config.maxMessageBytes, perMessageDeflate: false })
    this.feed = new BridgeFeed(
      config.bridgeDir,
      { message: (c, o, t, e) => this.onMessage(c, o, t, e), reset: (c, e, o, r) => this.conns.reset(c, e, o, r), subscribed: () => this.conns.channels.keys() },
      log,
    )
    this.heartbeat = new Heartbeat(config.bridgeDir)
    this.conns = new Connections({ config: () => this.config, epoch: () => this.feed.epoch, writer: this.writer, counters: this.counters, log })
    this.endpoints = new PushEndpoints(this.feed, () => ({
      ready: this.ready(),
      connections: this.conns.open.size,
      channels: this.conns.channels.size,
      counters: this.counters,
      publisher: this.heartbeat.publisherStats,
      writer: this.writer.counters,
    }))
  }

  async listen(): Promise<number> {
    this.endpoints.start()
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
      this.heartbeat.beat()
      this.endpoints.refreshBridgeStats()
      this.conns.expireTokens()
    }, 1000)
    this.endpoints.refreshBridgeStats()
    this.pingTimer = setInterval(() => this.conns.ping(), this.config.pingIntervalMs)
    this.heartbeat.beat()
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
      this.pingTimer = setInterval(() => this.conns.ping(), next.pingIntervalMs)
    }
    this.config = next
    return 'live'
  }

  /** Alive and bridge heartbeat fresh. */
  ready(): PushReadiness {
    return this.heartbeat.ready(this.config.heartbeatStaleMs)
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number, text: string): void => refuseUpgrade(socket, status, text)
    socket.on('error', () => socket.destroy())
    if (this.closing !== null) return refuse(503, 'Service Unavailable')
    if ((req.url ?? '').split('?')[0] !== '/ws') return refuse(404, 'Not Found')
    if (!originAllowed(req, this.config.origins)) {
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

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const conn = this.conns.add(ws)
    const reqId = req.headers['x-request-id']
    this.log.debug({ conn: conn.id, reqId }, 'websocket connected')
    ws.on('pong', () => (conn.alive = true))
    ws.on('message', (data, isBinary) => {
      if (isBinary) return this.conns.cut(conn, closeCodes.UNSUPPORTED_DATA, 'binary frames are not supported: send JSON text')
      const parsed = parseClientMessage(data.toString())
      if (!parsed.ok) {
        this.counters.badMessages++
        return this.conns.cut(conn, closeCodes.BAD_MESSAGE, parsed.reason)
      }
      void this.onClientMessage(conn, parsed.message)
    })
    ws.on('error', (err) => {
      // ws closes with 1009 on oversized frames, 1002 on protocol errors: log and carry on.
      this.log.info({ conn: conn.id, err: { message: err.message, code: (err as { code?: string }).code } }, 'websocket error')
    })
    ws.on('close', () => this.conns.drop(conn))
  }

  private async onClientMessage(conn: Conn, m: ClientMessage): Promise<void> {
    if (m.type === 'unsubscribe') {
      this.conns.unsubscribe(conn, m.channel)
      this.conns.send(conn, jsonFrame({ type: 'unsubscribed', channel: m.channel }))
      return
    }
    if (isReserved(m.channel)) return this.conns.cut(conn, closeCodes.FORBIDDEN, `channel ${m.channel} is reserved`)
    // Tokens come in the subscribe message only, never in the URL, which proxies log.
    let expiresAt: number | null = null
    if (isPrivate(m.channel)) {
      const v = verifyPushToken(this.config.secret, m.token)
      if (!v.ok || !v.claims.channels.includes(m.channel)) {
        this.counters.unauthorized++
        const reason = v.ok ? `token does not grant ${m.channel}` : v.reason
        this.log.info({ conn: conn.id, channel: m.channel, reason }, 'websocket unauthorized')
        return this.conns.cut(conn, closeCodes.UNAUTHORIZED, reason)
      }
      expiresAt = v.claims.exp * 1000
    }
    if (!conn.subs.has(m.channel) && conn.subs.size >= this.config.maxSubscriptions) {
      return this.conns.cut(conn, closeCodes.TOO_MANY_SUBSCRIPTIONS, `at most ${this.config.maxSubscriptions} subscriptions per connection`)
    }
    await subscribe(this.conns, this.feed, this.counters, this.log, conn, m, expiresAt)
  }

  /** Fans one message out; returns the number of sends (the feed bounds its work per turn by it). */
  private onMessage(channel: string, offset: number, text: string, env: Envelope): number {
    if (channel === HEARTBEAT) {
      this.heartbeat.received(env)
      return 0
    }
    return this.conns.deliver(channel, offset, text, env)
  }

  close(): Promise<void> {
    if (this.closing !== null) return this.closing
    this.closing = (async () => {
      if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer)
      if (this.pingTimer !== null) clearInterval(this.pingTimer)
      this.endpoints.stop()
      for (const conn of [...this.conns.open]) this.conns.cut(conn, closeCodes.GOING_AWAY, 'push process stopping: reconnect')
      await new Promise<void>((resolve) => this.http.close(() => resolve()))
      this.wss.close()
      await this.heartbeat.close()
      await this.feed.close()
      this.log.info({ counters: this.counters }, 'push stopped')
    })()
    return this.closing
  }
}
