/**
 * A log file with exactly one writer (this process) that rotates by size, by rename
 * (app.log -> app.log.1 -> ... -> app.log.<keep>), only between whole lines: every write() call
 * must be whole lines, and a file is cut only at a line end, so no line is ever split across
 * files or lost. Readers that follow the file
 * notice the rotation by its inode changing.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

export interface LineOutput {
  write(lines: string): unknown
  flushSync(): void
  /** Calls back once everything written so far has reached the file (never interleaving). */
  whenWritten?(cb: () => void): void
  /** New rotation limits (FORKYARD_LOG_MAX_SIZE, FORKYARD_LOG_KEEP changed live). */
  setLimits?(maxBytes: number, keep: number): void
}

export class RotatingFile implements LineOutput {
  private fd: number
  private size: number
  private pending: string[] = []
  private scheduled = false

  constructor(
    readonly path: string,
    private maxBytes: number,
    private keep: number,
  ) {
    mkdirSync(dirname(path), { recursive: true })
    this.fd = openSync(path, 'a', 0o640)
    this.size = fstatSync(this.fd).size
  }

  /**
   * Queues whole lines; they are written together at the end of this turn of the event loop.
   * Writes are synchronous: a regular file on a local disk takes them at page-cache speed, and
   * there is never a write in flight that a rotation or the exit path would have to wait for.
   */
  write(lines: string): boolean {
    this.pending.push(lines)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => this.flushSync())
    }
    return true
  }

  setLimits(maxBytes: number, keep: number): void {
    this.flushSync()
    this.maxBytes = maxBytes
    this.keep = keep
  }

  whenWritten(cb: () => void): void {
    this.flushSync()
    cb()
  }

  /** Writes everything pending now, rotating at line boundaries so no file grows past maxBytes. */
  flushSync(): void {
    this.scheduled = false
    if (this.pending.length === 0) return
    let buf = Buffer.from(this.pending.join(''))
    this.pending = []
    while (buf.length > 0) {
      if (this.maxBytes > 0 && this.size + buf.length > this.maxBytes) {
        const space = this.maxBytes - this.size
        // The last whole line that still fits; a file always takes at least one line, however long.
        const cut = space > 0 ? buf.lastIndexOf(10, space - 1) : -1
        if (cut === -1 && this.size > 0) {
          this.rotate()
          continue
        }
        const end = cut === -1 ? (buf.indexOf(10) + 1 || buf.length) : cut + 1
        this.writeAll(buf.subarray(0, end))
        buf = buf.subarray(end)
        if (buf.length > 0) this.rotate()
        continue
      }
      this.writeAll(buf)
      break
    }
  }

  private writeAll(buf: Buffer): void {
    let off = 0
    try {
      while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off)
    } catch (err) {
      // Disk full or similar: say so on stderr (supervisord keeps it) and drop this batch only.
      process.stderr.write(`forkyard: cannot write log file ${this.path}: ${(err as Error).message}\n`)
    }
    this.size += off
  }

  private rotate(): void {
    closeSync(this.fd)
    shiftRotated(this.path, this.keep)
    this.fd = openSync(this.path, 'a', 0o640)
    this.size = 0
  }
}

/**
 * Moves `path` to `path.1`, `path.1` to `path.2`... keeping `keep` rotated files (the oldest is
 * overwritten); with keep 0 the file is removed. A writer that still holds the old file open keeps
 * writing into `path.1` until it reopens `path`, so nothing is lost at the cut.
 */
export function shiftRotated(path: string, keep: number): void {
  if (keep <= 0) {
    rmSync(path, { force: true })
    return
  }
  for (let i = keep - 1; i >= 1; i--) {
    if (existsSync(`${path}.${i}`)) renameSync(`${path}.${i}`, `${path}.${i + 1}`)
  }
  if (existsSync(path)) renameSync(path, `${path}.1`)
}
