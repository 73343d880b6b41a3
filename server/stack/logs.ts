/**
 * `forkyard logs` (make logs): every process's JSON log file in the log directory, merged in time
 * order and pretty-printed, optionally filtered by process (--svc), request id (--req, also
 * searching the rotated files) or lowest level (--level warn: warn, error and fatal), and
 * followed (-f) across rotations: a file whose inode changes was rotated, so the rest of the old
 * file is read before the new one. `<program>.stdio` files (what a process printed outside its
 * logger) are shown too, each line wrapped as an error of that program, and supervisord's own
 * log (spawns, exits, restarts) at its lines' times and levels, labelled `supervisord`. Reading a line back and
 * printing it belong to the log schema (log/schema.ts, log/pretty-output.ts); this is the viewer.
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { pretty } from '../log/pretty-output.js'
import { parseLine, plainLine, type LogLine } from '../log/schema.js'
import { parseSupervisordLine } from './supervisor-log.js'

export interface LogFilter {
  svc?: string | undefined
  req?: string | undefined
  /** The lowest level shown: trace, debug, info, warn, error, fatal. */
  level?: string | undefined
}

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const

/** --level's value, checked: the lowest level to show. */
export function parseLevel(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === '') return undefined
  const v = raw.trim().toLowerCase()
  if (!(LEVELS as readonly string[]).includes(v)) throw new TypeError(`Expected --level (make logs LEVEL=) to be one of ${LEVELS.join(', ')}, got ${JSON.stringify(raw)}`)
  return v
}

interface Tail {
  path: string
  fd: number
  ino: number
  pos: number
  partial: string
  svc: string
  /** json: a logger's file; stdio: what a program printed outside its logger; supervisord: its own log. */
  kind: 'json' | 'stdio' | 'supervisord'
  /** supervisord's pid, from its last "supervisord started with pid N" line read. */
  pid?: number
}

export function matches(line: LogLine, f: LogFilter): boolean {
  if (f.svc !== undefined && line.svc !== f.svc) return false
  if (f.req !== undefined && line.reqId !== f.req) return false
  if (f.level !== undefined && LEVELS.indexOf(String(line.level) as (typeof LEVELS)[number]) < LEVELS.indexOf(f.level as (typeof LEVELS)[number])) return false
  return true
}

function open(path: string, fromEnd: boolean): Tail {
  const fd = openSync(path, 'r')
  const st = fstatSync(fd)
  const name = basename(path)
  const kind = name === 'supervisord.stdio' ? 'supervisord' : name.endsWith('.stdio') ? 'stdio' : 'json'
  return { path, fd, ino: st.ino, pos: fromEnd ? st.size : 0, partial: '', svc: name.replace(/\.(log|stdio)(\.\d+)?$/, ''), kind }
}

/** Reads what was appended since the last call; whole lines only. */
function drain(t: Tail, rawTime?: string): LogLine[] {
  const out: LogLine[] = []
  const buf = Buffer.alloc(1 << 16)
  for (let i = 0; i < 100_000; i++) {
    const n = readSync(t.fd, buf, 0, buf.length, t.pos)
    if (n <= 0) break
    t.pos += n
    const text = t.partial + buf.subarray(0, n).toString('utf8')
    const lines = text.split('\n')
    t.partial = lines.pop() ?? ''
    for (const l of lines) {
      const parsed = t.kind === 'supervisord' ? supervisordLine(l, t) : parseLine(l, t.svc, t.kind === 'stdio', rawTime)
      if (parsed !== null) out.push(parsed)
    }
  }
  return out
}

/** A line of supervisord's own log in the schema: its spawns, exits and restarts, at their time. */
function supervisordLine(text: string, t: Tail): LogLine | null {
  const l = parseSupervisordLine(text)
  if (l === null) return null
  const started = /^supervisord started with pid (\d+)/.exec(l.msg)
  if (started !== null) t.pid = Number(started[1])
  return plainLine('supervisord', t.pid, l.level, l.msg, {}, l.time)
}

/** The files being written; with `rotated`, also their older generations (access.log.1, …). */
function logFiles(dir: string, rotated = false): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log') || (rotated && /\.log\.\d+$/.test(f)) || f.endsWith('.stdio'))
    .map((f) => join(dir, f))
}

function byTime(a: LogLine, b: LogLine): number {
  return String(a.time ?? '').localeCompare(String(b.time ?? ''))
}

/** Prints the last `lines` matching lines of all files merged; then, with follow, new ones as they come. */
export async function showLogs(dir: string, filter: LogFilter, options: { follow: boolean; lines: number; json: boolean; color: boolean; write: (s: string) => void; stopAfterMs?: number }): Promise<void> {
  const print = (batch: LogLine[]): void => {
    batch.sort(byTime)
    for (const l of batch) if (matches(l, filter)) options.write((options.json ? JSON.stringify(l) : pretty(l, options.color)) + '\n')
  }
  const tails = new Map<string, Tail>()
  const first: LogLine[] = []
  // One request may be older than the last rotation: its lines are looked for in every generation.
  for (const path of logFiles(dir, filter.req !== undefined)) {
    const t = open(path, false)
    first.push(...drain(t, statSync(path).mtime.toISOString()))
    if (/\.log\.\d+$/.test(path)) closeSync(t.fd)
    else tails.set(path, t)
  }
  print(options.lines <= 0 ? [] : first.filter((l) => matches(l, filter)).sort(byTime).slice(-options.lines))
  if (!options.follow) {
    for (const t of tails.values()) closeSync(t.fd)
    return
  }
  const started = Date.now()
  while (options.stopAfterMs === undefined || Date.now() - started < options.stopAfterMs) {
    await new Promise((r) => setTimeout(r, 250))
    const batch: LogLine[] = []
    for (const path of logFiles(dir)) {
      let t = tails.get(path)
      if (t === undefined) {
        t = open(path, false)
        tails.set(path, t)
      }
      batch.push(...drain(t))
      let ino: number | null = null
      try {
        ino = statSync(path).ino
      } catch {
        ino = null
      }
      if (ino !== null && ino !== t.ino) {
        // Rotated: finish the old file (still open), then follow the new one from its start.
        batch.push(...drain(t))
        closeSync(t.fd)
        const fresh = open(path, false)
        tails.set(path, fresh)
        batch.push(...drain(fresh))
      }
    }
    print(batch)
  }
  for (const t of tails.values()) closeSync(t.fd)
}
