/**
 * The bridge's wire contract, in one place: the endpoints, the frames, the names they carry and
 * the envelope subscribers receive. Every frame is a string.
 *
 * On the `in` endpoint (the bridge's ROUTER, which sees the sender's identity frame first; the
 * senders are DEALERs: publishers and the push process):
 *   -> ['pub', publisherId, seq, channel, dataJson, reqId]
 *        reqId: the request that caused the message (REQUEST_ID), '' when none
 *   <- ['ack', seq, offset, epoch]                    accepted (or a duplicate: its first offset)
 *   <- ['nack', seq, reason]                          refused: bad channel, data not JSON, history
 *                                                     file write failed
 *   -> ['hist', callId, channel, afterOffset, epoch or '']
 *   <- ['hist', callId, rangeJson]                    rangeJson: a Range (history.ts)
 *   -> ['stats', callId]
 *   <- ['stats', callId, countersJson]
 * callId is the asker's own number for matching the reply; it is not a request id.
 *
 * On the `out` endpoint (the bridge's XPUB; the push process SUBscribes to everything):
 *   [channel, envelopeJson] for every accepted message, envelopeJson as made by envelopeOf().
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
