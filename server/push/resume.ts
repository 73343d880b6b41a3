/**
 * A subscription's start, with resume: the client is registered first, then the bridge is asked
 * for the channel's history; the "subscribed" reply says whether everything since the client's
 * offset could be recovered, the missed messages follow, and then the live ones that arrived
 * meanwhile (held in the subscription's buffer), each exactly once and in order.
 */
import type { Logger } from 'pino'
import type { BridgeFeed } from './bridge-feed.js'
import { jsonFrame, type Conn, type Connections, type PushCounters } from './connections.js'
import { closeCodes, envelopeOffset, type ClientMessage } from './protocol.js'

/** Subscribes `conn` to `m.channel` (already authorized) and sends what it missed. */
export async function subscribe(
  conns: Connections,
  feed: BridgeFeed,
  counters: PushCounters,
  log: Logger,
  conn: Conn,
  m: Extract<ClientMessage, { type: 'subscribe' }>,
  expiresAt: number | null,
): Promise<void> {
  const sub = conns.register(conn, m.channel, expiresAt)
  // Registered first, history asked second: a message is either in the history answer or
  // arrives live afterwards (the bridge stores before it forwards), never neither.
  const resuming = m.offset !== null
  try {
    const range = await feed.history(m.channel, resuming ? m.offset! : Number.MAX_SAFE_INTEGER, resuming ? m.epoch : null)
    if (conn.closed || conn.subs.get(m.channel) !== sub) return
    const reply: Record<string, unknown> = { type: 'subscribed', channel: m.channel, epoch: range.epoch, offset: range.last }
    let history: string[] = []
    if (resuming) {
      counters.resumes++
      const epochChanged = m.epoch !== null && m.epoch !== range.epoch
      reply.recovered = range.complete && !epochChanged
      if (reply.recovered === true) {
        counters.recovered++
        reply.offset = m.offset
        history = range.messages
      } else {
        counters.notRecovered++
        reply.reason = epochChanged ? 'epoch-changed' : 'history-trimmed'
      }
    }
    if (!conns.send(conn, jsonFrame(reply))) return
    sub.lastSent = reply.offset as number
    for (const text of history) {
      const offset = envelopeOffset(text)
      if (offset <= sub.lastSent) continue
      if (!conns.send(conn, conns.framed(text))) return
      sub.lastSent = offset
    }
    const waiting = sub.buffer ?? []
    sub.buffer = null
    // A resume's replay counts towards the feed's slice: a storm of them yields to /healthz too.
    feed.addWork(1 + history.length + waiting.length)
    for (const w of waiting) {
      if (w.offset <= sub.lastSent) continue
      if (!conns.send(conn, w.frame)) return
      sub.lastSent = w.offset
    }
  } catch (err) {
    log.warn({ err, conn: conn.id, channel: m.channel }, 'subscribe failed: bridge unavailable')
    conns.unsubscribe(conn, m.channel)
    conns.cut(conn, closeCodes.GOING_AWAY, 'the message bridge is unavailable: reconnect later')
  }
}
