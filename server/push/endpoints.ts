/**
 * The push process's plain HTTP side, on its loopback port: GET /healthz, GET /readyz (readiness,
 * counters, event-loop delay, the bridge's stats) and GET /metrics (JSON for the arbiter's
 * Prometheus scrape, arbiter/scrape.ts); and the checks a WebSocket upgrade passes before its
 * handshake (origin, client address) with the plain answer that refuses one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import type { BridgeFeed } from './bridge-feed.js'
import type { PushReadiness } from './heartbeat.js'

/** What the endpoints report of the rest of the process, read at each request. */
export interface PushView {
  ready: PushReadiness
  connections: number
  channels: number
  counters: Record<string, number>
  publisher: unknown
  writer: unknown
}

export class PushEndpoints {
  /** How late the event loop ran (the stall /healthz would see), since start and since the last /readyz. */
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 })
  private loopDelayMaxMs = 0
  private bridgeStats: Record<string, unknown> = {}
  private bridgeStatsAt = 0
  private bridgeEpochChanges = 0

  constructor(
    private readonly feed: BridgeFeed,
    private readonly view: () => PushView,
  ) {}

  start(): void {
    this.loopDelay.enable()
  }

  stop(): void {
    this.loopDelay.disable()
  }

  /** Asks the bridge for its stats (every second, with the heartbeat). */
  refreshBridgeStats(): void {
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

  handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/healthz') return json(res, 200, { status: 'ok', pid: process.pid })
    if (path === '/readyz') {
      const v = this.view()
      const r = v.ready
      // The bridge's counters as of the last second (refreshed with the heartbeat): /readyz answers
      // from this process alone, without a round trip that queues behind a busy bridge.
      const bridge = { ...this.bridgeStats, statsMsAgo: this.statsMsAgo() }
      const sinceLast = this.loopDelay.max / 1e6
      this.loopDelayMaxMs = Math.max(this.loopDelayMaxMs, sinceLast)
      const eventLoop = { delayMaxMs: Math.round(this.loopDelayMaxMs), delayMaxSinceLastMs: Math.round(sinceLast), delayP99SinceLastMs: Math.round(this.loopDelay.percentile(99) / 1e6) }
      this.loopDelay.reset()
      return json(res, r.ready ? 200 : 503, { ...r, connections: v.connections, channels: v.channels, counters: v.counters, feed: this.feed.counters, publisher: v.publisher, writer: v.writer, eventLoop, bridge })
    }
    // Counters for the arbiter's GET /metrics (metrics/sources.ts reads this JSON at scrape time).
    if (path === '/metrics') {
      const v = this.view()
      const bridge = { ...this.bridgeStats, epochChanges: this.bridgeEpochChanges, statsMsAgo: this.statsMsAgo() }
      return json(res, 200, { connections: v.connections, channels: v.channels, heartbeatLagMs: v.ready.heartbeatLagMs, counters: v.counters, feed: this.feed.counters, bridge })
    }
    return json(res, 404, { error: 'not found: WebSocket connections go to /ws' })
  }

  private statsMsAgo(): number | null {
    return this.bridgeStatsAt === 0 ? null : Date.now() - this.bridgeStatsAt
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

/** Answers an upgrade request with a plain HTTP error and closes the socket. */
export function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\n${status === 429 ? 'Retry-After: 1\r\n' : ''}\r\n${text}\n`)
}

/**
 * FORKYARD_PUSH_ORIGINS: '*' allows any origin, a list allows those; empty allows only the page's
 * own host. A request without an Origin header (not a browser) is allowed.
 */
export function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin
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

/** The client's address: X-Real-IP when the connection comes from the local proxy, else the peer. */
export function clientAddress(req: IncomingMessage): string {
  const peer = req.socket.remoteAddress ?? ''
  const real = req.headers['x-real-ip']
  if ((peer === '127.0.0.1' || peer === '::1' || peer === '::ffff:127.0.0.1') && typeof real === 'string') return real
  return peer
}
