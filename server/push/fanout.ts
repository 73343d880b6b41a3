/**
 * Fan-out without per-client work: a message is framed once (RFC 6455 header + payload in one
 * Buffer) and that same Buffer is written to every subscriber's socket. ws's own send() builds a
 * header per call, copies options, and goes through its Sender (queue, cork, two writes, uncork)
 * for each client; on a 1,000-subscriber channel that per-client path was most of the push
 * process's CPU.
 *
 * The raw write is taken only when it cannot reorder or corrupt what ws itself sends: the
 * connection is OPEN (no close frame sent), no extension was negotiated (perMessageDeflate is off
 * in the push server, so frames are never compressed), and ws's Sender is idle with an empty
 * queue (nothing of its own waiting). Otherwise the payload goes through ws.send() as before.
 *
 * Writes are batched per socket: the first write of a turn corks the socket and the socket is
 * uncorked on the next tick (or once CORK_BYTES wait), so several messages to one client in one
 * event-loop turn leave in one writev() instead of one syscall each.
 */
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'

/** A server-to-client text message, framed once. */
export interface OutFrame {
  /** The JSON text as bytes: what ws.send() gets on the fallback path. */
  payload: Buffer
  /** Header + payload, ready for the socket. */
  wire: Buffer
}

/** Frames `payload` as one unmasked, final text frame (opcode 1). */
export function textFrame(payload: Buffer): OutFrame {
  const n = payload.length
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10
  const wire = Buffer.allocUnsafe(head + n)
  wire[0] = 0x81
  if (n < 126) {
    wire[1] = n
  } else if (n < 65536) {
    wire[1] = 126
    wire.writeUInt16BE(n, 2)
  } else {
    wire[1] = 127
    wire.writeUInt32BE(Math.floor(n / 2 ** 32), 2)
    wire.writeUInt32BE(n >>> 0, 6)
  }
  payload.copy(wire, head)
  return { payload, wire }
}

/**
 * Bytes of this connection already handed to the kernel (or in flight to it): with the bytes
 * queued at some moment, it tells whether what was queued then has left yet. Null when unknown.
 */
export function dispatchedBytes(ws: WebSocket): number | null {
  const socket = (ws as unknown as WsInternals)._socket as (Socket & { _bytesDispatched?: number }) | null
  return typeof socket?._bytesDispatched === 'number' ? socket._bytesDispatched : null
}

/** The parts of a ws 8 WebSocket (and Node's net.Socket) this module relies on (checked in test/unit/push-fanout.test.ts). */
interface WsInternals {
  readyState: number
  extensions: string
  _socket: Socket | null
  _sender: { _state: number; _queue: unknown[] } | null
}

/** A corked socket is written out once this much waits in it. */
const CORK_BYTES = 16 * 1024
const OPEN = 1
const SENDER_IDLE = 0

export class FrameWriter {
  private corked: Socket[] = []
  private readonly flushNow = (): void => this.flush()
  /** Frames written straight to the socket, and through ws.send(). */
  readonly counters = { direct: 0, viaWs: 0 }

  /** Writes one framed message to one client. */
  write(ws: WebSocket, frame: OutFrame): void {
    const w = ws as unknown as WsInternals
    const socket = w._socket
    const sender = w._sender
    if (w.readyState === OPEN && w.extensions === '' && socket !== null && sender !== null && sender._state === SENDER_IDLE && sender._queue.length === 0 && socket.writable) {
      if (socket.writableCorked === 0) {
        socket.cork()
        if (this.corked.push(socket) === 1) process.nextTick(this.flushNow)
      }
      socket.write(frame.wire)
      // Not more than CORK_BYTES held back: what waits is then the client's backlog, which the
      // slow-consumer limit (FORKYARD_PUSH_MAX_BUFFER) measures, not this turn's batch.
      if (socket.writableLength >= CORK_BYTES) socket.uncork()
      this.counters.direct++
      return
    }
    this.counters.viaWs++
    ws.send(frame.payload, { binary: false })
  }

  /** Uncorks every socket written to since the last flush (runs by itself on the next tick). */
  flush(): void {
    const list = this.corked
    if (list.length === 0) return
    this.corked = []
    for (const s of list) if (s.writableCorked > 0) s.uncork()
  }
}
