/**
 * The request id and the W3C trace context of a request, as the worker sees them.
 * - X-Request-ID is kept when it comes from a trusted peer (nginx on the Unix socket, or an address
 *   in FORKYARD_TRUSTED_ADDRESSES) and has a sane format (REQUEST_ID); otherwise a new one is made.
 *   It is put back on the request headers (the app reads it like any header) and on the response.
 * - traceparent (https://www.w3.org/TR/trace-context/) likewise: from a trusted peer and valid, its
 *   trace id is continued and the caller's span becomes this request's parent; otherwise a new
 *   trace starts. The worker's own span id is new for each request. `traceContext(req)` gives it to
 *   the app, with the header value to send on to the services it calls.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { BlockList, Socket } from 'node:net'
import { REQUEST_ID } from '../bridge/wire.js'
import { isTrusted } from '../config/trust.js'

export interface TraceContext {
  /** 32 lowercase hex characters: the whole trace, across services. */
  traceId: string
  /** 16 hex characters: this request's span in this worker. */
  spanId: string
  /** The caller's span (nginx's, or a trusted upstream's), null when this request started the trace. */
  parentSpanId: string | null
  /** Trace flags, 2 hex characters ("01" = sampled). */
  flags: string
  /** The traceparent header to send on to services this request calls: 00-<traceId>-<spanId>-<flags>. */
  traceparent: string
  /** The caller's tracestate, from a trusted peer only ('' when none). */
  tracestate: string
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const ZERO_TRACE = '0'.repeat(32)
const ZERO_SPAN = '0'.repeat(16)
const contexts = new WeakMap<IncomingMessage, TraceContext>()

/** Parses a traceparent header; null when absent or invalid (all-zero ids are invalid). */
export function parseTraceparent(value: string | undefined): { traceId: string; parentSpanId: string; flags: string } | null {
  const m = value === undefined ? null : TRACEPARENT.exec(value.trim())
  if (m === null || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return null
  return { traceId: m[1]!, parentSpanId: m[2]!, flags: m[3]! }
}

/** Per connection, for the trust list it was checked against: keep-alive requests reuse the answer. */
const peers = new WeakMap<Socket, { list: BlockList; trusted: boolean }>()

/** Whether the peer of this connection is trusted (BlockList.check allocates: once a connection). */
function trustedPeer(list: BlockList, socket: Socket | undefined | null): boolean {
  if (socket === undefined || socket === null) return true
  const known = peers.get(socket)
  if (known !== undefined && known.list === list) return known.trusted
  const trusted = isTrusted(list, socket.remoteAddress)
  peers.set(socket, { list, trusted })
  return trusted
}

/**
 * The request's id, trusting the peer's headers only when `trust` allows. From an untrusted peer
 * the trace headers are removed, so that traceContext() starts a new trace. Nothing else is done
 * per request: the trace context is made only when the app asks for it.
 */
export function requestIdOf(req: IncomingMessage, trust: BlockList | null = null): string {
  const trusted = trust === null || trustedPeer(trust, req.socket)
  const given = req.headers['x-request-id']
  if (!trusted && (req.headers.traceparent !== undefined || req.headers.tracestate !== undefined)) {
    delete req.headers.traceparent
    delete req.headers.tracestate
  }
  if (trusted && typeof given === 'string' && REQUEST_ID.test(given)) return given
  const id = randomUUID()
  req.headers['x-request-id'] = id
  return id
}

/** The request id of a request served by forkyard, for app code. */
export function requestId(req: IncomingMessage): string | undefined {
  const id = req.headers['x-request-id']
  return typeof id === 'string' ? id : undefined
}

/**
 * The W3C trace context of a request served by forkyard, for app code: the trusted caller's trace
 * continued (its traceparent is still on the request only when the peer was trusted), else a new
 * one. Made at the first call and the same for every later call on the request.
 */
export function traceContext(req: IncomingMessage): TraceContext {
  const known = contexts.get(req)
  if (known !== undefined) return known
  const header = req.headers.traceparent
  const parent = parseTraceparent(typeof header === 'string' ? header : undefined)
  const traceId = parent?.traceId ?? randomBytes(16).toString('hex')
  const spanId = randomBytes(8).toString('hex')
  const flags = parent?.flags ?? '01'
  const state = req.headers.tracestate
  const ctx: TraceContext = { traceId, spanId, parentSpanId: parent?.parentSpanId ?? null, flags, traceparent: `00-${traceId}-${spanId}-${flags}`, tracestate: parent !== null && typeof state === 'string' ? state : '' }
  contexts.set(req, ctx)
  return ctx
}
