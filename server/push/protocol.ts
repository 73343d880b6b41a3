/**
 * The push protocol (JSON text frames), documented in README "WebSocket protocol".
 * Client -> server:
 *   {"type":"subscribe","channel":"news","offset":41,"epoch":"a1b2c3","token":"v1..."}  (offset, epoch, token optional)
 *   {"type":"unsubscribe","channel":"news"}
 * Server -> client:
 *   {"type":"subscribed","channel","epoch","offset","recovered"?,"reason"?}
 *   {"type":"message","channel","offset","epoch","ts","reqId"?,"data"}  (the bridge's envelope, wire.ts)
 *   {"type":"reset","channel","epoch","offset","reason"}  (history lost: the client must resync;
 *     reason "lagging": the client fell more than FORKYARD_PUSH_MAX_LAG behind, offset is the last
 *     message sent to it, and the connection closes with 4429: resume from that offset)
 *   {"type":"unsubscribed","channel"}
 */
import { CHANNEL, CHANNEL_RULE } from '../bridge/wire.js'

export const closeCodes = {
  /** The push process is stopping or restarting: reconnect. */
  GOING_AWAY: 1001,
  /** A binary frame: only JSON text frames are spoken. */
  UNSUPPORTED_DATA: 1003,
  /** A frame larger than FORKYARD_PUSH_MAX_MESSAGE. */
  MESSAGE_TOO_BIG: 1009,
  /** Not JSON, or not a message of the protocol. */
  BAD_MESSAGE: 4400,
  /** Private channel without a valid token (missing, bad signature, expired, channel not in it). */
  UNAUTHORIZED: 4401,
  /** A reserved channel ($...). */
  FORBIDDEN: 4403,
  /** The client did not read fast enough: more than FORKYARD_PUSH_MAX_BUFFER waiting to be sent. */
  SLOW_CONSUMER: 4408,
  /** Its messages waited longer than FORKYARD_PUSH_MAX_LAG: a "reset" with reason "lagging" named its last offset; resume from there. */
  LAGGING: 4429,
  /** More than FORKYARD_PUSH_MAX_SUBSCRIPTIONS subscriptions on one connection. */
  TOO_MANY_SUBSCRIPTIONS: 4413,
} as const

export type ClientMessage =
  | { type: 'subscribe'; channel: string; offset: number | null; epoch: string | null; token: string | null }
  | { type: 'unsubscribe'; channel: string }

export type Parsed = { ok: true; message: ClientMessage } | { ok: false; reason: string }

export function parseClientMessage(text: string): Parsed {
  let m: unknown
  try {
    m = JSON.parse(text)
  } catch {
    return { ok: false, reason: 'expected a JSON object, got invalid JSON' }
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return { ok: false, reason: 'expected a JSON object' }
  const o = m as Record<string, unknown>
  if (o.type !== 'subscribe' && o.type !== 'unsubscribe') return { ok: false, reason: `expected type "subscribe" or "unsubscribe", got ${JSON.stringify(o.type)}` }
  // A reserved name ($...) parses: the push server refuses it with FORBIDDEN, not BAD_MESSAGE.
  if (typeof o.channel !== 'string' || !CHANNEL.test(o.channel)) {
    return { ok: false, reason: `expected "channel": ${CHANNEL_RULE}` }
  }
  if (o.type === 'unsubscribe') return { ok: true, message: { type: 'unsubscribe', channel: o.channel } }
  if (o.offset !== undefined && o.offset !== null && !(Number.isSafeInteger(o.offset) && (o.offset as number) >= 0)) {
    return { ok: false, reason: 'expected "offset" to be a whole number >= 0' }
  }
  if (o.epoch !== undefined && o.epoch !== null && typeof o.epoch !== 'string') return { ok: false, reason: 'expected "epoch" to be a string' }
  if (o.token !== undefined && o.token !== null && typeof o.token !== 'string') return { ok: false, reason: 'expected "token" to be a string' }
  return {
    ok: true,
    message: {
      type: 'subscribe',
      channel: o.channel,
      offset: (o.offset as number | undefined) ?? null,
      epoch: (o.epoch as string | undefined) ?? null,
      token: (o.token as string | undefined) ?? null,
    },
  }
}

export function isPrivate(channel: string): boolean {
  return channel.startsWith('private:')
}

/** The "message" frame for an envelope from the bridge: the envelope's text with "type" in front, never re-serialized. */
export function messageFrame(envelope: string): Buffer {
  return Buffer.from(`{"type":"message",${envelope.slice(1)}`)
}

/**
 * The offset of an envelope made by the bridge (wire.ts envelopeOf), read without parsing it:
 * `{"channel":"<name>","offset":<n>,...`; channel names never hold a quote. Falls back to
 * JSON.parse for any other shape.
 */
export function envelopeOffset(envelope: string): number {
  const at = envelope.indexOf('","offset":')
  if (at > 0) {
    let n = 0
    let i = at + 11
    for (; i < envelope.length; i++) {
      const c = envelope.charCodeAt(i) - 48
      if (c < 0 || c > 9) break
      n = n * 10 + c
    }
    if (i > at + 11 && envelope.charCodeAt(i) === 44) return n
  }
  return (JSON.parse(envelope) as { offset: number }).offset
}
