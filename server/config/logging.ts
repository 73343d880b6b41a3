/** Where a process writes its JSON log lines: stdout, or its own rotated file in FORKYARD_LOG_DIR. */
import { resolve } from 'node:path'
import { int, size, type Parser } from './parse.js'
import { readSection, type Schema } from './section.js'

export interface LogConfig {
  /** Directory of the log files (<svc>.log, one writer each); empty = JSON lines on stdout. */
  dir: string
  /** Rotate a file before it would grow past this many bytes. */
  maxBytes: number
  /** Rotated files kept (<svc>.log.1 ... .N). */
  keep: number
  /** nginx's access.log (written by nginx itself) is rotated once it passes this many bytes. */
  accessMaxBytes: number
  /** Rotated access logs kept (access.log.1 ... .N). */
  accessKeep: number
}

const any: Parser<string> = (_n, raw) => raw.trim()

export const logSchema: Schema<LogConfig> = {
  dir: { env: 'FORKYARD_LOG_DIR', parse: any, default: '', apply: 'restart' },
  maxBytes: { env: 'FORKYARD_LOG_MAX_SIZE', parse: size, default: '10MiB' },
  keep: { env: 'FORKYARD_LOG_KEEP', parse: int(0, 1000), default: '5' },
  accessMaxBytes: { env: 'FORKYARD_ACCESS_LOG_MAX_SIZE', parse: size, default: '64MiB' },
  accessKeep: { env: 'FORKYARD_ACCESS_LOG_KEEP', parse: int(0, 1000), default: '10' },
}

export function loadLogConfig(env: NodeJS.ProcessEnv): Readonly<LogConfig> {
  const c = readSection(logSchema, env)
  if (c.dir !== '') c.dir = resolve(c.dir)
  return Object.freeze(c)
}
