/**
 * One HTTP worker: serves the app's request listener on every bind, answers /healthz itself,
 * tracks in-flight requests (for heartbeats, the watchdog and drain), enforces the optional
 * per-request deadline, logs one access line per request and asks the arbiter to recycle it.
 */
import cluster from 'node:cluster'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { Server as NetServer, type BlockList } from 'node:net'
import { blockListOf } from '../config/trust.js'
import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'
import { config as runtimeConfig } from '../config/runtime.js'
import { ForkyardError, codes } from '../errors.js'
import type { RequestSummary, WorkerMessage } from '../arbiter/ipc.js'
import { InflightTable } from './inflight.js'
import { RequestMetrics } from '../metrics/request-metrics.js'
import type { LoadedApp } from './load-app.js'
import type { ReadinessCheck } from './readiness.js'
import { requestIdOf } from './request-id.js'
import { listenPath } from '../arbiter/handover.js'
import { accessLine } from '../log/schema.js'
import type { LineOutput } from '../log/rotating-file.js'

/** Where access lines go without a logger call: the process's one output, and the logger's fields. */
export interface AccessOutput {
  output: LineOutput
  /** serialiseBindings() of the logger's fields (svc, pid, role, worker, generation). */
  bindings: string
}

interface Inflight {
  slot: number
  method: string
  path: string
  reqId: string
  start: number
  res: ServerResponse
  timer: NodeJS.Timeout | undefined
}

/** A response's in-flight entry, so that one shared listener per event serves every request. */
const ENTRY = Symbol('forkyard.inflight')
type TrackedResponse = ServerResponse & { [ENTRY]?: Inflight }

/** FORKYARD_MAX_REQUESTS plus this worker's random share of the jitter; 0 = never. */
function recycleAfter(config: Readonly<ServerConfig>): number {
  const jitter = config.maxRequestsJitter > 0 ? Math.floor(Math.random() * (config.maxRequestsJitter + 1)) : 0
  return config.maxRequests > 0 ? config.maxRequests + jitter : 0
}

export class HttpWorker {
  private readonly servers: Server[] = []
  private readonly inflight = new Set<Inflight>()
  private served = 0
  private draining = false
  private recycleAsked = false
  private lastRssCheck = 0
  private maxRequests: number
  private drainPromise: Promise<number> | null = null
  /** Request counters for GET /metrics, sent with each heartbeat. */
  private readonly metrics = new RequestMetrics()

  /** Peers whose X-Request-ID and traceparent are kept (FORKYARD_TRUSTED_ADDRESSES; Unix socket peers always). */
  private trust: BlockList

  constructor(
    private config: Readonly<ServerConfig>,
    private readonly app: LoadedApp,
    private readonly log: Logger,
    private readonly send: (m: WorkerMessage) => void,
    private readonly table: InflightTable,
    private readonly readiness: ReadinessCheck | null,
    private readonly access: AccessOutput,
  ) {
    this.maxRequests = recycleAfter(config)
    this.trust = blockListOf(config.trustedAddresses)
  }

  /** Listens on every bind; resolves when all listen. */
  async listen(): Promise<void> {
    for (const bind of this.config.bind) {
      const server = createServer({ maxHeaderSize: this.config.maxHeaderSize }, (req, res) => this.onRequest(req, res))
      // Idle keep-alive connections stay open this long; it must exceed the keepalive_timeout of
      // the proxy in front, so that the proxy, not us, closes idle connections (a server-side close
      // races with the proxy reusing the connection and fails the request it sent).
      server.keepAliveTimeout = this.config.keepAliveTimeoutMs
      server.headersTimeout = this.config.headersTimeoutMs
      server.requestTimeout = this.config.requestReceiveTimeoutMs
      server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
        // Malformed HTTP or oversized headers: answer like Node would, log at debug, keep serving.
        this.log.debug({ err: { message: err.message, code: err.code } }, 'client error')
        if (!socket.writable) return socket.destroy()
        const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
      })
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => reject(new ForkyardError(codes.BIND, `Cannot listen on ${bind.text}: ${err.message}`, { cause: err }))
        server.once('error', onError)
        const done = (): void => {
          server.off('error', onError)
          resolve()
        }
        // Under this arbiter's own name; it moves the socket to the public path (arbiter/handover.ts).
        if (bind.kind === 'unix') server.listen({ path: listenPath(bind.path, process.ppid), backlog: 2048 }, done)
        else server.listen({ host: bind.host, port: bind.port, backlog: 2048 }, done)
      })
      this.servers.push(server)
    }
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const start = performance.now()
    const reqId = requestIdOf(req, this.trust)
    res.setHeader('X-Request-ID', reqId)
    // Draining: answer, then close this connection (Connection: close), so the client never sends
    // another request on a connection we are about to close.
    if (this.draining) res.shouldKeepAlive = false
    const method = req.method ?? 'GET'
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    if (path === '/healthz' && (method === 'GET' || method === 'HEAD')) {
      this.answerHealth(res, method)
      return
    }
    if (path === '/readyz' && (method === 'GET' || method === 'HEAD') && this.readiness !== null) {
      this.answerReady(res, method, this.readiness)
      return
    }
    // Health probes are not app requests: they count neither in `served` nor toward recycling.
    this.served++
    const entry: Inflight = { slot: this.table.add(method, path, reqId, Date.now()), method, path, reqId, start, res, timer: undefined }
    this.inflight.add(entry)
    if (this.config.requestTimeoutMs > 0) entry.timer = setTimeout(() => this.onDeadline(entry), this.config.requestTimeoutMs)
    ;(res as TrackedResponse)[ENTRY] = entry
    // Shared listeners, no closure per request ('close' is emitted once per response).
    res.on('error', this.onResponseError)
    res.on('close', this.onResponseClose)
    try {
      const result = this.app.listener(req, res)
      if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
        ;(result as Promise<unknown>).then(undefined, (err: unknown) => this.onAppError(err, entry))
      }
    } catch (err) {
      this.onAppError(err, entry)
    }
  }

  // Listeners shared by every response: `this` is the response, the worker is captured once.
  private readonly onResponseError: (this: TrackedResponse, err: Error) => void = (() => {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the listener's `this` is the response
    const worker = this
    return function (this: TrackedResponse, err: Error): void {
      worker.log.warn({ err, reqId: this[ENTRY]?.reqId }, 'response error')
    }
  })()

  private readonly onResponseClose: (this: TrackedResponse) => void = (() => {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the listener's `this` is the response
    const worker = this
    return function (this: TrackedResponse): void {
      const entry = this[ENTRY]
      if (entry !== undefined) worker.finish(entry)
    }
  })()

  private finish(entry: Inflight): void {
    const { res } = entry
    if (entry.timer !== undefined) clearTimeout(entry.timer)
    this.inflight.delete(entry)
    this.table.remove(entry.slot)
    const ms = performance.now() - entry.start
    this.metrics.app(res.statusCode, ms)
    if (this.config.accessLog === true && this.log.isLevelEnabled('info')) {
      const fields = { reqId: entry.reqId, method: entry.method, path: entry.path, status: res.statusCode, ms: Math.round(ms * 10) / 10, aborted: !res.writableFinished }
      this.access.output.write(accessLine(this.access.bindings, fields))
    }
    this.afterRequest()
  }

  private answerHealth(res: ServerResponse, method: string): void {
    const body = JSON.stringify({ status: this.draining ? 'draining' : 'ok', pid: process.pid, worker: cluster.worker?.id ?? 0 })
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' })
    res.end(method === 'HEAD' ? undefined : body)
    this.metrics.health(200)
  }

  private answerReady(res: ServerResponse, method: string, readiness: ReadinessCheck): void {
    readiness.check().then(
      (r) => {
        const body = JSON.stringify({ ...r, worker: cluster.worker?.id ?? 0, pid: process.pid })
        res.writeHead(r.ready ? 200 : 503, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' })
        res.end(method === 'HEAD' ? undefined : body)
        this.metrics.health(r.ready ? 200 : 503)
      },
      (err: unknown) => {
        this.metrics.health(503)
        res.writeHead(503, { 'Content-Type': 'application/json' })
        res.end(JSON.stringify({ ready: false, error: (err as Error).message }))
      },
    )
  }

  private onAppError(err: unknown, entry: Inflight): void {
    this.log.error({ err, reqId: entry.reqId, method: entry.method, path: entry.path }, 'app handler threw')
    const { res } = entry
    if (!res.headersSent) {
      res.writeHead(500, { 'Content-Type': 'text/plain', Connection: 'close' })
      res.end('Internal Server Error\n')
    } else if (!res.writableEnded) {
      res.destroy()
    }
  }

  /** The per-request deadline passed: answer 504 if nothing was sent yet, else cut the response. */
  private onDeadline(entry: Inflight): void {
    const { res } = entry
    const ageMs = Math.round(performance.now() - entry.start)
    this.log.warn({ reqId: entry.reqId, method: entry.method, path: entry.path, ageMs, limitMs: this.config.requestTimeoutMs }, 'request deadline exceeded')
    if (!res.headersSent) {
      res.writeHead(504, { 'Content-Type': 'text/plain', Connection: 'close' })
      res.end('Gateway Timeout: the request exceeded FORKYARD_REQUEST_TIMEOUT\n')
    } else {
      res.destroy()
    }
    // The app may still write later: make that a no-op instead of an uncaught ERR_HTTP_HEADERS_SENT.
    const r = res as unknown as Record<string, unknown>
    r.writeHead = () => res
    r.setHeader = () => res
    r.write = () => true
    r.end = () => res
  }

  private afterRequest(): void {
    if (this.recycleAsked || this.draining) return
    if (this.maxRequests > 0 && this.served >= this.maxRequests) {
      this.recycleAsked = true
      this.send({ t: 'recycle', reason: 'max-requests', value: this.served, limit: this.maxRequests })
      return
    }
    if (this.config.maxRssBytes > 0) {
      const now = Date.now()
      if (now - this.lastRssCheck < 1000) return
      this.lastRssCheck = now
      const rss = process.memoryUsage.rss()
      if (rss > this.config.maxRssBytes) {
        this.recycleAsked = true
        this.send({ t: 'recycle', reason: 'max-rss', value: rss, limit: this.config.maxRssBytes })
      }
    }
  }

  /** A live configuration change: timeouts, limits, log level and access log take effect now. */
  updateConfig(config: Readonly<ServerConfig>): void {
    if (config.maxRequests !== this.config.maxRequests || config.maxRequestsJitter !== this.config.maxRequestsJitter) this.maxRequests = recycleAfter(config)
    this.config = config
    this.trust = blockListOf(config.trustedAddresses)
    for (const server of this.servers) {
      server.keepAliveTimeout = config.keepAliveTimeoutMs
      server.headersTimeout = config.headersTimeoutMs
      server.requestTimeout = config.requestReceiveTimeoutMs
    }
    this.log.level = config.logLevel
  }

  heartbeat(): WorkerMessage {
    const now = performance.now()
    const requests: RequestSummary[] = []
    for (const e of this.inflight) {
      if (requests.length >= 20) break
      requests.push({ method: e.method, path: e.path, reqId: e.reqId, ageMs: Math.round(now - e.start) })
    }
    return { t: 'hb', served: this.served, inflight: this.inflight.size, rss: process.memoryUsage.rss(), configVersion: runtimeConfig.version, requests, metrics: this.metrics.snapshot() }
  }

  /**
   * Graceful drain in three steps: stop accepting; let in-flight requests finish (each answered
   * with Connection: close); close what remains at the deadline. `closeIdle` closes idle
   * keep-alive connections at once (full stop); otherwise (reload, recycle) they are left to the
   * client's own idle timeout, because closing an idle connection races with a client reusing it.
   * Resolves with the exit code: 0 clean, 1 when connections had to be cut.
   */
  drain(reason: string, closeIdle: boolean): Promise<number> {
    if (this.drainPromise !== null) {
      if (closeIdle) for (const s of this.servers) s.closeIdleConnections()
      return this.drainPromise
    }
    this.draining = true
    this.log.info({ reason, inflight: this.inflight.size, closeIdle }, 'draining: stopped accepting')
    for (const e of this.inflight) if (!e.res.headersSent) e.res.shouldKeepAlive = false
    this.drainPromise = new Promise<number>((resolve) => {
      let open = this.servers.length
      const deadline = setTimeout(() => {
        const now = performance.now()
        const requests = [...this.inflight].map((e) => ({ method: e.method, path: e.path, reqId: e.reqId, ageMs: Math.round(now - e.start) }))
        if (requests.length > 0) this.log.warn({ reason, requests, limitMs: this.config.gracefulTimeoutMs }, 'drain deadline passed: cutting requests still in flight')
        else this.log.info({ reason }, 'drain deadline passed: closing idle keep-alive connections')
        for (const s of this.servers) s.closeAllConnections()
        resolve(this.inflight.size > 0 ? 1 : 0)
      }, this.config.gracefulTimeoutMs)
      const sweep = setInterval(() => {
        if (closeIdle) for (const s of this.servers) s.closeIdleConnections()
      }, 100)
      const closed = (): void => {
        if (--open > 0) return
        clearTimeout(deadline)
        clearInterval(sweep)
        this.log.info({ reason, served: this.served }, 'drained')
        resolve(0)
      }
      if (open === 0) closed()
      for (const s of this.servers) {
        // net.Server#close, not http.Server#close: since Node 19 the latter also closes idle
        // keep-alive connections at once, which we only want for a full stop.
        NetServer.prototype.close.call(s, () => closed())
        if (closeIdle) s.closeIdleConnections()
      }
    })
    return this.drainPromise
  }
}
