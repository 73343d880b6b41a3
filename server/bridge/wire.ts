/**
 * The bridge's wire contract, in one place: the endpoints, the frames, the names they carry and
 * the envelope subscribers receive. Every frame is a string.
 *
 * On the `in` endpoint (the bridge's ROUTER, which sees the sender's identity frame first; the
 * senders are DEALERs: publishers and the push process):
 *   -> ['pub', publisherId, seq, channel, dataJson, reqId, idempotencyKey]
 *        reqId: the request that caused the message (REQUEST_ID), '' when none
 *        idempotencyKey: the app's own key (IDEMPOTENCY_KEY), '' or absent when none; when given,
 *        duplicates are recognised by it (across publishers and hosts) instead of (publisherId, seq)
 *   <- ['ack', seq, offset, epoch]                    accepted (or a duplicate: its first offset)
 *   <- ['nack', seq, reason]                          refused: bad channel, data not JSON, bad
 *                                                     idempotency key, history file write failed
 *   (no answer)                                       the message store (Redis) is unreachable: the
 *                                                     publisher resends the same seq after
 *                                                     FORKYARD_PUBLISH_RESEND, deduplicated
 *   -> ['hist', callId, channel, afterOffset, epoch or '']
 *   <- ['hist', callId, rangeJson]                    rangeJson: a Range (history.ts)
 *   -> ['stats', callId]
 *   <- ['stats', callId, countersJson]
 * callId is the asker's own number for matching the reply; it is not a request id.
 *
 * On the `out` endpoint (the bridge's XPUB; the push process SUBscribes to everything):
 *   [channel, envelopeJson] for every accepted message, envelopeJson as made by envelopeOf().
 *
 * With FORKYARD_ENGINE=redis the bridges of every host also share one Redis pub/sub channel,
 * `<prefix>messages`; each message on it is a RedisPayload (encodePayload below), turned back into
 * the same envelope by every bridge.
 * The browser receives the same envelope with "type":"message" in front (push/protocol.ts), typed
 * for clients as PushMessage in client/push-client.d.ts; test/unit/bridge-wire.test.ts fails to
 * type-check when the two differ.
 */
import { join } from 'node:path'
import type { Socket } from 'zeromq'

/** Endpoints of the bridge in its socket directory: publishers and history requests go in, envelopes come out. */
export function bridgeEndpoints(dir: string): { in: string; out: string } {
  return { in: `ipc://${join(dir, 'in.sock')}`, out: `ipc://${join(dir, 'out.sock')}` }
}

/**
 * Channel names: 1-200 characters from A-Z a-z 0-9 _ : . - /, optionally after a "$" that marks a
 * reserved system channel ($sys:heartbeat). The bridge accepts every such name; publishers may use
 * only the $sys: ones; browsers may subscribe to none of them (push/push-server.ts).
 */
export const CHANNEL = /^\$?[A-Za-z0-9_:.\-/]{1,200}$/

/** The channel rule in words, for error messages. */
export const CHANNEL_RULE = '1-200 characters from A-Z a-z 0-9 _ : . - /'

/** Prefix of the system channels that forkyard itself publishes on. */
export const SYSTEM_PREFIX = '$sys:'

export function isReserved(channel: string): boolean {
  return channel.startsWith('$')
}

/**
 * Request ids carried in publishes and envelopes, and accepted from X-Request-ID by the HTTP
 * worker (nginx's $request_id is 32 hex characters, ours a UUID). Anything else is not passed on.
 */
export const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * Idempotency keys (PublishOptions.idempotencyKey): the same rule as request ids, 1-128 characters
 * from A-Z a-z 0-9 . _ : -.
 */
export const IDEMPOTENCY_KEY = REQUEST_ID

/** What a subscriber receives for each accepted message. */
export interface Envelope {
  channel: string
  /** Position in the channel: 1, 2, 3, ... */
  offset: number
  /** The bridge's history generation: offsets of different epochs are unrelated. */
  epoch: string
  /** When the bridge accepted the message, in ms since the epoch. */
  ts: number
  /** The request that caused the message, when there was one. */
  reqId?: string
  data: unknown
}

/**
 * The envelope JSON of an accepted message, built as text: `data` is already JSON (checked by the
 * bridge) and goes in as is, without being parsed and serialized again.
 */
export function envelopeOf(channel: string, offset: number, epoch: string, ts: number, data: string, reqId = ''): string {
  const req = reqId === '' ? '' : `,"reqId":${JSON.stringify(reqId)}`
  return `{"channel":${JSON.stringify(channel)},"offset":${offset},"epoch":${JSON.stringify(epoch)},"ts":${ts}${req},"data":${data}}`
}

/** One accepted message as the Redis engine's publish script announces it to every bridge. */
export interface RedisPayload {
  offset: number
  epoch: string
  ts: number
  reqId: string
  channel: string
  /** JSON text, as published. */
  data: string
}

/**
 * The `<prefix>messages` payload: offset, epoch, ts, reqId, channel and data, one per line, data
 * last (the only field that may hold a newline). Made by the publish script in redis-store.ts (Lua,
 * the same order); this is its one description.
 */
export function encodePayload(p: RedisPayload): string {
  return `${p.offset}\n${p.epoch}\n${p.ts}\n${p.reqId}\n${p.channel}\n${p.data}`
}

/** The payload's fields, or an Error saying what was expected and what came. */
export function decodePayload(text: string): RedisPayload | Error {
  const parts: string[] = []
  let at = 0
  for (let k = 0; k < 5; k++) {
    const nl = text.indexOf('\n', at)
    if (nl < 0) return new Error(`Expected 6 newline-separated fields (offset, epoch, ts, reqId, channel, data), got ${k + 1}: ${JSON.stringify(text.slice(0, 80))}`)
    parts.push(text.slice(at, nl))
    at = nl + 1
  }
  const offset = Number(parts[0])
  const ts = Number(parts[2])
  if (!Number.isSafeInteger(offset) || offset < 1 || !Number.isSafeInteger(ts)) return new Error(`Expected an offset >= 1 and a ts in ms, got ${JSON.stringify(parts[0])} and ${JSON.stringify(parts[2])}`)
  return { offset, epoch: parts[1]!, ts, reqId: parts[3]!, channel: parts[4]!, data: text.slice(at) }
}

/**
 * zeromq.js allows one send in flight per socket (a second concurrent send() rejects with EBUSY),
 * so every send goes through this queue.
 */
export class SendQueue {
  private tail: Promise<void> = Promise.resolve()

  constructor(private readonly socket: Socket & { send: (msg: (string | Buffer)[]) => Promise<void> }) {}

  send(frames: (string | Buffer)[]): Promise<void> {
    const next = this.tail.then(() => this.socket.send(frames))
    this.tail = next.catch(() => undefined)
    return next
  }
}

/** Gives the event loop a turn: a zeromq.js receive loop otherwise drains hundreds of queued
 * messages in one go and starves timers, health checks and signal handlers. */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
