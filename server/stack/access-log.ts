/**
 * nginx's access log: nginx writes `<log dir>/access.log` itself (a write per whole line, no Node
 * process in between), and the `forkyard nginx` wrapper rotates it by size, the way logrotate does
 * with nginx: rename the file (and the older ones along), then USR1 to the nginx master, which
 * reopens `access.log`. Lines nginx writes between the rename and the reopen land in
 * `access.log.1`, so nothing is lost at the cut; a file may pass the limit by what nginx writes
 * in one check interval.
 */
import { statSync } from 'node:fs'
import type { Logger } from 'pino'
import { shiftRotated } from '../log/rotating-file.js'

export const ACCESS_LOG_FILE = 'access.log'
/** How often the file's size is checked. */
const CHECK_MS = 1000

export interface AccessLogLimits {
  maxBytes: number
  keep: number
}

export class AccessLogRotation {
  private timer: NodeJS.Timeout | null = null

  constructor(
    readonly path: string,
    private limits: Readonly<AccessLogLimits>,
    /** Asks nginx to reopen its log files (USR1 to its master); false when nginx is not running. */
    private readonly reopen: () => boolean,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.check(), CHECK_MS).unref()
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  setLimits(limits: Readonly<AccessLogLimits>): void {
    this.limits = limits
  }

  /** Rotates when the file has reached the limit; returns whether it did. */
  check(): boolean {
    if (this.limits.maxBytes <= 0) return false
    let size: number
    try {
      size = statSync(this.path).size
    } catch {
      return false // not written yet
    }
    if (size < this.limits.maxBytes) return false
    try {
      shiftRotated(this.path, this.limits.keep)
    } catch (err) {
      this.log.error({ err, path: this.path }, 'cannot rotate the access log')
      return false
    }
    const reopened = this.reopen()
    this.log.info({ path: this.path, bytes: size, keep: this.limits.keep, reopened }, 'access log rotated')
    return true
  }
}
