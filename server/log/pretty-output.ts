/**
 * Development and `make logs`: JSON log lines turned into readable, optionally colored lines on a
 * terminal (never in production):
 *   03:04:05.678 WARN  server/w3[4242]    slow request  reqId=r-1 ms=1234
 * Who wrote it: the svc, then the worker (/w3) or the role (/jobs, /wrapper) unless it is the
 * svc's main process (role arbiter, or none).
 */
import { parseLine, type LogLine } from './schema.js'
import type { LineOutput } from './rotating-file.js'

/** ANSI SGR color of each level. */
export const colors: Record<string, string> = { trace: '90', debug: '90', info: '32', warn: '33', error: '31', fatal: '35' }

/** `server/w3`, `server/jobs`, `nginx/wrapper`, `server` (the arbiter), `push`. */
export function who(svc: string, role: unknown, worker: unknown): string {
  if (worker !== undefined) return `${svc}/w${String(worker)}`
  return typeof role === 'string' && role !== '' && role !== 'arbiter' && role !== 'worker' ? `${svc}/${role}` : svc
}

/** One line: time HH:MM:SS.mmm, level, svc/w<worker>[pid] (or svc/<role>[pid]), msg, then the other fields as key=value. */
export function pretty(line: LogLine, color: boolean): string {
  const { time, level = 'info', svc = '?', pid, msg = '', ...rest } = line
  const t = typeof time === 'string' ? time.slice(11, 23) : '            '
  const label = `${who(svc, rest.role, rest.worker)}[${String(pid ?? '')}]`
  delete rest.role
  delete rest.worker
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ')
  const lvl = level.toUpperCase().padEnd(5)
  const head = color ? `\x1b[${colors[level] ?? '0'}m${lvl}\x1b[0m` : lvl
  return `${t} ${head} ${label.padEnd(18)} ${msg}${fields === '' ? '' : `  ${fields}`}`
}

export class PrettyOutput implements LineOutput {
  write(lines: string): boolean {
    let out = ''
    for (const text of lines.split('\n')) {
      const line = parseLine(text, 'server', true)
      if (line !== null) out += pretty(line, true) + '\n'
    }
    process.stdout.write(out)
    return true
  }

  flushSync(): void {}
}
