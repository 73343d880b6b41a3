/**
 * Frames between publishers, the push process and the bridge (all strings):
 *   -> ['pub', publisherId, seq, channel, dataJson]   <- ['ack', seq, offset, epoch] | ['nack', seq, reason]
 *   -> ['hist', requestId, channel, afterOffset, epoch or '']   <- ['hist', requestId, rangeJson]
 *   -> ['stats', requestId]                          <- ['stats', requestId, countersJson]
 * and, from the bridge's XPUB socket, [channel, envelopeJson] for every accepted message.
 */
import type { Socket } from 'zeromq'

/** Channel names: letters, digits and _ : . - /, at most 200; "$" starts reserved system channels. */
export const CHANNEL = /^\$?[A-Za-z0-9_:.\-/]{1,200}$/

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
