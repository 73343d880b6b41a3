/**
 * The root logger of a process, writing the log schema shared by every forkyard process
 * (schema.ts): {"time","level","svc","pid","role"?,"worker"?,"reqId"?,"msg"}.
 * One pino() per process writing JSON lines to one output; modules take children
 * (`log.child({ role: 'arbiter' })`). Pretty-printing happens outside the process.
 */
import { fstatSync } from 'node:fs'
import { join } from 'node:path'
import pino, { type Logger } from 'pino'
import type { LogConfig } from '../config/logging.js'
import { PipeOutput } from './pipe-output.js'
import { isoTime } from './schema.js'
import { RotatingFile, type LineOutput } from './rotating-file.js'

export type { Logger }

export type { LineOutput }

/**
 * One ordered writer per process: `<FORKYARD_LOG_DIR>/<svc>.log` (rotated by size) when a log
 * directory is set, else stdout. Everything the process logs goes through it.
 */
export function createOutput(svc: string, config: Readonly<LogConfig> | null, fd = 1): LineOutput {
  if (config !== null && config.dir !== '') return new RotatingFile(join(config.dir, `${svc}.log`), config.maxBytes, config.keep)
  // A pipe or socket (a worker's logger pipe, stdout under a supervisor): asynchronous so a slow
  // reader never stalls the event loop (and so heartbeats), in order, and a reader that went away
  // never hangs the exit (server/log/pipe-output.ts). A file or a terminal: synchronous writes.
  const st = fstatSync(fd)
  if (st.isFIFO() || st.isSocket()) return new PipeOutput(fd)
  return pino.destination({ dest: fd, sync: true })
}

export interface LoggerOptions {
  svc: string
  level?: string
  base?: Record<string, unknown>
}

export function createLogger(output: LineOutput, options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      messageKey: 'msg',
      errorKey: 'err',
      timestamp: () => `,"time":"${isoTime()}"`,
      base: { svc: options.svc, pid: process.pid, ...options.base },
      formatters: { level: (label) => ({ level: label }) },
    },
    output as pino.DestinationStream,
  )
}

/**
 * Exits once every line written so far is out, so that no log line is lost or cut on the way out.
 * An asynchronous write in progress is waited for (writing the rest synchronously beside it would
 * interleave with it); after 5 s of a stuck reader, what is left is written synchronously.
 */
export function flushAndExit(output: LineOutput, code: number): void {
  const exit = (): never => process.exit(code)
  const last = setTimeout(() => {
    try {
      output.flushSync()
    } catch {
      // EAGAIN on a full pipe or a closed reader: nothing more can be done on the way out.
    }
    exit()
  }, 5000)
  const done = (): void => {
    clearTimeout(last)
    try {
      output.flushSync()
    } catch {
      // as above
    }
    exit()
  }
  if (output.whenWritten !== undefined) return output.whenWritten(done)
  done()
}
