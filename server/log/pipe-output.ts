/**
 * JSON lines into a pipe or socket (a worker's or the jobs process's logger pipe to the arbiter,
 * or stdout): whole lines, in order, written by libuv without blocking the event loop, and an exit
 * that can never hang on them.
 *
 * Batched in time: lines wait up to BATCH_MS (or until BATCH_BYTES are pending) and go out in one
 * write. A busy worker logs a line per request; a write per event-loop turn (a request or two
 * under load) meant a system call in the worker and a wake-up of the arbiter that relays it for
 * nearly every request; now at most 50 a second. Every exit path (flushAndExit, the shell's fatal
 * handler) flushes what is pending first.
 *
 * Not sonic-boom (pino.destination): its flushSync() retries every error but EAGAIN forever, so a
 * worker whose arbiter was killed -9 (EPIPE on the pipe) spun in flushSync on its way out, kept the
 * listening socket open and blocked the next arbiter (issue 11). Here a broken pipe marks the
 * output broken: later lines are counted as dropped, and the exit goes on.
 */
import { Socket } from 'node:net'
import type { LineOutput } from './rotating-file.js'

const BATCH_MS = 20
const BATCH_BYTES = 64 * 1024

export class PipeOutput implements LineOutput {
  private readonly socket: Socket
  private pending: string[] = []
  private pendingBytes = 0
  private timer: NodeJS.Timeout | null = null
  private broken: Error | null = null
  /** Lines not written because the reader went away. */
  dropped = 0

  constructor(fd: number) {
    this.socket = new Socket({ fd, readable: false, writable: true })
    this.socket.on('error', (err) => this.break(err))
    // The arbiter must not wait for this process's log pipe to exit, nor the pipe keep it alive.
    this.socket.unref()
  }

  write(lines: string): boolean {
    if (this.broken !== null) {
      this.dropped++
      return false
    }
    this.pending.push(lines)
    // Characters, not bytes: close enough for a batch size, and free.
    this.pendingBytes += lines.length
    if (this.pendingBytes >= BATCH_BYTES) this.flush()
    else if (this.timer === null) this.timer = setTimeout(() => this.flush(), BATCH_MS)
    return true
  }

  private flush(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    if (this.pending.length === 0 || this.broken !== null) return
    const text = this.pending.join('')
    this.pending = []
    this.pendingBytes = 0
    this.socket.write(text)
  }

  private break(err: Error): void {
    if (this.broken !== null) return
    this.broken = err
    this.pending = []
    this.pendingBytes = 0
  }

  /** Calls back once every line written so far is out (or can never be: the reader is gone). */
  whenWritten(cb: () => void): void {
    this.flush()
    if (this.broken !== null || this.socket.writableLength === 0) return cb()
    let called = false
    const done = (): void => {
      if (called) return
      called = true
      cb()
    }
    this.socket.once('drain', done)
    this.socket.once('error', done)
    this.socket.once('close', done)
  }

  /** Nothing can be written synchronously without risking a hang: flushAndExit waits in whenWritten. */
  flushSync(): void {
    this.flush()
  }
}
