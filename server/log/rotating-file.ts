/**
 * A log file with exactly one writer (this process) that rotates by size, by rename
 * (app.log -> app.log.1 -> ... -> app.log.<keep>), only between whole lines: every write() call
 * must be whole lines, and a rotation waits for the write in progress, including the rest of a
 * partial write, so no line is ever split across files or lost. Readers that follow the file
 * notice the rotation by its inode changing.
 */
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, write, writeSync } from 'node:fs'
import { dirname } from 'node:path'

export interface LineOutput {
  write(lines: string): unknown
  flushSync(): void
  /** Calls back once everything written so far has reached the file (never interleaving). */
  whenWritten?(cb: () => void): void
}

export class RotatingFile implements LineOutput {
  private fd: number
  private size: number
  private pending: string[] = []
  private writing = false
  private waiters: (() => void)[] = []

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly keep: number,
  ) {
    mkdirSync(dirname(path), { recursive: true })
    this.fd = openSync(path, 'a', 0o640)
    this.size = fstatSync(this.fd).size
  }

  write(lines: string): boolean {
    this.pending.push(lines)
    if (!this.writing) this.flush()
    return true
  }

  whenWritten(cb: () => void): void {
    if (!this.writing && this.pending.length === 0) return cb()
    this.waiters.push(cb)
  }

  private flush(): void {
    if (this.pending.length === 0) {
      this.writing = false
      const waiters = this.waiters
      this.waiters = []
      for (const w of waiters) w()
      return
    }
    this.writing = true
    const buf = Buffer.from(this.pending.join(''))
    this.pending = []
    if (this.maxBytes > 0 && this.size > 0 && this.size + buf.length > this.maxBytes) this.rotate()
    this.writeAll(buf, 0)
  }

  private writeAll(buf: Buffer, from: number): void {
    write(this.fd, buf, from, buf.length - from, null, (err, n) => {
      if (err !== null) {
        // Disk full or similar: say so on stderr (supervisord keeps it) and drop this batch only.
        process.stderr.write(`forkyard: cannot write log file ${this.path}: ${err.message}\n`)
        this.flush()
        return
      }
      this.size += n
      if (from + n < buf.length) return this.writeAll(buf, from + n)
      this.flush()
    })
  }

  private rotate(): void {
    closeSync(this.fd)
    if (this.keep <= 0) rmSync(this.path, { force: true })
    for (let i = this.keep - 1; i >= 1; i--) {
      try {
        renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`)
      } catch {
        // that generation does not exist yet
      }
    }
    if (this.keep > 0) renameSync(this.path, `${this.path}.1`)
    this.fd = openSync(this.path, 'a', 0o640)
    this.size = 0
  }

  /** Writes everything still pending, synchronously (on the way out). */
  flushSync(): void {
    if (this.writing) {
      // An async write is in flight; appending after it keeps whole lines (O_APPEND).
    }
    const rest = this.pending.join('')
    this.pending = []
    if (rest === '') return
    const buf = Buffer.from(rest)
    if (this.maxBytes > 0 && this.size > 0 && this.size + buf.length > this.maxBytes && !this.writing) this.rotate()
    let off = 0
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off)
    this.size += buf.length
  }
}
