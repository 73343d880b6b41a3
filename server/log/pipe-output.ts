/**
 * JSON lines into a pipe or socket (a worker's or the jobs process's logger pipe to the arbiter,
 * or stdout): whole lines, in order, batched per event-loop turn, written by libuv without blocking
 * the event loop, and an exit that can never hang on them.
 *
 * Not sonic-boom (pino.destination): its flushSync() retries every error but EAGAIN forever, so a
 * worker whose arbiter was killed -9 (EPIPE on the pipe) spun in flushSync on its way out, kept the
 * listening socket open and blocked the next arbiter (issue 11). Here a broken pipe marks the
 * output broken: later lines are counted as dropped, and the exit goes on.
 */
import { Socket } from 'node:net'
import type { LineOutput } from './rotating-file.js'

export class PipeOutput implements LineOutput {
  private readonly socket: Socket
  private pending: string[] = []
  private scheduled = false
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
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => this.flush())
    }
    return true
  }

  private flush(): void {
    this.scheduled = false
    if (this.pending.length === 0 || this.broken !== null) return
    const text = this.pending.join('')
    this.pending = []
    this.socket.write(text)
  }

  private break(err: Error): void {
    if (this.broken !== null) return
    this.broken = err
    this.pending = []
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
